"""The precisions of the benchmarks (``--precision``): which baseline each one is measured
against, the operands its reference rounds, and the tolerances of its checks.

Ours at each precision (checks.PRECISIONS, README "Precision") is set against PyTorch at
the SAME precision, so a speed-up never comes from doing less arithmetic than the baseline:

    ours     PyTorch baseline                                      PyTorch's name for it
    fp32     float32, TF32 off (cudnn.allow_tf32 = False,          set_float32_matmul_precision("highest")
             cuda.matmul.allow_tf32 = False)
    3xtf32   the same float32 baseline: 3xtf32 gives float32-level accuracy, so it must beat
             cuDNN / cuBLAS float32 (cuDNN has no 3xTF32 convolution)
    tf32     float32 tensors, TF32 allowed in cuDNN and cuBLAS      "high"; cuDNN's default for convolutions
    bf16     bfloat16 tensors (converted once, before timing;      "medium" / autocast(bfloat16)
             channels_last for the convolutions); the whole-net
             bench runs the float32 model under autocast(bfloat16)

On the CPU PyTorch has no TF32, so the tf32 baseline computes in float32 there.

Checks, before anything is timed:
* ours against the float64 reference on the operands rounded as ours rounds them
  (reference/precision.py; nothing is rounded for fp32 and 3xtf32): a float32-accumulation
  error, the bench's own tolerance (1e-3 relative L2 for the convolutions), the same for
  every precision, so a layout bug cannot hide behind a 7-bit mantissa;
* ours against the baseline at the same precision (relative L2) within VS_BASE_TOL: the
  two round differently (cuDNN may truncate to TF32, and bf16 outputs are stored in
  bf16), so the bound is the formats': ~2^-11 (tf32) and ~2^-8 (bf16) per operand with
  random signs, 1e-2 and 5e-2 leaving a factor ~10 of room, far below the O(1) error of a
  wrong kernel.

cuda_convnet is imported inside the functions (harness/__init__.py: a benchmark picks the
checkout first).
"""
from __future__ import annotations

import contextlib
import warnings

#: ours against the baseline at the same precision, relative L2 (module docstring).
VS_BASE_TOL = {"fp32": 1e-3, "3xtf32": 1e-3, "tf32": 1e-2, "bf16": 5e-2}
#: a float32-level baseline (fp32, 3xtf32) worse than this against float64 looks like TF32 is on.
TF32_SUSPECT = 1e-4


def parse(text: str) -> list[str]:
    """'fp32', 'tf32,bf16' or 'all' -> the precisions, in checks.PRECISIONS order; ValueError otherwise."""
    from cuda_convnet.checks import PRECISIONS

    wanted = list(PRECISIONS) if text == "all" else [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in wanted if p not in PRECISIONS]
    if bad or not wanted:
        raise ValueError(f"--precision: {', '.join(map(repr, bad)) or 'nothing'} is not one of "
                         f"{', '.join(PRECISIONS)} or 'all'")
    return [p for p in PRECISIONS if p in wanted]


def from_args(ap, args) -> list[str]:
    """The precisions of a bench's parsed ``--precision`` (add_argument); a bad value ends
    the run through ``ap.error`` with parse's message (exit 2)."""
    try:
        return parse(args.precision)
    except ValueError as e:
        ap.error(str(e))


def add_argument(ap) -> None:
    from cuda_convnet.checks import PRECISIONS

    ap.add_argument("--precision", default="fp32",
                    help="comma-separated precisions to measure, each against PyTorch at the same precision "
                         f"({', '.join(PRECISIONS)}, or 'all'; default fp32)")


def rounded(device, arrays, precision):
    """The arrays as the tensor cores of `precision` see them, on the device (for the
    reference; not timed)."""
    from cuda_convnet.reference.precision import round_operand

    if precision in ("fp32", "3xtf32"):
        return tuple(arrays)
    return tuple(device.put(round_operand(device.get(a), precision)) for a in arrays)


class Baseline:
    """PyTorch at one precision: the dtype of its tensors and the TF32 switches around its calls."""

    def __init__(self, torch, precision: str):
        self.torch, self.precision = torch, precision
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def describe(self) -> str:
        return {"fp32": "float32, TF32 off", "3xtf32": "float32, TF32 off", "tf32": "float32, TF32 allowed",
                "bf16": "bfloat16 tensors"}[self.precision]

    def tensor(self, t):
        """A float32 torch tensor in the baseline's dtype (a copy for bf16, made once)."""
        return t.to(self.dtype) if self.dtype != t.dtype else t

    @contextlib.contextmanager
    def active(self):
        """TF32 allowed in cuDNN and cuBLAS for "tf32"; the strict float32 flags restored after."""
        if self.precision != "tf32":
            yield
            return
        torch = self.torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the legacy flags' deprecation notice (devices.py)
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False

    @contextlib.contextmanager
    def autocast(self, device_type: str):
        """The whole-net baseline: autocast(bfloat16) for "bf16", else `active()`."""
        if self.precision == "bf16":
            with self.torch.autocast(device_type=device_type, dtype=self.torch.bfloat16):
                yield
        else:
            with self.active():
                yield


def as_float32(device, t):
    """A baseline output (float32 or bfloat16 tensor) as a float32 device array."""
    return device.from_torch(t.float())
