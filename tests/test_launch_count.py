"""Kernel launches and host synchronisations of one training step (bench/launch_count.py),
asserted exactly so that an added launch or host round trip cannot creep in unnoticed.

The step is a real `train_step` on emu devices of the small net (models.small_net): the
layer structure of AlexNet (five conv layers with LRN and pooling in the same places,
conv3 across the towers, two hidden fc layers with dropout, softmax) at a size the
emulator runs in seconds, batch 2. The full AlexNet at batch 1 gives the same counts but
for the FC layers' split-K sums (`python bench/launch_count.py`: grouped 64 launches, two
towers 135; 1 and 2 host synchronisations): the wgrad plans and the GEMMs' K splits, and
with them the chunk-sum launches, depend on the shapes. A change that removes a launch or
a synchronisation lowers the numbers here in the same commit.

What keeps them low: conv1 (whose input is the data) launches no dgrad; every ReLU is
fused into its conv/fc layer's epilogue (no forward ReLU launch), and the backward of each
ReLU read only by an LRN or a max-pool (relu1, relu2, relu5) into that layer's backward
(relu_mask: no ReLU backward launch); the grouped form's LRN
and dropout are one launch each over both channel groups (no split/concat); a Concat's backward adds into a
gradient already there instead of the Net adding (gradient_add counts the adds left);
the labels are checked on the host, and the loss and top-k counts come back in one read
(Device.to_host); the optimizer's update is not waited for. Two towers add one stream synchronisation: the
device without the loss releases what cross-device copies lent its stream.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import launch_count  # noqa: E402  (bench/ is not a package)

pytestmark = pytest.mark.emu

_COMMON = {"sgd_update": 1,
           "softmax_cross_entropy": 2, "softmax_cross_entropy_backward": 1, "topk_errors": 1}
EXPECTED = {
    # towers: (launches per op, host syncs per kind, cross-device copies)
    # Grouped: one lrn and one dropout launch per layer and direction over both groups, no
    # channel split/concat.
    1: ({**_COMMON, "lrn": 2, "lrn_backward": 2, "dropout": 2, "dropout_backward": 2, "conv2d": 5,
         "conv2d_backward": 18, "linear": 6, "linear_backward": 11, "max_pool": 3, "max_pool_backward": 3,
         "relu_backward": 4},
        {"to_host": 1}, 0),
    # Two towers: 6 tensors feed two layers (each tower's pool2, pool5, drop6 output: its own
    # tower's Concat and the copy to the other device); on device 0 the Concat's split adds
    # into the copied gradient in place (beta = 1), on device 1 the copy arrives last and
    # the Net adds it (3 gradient_add).
    2: ({**_COMMON, "lrn": 4, "lrn_backward": 4, "dropout": 4, "dropout_backward": 4, "concat_channels": 7,
         "split_channels": 7, "conv2d": 10, "conv2d_backward": 36, "gradient_add": 3,
         "linear": 10, "linear_backward": 19, "max_pool": 6, "max_pool_backward": 6, "relu_backward": 8,
         "sgd_update": 2},
        {"stream synchronize": 1, "to_host": 1}, 15),
}


@pytest.mark.parametrize("towers", [1, 2], ids=["grouped", "two_towers"])
def test_train_step_launches_and_syncs(towers):
    t = launch_count.count_step("small", towers=towers, batch=2)
    per_op, syncs, copies = EXPECTED[towers]
    print(f"small net, {towers} tower(s): {t.as_dict()}")
    assert t.per_op() == dict(sorted(per_op.items()))
    assert dict(t.syncs) == syncs
    assert t.copies == copies
    assert t.total_launches == sum(per_op.values())  # 63 grouped, 134 two towers
    assert t.total_syncs <= towers  # one host read per step, + one per device without the loss


def test_launch_rules_of_multi_kernel_launchers():
    """conv2d_wgrad's launches follow its plan; a recorded call with no bias is one fewer."""
    tally = launch_count.Tally()
    ext = launch_count.RecordingExt(launch_count.load("_emu"), tally)
    backend = launch_count.KernelBackend("emu", ext, launch_count.np)
    rng = launch_count.np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 9, 8)).astype("float32")
    w = rng.standard_normal((16, 3, 3, 8)).astype("float32")
    dy = rng.standard_normal((2, 9, 9, 16)).astype("float32")
    backend.wgrad_chunk_rows = 64  # 162 rows -> 3 chunks of dw and of db
    tally.op = "conv2d_backward"
    backend.conv2d_backward(x, w, dy, padding=1)
    # dgrad 1; wgrad: dw kernel, dw chunk sum, db kernel, db chunk sum
    assert tally.launches == {("conv2d_backward", "conv2d_dgrad"): 1, ("conv2d_backward", "conv2d_wgrad"): 4}


def test_no_dgrad_or_dx_gemm_where_the_input_needs_no_gradient():
    """need_dx=False: conv2d_backward launches wgrad only, linear_backward the dw GEMM and
    the bias gradient only; and the gradients they do return are those of need_dx=True."""
    np = launch_count.np
    tally = launch_count.Tally()
    ext = launch_count.RecordingExt(launch_count.load("_emu"), tally)
    backend = launch_count.KernelBackend("emu", ext, np)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 9, 9, 3)).astype("float32")
    w = rng.standard_normal((16, 3, 3, 3)).astype("float32")
    dy = rng.standard_normal((2, 5, 5, 16)).astype("float32")
    tally.op = "conv2d_backward"
    full = backend.conv2d_backward(x, w, dy, stride=2, padding=1)
    part = backend.conv2d_backward(x, w, dy, stride=2, padding=1, need_dx=False)
    assert part[0] is None and full[0] is not None
    np.testing.assert_array_equal(part[1], full[1])
    np.testing.assert_array_equal(part[2], full[2])
    assert tally.launches[("conv2d_backward", "conv2d_dgrad")] == 1  # the need_dx=True call's only
    tally.launches.clear()
    tally.op = "linear_backward"
    xl = rng.standard_normal((4, 24)).astype("float32")
    wl = rng.standard_normal((10, 24)).astype("float32")
    dyl = rng.standard_normal((4, 10)).astype("float32")
    dx, dw, db = backend.linear_backward(xl, wl, dyl, need_dx=False)
    assert dx is None
    assert tally.launches == {("linear_backward", "gemm"): 1, ("linear_backward", "bias_grad"): 1}
    ref = backend.linear_backward(xl, wl, dyl)
    np.testing.assert_array_equal(dw, ref[1])
    np.testing.assert_array_equal(db, ref[2])
