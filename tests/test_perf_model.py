"""The performance model (bench/perf_model.py): its arithmetic on known launches, the
AlexNet grids it derives from the launchers' rules, and the calibration reader. The
figures it produces are predictions; these tests pin how they are computed."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import perf_model as pm  # noqa: E402  (bench/ is not a package)

# Kernel counts of the shape sass_report gives (sm_90); values chosen to make the
# arithmetic checkable by hand.
FAKE = {name: {"fma_share": 0.5, "blocks_per_sm": 2, "threads": 256} for name in (
    "conv_fwd_kernel1", "conv_fwd_kernel2", "conv_dgrad_kernel1<64, 64>", "conv_dgrad_kernel1<256, 16>",
    "conv_wgrad_kernel1", "conv_wgrad_kernel2", "conv_wgrad_kernel3", "conv_wgrad_kernel4", "conv_wgrad_kernel5",
    "gemm_kernel1<false, true>",
    "gemm_kernel2<false, true>", "gemm_kernel2<false, false>",
    "gemm_kernel2<true, false>", "gemm_kernel1<false, false>", "gemm_kernel1<true, false>",
    "conv_dgrad_kernel2<48>", "conv_dgrad_kernel2<64>", "conv_dgrad_kernel2<128>",
    "conv_fwd_kernel3")}


def test_gemm_launch_time_and_wave_quantization():
    one = pm.gemm_launch(FAKE, "l", "fwd", "conv_fwd_kernel2", 132, 128, 128, 1024, 1.0, 0)
    # per block: 128*128*1024/32 FFMA / 0.5 = 1,048,576 warp instructions; 1 block per SM
    # (8 warps) -> efficiency 0.8 * 8/16 = 0.4
    expect = 1_048_576 / (4 * pm.CLOCK_HZ * 0.4)
    assert one.seconds == pytest.approx(expect) and one.bound == "compute"
    two = pm.gemm_launch(FAKE, "l", "fwd", "conv_fwd_kernel2", 133, 128, 128, 1024, 1.0, 0)
    # one block more: the busiest SM runs two (now 16 warps resident: efficiency 0.8)
    assert two.seconds == pytest.approx(2 * 1_048_576 / (4 * pm.CLOCK_HZ * 0.8))
    assert two.waves == pytest.approx(133 / (2 * 132))


def test_memory_launch():
    ln = pm.memory_launch("relu1", "fwd", "map_kernel1<Relu>", 2 * 4 * 128 * 55 * 55 * 96)
    assert ln.seconds == pytest.approx(2 * 4 * 128 * 55 * 55 * 96 / (3.35e12 * 0.8)) and ln.bound == "memory"
    assert pm.memory_launch("x", "fwd", "k", 4).seconds == pm.LAUNCH_FLOOR_S


def test_alexnet_grids_follow_the_launchers():
    launches = pm.alexnet_launches(128, FAKE)
    by = {}
    for ln in launches:
        by.setdefault((ln.layer, ln.direction), []).append(ln)
    # conv1 forward: C = 3 -> conv_fwd_kernel3, 128x128 tiles of M = 128*55*55, N = 96
    f1 = by[("conv1", "fwd")][0]
    assert (f1.kernel, f1.blocks) == ("conv_fwd_kernel3", 3025)
    # conv2 forward: groups 2, 128x128 tiles: ceil(128*27*27/128) * ceil(128/128) * 2
    assert by[("conv2", "fwd")][0].blocks == 729 * 2
    # conv1's input is the data: no dgrad (need_dx=False). Where one ran (C = 3, the 256x16
    # tile, 16 stride phases of 14x14 or fewer pixels) 18 % of its work was useful.
    assert ("conv1", "dgrad") not in by
    d1 = pm.conv2d_dgrad(FAKE, "conv1", pm.ConvGeom(128, 224, 224, 3, 96, 11, 11, 4, (1, 2, 1, 2), 1))[0]
    assert d1.kernel == "conv_dgrad_kernel1<256, 16>"
    assert d1.useful_flops / d1.padded_flops == pytest.approx(0.18, abs=0.01)
    # conv2-5 dgrad: conv_dgrad_kernel2, 128-row tiles, N tile matched to C/g (48 -> 48,
    # 256 -> 128, 192 -> 64 x 3): no padded column, no padded row (M = 128*27*27, 128*13*13).
    d = {i: by[(f"conv{i}", "dgrad")][0] for i in (2, 3, 4, 5)}
    assert [(d[i].kernel, d[i].blocks) for i in (2, 3, 4, 5)] == [
        ("conv_dgrad_kernel2<48>", 729 * 2), ("conv_dgrad_kernel2<128>", 169 * 2),
        ("conv_dgrad_kernel2<64>", 169 * 3 * 2), ("conv_dgrad_kernel2<64>", 169 * 3 * 2)]
    assert all(ln.useful_flops == pytest.approx(ln.padded_flops) for ln in d.values())
    # Every ReLU is in its conv/fc epilogue: none launched forward; backward only those not
    # read by an LRN or a pool (relu1, relu2 -> norm; relu5 -> pool5 mask in their backward).
    assert not [k for k in by if k[0].startswith("relu") and k[1] == "fwd"]
    assert sorted(k[0] for k in by if k[0].startswith("relu")) == ["relu3", "relu4", "relu6", "relu7"]
    # FC at batch 128: fc6/fc7 forward 32 tiles of 128x128, fc8 8, split over K into 9, 10
    # and 37 slices (the launcher's gemm_plan on 132 SMs), each then summed by one more launch;
    # every FC GEMM fills at least one wave of 2 blocks per SM.
    assert [by[(f"fc{i}", "fwd")][0].blocks for i in (6, 7, 8)] == [32 * 9, 32 * 10, 8 * 37]
    assert [ln.kernel for ln in by[("fc8", "fwd")]] == ["gemm_kernel2<false, true>", "gemm_sum_splits_kernel1"]
    for i in (6, 7, 8):
        for d in ("fwd", "dgrad", "wgrad"):
            assert by[(f"fc{i}", d)][0].blocks >= 2 * 132, (i, d)
    # wgrad: the launcher's own plan (through the emulator build)
    plan = pm.wgrad_plan(pm.ConvGeom(128, 224, 224, 3, 96, 11, 11, 4, (1, 2, 1, 2), 1))
    # conv1 (C = 3, K = 96): kernel3, 128x128 tiles of M = 96, N = 11*11*3 = 363 (kernel5's
    # 96-row tile runs only when forced: its main loop is below the SASS gate's floor)
    assert by[("conv1", "wgrad")][0].blocks == 1 * 3 * plan["chunks"]
    assert by[("conv1", "wgrad")][0].kernel == "conv_wgrad_kernel3"
    # conv4 (C/g = 192, K/g = 192): kernel4, 2 x 96 rows per group, no padded rows
    w4 = by[("conv4", "wgrad")][0]
    plan4 = pm.wgrad_plan(pm.ConvGeom(128, 13, 13, 384, 384, 3, 3, 1, (1, 1, 1, 1), 2))
    assert (w4.kernel, w4.blocks) == ("conv_wgrad_kernel4", 2 * 14 * 2 * plan4["chunks"])
    assert w4.padded_flops == 2.0 * 96 * 128 * plan4["chunk_rows"] * w4.blocks
    # conv2 wgrad: C/g = 48, K/g = 128 -> kernel2, 128x128 tiles of M = 128, N = 5*5*48 per group
    plan = pm.wgrad_plan(pm.ConvGeom(128, 27, 27, 96, 256, 5, 5, 1, (2, 2, 2, 2), 2))
    w2 = by[("conv2", "wgrad")][0]
    assert (w2.kernel, w2.blocks) == ("conv_wgrad_kernel2", 1 * 10 * 2 * plan["chunks"])
    # LRN with groups: one launch per direction over both groups, no channel split/concat.
    for i, c in ((1, 128 * 55 * 55 * 96), (2, 128 * 27 * 27 * 256)):
        assert [(ln.kernel, ln.nbytes) for ln in by[(f"norm{i}", "fwd")]] == [("lrn_forward_kernel2", 2 * 4 * c)]
        assert [(ln.kernel, ln.nbytes) for ln in by[(f"norm{i}", "bwd")]] == [("lrn_backward_kernel2", 4 * 4 * c)]
    # Dropout with groups likewise: one launch per direction (x read, y written); no channel copies left.
    for j in (6, 7):
        for d in ("fwd", "bwd"):
            assert [(ln.kernel, ln.nbytes) for ln in by[(f"drop{j}", d)]] == [("dropout_kernel1", 2 * 4 * 128 * 4096)]
    assert not [k for k, lns in by.items() for ln in lns if ln.kernel.startswith("channel_copy")]
    assert pm.lrn_split_concat_bytes(128) == 12 * 4 * (128 * 55 * 55 * 96 + 128 * 27 * 27 * 256)  # 2.93 GB
    # every parameter updated once: 60,965,224 floats x 5 passes
    assert by[("sgd", "update")][0].seconds == pytest.approx(5 * 4 * 60_965_224 / (3.35e12 * 0.8))


def test_predict_alexnet_sums_the_step():
    pred = pm.predict_alexnet(128, FAKE)
    step = pred.pop(("step", "train"))
    bwd = {k: pred.pop(k) for k in list(pred) if k[1] == "bwd" and (k[0], "wgrad") in pred}
    assert step == pytest.approx(sum(pred.values()))
    assert bwd[("conv3", "bwd")] == pytest.approx(pred[("conv3", "dgrad")] + pred[("conv3", "wgrad")])
    for layer in ("conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        assert all(pred[(layer, d)] > 0 for d in ("fwd", "dgrad", "wgrad"))
    assert ("conv1", "dgrad") not in pred and bwd[("conv1", "bwd")] == pytest.approx(pred[("conv1", "wgrad")])


def test_calibrate_reads_bench_json(tmp_path):
    pred = pm.predict_alexnet(128, FAKE)
    doc = {"bench": "conv_bench", "rows": [
        {"layer": "conv2", "op": "fwd", "ours_ms": 2 * pred[("conv2", "fwd")]},
        {"layer": "conv2/t", "op": "fwd", "ours_ms": 1.0},
        {"impl": "ours", "mode": "train", "towers": "grouped", "batch": 128, "images_per_s": 1280.0}]}
    path = tmp_path / "conv.json"
    path.write_text(json.dumps(doc))
    assert pm.measured_rows(doc)[("step", "train")] == pytest.approx(100.0)
    out = pm.calibrate([path], pred)
    assert f"| conv2 | fwd | {2 * pred[('conv2', 'fwd')]:.3f} | {pred[('conv2', 'fwd')]:.3f} | 2.00 |" in out
    assert "1 measured rows have no prediction" in out
    # a benchmark that failed wrote no JSON: its file is named, the others still calibrate
    out = pm.calibrate([tmp_path / "absent.json", path], pred)
    assert "no measurements (file missing)" in out and "absent.json" in out and "| conv2 | fwd |" in out


@pytest.mark.slow
def test_prediction_from_the_real_sass():
    """With the kernels' own SASS counts: conv1 launches no dgrad (its input is the data),
    and conv2-5's dgrad (conv_dgrad_kernel2, no padded tile column) is predicted at more
    than 30 TFLOP/s each (kernel1's 64x64 tile: 11.6-15.5, conv2's 75 % useful)."""
    import sass_report

    if not sass_report.have_nvcc():
        pytest.skip("nvcc is not installed: no SASS to read (CI has it)")
    pred = pm.predict_alexnet(128)
    step = pred.pop(("step", "train"))
    print(f"predicted H100 step at batch 128: {step:.1f} ms")
    assert ("conv1", "dgrad") not in pred
    dgrad = [ln for ln in pm.alexnet_launches(128) if ln.direction == "dgrad" and ln.layer.startswith("conv")]
    assert sorted(ln.layer for ln in dgrad) == ["conv2", "conv3", "conv4", "conv5"]
    for ln in dgrad:
        assert ln.kernel.startswith("conv_dgrad_kernel2<") and ln.useful_flops == pytest.approx(ln.padded_flops)
        assert ln.useful_flops / ln.seconds > 30e12, (ln.layer, ln.kernel, ln.seconds)
    assert 5 < step < 100
