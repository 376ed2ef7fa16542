"""Memory-bound kernels against the card's copy bandwidth, and our GEMM on the fully
connected layers against cuBLAS (ARCHITECTURE.md §9: memory-bound kernels at 80%+ of the
measured device-to-device copy bandwidth).

Memory-bound ops, at AlexNet's shapes for batch N (128 on a GPU), NHWC float32:

    lrn / lrn_backward              after conv1 (55x55x96) and conv2 (27x27x256), §3.3
    max_pool / max_pool_backward    3x3 stride 2 after conv1, conv2, conv5, §3.4
    relu / relu_backward            conv1's output (55x55x96), §3.1
    tanh / tanh_backward            the same shape
    dropout / dropout_backward      fc6's output (4096) and, for a bandwidth-sized case,
                                    conv1's output; the paper's mode, Philox mask, §4.2
    softmax_cross_entropy (+ _bwd)  1000 classes
    sgd_update                      one fused launch over AlexNet's ~61M parameters, §5
    concat_channels/split_channels  where the towers meet (13x13, 128 + 128 channels), §3.2
    train_views                     uint8 256x256x3 -> float32 224x224x3 training views (crop,
                                    flip, PCA lighting, mean), §4.1; also in images/s

GB/s counts the bytes that must move: every input read once and every output written once
(e.g. lrn_backward reads x, y, dy and writes dx: 4 arrays; sgd_update reads w, g, v and
writes w, v: 5 arrays). "% copy" is that over the device-to-device copy bandwidth measured
in the same run (a 1 GiB cudaMemcpyAsync, bytes read + written). The torch column is the
nearest PyTorch op on the same device (time only; "-" where it has no direct equivalent).

GEMM rows: fc6 9216->4096, fc7 4096->4096, fc8 4096->1000 at batch N; fwd y = x·wᵀ,
dgrad dx = dy·w, wgrad dw = dyᵀ·x; ours is the GEMM kernel (csrc/gemm.cuh) called directly,
against torch.mm (cuBLAS, TF32 off), TFLOP/s = 2·M·N·K / time.

Every row is validated before it is timed: ours (outputs poisoned with NaN first) against
the NumPy reference in float64 (per-sample ops on the first --validate-batch images, whose
results do not depend on the rest of the batch; the dropout mask is a function of the flat
index, so a prefix of the batch is a prefix of the mask), relative L2 error. Without a GPU,
ours is the reference itself (--backend cpu) or the emulated kernels (--backend emu), against
PyTorch CPU and the CPU's memory copy bandwidth.

    python bench/kernel_bench.py                 # GPU if usable, else CPU mode
    python bench/kernel_bench.py --smoke         # tiny, one call each (tests)
    python bench/kernel_bench.py --backend emu --smoke --shrink 8
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

C.use_checkout()

import numpy as np  # noqa: E402

import cuda_convnet as ccn  # noqa: E402
from cuda_convnet.alexnet_shapes import conv_layers, fc_layers  # noqa: E402
from cuda_convnet.backends import poison_outputs  # noqa: E402
from cuda_convnet.data.augment import lighting_constants  # noqa: E402

LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
POOL = dict(size=3, stride=2)
DROP = dict(p=0.5, seed=2012, offset=0, mode="paper")
SGD = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
TOL = 1e-4  # relative L2, float32 against float64: these ops have short or no reductions


def alexnet_param_shapes(div=1):
    """The paper's parameter tensors (grouped one-device form, alexnet_shapes.param_shapes);
    widths / div."""
    d = lambda c: max(2, c // div // 2 * 2)  # noqa: E731  (even, for groups=2)
    shapes = []
    for L in conv_layers():
        c = L.c if L.c == 3 else d(L.c)  # the 3 input colours stay 3
        shapes += [(d(L.k), L.r, L.r, c // L.groups), (d(L.k),)]
    fcs = fc_layers()
    fc_in = fcs[0][1] // conv_layers()[-1].k * d(conv_layers()[-1].k)  # conv5's 6x6 maps, narrowed
    for i, (_, _, out) in enumerate(fcs):
        out = max(2, out // div) if i == len(fcs) - 1 else d(out)
        shapes += [(out, fc_in), (out,)]
        fc_in = out
    return shapes


def labels_checked(backend) -> dict:
    """Keyword arguments that skip a kernel backend's label-range check (a device-to-host
    read per call), for labels already checked once on the host; none for the reference."""
    if "check_labels" in inspect.signature(backend.softmax_cross_entropy).parameters:
        return {"check_labels": False}
    return {}


# --------------------------------------------------------------------------- cases

class Case:
    """One memory-bound row. `ours(B, X)` and `ref(H)` return tuples of outputs (X: device
    inputs, H: float64 host inputs); `base(T, I)` is the PyTorch op (T: torch views of X)."""

    per_sample = True

    def __init__(self, name, shape, make, ours, ref, nbytes, base=None, per_sample=True, images=None):
        self.name, self.shape = name, shape
        self.make, self.ours, self.ref, self.nbytes, self.base = make, ours, ref, nbytes, base
        self.per_sample = per_sample
        self.images = images  # images per call, for an images/s column (the augmentation)


def nhwc(shape):
    return "x".join(map(str, shape))


def pool_out(h):
    return (h - POOL["size"]) // POOL["stride"] + 1


def memory_cases(dev, torch, batch, div):
    """The memory-bound rows (`dev` makes inputs; forward results a backward needs, such as
    max_pool's y, come from the reference on the CPU and from PyTorch on a GPU)."""
    R = ccn.backend("cpu")
    F = torch.nn.functional if torch is not None else None
    ch = lambda c: max(2, c // div)  # noqa: E731
    nchw = lambda t: t.permute(0, 3, 1, 2)  # noqa: E731  (an NHWC tensor as channels_last NCHW)
    cases = []

    def y_of(fn_ref, fn_torch, x):
        if dev.kind == "cpu" or torch is None:
            return fn_ref(dev.host(x))
        return dev.from_torch(fn_torch(dev.to_torch(x)))

    # LRN after conv1 and conv2
    for where, hw, c in (("conv1", 55, ch(96)), ("conv2", 27, ch(256))):
        shape = (batch, hw, hw, c)
        n = math.prod(shape)
        torch_lrn = (lambda t: F.local_response_norm(nchw(t), LRN["size"], LRN["alpha"], LRN["beta"], LRN["k"])
                     .permute(0, 2, 3, 1).contiguous()) if F else None
        cases.append(Case(
            f"lrn {where}", nhwc(shape),
            lambda s, shape=shape: {"x": dev.randn(s, shape)},
            lambda B, X: (B.lrn(X["x"], **LRN),),
            lambda H: (R.lrn(H["x"], **LRN),), 2 * 4 * n,
            base=(lambda T: F.local_response_norm(nchw(T["x"]), LRN["size"], LRN["alpha"], LRN["beta"],
                                                  LRN["k"])) if F else None))

        def make_bwd(s, shape=shape, torch_lrn=torch_lrn):
            x = dev.randn(s, shape)
            return {"x": x, "y": y_of(lambda h: R.lrn(h, **LRN), torch_lrn, x), "dy": dev.randn(s + 1, shape)}

        cases.append(Case(
            f"lrn_backward {where}", nhwc(shape), make_bwd,
            lambda B, X: (B.lrn_backward(X["x"], X["y"], X["dy"], **LRN),),
            lambda H: (R.lrn_backward(H["x"], H["y"], H["dy"], **LRN),), 4 * 4 * n))

    # overlapping max-pooling after conv1, conv2, conv5
    for where, hw, c in (("conv1", 55, ch(96)), ("conv2", 27, ch(256)), ("conv5", 13, ch(256))):
        shape = (batch, hw, hw, c)
        oshape = (batch, pool_out(hw), pool_out(hw), c)
        n_in, n_out = math.prod(shape), math.prod(oshape)
        cases.append(Case(
            f"max_pool {where}", nhwc(shape),
            lambda s, shape=shape: {"x": dev.randn(s, shape)},
            lambda B, X: (B.max_pool(X["x"], **POOL),),
            lambda H: (R.max_pool(H["x"], **POOL),), 4 * (n_in + n_out),
            base=(lambda T: F.max_pool2d(nchw(T["x"]), POOL["size"], POOL["stride"])) if F else None))

        def make_pool_bwd(s, shape=shape, oshape=oshape):
            x = dev.randn(s, shape)
            inp = {"x": x, "y": y_of(lambda h: R.max_pool(h, **POOL),
                                     lambda t: F.max_pool2d(nchw(t), POOL["size"], POOL["stride"])
                                     .permute(0, 2, 3, 1).contiguous(), x),
                   "dy": dev.randn(s + 1, oshape)}
            if F is not None:  # PyTorch's backward needs its forward's argmax indices
                _, inp["torch_idx"] = F.max_pool2d(nchw(dev.to_torch(x)), POOL["size"], POOL["stride"],
                                                   return_indices=True)
            return inp

        cases.append(Case(
            f"max_pool_backward {where}", nhwc(shape), make_pool_bwd,
            lambda B, X: (B.max_pool_backward(X["x"], X["y"], X["dy"], **POOL),),
            lambda H: (R.max_pool_backward(H["x"], H["y"], H["dy"], **POOL),), 4 * 2 * (n_in + n_out),
            base=(lambda T: torch.ops.aten.max_pool2d_with_indices_backward(
                nchw(T["dy"]), nchw(T["x"]), [3, 3], [2, 2], [0, 0], [1, 1], False, T["torch_idx"]))
            if F else None))

    # element-wise activations on conv1's output
    shape = (batch, 55, 55, ch(96))
    n = math.prod(shape)
    for op, fwd_ref, torch_fwd, torch_bwd in (
            ("relu", R.relu, lambda t: torch.relu(t), lambda T: torch.ops.aten.threshold_backward(T["dy"], T["y"], 0)),
            ("tanh", R.tanh, lambda t: torch.tanh(t), lambda T: torch.ops.aten.tanh_backward(T["dy"], T["y"]))):
        cases.append(Case(
            f"{op} conv1", nhwc(shape),
            lambda s: {"x": dev.randn(s, shape)},
            lambda B, X, op=op: (getattr(B, op)(X["x"]),),
            lambda H, fwd_ref=fwd_ref: (fwd_ref(H["x"]),), 2 * 4 * n,
            base=(lambda T, torch_fwd=torch_fwd: torch_fwd(T["x"])) if F else None))

        def make_act_bwd(s, fwd_ref=fwd_ref, torch_fwd=torch_fwd):
            x = dev.randn(s, shape)
            return {"y": y_of(fwd_ref, torch_fwd, x), "dy": dev.randn(s + 1, shape)}

        cases.append(Case(
            f"{op}_backward conv1", nhwc(shape), make_act_bwd,
            lambda B, X, op=op: (getattr(B, op + "_backward")(X["y"], X["dy"]),),
            lambda H, op=op: (getattr(R, op + "_backward")(H["y"], H["dy"]),), 3 * 4 * n,
            base=torch_bwd if F else None))

    # dropout: fc6's output, and conv1's output as a bandwidth-sized case
    for where, dshape in (("fc6", (batch, ch(4096))), ("conv1-sized", shape)):
        n = math.prod(dshape)

        def make_drop(s, dshape=dshape):
            inp = {"x": dev.randn(s, dshape), "dy": dev.randn(s + 1, dshape)}
            if F is not None:  # a precomputed keep mask for PyTorch's dropout backward
                inp["torch_mask"] = dev.to_torch(dev.randn(s + 2, dshape)) > 0
            return inp

        cases.append(Case(
            f"dropout {where}", nhwc(dshape), make_drop,
            lambda B, X: (B.dropout(X["x"], **DROP),),
            lambda H: (R.dropout(H["x"], **DROP),), 2 * 4 * n,
            base=(lambda T: F.dropout(T["x"], DROP["p"], training=True)) if F else None))
        cases.append(Case(
            f"dropout_backward {where}", nhwc(dshape), make_drop,
            lambda B, X: (B.dropout_backward(X["dy"], **DROP),),
            lambda H: (R.dropout_backward(H["dy"], **DROP),), 2 * 4 * n,
            base=(lambda T: torch.ops.aten.native_dropout_backward(T["dy"], T["torch_mask"], 1.0)) if F else None))

    # softmax cross-entropy over the classes (the loss is a batch mean: validate the whole batch)
    classes = max(2, 1000 // div)
    lshape = (batch, classes)
    n = math.prod(lshape)

    def make_softmax(s):
        logits = dev.randn(s, lshape, 3.0)
        labels = dev.randint(s + 1, classes, (batch,))
        # The reference call below checks this set's label range on the host, once, outside
        # any timing: the timed calls of ours then skip that check (its device-to-host read
        # of the labels' min and max would be timed, not the kernel).
        probs = y_of(lambda h: R.softmax_cross_entropy(h, dev.host(labels))[1],
                     lambda t: torch.softmax(t, dim=1), logits)
        inp = {"logits": logits, "labels": labels, "probs": probs}
        if F is not None:
            inp["torch_labels"] = dev.to_torch(labels).long()
        return inp

    cases.append(Case(
        "softmax_cross_entropy", nhwc(lshape), make_softmax,
        lambda B, X: tuple(reversed(B.softmax_cross_entropy(X["logits"], X["labels"], **labels_checked(B)))),
        lambda H: tuple(reversed(R.softmax_cross_entropy(H["logits"], H["labels"]))),
        2 * 4 * n + 4 * batch,
        base=(lambda T: F.cross_entropy(T["logits"], T["torch_labels"])) if F else None, per_sample=False))
    cases.append(Case(
        "softmax_cross_entropy_backward", nhwc(lshape), make_softmax,
        lambda B, X: (B.softmax_cross_entropy_backward(X["probs"], X["labels"], **labels_checked(B)),),
        lambda H: (R.softmax_cross_entropy_backward(H["probs"], H["labels"]),), 2 * 4 * n + 4 * batch,
        per_sample=False))

    # channel concat / split where the towers meet (conv2's pooled output -> conv3)
    half = (batch, 13, 13, ch(128))
    n = math.prod(half)
    cases.append(Case(
        "concat_channels", f"2x {nhwc(half)}",
        lambda s: {"a": dev.randn(s, half), "b": dev.randn(s + 1, half)},
        lambda B, X: (B.concat_channels([X["a"], X["b"]]),),
        lambda H: (np.concatenate([H["a"], H["b"]], axis=-1),), 4 * 4 * n,
        base=(lambda T: torch.cat([T["a"], T["b"]], dim=-1)) if F else None))
    full = half[:3] + (2 * half[3],)
    cases.append(Case(
        "split_channels", nhwc(full),
        lambda s: {"x": dev.randn(s, full)},
        lambda B, X: tuple(B.split_channels(X["x"], [half[3], half[3]])),
        lambda H: tuple(np.split(H["x"], 2, axis=-1)), 4 * 4 * n,
        base=(lambda T: [t.contiguous() for t in T["x"].split(half[3], dim=-1)]) if F else None))
    # §4.1 training views: a uint8 256x256 batch -> float32 224x224 crops, flips, PCA
    # lighting, mean (one fused launch). Bytes: the images read, the crops written, the mean
    # image once (it is shared by the batch and stays in cache).
    ishape = (batch, 256, 256, 3)
    eigvecs = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    sigma, P = lighting_constants(np.array([4200.0, 610.0, 95.0]), eigvecs)
    aug = dict(seed=2012, offset=0, sigma=sigma, P=P, crop=224)
    cases.append(Case(
        "train_views 256->224", nhwc(ishape),
        lambda s: {"images": dev.randint(s, 256, ishape).astype(np.uint8),
                   "mean": dev.randn(s + 1, ishape[1:], 40.0) + np.float32(120)},
        lambda B, X: (B.train_views(X["images"], mean=X["mean"], **aug),),
        lambda H: (R.train_views(H["images"], mean=H["mean"].astype(np.float32), **aug),),
        batch * 224 * 224 * 3 * (1 + 4) + 256 * 256 * 3 * 4, per_sample=False, images=batch))
    return cases


# --------------------------------------------------------------------------- running

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


def run_case(case, dev, backend, torch, timing, seed, vbatch, copy_bw, tol):
    row = {"op": case.name, "shape": case.shape, "mbytes": case.nbytes / 1e6}
    inputs_nbytes = case.nbytes
    vin = case.make(seed)
    sets = None
    if case.base is not None and torch is not None:
        try:
            nsets = timing.sets(inputs_nbytes, dev)
            sets = [vin] + [case.make(seed + 10 * (i + 1)) for i in range(nsets - 1)]
            views = [torch_views(dev, s) for s in sets]
            st = timing.run(dev, lambda i: case.base(views[i % nsets]), side="torch")
            row["base_us"] = st["median_s"] * 1e6
        except Exception as e:  # noqa: BLE001
            row["base_status"] = C.describe_error(e)
    try:
        vb = vbatch if case.per_sample else None
        with poison_outputs():
            outs = case.ours(backend, vin)
        refs = case.ref(to_host64(dev, vin, vb))
        row["err_ours"] = max(C.rel_err(o[:vb] if vb is not None else o, dev.asarray(r))
                              for o, r in zip(outs, refs))
        if not row["err_ours"] <= tol:
            row["status"] = C.MISMATCH
            return row
        if sets is None:
            nsets = timing.sets(inputs_nbytes, dev)
            sets = [vin] + [case.make(seed + 10 * (i + 1)) for i in range(nsets - 1)]
        st = timing.run(dev, lambda i: case.ours(backend, sets[i % len(sets)]))
        row.update(ours_us=st["median_s"] * 1e6, ours_spread=(st["p90_s"] - st["p10_s"]) / st["median_s"],
                   ours_calls=st["calls"], status=C.OK, rotation_sets=len(sets))
        row["ours_gbs"] = case.nbytes / st["median_s"] / 1e9
        row["pct_copy"] = 100 * case.nbytes / st["median_s"] / copy_bw
        if case.images:
            row["images_per_s"] = case.images / st["median_s"]
        if row.get("base_us"):
            row["ratio"] = row["ours_us"] / row["base_us"]
    except Exception as e:  # noqa: BLE001
        row["status"] = C.describe_error(e)
    return row


def run_sgd(dev, backend, torch, timing, seed, div, copy_bw, tol):
    """sgd_update over every AlexNet parameter tensor, in place (one fused launch for ours)."""
    shapes = alexnet_param_shapes(div)
    count = sum(math.prod(s) for s in shapes)
    nbytes = 5 * 4 * count
    row = {"op": "sgd_update", "shape": f"{len(shapes)} tensors, {count / 1e6:.2f}M params",
           "mbytes": nbytes / 1e6}
    make = lambda s: [dev.randn(s + i, sh) for i, sh in enumerate(shapes)]  # noqa: E731
    if torch is not None:
        try:
            ps = [torch.nn.Parameter(dev.to_torch(a)) for a in make(seed)]
            for p, g in zip(ps, make(seed + 100)):
                p.grad = dev.to_torch(g)
            try:
                opt = torch.optim.SGD(ps, fused=True, **SGD)
                row["base_note"] = "torch SGD fused"
            except (RuntimeError, TypeError, ValueError):
                opt = torch.optim.SGD(ps, foreach=True, **SGD)
                row["base_note"] = "torch SGD foreach"
            st = timing.run(dev, lambda i: opt.step(), side="torch")
            row["base_us"] = st["median_s"] * 1e6
            del ps, opt
        except Exception as e:  # noqa: BLE001
            row["base_status"] = C.describe_error(e)
    sgd = backend.sgd_update
    try:
        w, g, v = make(seed), make(seed + 100), [a * np.float32(0.1) for a in make(seed + 200)]
        h = [[dev.host(a).astype(np.float64) for a in arrs] for arrs in (w, g, v)]
        sgd(w, g, v, **SGD)
        ccn.backend("cpu").sgd_update(*h, **SGD)
        row["err_ours"] = max(C.rel_err(a, dev.asarray(b)) for a, b in zip(w + v, h[0] + h[2]))
        del h
        if not row["err_ours"] <= tol:
            row["status"] = C.MISMATCH
            return row
        st = timing.run(dev, lambda i: sgd(w, g, v, **SGD))
        row.update(ours_us=st["median_s"] * 1e6, ours_calls=st["calls"], status=C.OK)
        row["ours_gbs"] = nbytes / st["median_s"] / 1e9
        row["pct_copy"] = 100 * nbytes / st["median_s"] / copy_bw
        if row.get("base_us"):
            row["ratio"] = row["ours_us"] / row["base_us"]
    except Exception as e:  # noqa: BLE001
        row["status"] = C.describe_error(e)
    return row


FC = tuple(fc_layers())


def gemm_calls(backend, dev):
    """direction -> fn(x, w, dy) for ours: the GEMM kernel itself on a kernel backend
    (the calls LinearOps makes), the reference's NumPy expressions on the cpu backend."""
    ext = getattr(backend, "ext", None)
    if ext is None or not hasattr(ext, "gemm"):
        return {"fwd": lambda x, w, dy: x @ w.T, "dgrad": lambda x, w, dy: dy @ w,
                "wgrad": lambda x, w, dy: dy.T @ x}
    gemm, s = backend._gemm, backend._stream  # LinearOps' one GEMM call (keyword arguments, kernel_versions)

    def fwd(x, w, dy):
        n, k = x.shape
        y = backend._empty((n, w.shape[0]))
        gemm("linear", "fp32", x, w, y, None, n, w.shape[0], k, False, True, s())
        return y

    def dgrad(x, w, dy):
        dx = backend._empty(x.shape)
        gemm("linear_backward", "fp32", dy, w, dx, None, dy.shape[0], w.shape[1], w.shape[0], False, False, s())
        return dx

    def wgrad(x, w, dy):
        dw = backend._empty(w.shape)
        gemm("linear_backward", "fp32", dy, x, dw, None, w.shape[0], w.shape[1], x.shape[0], True, False, s())
        return dw

    return {"fwd": fwd, "dgrad": dgrad, "wgrad": wgrad}


def run_gemm(dev, backend, torch, timing, seed, batch, div, tol):
    rows = []
    ours = gemm_calls(backend, dev)
    mm = lambda a, b: torch.mm(a, b)  # noqa: E731
    base = {"fwd": lambda x, w, dy: mm(x, w.t()), "dgrad": lambda x, w, dy: mm(dy, w),
            "wgrad": lambda x, w, dy: mm(dy.t(), x)} if torch is not None else {}
    for li, (name, fan_in, fan_out) in enumerate(FC):
        fan_in = fan_in // div if name != "fc6" else 6 * 6 * max(2, 256 // div)
        fan_out = max(2, fan_out // div)
        def make(s, fan_in=fan_in, fan_out=fan_out):
            return (dev.randn(s, (batch, fan_in)), dev.randn(s + 1, (fan_out, fan_in), fan_in ** -0.5),
                    dev.randn(s + 2, (batch, fan_out)))
        vin = make(seed + 100 * li)
        h = [dev.host(a).astype(np.float64) for a in vin]
        refs = {"fwd": h[0] @ h[1].T, "dgrad": h[2] @ h[1], "wgrad": h[2].T @ h[0]}
        nbytes = 4 * (batch * fan_in + fan_in * fan_out + batch * fan_out)
        nsets = timing.sets(nbytes, dev)
        sets = [vin] + [make(seed + 100 * li + 10 * (i + 1)) for i in range(nsets - 1)]
        tsets = [tuple(dev.to_torch(a) for a in s_) for s_ in sets] if torch is not None else None
        for d in ("fwd", "dgrad", "wgrad"):
            m, n, k = {"fwd": (batch, fan_out, fan_in), "dgrad": (batch, fan_in, fan_out),
                       "wgrad": (fan_out, fan_in, batch)}[d]
            flop = 2.0 * m * n * k
            row = {"layer": name, "op": d, "mnk": f"{m}x{n}x{k}", "gflop": flop / 1e9}
            ref = dev.asarray(refs[d])
            if base:
                try:
                    row["err_base"] = C.rel_err(dev.from_torch(base[d](*tsets[0])), ref)
                    st = timing.run(dev, lambda i, d=d, tsets=tsets, nsets=nsets: base[d](*tsets[i % nsets]),
                                    side="torch")
                    row["base_ms"] = st["median_s"] * 1e3
                    row["base_tflops"] = flop / st["median_s"] / 1e12
                except Exception as e:  # noqa: BLE001
                    row["base_status"] = C.describe_error(e)
            try:
                with poison_outputs():
                    row["err_ours"] = C.rel_err(ours[d](*vin), ref)
                if not row["err_ours"] <= tol:
                    row["status"] = C.MISMATCH
                else:
                    st = timing.run(dev, lambda i, d=d, sets=sets, nsets=nsets: ours[d](*sets[i % nsets]))
                    row.update(ours_ms=st["median_s"] * 1e3, ours_calls=st["calls"], status=C.OK)
                    row["ours_tflops"] = flop / st["median_s"] / 1e12
                    if row.get("base_ms"):
                        row["ratio"] = row["ours_ms"] / row["base_ms"]
            except Exception as e:  # noqa: BLE001
                row["status"] = C.describe_error(e)
            rows.append(row)
    return rows


MEM_COLUMNS = [
    ("op", "op", "{}"), ("shape", "shape", "{}"), ("mbytes", "MB moved", "{:.2f}"),
    ("ours_us", "ours us", "{:.1f}"), ("ours_gbs", "ours GB/s", "{:.1f}"), ("pct_copy", "% copy", "{:.0f}"),
    ("base_us", "torch us", "{:.1f}"), ("ratio", "ours/torch", "{:.2f}"), ("err_ours", "err ours", "{:.1e}"),
    ("images_per_s", "images/s", "{:.0f}"), ("status", "status", "{}")]


def gemm_columns(dev):
    b = "cuBLAS" if dev.kind == "cuda" else "torch"
    return [("layer", "layer", "{}"), ("op", "op", "{}"), ("mnk", "MxNxK", "{}"), ("ours_ms", "ours ms", "{:.3f}"),
            ("ours_tflops", "ours TFLOP/s", "{:.2f}"), ("base_ms", f"{b} ms", "{:.3f}"),
            ("base_tflops", f"{b} TFLOP/s", "{:.2f}"), ("ratio", f"ours/{b}", "{:.2f}"),
            ("err_ours", "err ours", "{:.1e}"), ("err_base", f"err {b}", "{:.1e}"), ("status", "status", "{}")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.common_args(ap, default_budget=0.3)
    ap.add_argument("--shrink", type=int, default=None,
                    help="divide channel and FC widths by this (default 4 with --smoke, else 1)")
    ap.add_argument("--validate-batch", type=int, default=8,
                    help="images of the batch checked against the float64 reference (per-sample ops)")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only matching rows")
    ap.add_argument("--tol", type=float, default=TOL)
    args = ap.parse_args(argv)
    if args.shrink is None:
        args.shrink = 4 if args.smoke else 1

    torch = C.import_torch()
    backend_name = C.pick_backend(args.backend)
    dev = C.make_device(backend_name, torch)
    backend = ccn.backend(backend_name)
    batch = args.batch or (1 if args.smoke else 128 if dev.kind == "cuda" else 8)
    timing = C.timing_for(dev, args.smoke, args.time_budget)
    env = C.environment(dev, torch)
    copy_bw = dev.copy_bandwidth(**({"nbytes": 32 << 20, "reps": 1} if args.smoke else {}))
    print(f"kernel_bench: ours = backend {backend_name!r} on {env['device']}; batch {batch}, float32; "
          f"copy bandwidth {copy_bw / 1e9:.1f} GB/s (read + write); baseline PyTorch "
          f"{env['torch'] or '(not installed)'}; {env['commit']}, {env['date']}")
    wanted = [w for w in args.only.split(",") if w]
    keep = lambda name: not wanted or any(w in name for w in wanted)  # noqa: E731

    meta = dict(env, batch=batch, backend=backend_name, tol=args.tol, copy_bandwidth_gbs=copy_bw / 1e9)
    mem_rows = []
    for i, case in enumerate(memory_cases(dev, torch, batch, args.shrink)):
        if keep(case.name):
            mem_rows.append(run_case(case, dev, backend, torch, timing, args.seed + 1000 * i,
                                     args.validate_batch, copy_bw, args.tol))
            if args.json:  # as it goes: a run cut short by a time limit keeps what it measured
                C.write_json(args.json, "kernel_bench", meta, mem_rows, C.format_table(mem_rows, MEM_COLUMNS),
                             partial=True)
    if keep("sgd_update"):
        # the paper's 61M parameters, widths / --shrink (AlexNet/4: ~4M in smoke mode)
        mem_rows.append(run_sgd(dev, backend, torch, timing, args.seed + 77, args.shrink, copy_bw, args.tol))
    dev.sync()
    gemm_rows = run_gemm(dev, backend, torch, timing, args.seed + 99, batch, args.shrink, args.tol) \
        if keep("gemm") or not wanted else []

    mem_table = C.format_table(mem_rows, MEM_COLUMNS)
    gemm_table = C.format_table(gemm_rows, gemm_columns(dev))
    table = mem_table + "\n\n" + gemm_table
    print(table)
    rows = mem_rows + gemm_rows
    notes = [f"{r['op']}: torch: {r['base_status']}" for r in rows if r.get("base_status")]
    for n in notes:
        print("note:", n)
    bad = [r for r in rows if r.get("status") != C.OK]
    print(f"kernel_bench: {len(rows)} rows: {len(rows) - len(bad)} ok, {len(bad)} failed")
    if args.json:
        C.write_json(args.json, "kernel_bench", meta, rows, table, notes=notes, memory_rows=len(mem_rows),
                     partial=False)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
