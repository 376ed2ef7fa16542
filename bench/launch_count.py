"""Kernel launches and host synchronisations of one training step, counted on the emulator.

    python bench/launch_count.py                  # AlexNet, batch 1, both forms
    python bench/launch_count.py --model small    # the small net of the same layer structure

The Net runs a real `train_step` on logical "emu" devices (the CUDA launchers of csrc/ on
the SIMT emulator; every kernel computes), with each device's backend given a recording
proxy of cuda_convnet._emu. What is counted:

  launches   kernel launches, per backend op (conv2d, linear_backward, ...). Each launcher
             call is one launch, except the launchers that issue several kernels, whose
             count follows their source: conv2d_wgrad (the dw kernel, + the chunk sum when
             the plan splits N*P*Q, + the bias-gradient kernel, + its chunk sum), gemm (+
             the sum of its K slices when gemm_plan splits), softmax_cross_entropy (the
             rows, then the mean), topk_errors (one per
             kMaxTopK values of k), and the launchers that return their own count
             (sgd_update, concat_channels, split_channels). Array operations the Net does
             itself (gradient sums where a tensor feeds two layers, zero gradients) are
             CuPy kernels on a GPU and are not counted here.
  syncs      host synchronisations a GPU would make: each Device.synchronize (a stream
             synchronisation), each Device.to_host of a device array (the loss), each
             Device.all_finite, the label-range check of the softmax and top-k ops (a
             min and a max read back: 2, unless called with check_labels=False), and
             each topk_errors result (its counts are read back: 1, unless on_device=True).
  copies     cross-device copies (Device.copy_from: where the towers meet).

The counts depend on the layer structure and on the launchers' rules, not on the batch
(at batch 1 the wgrad plans may split differently from batch 128: the counts are those of
the batch given).
"""
from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(ROOT / "bench"))

from sass_report import source_constants  # noqa: E402

from cuda_convnet import SGD, models  # noqa: E402
from cuda_convnet._ext import load  # noqa: E402
from cuda_convnet.backends.kernel_ops import softmax as softmax_ops  # noqa: E402
from cuda_convnet.backends.kernels import KernelBackend  # noqa: E402
from cuda_convnet.net.devices import Device  # noqa: E402


class Tally:
    """What one step did: launches per (op, launcher), host syncs per kind, copies."""

    def __init__(self):
        self.launches: Counter = Counter()   # (op, launcher) -> kernel launches
        self.syncs: Counter = Counter()      # kind -> count
        self.copies = 0
        self.op = None                        # the backend op being run

    @property
    def total_launches(self) -> int:
        return sum(self.launches.values())

    @property
    def total_syncs(self) -> int:
        return sum(self.syncs.values())

    def per_op(self) -> dict[str, int]:
        out: Counter = Counter()
        for (op, _), n in self.launches.items():
            out[op] += n
        return dict(sorted(out.items()))

    def as_dict(self) -> dict:
        return {"launches": self.total_launches, "syncs": self.total_syncs, "copies": self.copies,
                "launches_per_op": self.per_op(), "syncs_per_kind": dict(sorted(self.syncs.items()))}


_CONV_SHAPE = ("n", "h", "w", "c", "k", "r", "s", "stride", "pad_top", "pad_bottom", "pad_left", "pad_right", "groups")


def _launches(name, kwargs, ret, ext) -> int:
    """Kernel launches of one launcher call (see the module docstring); the backend calls
    every binding with keyword arguments."""
    if name in ("sgd_update", "concat_channels", "split_channels"):
        return int(ret)
    if name == "conv2d_wgrad":
        plan = ext.conv2d_wgrad_plan(**{k: kwargs[k] for k in _CONV_SHAPE}, chunk_rows=kwargs["chunk_rows"])
        has_db = kwargs["db"] != 0
        return 1 + (plan["chunks"] > 1) + has_db + (has_db and plan["bias_chunks"] > 1)
    if name == "gemm":  # the K slices, + their sum when gemm_plan splits (only with a workspace)
        if not kwargs.get("workspace") and not kwargs.get("splits"):
            return 1
        plan = ext.gemm_plan(M=kwargs["M"], N=kwargs["N"], K=kwargs["K"], version=kwargs.get("version", 0),
                             splits=kwargs.get("splits", 0))
        return 1 + (plan["splits"] > 1)
    if name == "softmax_cross_entropy":
        return 2
    if name == "topk_errors":
        return math.ceil(len(kwargs["ks"]) / source_constants()["kMaxTopK"])
    return 1


