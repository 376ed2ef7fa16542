"""Output-size and padding rules, stated once for every backend (ARCHITECTURE.md §3).

Every backend (the NumPy reference, the SIMT emulator, CUDA) asks this module how big an
output is, so the rules cannot drift apart. The C++ launchers recompute them
(``make_conv_shape`` in csrc/conv.h, the pooling launcher in csrc/pool.cu) and refuse a
mismatch; if you change a rule here, change it there and in the tests of both.

Padding
    ``normalize_padding`` accepts an int ``p`` (all four sides), a 2-tuple ``(ph, pw)``
    (``ph`` on top and bottom, ``pw`` on left and right) or a 4-tuple
    ``(top, bottom, left, right)``; it always returns the 4-tuple. Asymmetric padding exists
    because conv1 of the paper (§3.5: 224x224 inputs, 11x11 filters, stride 4, 55x55
    outputs) only works out with implicit padding that cuda-convnet never stated; the
    AlexNet definition chooses it explicitly.

Convolution (cross-correlation, as in every CNN library)
    With padded height ``Hp = H + top + bottom`` and width ``Wp = W + left + right``::

        P = (Hp - R) // stride + 1        Q = (Wp - S) // stride + 1

    i.e. the floor rule: trailing rows/columns that do not fill a whole window at the
    last stride step are ignored (as in cuda-convnet, cuDNN and PyTorch). Output pixel
    (p, q) reads padded rows ``p*stride .. p*stride + R - 1``; padded row ``i`` is input
    row ``i - top``. Padding positions hold zeros.

Pooling (§3.4: windows of z x z at stride s; the paper's net uses z=3, s=2)
    Same floor rule (PyTorch ``ceil_mode=False``)::

        P = (Hp - size) // stride + 1     Q = (Wp - size) // stride + 1

    Padding positions act as -inf for max pooling (they never win). Each pad must be
    smaller than ``size`` so that every window contains at least one real input pixel
    (PyTorch is stricter: pad <= size // 2).

Both raise ValueError if the window is larger than the padded input (no output at all).

LRN window (§3.3)
    Channel ``c`` of a group of ``C`` channels sums channels ``c - before .. c + after``
    clipped to ``[0, C)``, with ``before = size // 2`` and ``after = (size - 1) // 2``.
    ``lrn_window`` returns both already clipped to ``C - 1``: a window reaching past both
    ends of the group is the whole group, so any ``size`` costs O(C) and the C++
    launchers (csrc/lrn.h), which take ``before``/``after`` and refuse values outside
    ``[0, C)``, need no rule of their own.
"""

from __future__ import annotations

import operator

__all__ = ["normalize_padding", "conv_output_size", "pool_output_size", "lrn_window"]


def _as_int(value, what: str) -> int:
    """``operator.index`` with a message; rejects bool (True is not a padding of 1)."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}") from None


def normalize_padding(padding) -> tuple[int, int, int, int]:
    """Return ``(top, bottom, left, right)`` from an int, ``(ph, pw)`` or a 4-tuple.

    Raises TypeError for non-integers and ValueError for negative values or a tuple of
    another length.
    """
    if isinstance(padding, (tuple, list)):
        values = tuple(_as_int(v, "padding") for v in padding)
        if len(values) == 2:
            ph, pw = values
            values = (ph, ph, pw, pw)
        elif len(values) != 4:
            raise ValueError(
                "padding must be an int, (ph, pw) or (top, bottom, left, right); "
                f"got a sequence of length {len(values)}: {tuple(padding)!r}"
            )
    else:
        p = _as_int(padding, "padding")
        values = (p, p, p, p)
    if any(v < 0 for v in values):
        raise ValueError(f"padding must be non-negative, got {values!r}")
    return values


def _check_positive(value, what: str) -> int:
    v = _as_int(value, what)
    if v < 1:
        raise ValueError(f"{what} must be >= 1, got {v}")
    return v


def _windowed_size(h, w, r, s, stride, padding, kind: str) -> tuple[int, int]:
    h = _as_int(h, "input height")
    w = _as_int(w, "input width")
    r = _check_positive(r, f"{kind} window height")
    s = _check_positive(s, f"{kind} window width")
    stride = _check_positive(stride, "stride")
    top, bottom, left, right = normalize_padding(padding)
    hp, wp = h + top + bottom, w + left + right
    if r > hp or s > wp:
        raise ValueError(
            f"{kind} window {r}x{s} is larger than the padded input {hp}x{wp} "
            f"(input {h}x{w}, padding (top, bottom, left, right) = "
            f"{(top, bottom, left, right)})"
        )
    # Floor rule: a window that would run past the padded input is not computed.
    return (hp - r) // stride + 1, (wp - s) // stride + 1


def conv_output_size(h, w, r, s, stride, padding) -> tuple[int, int]:
    """Output ``(P, Q)`` of an ``r x s`` convolution at ``stride`` over an ``h x w`` input.

    ``P = (h + top + bottom - r) // stride + 1`` (likewise Q); see the module docstring.
    """
    return _windowed_size(h, w, r, s, stride, padding, "filter")


def pool_output_size(h, w, size, stride, padding) -> tuple[int, int]:
    """Output ``(P, Q)`` of ``size x size`` pooling at ``stride`` (floor rule, ceil_mode=False).

    Also requires every pad < ``size`` (ValueError), so no window lies wholly in padding.
    """
    size = _check_positive(size, "pool size")
    pads = normalize_padding(padding)
    if any(p >= size for p in pads):
        raise ValueError(
            f"pool padding {pads} must be smaller than the window size {size} on every side "
            "(otherwise a window could lie wholly in the padding)"
        )
    return _windowed_size(h, w, size, size, stride, padding, "pool")


def lrn_window(size: int, channels: int) -> tuple[int, int]:
    """``(before, after)``: the channels an LRN window of ``size`` reaches before and after
    its own, clipped to ``channels - 1`` (``channels`` is the group's channel count; 0
    gives (0, 0)). Raises TypeError for non-integers and ValueError for size < 1."""
    size = _check_positive(size, "LRN size")
    last = max(_as_int(channels, "channels") - 1, 0)
    return min(size // 2, last), min((size - 1) // 2, last)
