"""Argument validation shared by every backend (ARCHITECTURE.md §3 conventions, §8.5 bad input).

Every op of every backend (NumPy reference, SIMT emulator, CUDA) calls the same check
before doing any work, so a bad call fails the same way everywhere: a ``TypeError`` for
the wrong kind of thing (not an array, wrong dtype, non-integer stride) and a
``ValueError`` for the wrong value (rank, shape, channel counts, non-contiguous layout, a
probability outside [0, 1)). Messages start with the op's name and name the argument::

    conv2d: w has 5 input channels per group but x has 6 channels with groups=1

The functions only look at ``.shape``, ``.dtype``, ``.ndim`` and ``.flags.c_contiguous``,
which NumPy and CuPy arrays both have; they never call ``np.asarray`` (that would copy a
CuPy array to the host) and never read array *values* (that would synchronise a GPU
stream). Value checks that need the data (e.g. labels in range) are the caller's.

Layouts (ARCHITECTURE.md §3): activations NHWC, conv filters KRSC (out, rows, cols,
in-per-group), FC weights (out, in), all C-contiguous. Non-contiguous arrays are refused
rather than silently copied, because the kernels take raw pointers and a silent copy
would hide a layout bug and cost memory; the reference applies the same rule so that all
backends accept exactly the same calls.

Limits (§3 of the same rules, every backend alike): each extent an op indexes (a
dimension, size, stride, padding, padded size, channel or class count) is at most
``MAX_EXTENT`` = 2^31 - 1025, so a kernel's 32-bit index plus one tile step never wraps;
the few grid limits of the kernels (``GEMM_MAX_ROWS``, ``CONV_*``, ``AUGMENT_MAX_CROP``)
are refused here too, so the reference accepts exactly what the kernels run. Every array
must start on a multiple of its element size (a misaligned float32 load is undefined
behaviour in a kernel); arrays written in place must share no byte with another
argument (``check_no_overlap``). Scalars are checked in the precision the op computes
in (``check_real(dtype=...)``): ``k = 1e-50`` is fine for float64 and refused for
float32, where it rounds to 0.

The ``check_*_args`` helpers return the derived geometry (output sizes, group sizes), so
a launcher never recomputes it differently.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import NamedTuple

import numpy as np

from . import shapes

__all__ = [
    "FLOAT_DTYPES",
    "check_array",
    "check_same_dtype",
    "check_int",
    "check_real",
    "MAX_EXTENT",
    "check_extents",
    "check_no_overlap",
    "PRECISIONS",
    "check_precision",
    "check_linear_args",
    "check_linear_backward_args",
    "ConvGeometry",
    "check_conv_args",
    "check_conv_backward_args",
    "check_activation_args",
    "check_activation_backward_args",
    "check_lrn_args",
    "check_lrn_backward_args",
    "PoolGeometry",
    "check_pool_args",
    "check_pool_backward_args",
    "check_dropout_args",
    "check_dropout_backward_args",
    "check_dropout_groups",
    "check_softmax_args",
    "check_softmax_backward_args",
    "check_topk_args",
    "check_sgd_args",
    "check_concat_args",
    "check_split_args",
    "check_train_views_args",
]

#: The largest size, stride, padding, channel count or padded extent any op accepts. The
#: kernels index one dimension in 32-bit ``int`` and step through it by at most one tile
#: (<= 1024 elements), so ``extent + 1024`` must still fit in an int32: refusing larger
#: values here, on every backend, keeps the backends accepting exactly the same calls.
MAX_EXTENT = 2**31 - 1 - 1024

#: Rows of a GEMM (linear's batch N and its output features): 65535 grid rows of 64.
GEMM_MAX_ROWS = 65535 * 64

#: Grid limits of the convolution kernels (csrc/conv_*.cu): groups and the dgrad phases
#: live in gridDim.z, filters and channels per group in 64-wide tiles along gridDim.y,
#: and GEMM row indices (N*P*Q, N*H*W, R*S*C/groups, R*S*K/groups) in 32-bit ints.
CONV_MAX_GRID_Z = 65535
CONV_MAX_PER_GROUP = 65535 * 64
CONV_MAX_GEMM = 2**31 - 1 - 64

#: The widest training view (csrc/augment.cuh, kAugmentMaxCrop).
AUGMENT_MAX_CROP = 8192

#: The dtypes every op accepts. float16/bfloat16 storage may come later with the
#: tensor-core paths; until then they are refused, not silently upcast.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

_NHWC = "(N, H, W, C)"
_KRSC = "(K, R, S, C/groups)"


def _dtype_name(dt) -> str:
    return np.dtype(dt).name


def check_array(op: str, name: str, a, *, ndim: int | None = None, dtypes=FLOAT_DTYPES,
                shape: tuple | None = None, layout: str | None = None):
    """Check one array argument of ``op``; return it unchanged.

    ``dtypes``: accepted dtypes, or the string ``"integer"`` for any integer dtype.
    ``shape``: the exact shape required (``None`` entries are wildcards).
    ``layout``: a description such as ``"(N, H, W, C)"`` used in the rank message.
    """
    if not (hasattr(a, "shape") and hasattr(a, "dtype") and hasattr(a, "ndim")
            and hasattr(a, "flags")):
        raise TypeError(f"{op}: {name} must be an array (NumPy or CuPy), "
                        f"got {type(a).__name__}")
    dt = np.dtype(a.dtype)
    if dtypes == "integer":
        if dt.kind not in "iu":
            raise TypeError(f"{op}: {name} must have an integer dtype, got {dt.name}")
    elif dt not in tuple(np.dtype(d) for d in dtypes):
        allowed = " or ".join(_dtype_name(d) for d in dtypes)
        raise TypeError(f"{op}: {name} must be {allowed}, got {dt.name}")
    if ndim is not None and a.ndim != ndim:
        what = f" {layout}" if layout else ""
        raise ValueError(f"{op}: {name} must be {ndim}-D{what}, "
                         f"got {a.ndim}-D array of shape {tuple(a.shape)}")
    if shape is not None:
        if len(shape) != a.ndim or any(want is not None and want != got
                                       for want, got in zip(shape, a.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{op}: {name} must have shape {want}, got {tuple(a.shape)}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{op}: {name} must be C-contiguous (the kernels take raw "
                         f"pointers); got strides {getattr(a, 'strides', '?')} for shape "
                         f"{tuple(a.shape)} — pass a contiguous copy (e.g. ascontiguousarray)")
    address = _data_address(a)
    if address % dt.itemsize:
        raise ValueError(f"{op}: {name} is not {dt.itemsize}-byte aligned (its data starts at "
                         f"address {address:#x}; a {dt.name} kernel load there is undefined "
                         "behaviour) — pass an aligned copy (e.g. np.array(a, copy=True))")
    return a


def _data_address(a) -> int:
    """Where ``a``'s first element lives (host or device), without touching its data."""
    ptr = getattr(getattr(a, "data", None), "ptr", None)  # CuPy: a MemoryPointer
    if ptr is not None:
        return int(ptr)
    iface = getattr(a, "__array_interface__", None)
    if iface is None:
        iface = getattr(a, "__cuda_array_interface__", None)
    if iface is None or iface.get("data") is None:
        return 0
    return int(iface["data"][0] or 0)