class RecordingExt:
    """cuda_convnet._emu with every launcher call counted into a Tally."""

    _QUERIES = ("conv2d_wgrad_plan", "conv2d_version", "conv2d_wgrad_version", "lrn_version", "gemm_version",
                "gemm_plan", "device_count", "emulated")

    def __init__(self, ext, tally: Tally):
        self._ext, self._tally = ext, tally
        self.__name__ = ext.__name__

    def __getattr__(self, name):
        fn = getattr(self._ext, name)
        if name.startswith("_") or name in self._QUERIES or not callable(fn):
            return fn

        def call(**kwargs):
            ret = fn(**kwargs)
            self._tally.launches[(self._tally.op or "?", name)] += _launches(name, kwargs, ret, self._ext)
            return ret

        return call


class RecordingOps:
    """A backend whose op calls name the launches they make."""

    def __init__(self, inner, tally: Tally):
        self._inner, self._tally = inner, tally

    def __getattr__(self, op):
        attr = getattr(self._inner, op)
        if op.startswith("_") or not callable(attr):
            return attr

        def call(*args, **kwargs):
            outer, self._tally.op = self._tally.op, self._tally.op or op
            try:
                out = attr(*args, **kwargs)
            finally:
                self._tally.op = outer
            if op == "topk_errors" and not kwargs.get("on_device"):
                self._tally.syncs["topk_errors result"] += 1
            return out

        return call


@contextlib.contextmanager
def recording(net, tally: Tally, host_inputs=()):
    """Count what `net` does on its emu devices inside the block."""
    inner = KernelBackend("emu", RecordingExt(load("_emu"), tally), np)
    saved_ops = [d.ops for d in net.devices]
    for d in net.devices:
        if d.kind != "emu":
            raise ValueError(f"launch counting needs emu devices, the net has {d.name}")
        d.ops = RecordingOps(inner, tally)
    host_ids = {id(a) for a in host_inputs}
    orig = {n: getattr(Device, n) for n in ("synchronize", "to_host", "all_finite", "copy_from")}
    orig_check = softmax_ops._check_label_values

    def synchronize(self):
        tally.syncs["stream synchronize"] += 1
        return orig["synchronize"](self)

    def to_host(self, a):
        if id(a) not in host_ids:
            tally.syncs["to_host"] += 1
        return orig["to_host"](self, a)

    def all_finite(self, a):
        tally.syncs["all_finite"] += 1
        return orig["all_finite"](self, a)

    def copy_from(self, a, src):
        tally.copies += 1
        return orig["copy_from"](self, a, src)

    def check_labels(op, labels, classes):
        tally.syncs["label range check"] += 2
        return orig_check(op, labels, classes)

    Device.synchronize, Device.all_finite, Device.copy_from = synchronize, all_finite, copy_from
    Device.to_host = to_host
    softmax_ops._check_label_values = check_labels
    try:
        yield tally
    finally:
        for n, f in orig.items():
            setattr(Device, n, f)
        softmax_ops._check_label_values = orig_check
        for d, ops in zip(net.devices, saved_ops):
            d.ops = ops


CLASSES = {"alexnet": 1000, "small": 10}


def build_net(model: str, towers: int):
    devices = ("emu",) * towers
    if model == "alexnet":
        return models.alexnet(towers=towers, devices=devices, seed=0)
    if model == "small":
        return models.small_net(CLASSES["small"], towers=towers, devices=devices, seed=0)
    raise ValueError(f"unknown model {model!r}: alexnet or small")


def count_step(model: str = "alexnet", towers: int = 2, batch: int = 1, seed: int = 0) -> Tally:
    """Run one real train_step of `model` on emu devices and return what it launched."""
    net = build_net(model, towers)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch,) + tuple(net.input_shape)).astype(np.float32)
    labels = rng.integers(0, CLASSES[model], size=batch)
    opt = SGD(net.parameters(), lr=0.01)
    tally = Tally()
    with recording(net, tally, host_inputs=(x, labels)):
        net.train_step(x, labels, opt)
    return tally


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="alexnet", choices=("alexnet", "small"))
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args(argv)
    for towers, form in ((1, "grouped (one device)"), (2, "two towers")):
        t = count_step(args.model, towers, args.batch)
        print(f"{args.model}, {form}, batch {args.batch}: {t.total_launches} kernel launches, "
              f"{t.total_syncs} host synchronisations, {t.copies} cross-device copies")
        for op, n in t.per_op().items():
            print(f"    {op:32s} {n}")
        for kind, n in sorted(t.syncs.items()):
            print(f"    sync: {kind:26s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
