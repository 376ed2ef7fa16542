"""`train STORE`: train a net on a prepared store (§4.1, §5), a checkpoint every epoch.

    python -m cuda_convnet train out/ --model alexnet --devices cuda:0,cuda:1
    python -m cuda_convnet train small72/ --model small --devices cpu --epochs 30 --batch-size 64
    python -m cuda_convnet train out/ --out run1 --resume --epochs 60   # continue run1
    torchrun --nproc-per-node 8 -m cuda_convnet train out/ --devices cuda --batch-size 1024

Training views are the paper's (§4.1, data.augment.TrainAugment): random crops of the
store's images and their horizontal reflections, PCA lighting noise, minus the mean
image; validation is on the store's val split, centre crops. SGD with momentum 0.9 and
weight decay 5e-4 (§5); the learning rate is divided by 10 when the validation top-1
error has not improved for --patience epochs, at most --max-drops times, and training
stops when a further drop is due and none are left (§5: "reduced three times prior to
termination") or after --epochs.

The training loop is cuda_convnet.training.fit (the demo's). Written to --out DIR:

    checkpoint.npz   after every epoch, atomically (an interrupted run loses at most the
                     epoch in progress); `--resume` continues it bit-identically. It
                     carries the class names, the mean image and the crop, so `predict`
                     needs nothing else (see cli/common.py).
    metrics.jsonl    one JSON object per epoch: epoch, step, lr, lr_dropped, train_loss,
                     train_top1_err, train_top5_err, val_top1_err, val_top5_err, val_loss,
                     seconds, images_per_second (errors are fractions in [0, 1])
    curves.png       loss and error per epoch (cuda_convnet.viz)

--precision (fp32, 3xtf32, tf32, bf16; README "Precision") is the arithmetic of every conv and
fc GEMM, forward and backward; the checkpoint records it, and eval / predict use it unless
told otherwise. A resumed run keeps its precision (another one would not continue
bit-identically); runs recorded before --precision existed computed in fp32.

Data-parallel (cuda_convnet.distributed): under torchrun (its RANK, WORLD_SIZE, ... set) or
with --distributed, each process is one rank: a full replica of the net on cuda:LOCAL_RANK
(or on the cpu/emu backend), training on its shard of every global batch. --batch-size is
the GLOBAL batch (it must divide evenly over the ranks); the gradients are averaged over
the ranks, so the run is the one-process run with that batch and --lr needs no change for
a given global batch (a larger global batch is a different run: the linear scaling rule,
lr proportional to the global batch, is a common starting point, not applied here). Rank
0 alone writes the checkpoint, metrics.jsonl and curves.png and prints; every rank
validates. A failed or unresponsive rank ends the job (--dist-timeout).

--parallel hybrid (cuda_convnet.distributed.hybrid): cuda-convnet2's scheme instead, the conv
layers data-parallel and the fc layers split over the ranks by units (the model's stated
choice, Net.parallel), on the net's one-device grouped form; the checkpoint is the whole
net's (the slices gathered), so one process evaluates, predicts or resumes it too.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import numpy as np

# Settings recorded in the checkpoint, with their flags. On --resume a flag left out takes
# the recorded value; one given must equal it (cli/common.py resume_settings).
_SAVED = {"model": "--model", "crop": "--crop", "width": "--width", "seed": "--seed", "batch_size": "--batch-size",
          "limit_train": "--limit-train", "limit_val": "--limit-val", "lr": "--lr", "patience": "--patience",
          "max_drops": "--max-drops", "parallel": "--parallel", "precision": "--precision"}


def add_parser(sub):
    from .args import nonnegative_int, path, positive_float, positive_int
    from .common import MODELS, add_precision

    p = sub.add_parser("train", help="train a net on a prepared store (checkpoint every epoch; resumable)",
                       description="Train on STORE's train split (random crops, flips, PCA lighting; §4.1), "
                                   "validate on its val split (centre crops), SGD with the paper's plateau "
                                   "learning-rate rule (§5). Writes OUT/checkpoint.npz, OUT/metrics.jsonl and "
                                   "OUT/curves.png.")
    p.add_argument("store", type=path, help="a store written by `prepare` (with train and val splits)")
    p.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="the net (default alexnet): " + "; ".join(f"{m.name}: {m.about}" for m in MODELS.values()))
    p.add_argument("--crop", type=positive_int, default=None,
                   help="side of the training crops = the net's input (default: the model's, 224 or 64); must "
                        "not exceed the store's image size")
    p.add_argument("--width", type=positive_int, default=None,
                   help="layer width multiplier of --model small (default 2)")
    p.add_argument("--devices", default=None,
                   help="the two towers' devices: cpu, emu or cuda:N, one for both or two comma-separated "
                        "(cuda:0,cuda:1); default cuda:0 when a GPU is usable, else cpu")
    add_precision(p, "fp32 (on --resume: the run's)")
    p.add_argument("--epochs", type=positive_int, default=90,
                   help="epochs in total, counting resumed ones (default 90)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="images per SGD step (default 128, the paper's)")
    p.add_argument("--lr", type=positive_float, default=None, help="initial learning rate (default 0.01, the paper's)")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="epochs without validation improvement before lr /= 10 (default 2)")
    p.add_argument("--max-drops", type=nonnegative_int, default=None,
                   help="learning-rate drops before training stops (default 3, the paper's)")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="weights, batch order and augmentation (default 0)")
    p.add_argument("--out", type=path, default="train_out", help="output folder (default ./train_out)")
    p.add_argument("--resume", action="store_true",
                   help="continue OUT/checkpoint.npz with its settings, optimizer and schedule, bit-identically: "
                        "a flag left out takes the recorded value, one that differs from it is refused (--epochs "
                        "is the new total)")
    p.add_argument("--limit-train", type=positive_int, default=None, metavar="N",
                   help="train on N images, evenly spaced through the split (so every class is in)")
    p.add_argument("--limit-val", type=positive_int, default=None, metavar="N", help="validate on N images, likewise")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="BLAS threads for the cpu backend (default: 1 for --model small, else the library's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--distributed", action="store_true",
                   help="run as one rank of a data-parallel job launched by torchrun (implied when torchrun's "
                        "environment is set); --batch-size is then the global batch")
    p.add_argument("--parallel", choices=("data", "hybrid"), default=None,
                   help="how the ranks share the net (default data): data = a full replica per rank; hybrid = "
                        "cuda-convnet2's scheme, conv layers data-parallel and the fc layers split over the ranks "
                        "(the model's stated choice; the one-device grouped form of the net)")
    p.add_argument("--dist-timeout", type=float, default=None, metavar="S",
                   help="seconds a rank waits for the others in a collective before the job fails (default 60)")
    p.set_defaults(func=run)


def run(args):
    from . import UsageError

    if args.dist_timeout is not None and not (np.isfinite(args.dist_timeout) and args.dist_timeout > 0):
        raise UsageError(f"--dist-timeout must be a positive number of seconds, got {args.dist_timeout}")
    from ..distributed import launched_by_torchrun
    from .common import says_what_is_saved

    if not (args.distributed or launched_by_torchrun()):
        with says_what_is_saved(args.out):
            return _train(args)
    group = _join(args)
    if group is None:
        return 1
    try:
        with contextlib.ExitStack() as stack:
            if not group.is_main:  # one rank prints
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
            with says_what_is_saved(args.out):
                return _train(args, group)
    except RuntimeError as e:  # a collective failed (RankFailure) or the engine stopped: one line
        print(f"cuda-convnet train: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              file=sys.stderr)
        return 1
    finally:
        group.destroy()


def _join(args):
    """This process's ProcessGroup (UsageError when not launched by torchrun or no torch)."""
    from ..distributed import DEFAULT_TIMEOUT_S, init_from_env
    from ..distributed.group import install_stop_handler
    from ..net.devices import parse_device
    from . import UsageError
    from .common import parse_devices

    kind = parse_device(parse_devices(args.devices)[0])[0]
    timeout = DEFAULT_TIMEOUT_S if args.dist_timeout is None else args.dist_timeout
    try:
        group = init_from_env(kind, timeout_s=timeout)
    except ImportError as e:
        raise UsageError(f"--distributed: {e}") from None
    except RuntimeError as e:
        if "environment" in str(e):
            raise UsageError(f"--distributed: {e}") from None
        print(f"cuda-convnet train: error: joining the process group failed: {str(e).splitlines()[0]}",
              file=sys.stderr)
        return None
    install_stop_handler(group)
    return group


