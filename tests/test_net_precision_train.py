"""A few SGD steps of the small AlexNet (models.small_net, the `--model small` net) in each
precision, on the cpu backend (the rounded reference) and on the emulated kernels (the
tensor-core convolutions and GEMMs): the loss goes down, and stays close to the fp32
run's on the same backend.

Data: one batch of 16 (emu: 8) 64x64x3 images, 4 classes, each image its class's random pattern
plus noise (so there is something to learn); 4 steps at the CLI's small-model settings
(lr 0.01, momentum 0.9, weight decay 5e-4; dropout on). The loss compared is the
test-mode (no dropout) loss on the batch, before and after.

Tolerances, and why:
* Before any update the only difference is the GEMM operands' rounding, unit roundoff
  u = 2^-11 (tf32) or 2^-8 (bf16) relative per operand. The loss is compared at 8u: a
  few roundings add up through the net's eight GEMMs (measured on a 2-core x86 CPU: 1e-4
  for tf32 and 9e-4 for bf16, i.e. 0.2u-0.25u; fp32 and 3xtf32 are identical on cpu,
  where 3xtf32's reference is the float32 one). On emu 3xtf32 is a different float32
  computation (three tensor-core products in another summation order), held to 1e-5.
* On emu, each precision's initial loss is also compared with the cpu backend's at the
  same precision (the rounded reference). The two compute each activation in another
  float32 summation order (~1 ulp = 2^-24 apart); a value near a TF32/BF16 rounding
  boundary then rounds to the other neighbour (probability ~ulp/u), a change of u, so
  the expected difference is ~sqrt(ulp * u): 1e-5 for fp32 and 3xtf32, 4 sqrt(2^-24 u)
  for tf32 (2.2e-5) and bf16 (6.1e-5; measured 1.5e-5). A kernel that rounded otherwise
  than the reference (truncation, or ties the other way) moves each operand by ~u/2
  and the loss by ~1e-3: far outside.
* After 4 steps the runs have diverged further: the perturbed gradients flip ReLU and
  max-pool decisions and momentum carries the difference on. Measured 0.2-0.3% relative
  in the loss; the check is 3%, an order of magnitude above that and still an order of
  magnitude below the loss decrease every precision must show (>= 10%), so a precision
  that trained a different function (a wrong operand, a missing gradient) fails it.
"""
from __future__ import annotations

import numpy as np
import pytest
from net_support import one_blas_thread  # noqa: F401

from cuda_convnet import SGD, models
from cuda_convnet.checks import PRECISIONS

pytestmark = pytest.mark.usefixtures("one_blas_thread")

UNIT_ROUNDOFF = {"fp32": 2.0**-24, "3xtf32": 2.0**-24, "tf32": 2.0**-11, "bf16": 2.0**-8}
# The initial loss against fp32's on the same backend (module docstring): 8u, and at least
# the 1e-5 of two float32 summation orders (emu's 3xtf32 against its SIMT fp32).
INITIAL_RTOL = {p: max(8 * u, 1e-5) for p, u in UNIT_ROUNDOFF.items()}
# emu against cpu at the same precision, before any update (module docstring).
SAME_PRECISION_RTOL = {p: max(1e-5, 4 * (2.0**-24 * u) ** 0.5) for p, u in UNIT_ROUNDOFF.items()}
STEPS, CLASSES = 4, 4
FINAL_RTOL = 0.03       # the loss after STEPS steps vs fp32's (module docstring)
MIN_DECREASE = 0.10     # relative decrease of the test-mode loss every precision must reach


def batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % CLASSES
    patterns = rng.standard_normal((CLASSES, 64, 64, 3)).astype(np.float32)
    x = (patterns[labels] + 0.5 * rng.standard_normal((n, 64, 64, 3))).astype(np.float32)
    return x, labels


def test_loss(net, x, labels) -> float:
    probs = net.predict(x)
    return float(-np.mean(np.log(probs[np.arange(len(labels)), labels])))


test_loss.__test__ = False  # a helper, not a test


def train(device, precision, x, labels):
    """(loss before, loss after STEPS steps, the training losses) of the small net."""
    net = models.small_net(CLASSES, towers=1, devices=(device,), seed=0, width=1, precision=precision)
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    before = test_loss(net, x, labels)
    steps = [net.train_step(x, labels, opt)["loss"] for _ in range(STEPS)]
    return before, test_loss(net, x, labels), steps


@pytest.fixture(scope="module")
def cpu_fp32():
    from threadpoolctl import threadpool_limits

    x, labels = batch()
    # One BLAS thread as in the tests (module fixtures run outside one_blas_thread): the
    # same summation order, so fp32 and 3xtf32 can be compared bit for bit.
    with threadpool_limits(limits=1, user_api="blas"):
        return train("cpu", "fp32", x, labels)


def check_against_fp32(run, fp32, precision):
    before, after, steps = run
    assert all(np.isfinite(steps)) and np.isfinite(after)
    assert after < (1 - MIN_DECREASE) * before, f"{precision}: the loss went {before:.4f} -> {after:.4f}"
    rel0 = abs(before - fp32[0]) / fp32[0]
    assert rel0 <= INITIAL_RTOL[precision], f"{precision}: initial loss {rel0:.2e} from fp32's"
    rel = abs(after - fp32[1]) / fp32[1]
    assert rel <= FINAL_RTOL, f"{precision}: loss after {STEPS} steps {rel:.2e} from fp32's"
    return rel0, rel


@pytest.mark.parametrize("precision", PRECISIONS)
def test_small_alexnet_trains_in_each_precision_on_cpu(cpu_fp32, precision):
    x, labels = batch()
    run = train("cpu", precision, x, labels)
    rel0, rel = check_against_fp32(run, cpu_fp32, precision)
    if precision in ("fp32", "3xtf32"):
        assert run == cpu_fp32  # the float32 reference, bit for bit
    else:
        assert rel0 > 0  # the operands were rounded


EMU_BATCH = 8  # the emulator runs every thread of every kernel on the CPU


@pytest.fixture(scope="module")
def emu_fp32():
    x, labels = batch(EMU_BATCH)
    return train("emu", "fp32", x, labels)


@pytest.mark.emu
@pytest.mark.slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_small_alexnet_trains_in_each_precision_on_emu(emu_fp32, precision):
    x, labels = batch(EMU_BATCH)
    run = train("emu", precision, x, labels)
    check_against_fp32(run, emu_fp32, precision)
    # Before any update: the emulated kernels against the rounded reference, same precision.
    net = models.small_net(CLASSES, towers=1, devices=("cpu",), seed=0, width=1, precision=precision)
    cpu_before = test_loss(net, x, labels)
    assert abs(run[0] - cpu_before) / cpu_before <= SAME_PRECISION_RTOL[precision], (precision, run[0], cpu_before)