def _byte_range(a) -> tuple[int, int]:
    """[start, end) of the bytes a C-contiguous array covers."""
    start = _data_address(a)
    return start, start + int(a.size) * np.dtype(a.dtype).itemsize


def check_no_overlap(op: str, written, others) -> None:
    """Refuse any byte overlap between an array a kernel writes and another argument.

    ``written`` and ``others`` are sequences of ``(name, array)``; every written array is
    compared with every other written array and with every array of ``others``. Arrays
    must already be C-contiguous (check_array), so a byte interval is their exact extent:
    two views of one buffer that share no byte are fine, any shared byte is refused (a
    kernel reading what another thread writes gives a thread-order-dependent answer).
    Empty arrays cover no bytes.
    """
    written = [(n, a) for n, a in written if a is not None and a.size]
    others = [(n, a) for n, a in others if a is not None and a.size]
    for i, (wn, wa) in enumerate(written):
        w0, w1 = _byte_range(wa)
        for on, oa in written[i + 1:] + others:
            o0, o1 = _byte_range(oa)
            if w0 < o1 and o0 < w1:
                raise ValueError(f"{op}: {wn} and {on} overlap in memory (bytes "
                                 f"[{w0:#x}, {w1:#x}) and [{o0:#x}, {o1:#x})); {wn} is written "
                                 "in place, so it must not share memory with another argument")


def check_writeable(op: str, name: str, a) -> None:
    """An array a kernel writes in place must be writeable (a read-only NumPy view would
    otherwise be written through its raw pointer by the kernel backends, while NumPy refuses)."""
    if not getattr(a.flags, "writeable", True):
        raise ValueError(f"{op}: {name} is read-only, but it is written in place")