def _train(args, group=None):
    from .. import SGD, PlateauSchedule
    from ..net import CheckpointError, NonFiniteError
    from . import UsageError
    from .common import (
        CHECKPOINT,
        MODELS,
        blas_threads,
        check_crop,
        count,
        crop_coverage_warning,
        open_store,
        output_dir,
        parse_devices,
        read_manifest,
        resume_settings,
        subset,
        towers,
    )

    t_start = time.perf_counter()
    for flag, v in (("--epochs", args.epochs), ("--batch-size", args.batch_size), ("--width", args.width),
                    ("--patience", args.patience), ("--limit-train", args.limit_train),
                    ("--limit-val", args.limit_val), ("--crop", args.crop)):
        if v is not None and v < 1:
            raise UsageError(f"{flag} must be >= 1, got {v}")
    if args.max_drops is not None and args.max_drops < 0:
        raise UsageError(f"--max-drops must be >= 0, got {args.max_drops}")
    if args.lr is not None and not (np.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    devices = towers(parse_devices(args.devices))
    world = 1 if group is None else group.world_size
    parallel = "data"  # settled with the other settings below (a resumed run keeps its own)
    if group is not None and any(d.startswith("cuda") for d in devices):
        if len(set(devices)) > 1:
            raise UsageError(f"--devices {args.devices}: a data-parallel rank holds its whole net on one GPU, "
                             "cuda:LOCAL_RANK; pass --devices cuda")
        devices = (f"cuda:{group.local_rank}",) * 2
    train_store = open_store(args.store, "train")
    val_store = open_store(args.store, "val")
    if train_store.mean is None:
        raise UsageError(f"{args.store}: the store has no training statistics (mean image, RGB PCA)")
    classes = train_store.classes

    out = output_dir(args.out)
    ckpt = os.path.join(out, CHECKPOINT)
    settings = {k: getattr(args, k) for k in _SAVED}
    saved, done = {}, []  # on --resume: the run's recorded settings, the epochs already trained
    if args.resume:
        if not os.path.exists(ckpt):
            raise UsageError(f"--resume: no checkpoint at {ckpt}")
        saved = read_manifest(ckpt).get("extra", {})  # what the run recorded (cli/common.py)
        if "model" not in saved:
            raise UsageError(f"--resume: {ckpt} was not written by `train` (no model recorded)")
        saved = {"precision": "fp32", **saved}  # a run recorded before --precision existed computed in fp32
        for k in ("model", "crop", "width"):  # the architecture
            if settings[k] is not None and settings[k] != saved.get(k):
                raise UsageError(f"--resume: {ckpt} is a --{k} {saved.get(k)} run, not --{k} {settings[k]}")
        if saved.get("classes") != classes:
            raise UsageError(f"--resume: {ckpt} was trained on {len(saved.get('classes') or [])} classes "
                             f"({saved.get('store')}), not {args.store}'s {len(classes)}")
        settings = resume_settings(ckpt, saved, settings, _SAVED)
        done = list(saved.get("history", []))
    elif os.path.exists(ckpt):
        raise UsageError(f"{out} already holds a checkpoint: pass --resume to continue it, or choose another --out")
    model = MODELS[settings["model"] or "alexnet"]
    parallel = settings["parallel"] or "data"
    if parallel == "hybrid" and len(set(devices)) > 1:
        raise UsageError(f"--parallel hybrid: each rank holds its net on one device (the grouped form), not "
                         f"--devices {args.devices}")
    if settings["width"] is not None and not model.widths:
        raise UsageError(f"--width applies to --model small, not {model.name}")
    crop = check_crop(model, settings["crop"], train_store.size)
    warning = crop_coverage_warning(model, crop, train_store.size)
    if warning:
        print(f"cuda-convnet train: warning: {warning}", file=sys.stderr)
    seed = 0 if settings["seed"] is None else settings["seed"]
    batch = settings["batch_size"] or 128
    lr = 0.01 if settings["lr"] is None else settings["lr"]
    patience = 2 if settings["patience"] is None else settings["patience"]
    max_drops = 3 if settings["max_drops"] is None else settings["max_drops"]
    precision = settings["precision"] or "fp32"

    train_idx = subset(len(train_store), settings["limit_train"])
    val_idx = subset(len(val_store), settings["limit_val"])
    x_train, y_train = train_store.images, train_store.labels
    if train_idx is not None:  # a copy in memory: fine for the small subsets this is for
        x_train, y_train = np.asarray(x_train[train_idx]), y_train[train_idx]
    x_val, y_val = val_store.images, val_store.labels
    if val_idx is not None:
        x_val, y_val = np.asarray(x_val[val_idx]), y_val[val_idx]
    if len(y_train) < batch:
        raise UsageError(f"{len(y_train)} training images are fewer than one batch (--batch-size {batch})")
    if batch % world:
        raise UsageError(f"--batch-size {batch} (the global batch) does not divide over {world} ranks")
    if len(y_val) == 0:
        raise UsageError(f"{args.store}: the val split is empty")

    scale = saved.get("input_scale") if args.resume else None
    scale = model.input_scale(train_store) if scale is None else scale
    try:
        # The hybrid scheme splits the grouped one-device form's fc layers (models.tower_net).
        net = model.build(len(classes), devices, seed, crop, settings["width"] or 2,
                          towers=1 if parallel == "hybrid" else 2, precision=precision)
    except ValueError as e:
        raise UsageError(f"--model {model.name}: {e}") from None
    opt = SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    schedule = PlateauSchedule(opt, factor=0.1, patience=patience, max_drops=max_drops)
    s = train_store.size
    print(f"store {args.store}: {len(y_train)} training and {count(len(y_val), 'validation image')}"
          f"{' (subsets)' if train_idx is not None or val_idx is not None else ''}, {s}x{s}, "
          f"{count(len(classes), 'class', 'classes')}")
    print(f"model {model.name}: {crop}x{crop} crops, precision {precision}; "
          + (f"grouped form on {devices[0]}" if parallel == "hybrid" else f"towers on {', '.join(devices)}"))
    if group is not None:
        split = [k for k, v in net.parallel.items() if v == "model"] if parallel == "hybrid" else []
        how = (f"hybrid: {world} ranks ({group.backend}), {', '.join(split)} split over the ranks, the rest "
               "data-parallel" if split else f"data-parallel: {world} ranks ({group.backend})")
        print(f"{how}, global batch {batch} = {world} x {batch // world}; rank 0 writes {out}")
        if args.resume and saved.get("world_size", world) != world:
            print(f"the checkpoint was trained on {count(saved.get('world_size'), 'rank')}, continuing on {world}: "
                  "the same global batches, other float32 summation orders and dropout masks")
    print(net.summary())
    if args.resume:
        print(f"resuming {ckpt} (its optimizer and learning-rate schedule)")
    else:
        print(f"SGD: lr {lr:g}, momentum 0.9, weight decay 5e-4, batch {batch}; lr /10 after "
              f"{count(patience, 'epoch')} without improvement, at most {count(max_drops, 'time')}")

    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    metrics = os.path.join(out, "metrics.jsonl")
    curves = os.path.join(out, "curves.png")
    # The checkpoint's history is the record: on resume, metrics.jsonl is rewritten from it
    # (dropping lines of an epoch whose checkpoint never landed), then appended to.
    if group is None or group.is_main:
        _write_lines(metrics, done)

    def on_epoch(entry, history):
        with open(metrics, "a") as f:
            f.write(json.dumps(entry) + "\n")
        from ..viz import plot_training_curves

        plot_training_curves(history, curves, title=f"{model.name} on {os.path.basename(os.path.abspath(args.store))}")

    width = (settings["width"] or 2) if model.widths else None
    extra = {**settings, "model": model.name, "crop": crop, "width": width, "seed": seed, "batch_size": batch,
             "lr": lr, "patience": patience, "max_drops": max_drops, "parallel": parallel, "precision": precision,
             "classes": list(classes), "image_size": s, "store": os.path.abspath(args.store), "input_scale": scale}
    threads = args.threads if args.threads is not None else (1 if model.name == "small" else None)
    try:
        with blas_threads(threads):
            history = fit_store(net, opt, schedule, (x_train, y_train), (x_val, y_val), train_store, crop=crop,
                                scale=scale, epochs=args.epochs, batch=batch, seed=seed, ckpt=ckpt, resume=args.resume,
                                extra=extra, on_epoch=on_epoch, progress=not args.no_progress, group=group,
                                parallel=parallel)
    except CheckpointError as e:  # --resume of a damaged file (read again in full by fit)
        raise UsageError(str(e)) from None
    except NonFiniteError as e:  # the run failed (not the user's input): one line, status 1
        notes = " ".join(getattr(e, "__notes__", []))
        print(f"cuda-convnet train: error: {e} {notes} (try a lower --lr)", file=sys.stderr)
        return 1
    if not history:
        raise UsageError(f"{ckpt} has no recorded epochs")
    final = history[-1]
    # percent, as the epoch lines above print it
    print(f"final validation error: top-1 {100 * final['val_top1_err']:.2f}%, top-5 {100 * final['val_top5_err']:.2f}% "
          f"(centre crops) after {count(final['epoch'], 'epoch')}, {count(final['step'], 'step')}")
    if schedule.finished and final["epoch"] < args.epochs:
        print("stopped early: the validation error stopped improving with no learning-rate drops left")
    print(f"checkpoint: {ckpt}")
    print(f"metrics:    {metrics}")
    if os.path.exists(curves):
        print(f"curves:     {curves}")
    print(f"wall time:  {time.perf_counter() - t_start:.1f}s")
    return 0


def fit_store(net, opt, schedule, train, val, store, *, crop, scale, epochs, batch, seed, ckpt, resume, extra,
              on_epoch, progress, group=None, parallel="data"):
    """training.fit on store images: §4.1's training views, centre-crop validation (both
    times `scale`), the checkpoint carrying the store's mean image. group: this rank's
    distributed.ProcessGroup (batch is then the global batch, split over the ranks);
    parallel: "data" (DataParallel) or "hybrid" (HybridParallel, UsageError when the net's
    fc layers do not split over the ranks)."""
    from ..data.augment import CenterView, TrainAugment
    from ..training import fit
    from .common import Scaled

    augment = Scaled(TrainAugment.from_store(store, seed=seed, crop=crop), scale)
    dp = None
    if group is not None:
        from ..distributed import DataParallel

        if parallel == "hybrid":
            from ..distributed.hybrid import HybridParallel
            from . import UsageError

            try:
                dp = HybridParallel(net, group)
            except ValueError as e:
                raise UsageError(f"--parallel hybrid: {e}") from None
        else:
            dp = DataParallel(net, group)
    return fit(net, opt, train, val, epochs=epochs, batch_size=batch // (1 if dp is None else dp.world_size),
               distributed=dp, schedule=schedule, augment=augment, seed=seed,
               checkpoint=ckpt, resume=ckpt if resume else None, progress=progress,
               stop_when_schedule_finished=True, eval_batch_size=max(batch, 128),
               val_view=Scaled(CenterView(store.mean, crop), scale), extra=extra, arrays={"mean": store.mean},
               on_epoch=on_epoch)


def _write_lines(path, entries) -> None:
    from ..atomic import open_atomic

    with open_atomic(path, "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in entries)
