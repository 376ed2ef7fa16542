"""The training loop of §5: epochs of SGD steps, a validation pass, the lr rule, checkpoints.

    history = fit(net, opt, (x_train, y_train), (x_val, y_val), epochs=30, batch_size=128,
                  schedule=PlateauSchedule(opt), checkpoint="run/ckpt.npz")

Per epoch: shuffled batches from a BatchLoader (order a function of (seed, epoch);
augmentation offsets of (epoch, batch)), `net.train_step` on each, then the top-1/top-5
error on the validation set, `schedule.step(val_top1)`, and an atomic checkpoint that
holds the epoch and the history. Everything random is a function of seeds and counters,
so `fit(..., resume=checkpoint)` continues bit-identically to a run never interrupted.

A NaN/Inf training loss, a validation pass with a non-finite loss or probability, or a
non-finite parameter after an epoch raises NonFiniteError out of `fit` (naming the step,
and for a training step the first layer whose output went non-finite). Such an epoch never
reaches the schedule (it never becomes its "best") and never writes a checkpoint; the
error's note says what the checkpoint file on disk actually holds, read back from it.

Errors are counted by the backend op ``topk_errors`` (a tie with the k-th class or a
non-finite row is an error: the rule of cuda_convnet.reference.softmax).
"""
from __future__ import annotations

import os
import time

import numpy as np

from .backends import backend
from .data.loader import BatchLoader
from .data.pinned import PinnedBatch, PinnedRing
from .net import NonFiniteError, load_checkpoint, save_checkpoint
from .net.checkpoint import CheckpointError, read_manifest