def check_same_dtype(op: str, **arrays) -> np.dtype:
    """All arrays given (``None`` skipped) must share one dtype; return it."""
    named = [(n, a) for n, a in arrays.items() if a is not None]
    first_name, first = named[0]
    dt = np.dtype(first.dtype)
    for n, a in named[1:]:
        if np.dtype(a.dtype) != dt:
            raise TypeError(f"{op}: {n} has dtype {np.dtype(a.dtype).name} but "
                            f"{first_name} has dtype {dt.name}; they must match")
    return dt


def check_int(op: str, name: str, value, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """An integer argument (bool refused) within ``[minimum, maximum]``; returns int."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got "
                        f"{type(value).__name__} {value!r}") from None
    if minimum is not None and v < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{op}: {name} must be <= {maximum}, got {v}")
    return v


def check_real(op: str, name: str, value, *, minimum: float | None = None,
               strict_minimum: bool = False, below: float | None = None,
               dtype=np.float64) -> float:
    """A finite real scalar; ``minimum`` (inclusive unless ``strict_minimum``) and
    ``below`` (exclusive upper bound) optional. Returns float.

    Python and NumPy numbers are accepted (``np.float32``, ``np.int64``, ...); ``bool`` and
    ``np.bool_`` are refused. ``dtype`` is the precision the value is used in: the checks
    apply to the value rounded to it, so a float32 kernel never sees a value that became
    infinite (``lr=1e39``) or reached the bound (``k=1e-50`` rounds to 0) on conversion.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got "
                        f"{type(value).__name__} {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond float64's range
        raise ValueError(f"{op}: {name} must be finite, got {value!r} (beyond float64)") from None
    if not math.isfinite(v):
        raise ValueError(f"{op}: {name} must be finite, got {v}")
    dt = np.dtype(dtype)
    rounded = v
    if dt != np.float64:
        with np.errstate(over="ignore", under="ignore"):
            rounded = float(dt.type(v))
        if not math.isfinite(rounded):
            raise ValueError(f"{op}: {name} = {v!r} overflows {dt.name}, the precision it is "
                             f"computed in (largest finite {float(np.finfo(dt).max):.6g})")
    got = f"{v}" if rounded == v else f"{v!r}, which rounds to {rounded!r} in {dt.name}"
    if minimum is not None:
        if strict_minimum and not rounded > minimum:
            raise ValueError(f"{op}: {name} must be > {minimum}, got {got}")
        if not strict_minimum and not rounded >= minimum:
            raise ValueError(f"{op}: {name} must be >= {minimum}, got {got}")
    if below is not None and not rounded < below:
        raise ValueError(f"{op}: {name} must be < {below}, got {got}")
    return v


def check_extents(op: str, limit: int = MAX_EXTENT, what: str = "", **extents) -> None:
    """Every named extent (a dimension, size, stride, padding, padded size or product of
    them) must be <= ``limit``; refuses the call with ``ValueError`` otherwise, on every
    backend alike, before any array is allocated or any pointer is touched."""
    for name, value in extents.items():
        if value > limit:
            why = what or "the kernels index it in 32 bits"
            raise ValueError(f"{op}: {name} = {value} is larger than {limit} ({why})")


def _check_spatial(op: str, name: str, h: int, w: int, shape) -> None:
    """A windowed op (conv, pooling) needs an image: zero height or width is refused (a
    window over nothing but padding has no defined value), an empty batch is not."""
    if h < 1 or w < 1:
        raise ValueError(f"{op}: {name} has zero height or width (shape {tuple(shape)}); a "
                         "window over an empty image is undefined (an empty batch, N = 0, "
                         "is fine)")


def _wrap_shape_error(op: str, fn, *args):
    """Call a ``shapes`` function, prefixing its errors with the op's name."""
    try:
        return fn(*args)
    except ValueError as e:
        raise ValueError(f"{op}: {e}") from None
    except TypeError as e:
        raise TypeError(f"{op}: {e}") from None


# --------------------------------------------------------------------------- precision

# The GEMM precisions of the FC (and, later, conv) ops, and how they map to PyTorch's
# torch.set_float32_matmul_precision: "fp32" = "highest" (float32 SIMT kernels);
# "3xtf32" = float32-level accuracy on tensor cores (closer to "highest" than to "high");
# "tf32" = "high"; "bf16" = "medium" (operands rounded to BF16, float32 accumulation).
PRECISIONS = ("fp32", "3xtf32", "tf32", "bf16")


def check_precision(op: str, precision) -> str:
    """``precision`` must be one of PRECISIONS (a str); returns it. ValueError otherwise."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"{op}: precision must be one of {', '.join(repr(p) for p in PRECISIONS)}; "
                         f"got {precision!r}")
    return precision


# --------------------------------------------------------------------------- linear

def check_linear_args(x, w, b=None, *, op: str = "linear") -> tuple[int, int, int]:
    """x (N, in), w (out, in), b (out,) or None. Returns ``(N, in, out)``."""
    check_array(op, "x", x, ndim=2, layout="(N, in)")
    check_array(op, "w", w, ndim=2, layout="(out, in)")
    n, fan_in = x.shape
    fan_out, w_in = w.shape
    if w_in != fan_in:
        raise ValueError(f"{op}: w has {w_in} inputs (shape (out, in) = {tuple(w.shape)}) "
                         f"but x has {fan_in} features (shape {tuple(x.shape)})")
    if b is not None:
        check_array(op, "b", b, shape=(fan_out,))
    check_same_dtype(op, x=x, w=w, b=b)
    check_extents(op, **{"x.shape[0] (N)": n, "x.shape[1] (in)": fan_in})
    # N (forward, dgrad) and out (wgrad) are GEMM row counts: one grid row per 64 rows,
    # and a grid has at most 65535 rows.
    check_extents(op, GEMM_MAX_ROWS, "the GEMM grid holds at most 65535 row tiles of 64",
                  **{"N": n, "out": fan_out})
    return n, fan_in, fan_out


def check_linear_backward_args(x, w, dy, dx_accumulate=None, *, op: str = "linear_backward"):
    """x (N, in), w (out, in), dy (N, out); dx_accumulate None or (N, in) of x's dtype, not
    x, w or dy themselves (the dx GEMM adds into it in place)."""
    n, fan_in, fan_out = check_linear_args(x, w, None, op=op)
    check_array(op, "dy", dy, shape=(n, fan_out))
    check_same_dtype(op, x=x, dy=dy)
    if dx_accumulate is not None:
        check_array(op, "dx_accumulate", dx_accumulate, shape=(n, fan_in))
        check_same_dtype(op, x=x, dx_accumulate=dx_accumulate)
        check_writeable(op, "dx_accumulate", dx_accumulate)
        # Any shared byte, not only the same object: a view of x, w or dy would be read by
        # the dx GEMM while its own output tiles overwrite it.
        check_no_overlap(op, [("dx_accumulate", dx_accumulate)], [("x", x), ("w", w), ("dy", dy)])
    return n, fan_in, fan_out


# --------------------------------------------------------------------------- conv

class ConvGeometry(NamedTuple):
    """Everything a convolution launcher needs, derived once."""
    n: int
    h: int
    w: int
    c: int          # input channels (all groups)
    k: int          # output channels (all groups)
    r: int          # filter rows
    s: int          # filter cols
    stride: int
    padding: tuple  # (top, bottom, left, right)
    groups: int
    p: int          # output rows
    q: int          # output cols

    @property
    def c_per_group(self) -> int:
        return self.c // self.groups

    @property
    def k_per_group(self) -> int:
        return self.k // self.groups


def check_conv_args(x, w, b=None, stride=1, padding=0, groups=1, *,
                    op: str = "conv2d") -> ConvGeometry:
    """x NHWC, w KRSC with ``C/groups`` input channels, b (K,) or None."""
    check_array(op, "x", x, ndim=4, layout=_NHWC)
    check_array(op, "w", w, ndim=4, layout=_KRSC)
    stride = check_int(op, "stride", stride, minimum=1)
    groups = check_int(op, "groups", groups, minimum=1)
    pad = _wrap_shape_error(op, shapes.normalize_padding, padding)
    n, h, wd, c = x.shape
    k, r, s, cg = w.shape
    if c % groups:
        raise ValueError(f"{op}: x has {c} channels, not divisible by groups={groups}")
    if k % groups:
        raise ValueError(f"{op}: w has {k} output channels (filters), "
                         f"not divisible by groups={groups}")
    if cg * groups != c:
        raise ValueError(f"{op}: w has {cg} input channels per group but x has {c} "
                         f"channels with groups={groups} (expected {c // groups})")
    if b is not None:
        check_array(op, "b", b, shape=(k,))
    check_same_dtype(op, x=x, w=w, b=b)
    check_extents(op, **{"x.shape[0] (N)": n, "x.shape[1] (H)": h, "x.shape[2] (W)": wd,
                         "x.shape[3] (C)": c, "w.shape[0] (K)": k, "w.shape[1] (R)": r,
                         "w.shape[2] (S)": s, "stride": stride, "padding[0] (top)": pad[0],
                         "padding[1] (bottom)": pad[1], "padding[2] (left)": pad[2],
                         "padding[3] (right)": pad[3], "H + top + bottom": h + pad[0] + pad[1],
                         "W + left + right": wd + pad[2] + pad[3]})
    _check_spatial(op, "x", h, wd, x.shape)
    p, q = _wrap_shape_error(op, shapes.conv_output_size, h, wd, r, s, stride, pad)
    check_extents(op, CONV_MAX_GRID_Z, "the kernels' grid z dimension", groups=groups)
    check_extents(op, CONV_MAX_PER_GROUP, "the kernels' grid y dimension holds 65535 tiles of 64",
                  **{"K/groups": k // groups})
    check_extents(op, CONV_MAX_GEMM, "a 32-bit GEMM row index of the implicit GEMM",
                  **{"N*P*Q": n * p * q, "N*H*W": n * h * wd, "R*S*C/groups": r * s * (c // groups),
                     "R*S*K/groups": r * s * (k // groups)})
    return ConvGeometry(n, h, wd, c, k, r, s, stride, pad, groups, p, q)


def check_conv_backward_args(x, w, dy, stride=1, padding=0, groups=1, *,
                             op: str = "conv2d_backward") -> ConvGeometry:
    g = check_conv_args(x, w, None, stride, padding, groups, op=op)
    check_array(op, "dy", dy, shape=(g.n, g.p, g.q, g.k))
    check_same_dtype(op, x=x, dy=dy)
    # dgrad runs one grid z slice per group and stride phase (csrc/conv_dgrad.cuh).
    check_extents(op, CONV_MAX_GRID_Z, "dgrad's grid z dimension holds groups * stride^2 phases",
                  **{"groups * stride^2": g.groups * g.stride ** 2})
    check_extents(op, CONV_MAX_PER_GROUP, "dgrad's grid y dimension holds 65535 tiles of 64",
                  **{"C/groups": g.c_per_group})
    return g


# --------------------------------------------------------------------------- activations

def check_activation_args(x, *, op: str):
    """Element-wise ops take any rank (NHWC maps or (N, features))."""
    check_array(op, "x", x)
    return x.shape


def check_activation_backward_args(y, dy, *, op: str):
    check_array(op, "y", y)
    check_array(op, "dy", dy, shape=tuple(y.shape))
    check_same_dtype(op, y=y, dy=dy)
    return y.shape


# --------------------------------------------------------------------------- LRN

def check_lrn_args(x, size, alpha, beta, k, groups=1, *, op: str = "lrn"):
    """x NHWC; size >= 1; alpha >= 0; beta >= 0; k > 0 (so the base never reaches 0);
    groups >= 1 dividing C. Returns (size, alpha, beta, k, groups)."""
    check_array(op, "x", x, ndim=4, layout=_NHWC)
    check_extents(op, **{"x.shape[3] (C)": x.shape[3]})
    size = check_int(op, "size", size, minimum=1)
    groups = check_int(op, "groups", groups, minimum=1)
    if x.shape[3] % groups:
        raise ValueError(f"{op}: x.shape[3] (C) = {x.shape[3]} does not split into groups = {groups}")
    dt = np.dtype(x.dtype)
    alpha = check_real(op, "alpha", alpha, minimum=0.0, dtype=dt)
    beta = check_real(op, "beta", beta, minimum=0.0, dtype=dt)
    k = check_real(op, "k", k, minimum=0.0, strict_minimum=True, dtype=dt)
    # The backward's coefficient 2 * alpha * beta is one more scalar in x's precision.
    check_real(op, "2 * alpha * beta", 2.0 * alpha * beta, dtype=dt)
    return size, alpha, beta, k, groups


def check_lrn_backward_args(x, y, dy, size, alpha, beta, k, groups=1, *, op: str = "lrn_backward"):
    params = check_lrn_args(x, size, alpha, beta, k, groups, op=op)
    check_array(op, "y", y, shape=tuple(x.shape))
    check_array(op, "dy", dy, shape=tuple(x.shape))
    check_same_dtype(op, x=x, y=y, dy=dy)
    return params


# --------------------------------------------------------------------------- pooling

class PoolGeometry(NamedTuple):
    n: int
    h: int
    w: int
    c: int
    size: int
    stride: int
    padding: tuple  # (top, bottom, left, right)
    p: int
    q: int


def check_pool_args(x, size, stride, padding, *, op: str = "max_pool") -> PoolGeometry:
    check_array(op, "x", x, ndim=4, layout=_NHWC)
    size = check_int(op, "size", size, minimum=1)
    stride = check_int(op, "stride", stride, minimum=1)
    pad = _wrap_shape_error(op, shapes.normalize_padding, padding)
    n, h, wd, c = x.shape
    check_extents(op, **{"x.shape[0] (N)": n, "x.shape[1] (H)": h, "x.shape[2] (W)": wd,
                         "x.shape[3] (C)": c, "size": size, "stride": stride,
                         "padding[0] (top)": pad[0], "padding[1] (bottom)": pad[1],
                         "padding[2] (left)": pad[2], "padding[3] (right)": pad[3],
                         "H + top + bottom": h + pad[0] + pad[1],
                         "W + left + right": wd + pad[2] + pad[3]})
    _check_spatial(op, "x", h, wd, x.shape)
    p, q = _wrap_shape_error(op, shapes.pool_output_size, h, wd, size, stride, pad)
    return PoolGeometry(n, h, wd, c, size, stride, pad, p, q)


def check_pool_backward_args(x, y, dy, size, stride, padding, *,
                             op: str = "max_pool_backward") -> PoolGeometry:
    g = check_pool_args(x, size, stride, padding, op=op)
    out_shape = (g.n, g.p, g.q, g.c)
    check_array(op, "y", y, shape=out_shape)
    check_array(op, "dy", dy, shape=out_shape)
    check_same_dtype(op, x=x, y=y, dy=dy)
    return g


# --------------------------------------------------------------------------- dropout

DROPOUT_MODES = ("paper", "inverted")


def _check_dropout_common(op, p, seed, offset, mode, dtype=np.float64):
    # p is used in x's precision (the kept scale 1/(1 - p)): 1 - 1e-10 rounds to 1 in float32.
    p = check_real(op, "p", p, minimum=0.0, below=1.0, dtype=dtype)
    seed = check_int(op, "seed", seed, minimum=0, maximum=2**64 - 1)
    offset = check_int(op, "offset", offset, minimum=0, maximum=2**64 - 1)
    if mode not in DROPOUT_MODES:
        raise ValueError(f"{op}: mode must be 'paper' or 'inverted', got {mode!r}")
    return p, seed, offset, mode


def check_dropout_args(x, p, seed, offset, mode, train, *, op: str = "dropout"):
    """p in [0, 1) (p = 1 would drop everything and make 'inverted' divide by zero)."""
    check_array(op, "x", x)
    if not isinstance(train, (bool, np.bool_)):
        raise TypeError(f"{op}: train must be a bool, got {type(train).__name__}")
    return _check_dropout_common(op, p, seed, offset, mode, x.dtype)


def check_dropout_backward_args(dy, p, seed, offset, mode, *, op: str = "dropout_backward"):
    check_array(op, "dy", dy)
    return _check_dropout_common(op, p, seed, offset, mode, dy.dtype)


#: The dropout kernel's grid y dimension holds the channel groups (csrc/dropout.h).
DROPOUT_MAX_GROUPS = 65535


def check_dropout_groups(op, x, groups, offset):
    """groups in [1, 65535] dividing x's last axis (x.ndim >= 1 when groups > 1); group g
    draws at offset + g, so offset + groups - 1 must stay below 2**64. Returns groups."""
    groups = check_int(op, "groups", groups, minimum=1, maximum=DROPOUT_MAX_GROUPS)
    if groups > 1:
        c = x.shape[-1] if x.ndim else 1
        if c % groups:
            raise ValueError(f"{op}: the last axis of {tuple(x.shape)} ({c} channels) does not split "
                             f"into groups = {groups}")
        if offset + groups - 1 > 2**64 - 1:
            raise ValueError(f"{op}: offset + groups - 1 = {offset + groups - 1} must be <= {2**64 - 1} "
                             f"(group g draws at offset + g)")
    return groups


# --------------------------------------------------------------------------- softmax

def check_softmax_args(logits, labels, *, op: str = "softmax_cross_entropy",
                       name: str = "logits") -> tuple[int, int]:
    """logits/probs (N, classes) float; labels (N,) any integer dtype. Returns (N, classes)."""
    check_array(op, name, logits, ndim=2, layout="(N, classes)")
    n, classes = logits.shape
    check_array(op, "labels", labels, dtypes="integer", shape=(n,))
    if classes < 1:
        raise ValueError(f"{op}: {name} must have at least one class, got shape "
                         f"{tuple(logits.shape)}")
    check_extents(op, **{"classes": classes})
    check_extents(op, 2**31 - 1, "the kernels run one block per row", **{"N (rows)": n})
    return n, classes


def check_softmax_backward_args(probs, labels, *, op: str = "softmax_cross_entropy_backward"):
    return check_softmax_args(probs, labels, op=op, name="probs")


def check_topk_args(probs, labels, ks, *, op: str = "topk_errors") -> tuple[int, ...]:
    check_softmax_args(probs, labels, op=op, name="probs")
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise TypeError(f"{op}: ks must be a sequence of ints, got {type(ks).__name__}")
    ks = tuple(check_int(op, "ks entry", k, minimum=1) for k in ks)
    if not ks:
        raise ValueError(f"{op}: ks must not be empty")
    return ks


# --------------------------------------------------------------------------- SGD

def check_sgd_args(params, grads, velocities, lr, momentum, weight_decay, *,
                   op: str = "sgd_update"):
    """Three equal-length lists; entry i of each has one shape and one dtype."""
    for name, seq in (("params", params), ("grads", grads), ("velocities", velocities)):
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"{op}: {name} must be a list of arrays, "
                            f"got {type(seq).__name__}")
    if not (len(params) == len(grads) == len(velocities)):
        raise ValueError(f"{op}: params, grads and velocities must have the same length, "
                         f"got {len(params)}, {len(grads)}, {len(velocities)}")
    for i, (w, g, v) in enumerate(zip(params, grads, velocities)):
        check_array(op, f"params[{i}]", w)
        check_array(op, f"grads[{i}]", g, shape=tuple(w.shape))
        check_array(op, f"velocities[{i}]", v, shape=tuple(w.shape))
        check_same_dtype(op, **{f"params[{i}]": w, f"grads[{i}]": g,
                                f"velocities[{i}]": v})
        if not getattr(w.flags, "writeable", True) or not getattr(v.flags, "writeable", True):
            raise ValueError(f"{op}: params[{i}] and velocities[{i}] must be writeable "
                             "(they are updated in place)")
    # Every params/velocities entry is written in place while every entry is read: any
    # shared byte (a tensor listed twice, overlapping views, a gradient aliasing a
    # velocity) would make the result depend on the order of the updates.
    check_no_overlap(op, [(f"params[{i}]", w) for i, w in enumerate(params)]
                     + [(f"velocities[{i}]", v) for i, v in enumerate(velocities)],
                     [(f"grads[{i}]", g) for i, g in enumerate(grads)])
    # The scalars are used in the tensors' precision (float32 on every float32 net).
    dt = np.dtype(params[0].dtype) if params else np.dtype(np.float64)
    lr = check_real(op, "lr", lr, minimum=0.0, dtype=dt)
    momentum = check_real(op, "momentum", momentum, minimum=0.0, dtype=dt)
    weight_decay = check_real(op, "weight_decay", weight_decay, minimum=0.0, dtype=dt)
    check_real(op, "weight_decay * lr", weight_decay * lr, dtype=dt)
    return lr, momentum, weight_decay


# --------------------------------------------------------------------------- channel copies

def check_concat_args(xs, *, op: str = "concat_channels"):
    """A non-empty list of arrays that agree on every axis but the last (the channels).

    Returns ``(lead_shape, sizes)``: the shared leading shape and each array's channels.
    """
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{op}: xs must be a list of arrays, got {type(xs).__name__}")
    if not xs:
        raise ValueError(f"{op}: xs must hold at least one array")
    for i, x in enumerate(xs):
        check_array(op, f"xs[{i}]", x)
        if x.ndim < 1:
            raise ValueError(f"{op}: xs[{i}] must have a channel axis, got a 0-D array")
    lead = tuple(xs[0].shape[:-1])
    for i, x in enumerate(xs[1:], start=1):
        if tuple(x.shape[:-1]) != lead:
            raise ValueError(f"{op}: xs[{i}] has shape {tuple(x.shape)} but xs[0] has "
                             f"{tuple(xs[0].shape)}; all but the last (channel) axis must match")
    check_same_dtype(op, **{f"xs[{i}]": x for i, x in enumerate(xs)})
    sizes = tuple(int(x.shape[-1]) for x in xs)
    check_extents(op, **{"total channels": sum(sizes)})
    return lead, sizes


def check_split_args(y, sizes, accumulate=None, *, op: str = "split_channels") -> tuple[int, ...]:
    """y with a channel (last) axis; sizes a non-empty sequence of ints >= 0 summing to it;
    accumulate None or one entry per part: None, or an array of that part's shape and y's
    dtype, C-contiguous, that the part's slice of y is added to in place."""
    check_array(op, "y", y)
    if y.ndim < 1:
        raise ValueError(f"{op}: y must have a channel axis, got a 0-D array")
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"{op}: sizes must be a sequence of ints, got {type(sizes).__name__}")
    sizes = tuple(check_int(op, "sizes entry", s, minimum=0) for s in sizes)
    if not sizes:
        raise ValueError(f"{op}: sizes must not be empty")
    check_extents(op, **{"y.shape[-1] (channels)": y.shape[-1]})
    if sum(sizes) != y.shape[-1]:
        raise ValueError(f"{op}: sizes {list(sizes)} add up to {sum(sizes)} but y has "
                         f"{y.shape[-1]} channels (shape {tuple(y.shape)})")
    if accumulate is not None:
        accumulate = list(accumulate)
        if len(accumulate) != len(sizes):
            raise ValueError(f"{op}: accumulate has {len(accumulate)} entries for {len(sizes)} parts")
        for i, (a, s) in enumerate(zip(accumulate, sizes)):
            if a is not None:
                check_array(op, f"accumulate[{i}]", a, shape=tuple(y.shape[:-1]) + (s,))
                check_same_dtype(op, y=y, **{f"accumulate[{i}]": a})
                check_writeable(op, f"accumulate[{i}]", a)
        # Each accumulate entry is written in place while y (and every other entry) is read:
        # any shared byte between them, by whatever views, is refused.
        check_no_overlap(op, [(f"accumulate[{i}]", a) for i, a in enumerate(accumulate) if a is not None],
                         [("y", y)])
    return sizes


