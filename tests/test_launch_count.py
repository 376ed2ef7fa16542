"""Kernel launches and host synchronisations of one training step (bench/launch_count.py),
asserted exactly so that an added launch or host round trip cannot creep in unnoticed.

The step is a real `train_step` on emu devices of the small net (models.small_net): the
layer structure of AlexNet (five conv layers with LRN and pooling in the same places,
conv3 across the towers, two hidden fc layers with dropout, softmax) at a size the
emulator runs in seconds, batch 2. The full AlexNet at batch 1 gives the same counts
(`python bench/launch_count.py`: grouped 97 launches, two towers 144; 10 and 12 host
synchronisations); the wgrad plans, and with them the chunk-sum launches, depend on the
batch. A change that removes a launch or a synchronisation lowers the numbers here in the
same commit.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import launch_count  # noqa: E402  (bench/ is not a package)

pytestmark = pytest.mark.emu

_COMMON = {"dropout": 4, "dropout_backward": 4, "lrn": 4, "lrn_backward": 4, "sgd_update": 1,
           "softmax_cross_entropy": 2, "softmax_cross_entropy_backward": 1, "topk_errors": 1}
EXPECTED = {
    # towers: (launches per op, host syncs per kind, cross-device copies)
    1: ({**_COMMON, "concat_channels": 8, "split_channels": 12, "conv2d": 5, "conv2d_backward": 19,
         "linear": 3, "linear_backward": 9, "max_pool": 3, "max_pool_backward": 3, "relu": 7,
         "relu_backward": 7},
        {"label range check": 6, "stream synchronize": 3, "to_host": 1, "topk_errors result": 1}, 0),
    2: ({**_COMMON, "concat_channels": 7, "split_channels": 7, "conv2d": 10, "conv2d_backward": 38,
         "linear": 5, "linear_backward": 15, "max_pool": 6, "max_pool_backward": 6, "relu": 14,
         "relu_backward": 14, "sgd_update": 2},
        {"label range check": 6, "stream synchronize": 6, "to_host": 1, "topk_errors result": 1}, 15),
}


@pytest.mark.parametrize("towers", [1, 2], ids=["grouped", "two_towers"])
def test_train_step_launches_and_syncs(towers):
    t = launch_count.count_step("small", towers=towers, batch=2)
    per_op, syncs, copies = EXPECTED[towers]
    print(f"small net, {towers} tower(s): {t.as_dict()}")
    assert t.per_op() == dict(sorted(per_op.items()))
    assert dict(t.syncs) == syncs
    assert t.copies == copies
    assert t.total_launches == sum(per_op.values())  # 97 grouped, 144 two towers


def test_launch_rules_of_multi_kernel_launchers():
    """conv_wgrad's launches follow its plan; a recorded call with no bias is one fewer."""
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
    assert tally.launches == {("conv2d_backward", "conv_dgrad"): 1, ("conv2d_backward", "conv_wgrad"): 4}