def validation_pass(net, images, labels, *, batch_size: int = 256, view=None) -> dict:
    """{"top1_err", "top5_err", "loss", "non_finite"} of `net` in test mode over an array dataset.

    The single-view validation pass of `fit` (for the ten-crop, multi-model evaluation of
    a store, see cuda_convnet.data.evaluate.evaluate). images: anything `net.predict`
    takes after `view`; labels: ints (N,), N >= 1. view: applied to each batch of `images`
    before the net sees it (e.g. augment.CenterView, the centre crop of a store's uint8
    images); None feeds the images as they are. Errors are the backend op ``topk_errors``'s
    counts over N (ties and non-finite rows are errors; top-5 is top-min(5, classes));
    non_finite counts examples whose probabilities hold a NaN/inf, and then the loss is
    NaN too. Raises ValueError for no examples.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        raise ValueError("validation_pass: no examples")
    err1 = err5 = non_finite = 0
    loss = 0.0
    for i in range(0, n, batch_size):
        x = images[i:i + batch_size]
        if view is not None:
            x = view(np.asarray(x))
        probs = net.predict(np.ascontiguousarray(x, dtype=net.dtype))
        y = np.ascontiguousarray(labels[i:i + batch_size])  # a strided slice: the op takes raw rows
        k5 = min(5, probs.shape[1])
        counts = backend("cpu").topk_errors(np.ascontiguousarray(probs), y, ks=(1, k5))
        err1 += counts[1]
        err5 += counts[k5]
        non_finite += int((~np.isfinite(probs).all(axis=1)).sum())
        p_true = probs[np.arange(len(y)), y].astype(np.float64)
        loss += float(-np.log(np.maximum(p_true, 1e-300)).sum())  # a NaN stays NaN
    if non_finite:
        loss = float("nan")
    return {"top1_err": err1 / n, "top5_err": err5 / n, "loss": loss / n, "non_finite": non_finite}


def on_disk(path) -> str:
    """What the checkpoint file at `path` holds, read back from it (for error messages)."""
    if path is None:
        return "no checkpoint file is written by this run"
    path = os.fspath(path)
    if not os.path.exists(path):
        return f"there is no checkpoint at {path}"
    try:
        epoch = read_manifest(path)["extra"].get("epoch")
    except CheckpointError as e:
        return f"the file at {path} is not a readable checkpoint ({e})"
    return f"{path} on disk holds " + (f"the checkpoint written after epoch {epoch}" if epoch is not None
                                       else "a checkpoint with no epoch recorded")


def _stop(err: NonFiniteError, epoch: int, checkpoint, resume) -> NonFiniteError:
    where = on_disk(checkpoint if checkpoint is not None else resume)
    err.add_note(f"(in epoch {epoch + 1}; nothing of this epoch was saved: {where})")
    return err


def fit(net, optimizer, train, val, *, epochs: int, batch_size: int = 128, schedule=None, augment=None,
        seed: int = 0, checkpoint=None, resume=None, progress: bool = True, log=print,
        stop_when_schedule_finished: bool = False, eval_batch_size: int = 256, val_view=None, extra=None,
        arrays=None, on_epoch=None, distributed=None):
    """Train `net` for `epochs` epochs (in total, counting any resumed ones); -> history.

    train, val: (images, labels) arrays (a store's memory-mapped uint8 images will do).
    augment: a BatchLoader augment callable (DigitsAugment, data.augment.TrainAugment).
    val_view: applied to each validation batch (data.augment.CenterView), see validation_pass.
    checkpoint: path written after every epoch, with `extra` (JSON) and `arrays` (named
    NumPy arrays, e.g. the mean image) added to what fit records. resume: a checkpoint
    path to continue from (its net, optimizer and schedule state are loaded into the given
    objects, which must have the same architecture). on_epoch(entry, history): called
    after each epoch's checkpoint is written. history: one dict per epoch with epoch,
    train_loss, train_top1_err, train_top5_err, val_top1_err, val_top5_err, val_loss, lr,
    lr_dropped, seconds (the whole epoch), images_per_second (training steps only), step.

    distributed: a distributed.DataParallel (or HybridParallel, cuda-convnet2's scheme: the
    optimizer is still built on net.parameters(), and the net and optimizer hold the whole
    state after each epoch's training steps) for one rank of a multi-process job. Then
    batch_size is the per-rank batch, the loader gives this rank its shard of each global
    batch, gradients are averaged over the ranks before each update, the train statistics
    of `history` are over all ranks (images_per_second: the whole job's), and only rank 0
    writes the checkpoint (its batch_size: the global batch; world_size: the ranks), logs,
    shows progress and calls on_epoch. Every rank
    validates on the whole val set (identical replicas give identical errors, so every
    rank's schedule takes the same decisions).
    """
    history: list[dict] = []
    start_epoch = 0
    if resume is not None:
        ck = load_checkpoint(resume, devices=net.device_names)
        net.load_state_dict(ck.net.state_dict())
        net.step = ck.net.step
        if ck.optimizer is not None:
            optimizer.load_state_dict(ck.optimizer.state_dict())
        if schedule is not None and ck.schedule is not None:
            schedule.load_state_dict(ck.schedule.state_dict())
        start_epoch = int(ck.extra.get("epoch", 0))
        history = list(ck.extra.get("history", []))
    if distributed is not None:
        distributed.sync_state(optimizer)
    x_train, y_train = train
    x_val, y_val = val
    if distributed is None:
        # On a GPU the loader thread writes each batch into pinned memory, so its upload is
        # one asynchronous copy on the net's stream (data.pinned).
        staging = PinnedRing() if net.devices[0].kind == "cuda" else None
        loader = BatchLoader((x_train, y_train), batch_size, shuffle=True, seed=seed, augment=augment, drop_last=True,
                             to_device=staging)
        train_step = net.train_step
    else:
        loader = distributed.loader((x_train, y_train), batch_size, seed=seed, augment=augment)
        train_step = distributed.train_step
    main = distributed is None or distributed.is_main
    world = 1 if distributed is None else distributed.world_size
    if not main:  # one progress bar and one log: rank 0's
        progress, log = False, None
    bar = None
    try:
        if progress:
            from tqdm.auto import tqdm

        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            batches = loader.iter_epoch(epoch)
            if progress:
                bar = tqdm(batches, total=len(loader), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False)
                batches = bar
            losses, errs, errs5, counts = [], [], [], []
            for x, y in batches:
                if type(x).__module__.startswith("cupy"):
                    # A batch made on the GPU (KernelTrainAugment) enters the net's stream order
                    # after the stream that made it (no host round trip).
                    x = net.devices[0].adopt(x, stream=getattr(augment, "stream", None))
                elif not (isinstance(x, PinnedBatch) and x.dtype == net.dtype and x.flags.c_contiguous):
                    x = np.ascontiguousarray(x, dtype=net.dtype)
                try:
                    stats = train_step(x, y, optimizer)
                except NonFiniteError as e:
                    raise _stop(e, epoch, checkpoint, resume) from None
                losses.append(stats["loss"])
                errs.append(stats["top1_err"])
                errs5.append(stats["top5_err"])
                counts.append(len(y))
                if bar is not None:
                    bar.set_postfix(loss=f"{stats['loss']:.3f}", lr=f"{optimizer.lr:g}")
            if bar is not None:
                bar.close()
                bar = None
            train_seconds = time.perf_counter() - t0
            w = np.asarray(counts, dtype=np.float64)
            sums = np.array([np.dot(losses, w), np.dot(errs, w), np.dot(errs5, w), w.sum()])
            if distributed is not None:
                sums = distributed.sum_over_ranks(sums)
                distributed.gather_state(optimizer)  # the whole net in `net` (hybrid: its slices gathered)
            val_stats = validation_pass(net, x_val, y_val, batch_size=eval_batch_size, view=val_view)
            bad = [p.name for p in net.parameters() if not p.device.all_finite(p.data)]
            if val_stats["non_finite"] or not np.isfinite(val_stats["loss"]) or bad:
                why = (f"{len(bad)} parameter tensors hold NaN/inf (first {bad[0]})" if bad else
                       f"the validation pass gave non-finite probabilities for {val_stats['non_finite']} of "
                       f"{len(y_val)} examples (loss {val_stats['loss']})")
                raise _stop(NonFiniteError(f"training stopped after step {net.step}: {why}. The epoch's "
                                           "result is not used by the schedule.", step=net.step, layer=None),
                            epoch, checkpoint, resume)
            lr_used = optimizer.lr
            dropped = bool(schedule.step(val_stats["top1_err"])) if schedule is not None else False
            entry = {"epoch": epoch + 1, "train_loss": float(sums[0] / sums[3]),
                     "train_top1_err": float(sums[1] / sums[3]), "train_top5_err": float(sums[2] / sums[3]),
                     "val_top1_err": val_stats["top1_err"], "val_top5_err": val_stats["top5_err"],
                     "val_loss": val_stats["loss"], "lr": lr_used, "lr_dropped": dropped,
                     "seconds": time.perf_counter() - t0, "images_per_second": float(sums[3] / train_seconds),
                     "step": net.step}
            history.append(entry)
            if log is not None:
                log(f"epoch {epoch + 1:3d}/{epochs}  train loss {entry['train_loss']:.4f}  "
                    f"train top-1 err {100 * entry['train_top1_err']:5.2f}%  "
                    f"val top-1 err {100 * entry['val_top1_err']:5.2f}%  lr {lr_used:g}  "
                    f"({entry['seconds']:.1f}s, {entry['images_per_second']:.1f} img/s)")
                if dropped:
                    log(f"          validation error stopped improving: learning rate divided by "
                        f"{1 / schedule.factor:g} -> {optimizer.lr:g} (drop {schedule.drops}/{schedule.max_drops})")
            if checkpoint is not None and main:
                save_checkpoint(checkpoint, net, optimizer=optimizer, schedule=schedule, arrays=arrays,
                                extra={**(extra or {}), "epoch": epoch + 1, "history": history, "seed": seed,
                                       "batch_size": batch_size * world, "world_size": world})
            if on_epoch is not None and main:
                on_epoch(entry, history)
            if stop_when_schedule_finished and schedule is not None and schedule.finished:
                if log is not None:
                    log("          no learning-rate drops left and no improvement: stopping")
                break
    finally:
        if bar is not None:
            bar.close()
        loader.close()
    return history