# --------------------------------------------------------------------------- training views

def check_train_views_args(images, seed, offset, mean, sigma, P, crop, lighting_std, *,
                           op: str = "train_views"):
    """§4.1 training views: images uint8 (N, H, W, 3); mean float32 (H, W, 3) or None; the
    host lighting constants sigma float32 (3,) and P float32 (3, 3); 1 <= crop <= min(H, W);
    seed and offset unsigned 64-bit; lighting_std >= 0.

    Returns ``(seed, offset, crop, lighting_std)``.
    """
    check_array(op, "images", images, ndim=4, dtypes=(np.uint8,), layout="(N, H, W, 3)")
    _, h, w, c = images.shape
    if c != 3:
        raise ValueError(f"{op}: images must have 3 channels (RGB, NHWC), got shape {tuple(images.shape)}")
    crop = check_int(op, "crop", crop, minimum=1)
    check_extents(op, **{"images.shape[1] (H)": h, "images.shape[2] (W)": w})
    check_extents(op, 2**31 - 1, "the kernel runs one grid column per image",
                  **{"images.shape[0] (N)": images.shape[0]})
    if crop > AUGMENT_MAX_CROP:
        raise ValueError(f"{op}: crop {crop} is larger than {AUGMENT_MAX_CROP} (the kernel stages "
                         "one crop row in shared memory)")
    if crop > min(h, w):
        raise ValueError(f"{op}: crop {crop} is larger than the {h}x{w} images")
    if mean is not None:
        check_array(op, "mean", mean, dtypes=(np.float32,), shape=(h, w, 3))
    check_array(op, "sigma", sigma, dtypes=(np.float32,), shape=(3,))
    check_array(op, "P", P, dtypes=(np.float32,), shape=(3, 3))
    seed = check_int(op, "seed", seed, minimum=0, maximum=2**64 - 1)
    offset = check_int(op, "offset", offset, minimum=0, maximum=2**64 - 1)
    lighting_std = check_real(op, "lighting_std", lighting_std, minimum=0.0, dtype=np.float32)
    return seed, offset, crop, lighting_std
