"""One memory-bound row of kernel_bench: its definition, and how it is validated against
the float64 reference and then timed (ours and the PyTorch baseline)."""

from __future__ import annotations

import numpy as np
from harness.validation import MISMATCH, OK, describe_error, rel_err

from cuda_convnet.backends import poison_outputs

TOL = 1e-4  # relative L2, float32 against float64: these ops have short or no reductions


class Case:
    """One memory-bound row. `ours(B, X)` and `ref(H)` return tuples of outputs (X: device
    inputs, H: float64 host inputs); `base(T, I)` is the PyTorch op (T: torch views of X).
    `op`: the backend op it times, when that op's kernel family has several versions (each
    then gets a row of its own, harness.versions)."""

    per_sample = True

    def __init__(self, name, shape, make, ours, ref, nbytes, base=None, per_sample=True, images=None, op=None):
        self.name, self.shape = name, shape
        self.make, self.ours, self.ref, self.nbytes, self.base = make, ours, ref, nbytes, base
        self.per_sample = per_sample
        self.images = images  # images per call, for an images/s column (the augmentation)
        self.op = op


class CaseEnv:
    """What every family's cases are built from: the device `dev` that makes inputs, PyTorch
    (`torch`, `F`: None when absent), the reference backend `R`, the batch and the width
    divisor `div`."""

    def __init__(self, dev, torch, batch, div):
        import cuda_convnet as ccn

        self.dev, self.torch, self.batch, self.div = dev, torch, batch, div
        self.R = ccn.backend("cpu")
        self.F = torch.nn.functional if torch is not None else None

    def ch(self, c):
        """A channel count narrowed by the width divisor (at least 2)."""
        return max(2, c // self.div)

    @staticmethod
    def nchw(t):
        """An NHWC tensor as channels_last NCHW (PyTorch's layout for the same memory)."""
        return t.permute(0, 3, 1, 2)

    def y_of(self, fn_ref, fn_torch, x):
        """A forward result a backward needs (max_pool's y, say): from the reference on the
        CPU, from PyTorch on a GPU."""
        dev = self.dev
        if dev.kind == "cpu" or self.torch is None:
            return fn_ref(dev.host(x))
        return dev.from_torch(fn_torch(dev.to_torch(x)))


def nhwc(shape):
    return "x".join(map(str, shape))


def to_host64(dev, inp, vb):
    """float64 host copies of the inputs (the first vb samples when vb is given)."""
    out = {}
    for k, v in inp.items():
        if k.startswith("torch_"):
            continue
        h = dev.host(v[:vb] if vb is not None else v)  # slice on the device: copy only what is checked
        out[k] = h.astype(np.float64) if h.dtype.kind == "f" else h
    return out


def torch_views(dev, inp):
    return {k: (v if k.startswith("torch_") else dev.to_torch(v)) for k, v in inp.items()}


def run_case(case, dev, backend, torch, timing, seed, vbatch, copy_bw, tol, *, label=None, base_us=None):
    """The row of `case` (named `label` when given): ours validated, then timed, and the
    PyTorch baseline timed, unless its time `base_us` is passed in (a version's row reuses
    the launcher's row's)."""
    row = {"op": label or case.name, "shape": case.shape, "mbytes": case.nbytes / 1e6}
    inputs_nbytes = case.nbytes
    vin = case.make(seed)
    sets = None
    if base_us is not None:
        row["base_us"] = base_us
    elif case.base is not None and torch is not None:
        try:
            nsets = timing.sets(inputs_nbytes, dev)
            sets = [vin] + [case.make(seed + 10 * (i + 1)) for i in range(nsets - 1)]
            views = [torch_views(dev, s) for s in sets]
            st = timing.run(dev, lambda i: case.base(views[i % nsets]), side="torch")
            row["base_us"] = st["median_s"] * 1e6
        except Exception as e:  # noqa: BLE001
            row["base_status"] = describe_error(e)
    try:
        vb = vbatch if case.per_sample else None
        with poison_outputs():
            outs = case.ours(backend, vin)
        refs = case.ref(to_host64(dev, vin, vb))
        row["err_ours"] = max(rel_err(o[:vb] if vb is not None else o, dev.asarray(r))
                              for o, r in zip(outs, refs))
        if not row["err_ours"] <= tol:
            row["status"] = MISMATCH
            return row
        if sets is None:
            nsets = timing.sets(inputs_nbytes, dev)
            sets = [vin] + [case.make(seed + 10 * (i + 1)) for i in range(nsets - 1)]
        st = timing.run(dev, lambda i: case.ours(backend, sets[i % len(sets)]))
        row.update(ours_us=st["median_s"] * 1e6, ours_spread=(st["p90_s"] - st["p10_s"]) / st["median_s"],
                   ours_calls=st["calls"], status=OK, rotation_sets=len(sets))
        row["ours_gbs"] = case.nbytes / st["median_s"] / 1e9
        row["pct_copy"] = 100 * case.nbytes / st["median_s"] / copy_bw
        if case.images:
            row["images_per_s"] = case.images / st["median_s"]
        if row.get("base_us"):
            row["ratio"] = row["ours_us"] / row["base_us"]
    except Exception as e:  # noqa: BLE001
        row["status"] = describe_error(e)
    return row

