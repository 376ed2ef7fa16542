"""Predicted H100 time of each AlexNet layer and direction, and of one training step, from
the kernels' sm_90 machine code and the launchers' grids. Every figure is a PREDICTION.

    python bench/perf_model.py                        # batch 128, the layer table
    python bench/perf_model.py --calibrate out.json   # measured / predicted, per row
    python bench/perf_model.py --sass-json sass.json  # SASS counts from sass_report --json
    python bench/perf_model.py --tc                   # + the conv layers per tensor-core precision

    from perf_model import predict_alexnet
    pred = predict_alexnet(batch=128)                  # {(layer, direction): ms}

The network is models.alexnet_config() in its one-device grouped form (conv2, conv4, conv5
with groups 2; LRN and dropout with groups 2, each one launch over both groups),
224x224x3 input. The LRN's groups argument saves the split/concat it once
needed: 12 floats moved per element of norm1 and norm2 (forward: split x, concat y;
backward: split x, y, dy, concat dx), 2.93 GB per step at batch 128 (lrn_split_concat_bytes).

The model (H100 SXM: 132 SMs, 4 warp schedulers per SM, 1.98 GHz, 3.35 TB/s HBM3):

  GEMM-family launches (conv forward, dgrad, wgrad; FC GEMMs). The grid, tile and K extent
  follow the launchers in csrc/ (conv_fwd.cu: conv_fwd_kernel2 128x128 where C/groups % 4
  == 0, else conv_fwd_kernel3 128x128; conv_dgrad.cu: one GEMM per group and stride phase,
  conv_dgrad_kernel2 128 x (48, 64 or 128) where K/groups and C/groups % 4 == 0 and
  C/groups > 16, else kernel1 64x64 or 256x16 when C/groups <= 16, blocks past their
  phase's rows exit at once;
  conv_wgrad.cu: conv_wgrad_kernel2 128x128 (a 3-stage cp.async pipeline) where C/groups
  and K/groups % 4 == 0, conv_wgrad_kernel3 (the same with 4-byte copies of x) where only
  K/groups % 4 == 0 (kernel4: kernel2 with a 96x128 tile where K/groups % 96 == 0 and
  % 128 != 0: conv4; kernel5, kernel3 with that tile, only when forced), else
  conv_wgrad_kernel1 64x64, split over N*P*Q by conv2d_wgrad_plan, called through the
  emulator build so the plan is the launcher's own;
  gemm.cu: gemm_kernel2 128x128x8 when M, N >= 128, else gemm_kernel1 64x64x16, with the
  K split of gemm_plan, called through the emulator build (132 SMs), plus
  gemm_sum_splits_kernel1 when it splits). Per block, the main loop issues
      FFMA warp instructions = BM * BN * K_padded / 32,   all = FFMA / fma_share
  (fma_share: the kernel's main-loop FMA share in the SASS, bench/sass_report.py; the
  prologue and epilogue are neglected). The busiest SM runs ceil(blocks / 132) blocks (wave
  quantization: a grid of 133 blocks costs two blocks' time on one SM), issuing at most 4
  warp instructions per clock, times an issue efficiency
      eff = ISSUE_EFFICIENCY * min(1, resident warps per SM / 16)
  (resident warps: blocks per SM from the occupancy in the SASS report, capped by the
  blocks each SM actually gets; 16 warps = 4 per scheduler is taken as enough to hide
  the exposed load latency of an unpipelined K loop; ISSUE_EFFICIENCY is the knob the
  first GPU run calibrates). compute = ceil(blocks/132) * all / (4 * clock * eff).
  memory = (A + B + C bytes, each once) / (HBM bandwidth * MEMORY_EFFICIENCY).
  time = max(compute, memory, LAUNCH_FLOOR).

  Memory-bound launches (ReLU, LRN, pooling, dropout, channel split/concat, the wgrad and
  bias-gradient partial sums, softmax, the SGD update): time = max(bytes / (HBM bandwidth *
  MEMORY_EFFICIENCY), LAUNCH_FLOOR), bytes = every input read once, every output written
  once. LRN's instruction-bound behaviour is not modelled (optimistic for LRN).

  Step = the sum over every launch of one train_step (the launches are serial on one
  stream). Host synchronisations and launch gaps beyond LAUNCH_FLOOR are not modelled.

"useful %" = the layer's true FLOPs / the FLOPs the padded tiles execute.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SMS = 132
SCHEDULERS = 4
CLOCK_HZ = 1.98e9
HBM_BYTES_PER_S = 3.35e12
MEMORY_EFFICIENCY = 0.8      # of HBM peak a streaming kernel reaches (assumption)
ISSUE_EFFICIENCY = 0.8       # of 4 warp instructions per clock a saturated SM issues (assumption)
WARPS_TO_HIDE_LATENCY = 16
LAUNCH_FLOOR_S = 2.5e-6      # a launch's minimum time on the stream (assumption)
F32 = 4


def _cdiv(a, b):
    return -(-a // b)


@dataclass
class Launch:
    """One predicted kernel launch."""

    layer: str
    direction: str
    kernel: str
    seconds: float
    bound: str                  # "compute", "memory" or "launch"
    blocks: int = 0
    waves: float = 0.0          # blocks / (resident blocks per SM * SMs)
    useful_flops: float = 0.0
    padded_flops: float = 0.0
    nbytes: float = 0.0         # memory-bound launches: bytes read + written


# ---------------------------------------------------------------------------- SASS counts
@functools.cache
def _sass_from_build() -> dict:
    import sass_report

    return {s.name: {"fma_share": s.fma_share, "blocks_per_sm": s.blocks_per_sm, "threads": s.threads}
            for s in sass_report.report_cached() if s.arch == 90}


def load_sass(path=None) -> dict:
    """Kernel name -> {fma_share, blocks_per_sm, threads} on sm_90: from a sass_report --json
    file, or by building and disassembling the kernels (needs nvcc and cuobjdump)."""
    if path is None:
        return _sass_from_build()
    rows = json.loads(Path(path).read_text())
    return {r["name"].replace("ccn::", ""): {k: r[k] for k in ("fma_share", "blocks_per_sm", "threads")}
            for r in rows if r["arch"] == 90}


# ---------------------------------------------------------------------------- launch models
def memory_launch(layer, direction, kernel, nbytes) -> Launch:
    t = nbytes / (HBM_BYTES_PER_S * MEMORY_EFFICIENCY)
    return Launch(layer, direction, kernel, max(t, LAUNCH_FLOOR_S), "memory" if t >= LAUNCH_FLOOR_S else "launch",
                  nbytes=nbytes)


def gemm_launch(sass, layer, direction, kernel, tiles, bm, bn, k_block, useful_flops, nbytes) -> Launch:
    """`tiles` blocks of BM x BN, each running a K extent of k_block (already padded)."""
    s = sass[kernel]
    ffma_per_block = bm * bn * k_block / 32
    insns_per_block = ffma_per_block / s["fma_share"]
    per_sm = _cdiv(tiles, SMS)
    resident = min(s["blocks_per_sm"], per_sm)
    eff = ISSUE_EFFICIENCY * min(1.0, resident * s["threads"] / 32 / WARPS_TO_HIDE_LATENCY)
    compute = per_sm * insns_per_block / (SCHEDULERS * CLOCK_HZ * eff)
    memory = nbytes / (HBM_BYTES_PER_S * MEMORY_EFFICIENCY)
    t, bound = max((compute, "compute"), (memory, "memory"), (LAUNCH_FLOOR_S, "launch"))
    return Launch(layer, direction, kernel, t, bound, tiles, tiles / (s["blocks_per_sm"] * SMS), useful_flops,
                  2.0 * bm * bn * k_block * tiles)


@dataclass(frozen=True)
class ConvGeom:
    n: int
    h: int
    w: int
    c: int
    k: int
    r: int
    s: int
    stride: int
    pad: tuple      # (top, bottom, left, right)
    groups: int

    @property
    def p(self):
        return (self.h + self.pad[0] + self.pad[1] - self.r) // self.stride + 1

    @property
    def q(self):
        return (self.w + self.pad[2] + self.pad[3] - self.s) // self.stride + 1

    @property
    def cg(self):
        return self.c // self.groups

    @property
    def kg(self):
        return self.k // self.groups

    @property
    def flops(self):
        return 2.0 * self.n * self.p * self.q * self.k * self.r * self.s * self.cg

    def bytes(self):
        x = self.n * self.h * self.w * self.c
        y = self.n * self.p * self.q * self.k
        return x, y, self.k * self.r * self.s * self.cg


def conv2d(sass, name, g: ConvGeom, version: int = 0) -> list[Launch]:
    """version: 0 the launcher's pick (kernel2 where C/groups % 4 == 0, else kernel3), 1, 2 or
    3 that kernel (ValueError where kernel2 cannot run)."""
    x, y, w = g.bytes()
    if version == 2 and g.cg % 4:
        raise ValueError(f"{name}: conv_fwd_kernel2 needs C/groups % 4 == 0 (C/groups = {g.cg})")
    if version == 1:
        kernel, bm, bn = "conv_fwd_kernel1", 64, 64
    elif version == 2 or (version == 0 and g.cg % 4 == 0):
        kernel, bm, bn = "conv_fwd_kernel2", 128, 128
    else:  # 128 x 128 with the scalar gather (conv1's C = 3), the launcher's pick there
        kernel, bm, bn = "conv_fwd_kernel3", 128, 128
    tiles = _cdiv(g.n * g.p * g.q, bm) * _cdiv(g.kg, bn) * g.groups
    k_block = _cdiv(g.r * g.s * g.cg, 16) * 16
    return [gemm_launch(sass, name, "fwd", kernel, tiles, bm, bn, k_block, g.flops, F32 * (x + y + w + g.k))]


def conv2d_dgrad(sass, name, g: ConvGeom, version: int = 0) -> list[Launch]:
    """Per stride phase (a, b): its own rows and taps (conv_dgrad.cuh); one launch whose
    busiest SM is modelled over all the phases' active blocks. version 0: the launcher's pick,
    conv_dgrad_kernel2 where K/g and C/g % 4 == 0 and C/g > 16 (the arrays are taken as
    aligned), else kernel1; 1 or 2 that kernel (ValueError where kernel2 cannot run). The
    block tile is the launcher's own (conv2d_dgrad_plan, through the emulator build)."""
    x, y, w = g.bytes()
    fits2 = g.kg % 4 == 0 and g.cg % 4 == 0
    if version == 2 and not fits2:
        raise ValueError(f"{name}: conv_dgrad_kernel2 needs K/groups and C/groups % 4 == 0 "
                         f"(K/groups = {g.kg}, C/groups = {g.cg})")
    version = version or (2 if fits2 and g.cg > 16 else 1)
    tile = _emu().conv2d_dgrad_plan(**_shape_kwargs(g), kernel=version)
    bm, bn = tile["block_m"], tile["block_n"]
    kernel = f"conv_dgrad_kernel2<{bn}>" if version == 2 else f"conv_dgrad_kernel1<{bm}, {bn}>"
    st = g.stride
    tiles, padded, k_max = 0, 0.0, 0
    for a in range(st):
        for b in range(st):
            h_first = ((a - g.pad[0]) % st + st) % st
            w_first = ((b - g.pad[2]) % st + st) % st
            hph = _cdiv(g.h - h_first, st) if h_first < g.h else 0
            wph = _cdiv(g.w - w_first, st) if w_first < g.w else 0
            ru = _cdiv(g.r - a, st) if a < g.r else 0
            su = _cdiv(g.s - b, st) if b < g.s else 0
            k_pad = _cdiv(ru * su * g.kg, 16) * 16
            t = _cdiv(g.n * hph * wph, bm) * _cdiv(g.cg, bn) * g.groups
            tiles += t
            padded += 2.0 * bm * bn * k_pad * t
            k_max = max(k_max, k_pad)
    # Phases differ little in K (conv1: 2-3 taps per axis); the mean K per block is used.
    k_mean = padded / (2.0 * bm * bn * tiles)
    launch = gemm_launch(sass, name, "dgrad", kernel, tiles, bm, bn, k_mean, g.flops, F32 * (x + y + w))
    return [launch]


@functools.cache
def _emu():
    from cuda_convnet._ext import load

    return load("_emu")


def _shape_kwargs(g: ConvGeom) -> dict:
    return dict(n=g.n, h=g.h, w=g.w, c=g.c, k=g.k, r=g.r, s=g.s, stride=g.stride, pad_top=g.pad[0],
                pad_bottom=g.pad[1], pad_left=g.pad[2], pad_right=g.pad[3], groups=g.groups)


def wgrad_plan(g: ConvGeom) -> dict:
    """The launcher's own split (conv2d_wgrad_plan, through the emulator build)."""
    return _emu().conv2d_wgrad_plan(n=g.n, h=g.h, w=g.w, c=g.c, k=g.k, r=g.r, s=g.s, stride=g.stride,
                                  pad_top=g.pad[0], pad_bottom=g.pad[1], pad_left=g.pad[2], pad_right=g.pad[3],
                                  groups=g.groups, chunk_rows=0)


def conv2d_wgrad(sass, name, g: ConvGeom, version: int = 0) -> list[Launch]:
    """version: 0 the launcher's pick (kernel2 where C/groups and K/groups % 4 == 0, else
    kernel3 where K/groups % 4 == 0, else kernel1; kernel4/kernel5, the same with a 96 x 128
    tile, instead of 2/3 where K/groups % 96 == 0 and % 128 != 0), or that kernel
    (ValueError where it cannot run). The chunk plan is the shape's whatever the kernel."""
    x, y, w = g.bytes()
    plan = wgrad_plan(g)
    rscg = g.r * g.s * g.cg
    runs = {1: True, 2: g.cg % 4 == 0 and g.kg % 4 == 0, 3: g.kg % 4 == 0}
    runs.update({4: runs[2], 5: runs[3]})
    if version and not runs.get(version, False):
        raise ValueError(f"{name}: conv_wgrad_kernel{version} cannot run C/groups = {g.cg}, K/groups = {g.kg}")
    wide = 2 if g.kg % 96 == 0 and g.kg % 128 != 0 else 0
    version = version or (2 + wide if runs[2] else 3 if runs[3] else 1)  # kernel5 only when forced
    bm, bn = {1: (64, 64), 4: (96, 128), 5: (96, 128)}.get(version, (128, 128))
    kernel = f"conv_wgrad_kernel{version}"
    tiles = _cdiv(rscg, bn) * _cdiv(g.kg, bm) * plan["chunks"] * g.groups
    out = [gemm_launch(sass, name, "wgrad", kernel, tiles, bm, bn, plan["chunk_rows"], g.flops,
                       F32 * (x + y + plan["chunks"] * w))]
    if plan["chunks"] > 1:
        out.append(memory_launch(name, "wgrad", "conv_sum_partials_kernel1", F32 * (plan["chunks"] + 1) * w))
    out.append(memory_launch(name, "wgrad", "conv_bias_grad_kernel1", F32 * (y + plan["bias_chunks"] * g.k)))
    if plan["bias_chunks"] > 1:
        out.append(memory_launch(name, "wgrad", "conv_sum_partials_kernel1", F32 * (plan["bias_chunks"] + 1) * g.k))
    return out


def gemm_plan(m, n, k, version: int = 0) -> dict:
    """The launcher's own kernel choice and split-K (csrc/gemm.cu, gemm_plan, through the
    emulator build, which reports the H100's 132 SMs)."""
    return _emu().gemm_plan(M=m, N=n, K=k, version=version)


def gemm(sass, layer, direction, m, n, k, trans_a, trans_b, version: int = 0) -> list[Launch]:
    """The float32 GEMM: `splits` K slices of the 128 x 128 (gemm_kernel2, 8-deep K steps) or
    64 x 64 (gemm_kernel1, 16) tile, each writing an [m, n] slab, then the fixed-order sum.
    version: 0 the launcher's pick, 1 or 2 that kernel."""
    plan = gemm_plan(m, n, k, version)
    ta, tb = str(trans_a).lower(), str(trans_b).lower()
    if plan["version"] == 2:
        kernel, bm, bn, bk = f"gemm_kernel2<{ta}, {tb}>", 128, 128, 8
    else:
        kernel, bm, bn, bk = f"gemm_kernel1<{ta}, {tb}>", 64, 64, 16
    splits = plan["splits"]
    tiles = _cdiv(m, bm) * _cdiv(n, bn) * splits
    out = [gemm_launch(sass, layer, direction, kernel, tiles, bm, bn, _cdiv(plan["k_chunk"], bk) * bk,
                       2.0 * m * n * k, F32 * (m * k + k * n + splits * m * n))]
    if splits > 1:  # the slices summed with the epilogue: splits slabs read, C written
        out.append(memory_launch(layer, direction, "gemm_sum_splits_kernel1", F32 * (splits + 1) * m * n))
    return out


# ---------------------------------------------------------------------------- tensor-core convolutions
# conv_tc.cu (precision "tf32", "3xtf32", "bf16"): 128 threads per block; forward 128 x 64
# tiles over (N*P*Q, K/g) (64 x 64 for 3xtf32 with 16-byte copies); dgrad 128 x 64 over
# (N*H*W, C/g) with K = R*S*K/g at every
# stride (the stride's empty taps are zero-filled gathers, not skipped); wgrad 64 x 128 over
# (K/g, R*S*C/g) split over N*P*Q by conv2d_wgrad_tc_plan (the launcher's own, through the
# emulator build), plus the chunk sums and the bias gradient. Per block the main loop
# issues HMMA = (BM/16) (BN/8) K / k_mma * mmas warp instructions (k_mma 8 for tf32, 16
# for bf16; 3 mma per product for 3xtf32); all = HMMA / fma_share (the SASS report counts
# HMMA in its FMA share). compute = max(issue time as for the SIMT kernels, tensor time =
# HMMA on the busiest SM / (TC_HMMA_PER_CLOCK * clock)).
# TC_HMMA_PER_CLOCK: an H100 SXM's dense peak (494.7 TF/s tf32, 989 TF/s bf16) is ~0.92
# m16n8k8.tf32 or m16n8k16.bf16 per clock per SM; mma.sync (not wgmma) is taken to reach
# 60 % of it (an assumption, for the first GPU run to calibrate).
TC_HMMA_PER_CLOCK = 0.92 * 0.6
TC_PRECISIONS = ("tf32", "3xtf32", "bf16")
_TC_CODE = {"tf32": 0, "3xtf32": 1, "bf16": 2}


def tc_launch(sass, layer, direction, kernel, tiles, bm, bn, k_block, precision, useful_flops, nbytes) -> Launch:
    s = sass[kernel]
    hmma = (bm / 16) * (bn / 8) * k_block / (16 if precision == "bf16" else 8) * (3 if precision == "3xtf32" else 1)
    per_sm = _cdiv(tiles, SMS)
    resident = min(s["blocks_per_sm"], per_sm)
    eff = ISSUE_EFFICIENCY * min(1.0, resident * s["threads"] / 32 / WARPS_TO_HIDE_LATENCY)
    issue = per_sm * hmma / s["fma_share"] / (SCHEDULERS * CLOCK_HZ * eff)
    tensor = per_sm * hmma / (TC_HMMA_PER_CLOCK * CLOCK_HZ)
    memory = nbytes / (HBM_BYTES_PER_S * MEMORY_EFFICIENCY)
    t, bound = max((issue, "issue"), (tensor, "tensor"), (memory, "memory"), (LAUNCH_FLOOR_S, "launch"))
    return Launch(layer, direction, kernel, t, bound, tiles, tiles / (s["blocks_per_sm"] * SMS), useful_flops,
                  2.0 * bm * bn * k_block * tiles)


def wgrad_tc_plan(g: ConvGeom) -> dict:
    return _emu().conv2d_wgrad_tc_plan(n=g.n, h=g.h, w=g.w, c=g.c, k=g.k, r=g.r, s=g.s, stride=g.stride,
                                       pad_top=g.pad[0], pad_bottom=g.pad[1], pad_left=g.pad[2],
                                       pad_right=g.pad[3], groups=g.groups, chunk_rows=0)


def conv_tc(sass, name, g: ConvGeom, direction, precision) -> list[Launch]:
    """The launches of one tensor-core convolution direction ("fwd", "dgrad", "wgrad")."""
    x, y, w = g.bytes()
    code = _TC_CODE[precision]
    if direction == "fwd":
        vec = g.cg % 4 == 0
        kernel = f"conv_tc_fwd_kernel1<{code}, {str(vec).lower()}>"
        bm = 64 if precision == "3xtf32" and vec else 128  # conv2d_tc's tile choice
        tiles = _cdiv(g.n * g.p * g.q, bm) * _cdiv(g.kg, 64) * g.groups
        return [tc_launch(sass, name, "fwd", kernel, tiles, bm, 64, _cdiv(g.r * g.s * g.cg, 16) * 16, precision,
                          g.flops, F32 * (x + y + w + g.k))]
    if direction == "dgrad":
        kernel = f"conv_tc_dgrad_kernel1<{code}, {str(g.cg % 4 == 0 and g.kg % 4 == 0).lower()}>"
        tiles = _cdiv(g.n * g.h * g.w, 128) * _cdiv(g.cg, 64) * g.groups
        return [tc_launch(sass, name, "dgrad", kernel, tiles, 128, 64, _cdiv(g.r * g.s * g.kg, 16) * 16, precision,
                          g.flops, F32 * (x + y + w))]
    plan = wgrad_tc_plan(g)
    kernel = f"conv_tc_wgrad_kernel1<{code}, {str(g.cg % 4 == 0 and g.kg % 4 == 0).lower()}>"
    tiles = _cdiv(g.r * g.s * g.cg, 128) * _cdiv(g.kg, 64) * plan["chunks"] * g.groups
    out = [tc_launch(sass, name, "wgrad", kernel, tiles, 64, 128, plan["chunk_rows"], precision, g.flops,
                     F32 * (x + y + plan["chunks"] * w))]
    out.append(memory_launch(name, "wgrad", "conv_bias_grad_kernel1", F32 * (y + plan["chunks"] * g.k)))
    if plan["chunks"] > 1:
        out.append(memory_launch(name, "wgrad", "conv_sum_partials_kernel1", F32 * (plan["chunks"] + 1) * (w + g.k)))
    return out


def predict_conv_tc(batch: int = 128, sass=None) -> dict:
    """PREDICTED milliseconds per (layer, direction, precision) of the AlexNet conv layers on
    the tensor-core kernels, with the float32 SIMT kernels' prediction as precision "fp32"
    (conv1: no dgrad, its input is the data)."""
    sass = sass if sass is not None else load_sass()
    out = {}
    for name, g in alexnet_conv_geoms(batch)[0]:
        simt = {"fwd": conv2d(sass, name, g), "wgrad": conv2d_wgrad(sass, name, g)}
        if name != "conv1":
            simt["dgrad"] = conv2d_dgrad(sass, name, g)
        for d, launches in simt.items():
            out[(name, d, "fp32")] = sum(ln.seconds for ln in launches) * 1e3
            for p in TC_PRECISIONS:
                out[(name, d, p)] = sum(ln.seconds for ln in conv_tc(sass, name, g, d, p)) * 1e3
    return out


def conv_tc_table(batch: int = 128, sass=None) -> str:
    pred = predict_conv_tc(batch, sass)
    cols = ("fp32", *TC_PRECISIONS)
    lines = ["| layer | direction | " + " | ".join(f"{p} predicted ms" for p in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for layer, d in dict.fromkeys((k[0], k[1]) for k in pred):
        lines.append(f"| {layer} | {d} | " + " | ".join(f"{pred[(layer, d, p)]:.3f}" for p in cols) + " |")
    total = {p: sum(v for k, v in pred.items() if k[2] == p) for p in cols}
    lines.append("| **all conv** | | " + " | ".join(f"**{total[p]:.2f}**" for p in cols) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the network
def alexnet_launches(batch: int = 128, sass=None) -> list[Launch]:
    """Every launch of one grouped-form AlexNet train_step at `batch` (see the docstring)."""
    from cuda_convnet import models

    sass = sass if sass is not None else load_sass()
    cfg = models.alexnet_config()
    n = batch
    h, w, c = cfg.input_shape
    out: list[Launch] = []
    bwd: list[Launch] = []   # collected in forward order, issued in reverse

    def mem(layer, direction, kernel, floats):
        return memory_launch(layer, direction, kernel, F32 * floats)

    for i, blk in enumerate(cfg.convs, 1):
        pad = blk.padding if isinstance(blk.padding, tuple) else (blk.padding,) * 4
        groups = 1 if blk.both_towers else cfg.towers
        g = ConvGeom(n, h, w, c, blk.filters, blk.size, blk.size, blk.stride, pad, groups)
        out += conv2d(sass, f"conv{i}", g)  # with the ReLU in its epilogue (the Net fuses it)
        # No dgrad for conv1: its input is the data, which needs no gradient (need_dx=False).
        layer_bwd = conv2d_wgrad(sass, f"conv{i}", g) + (conv2d_dgrad(sass, f"conv{i}", g) if i > 1 else [])
        size = n * g.p * g.q * g.k
        if not (blk.lrn or blk.pool):  # else the LRN / pool backward applies the mask (relu_mask=True)
            layer_bwd = [mem(f"relu{i}", "bwd", "map2_kernel1<ReluGrad>", 3 * size)] + layer_bwd
        h, w, c = g.p, g.q, g.k
        if blk.lrn:  # groups folded into the rows: one launch, no split/concat
            out.append(mem(f"norm{i}", "fwd", "lrn_forward_kernel2", 2 * size))
            layer_bwd = [mem(f"norm{i}", "bwd", "lrn_backward_kernel2", 4 * size)] + layer_bwd
        if blk.pool:
            ph, pw = (h - cfg.pool_size) // cfg.pool_stride + 1, (w - cfg.pool_size) // cfg.pool_stride + 1
            small = n * ph * pw * c
            out.append(mem(f"pool{i}", "fwd", "max_pool_forward_kernel1", size + small))
            layer_bwd = [mem(f"pool{i}", "bwd", "max_pool_backward_kernel1", 2 * size + 2 * small)] + layer_bwd
            h, w = ph, pw
        bwd.append(layer_bwd)

    fan_in = h * w * c
    units = list(cfg.hidden) + [cfg.classes]
    for j, u in enumerate(units, 6):
        name = f"fc{j}"
        out += gemm(sass, name, "fwd", n, u, fan_in, False, True)
        layer_bwd = [*gemm(sass, name, "dgrad", n, fan_in, u, False, False),
                     *gemm(sass, name, "wgrad", u, fan_in, n, True, False),
                     mem(name, "wgrad", "bias_grad_kernel1", n * u + u)]
        if j < 6 + len(cfg.hidden):  # the ReLU is in the forward GEMM's epilogue
            # Dropout's groups argument: one launch over both groups (x read, y written), no split/concat.
            out.append(mem(f"drop{j}", "fwd", "dropout_kernel1", 2 * n * u))
            layer_bwd = ([mem(f"drop{j}", "bwd", "dropout_kernel1", 2 * n * u),
                          mem(f"relu{j}", "bwd", "map2_kernel1<ReluGrad>", 3 * n * u)] + layer_bwd)
        bwd.append(layer_bwd)
        fan_in = u

    k = cfg.classes
    out += [mem("loss", "fwd", "softmax_xent_forward_kernel1", 2 * n * k + n),
            mem("loss", "fwd", "softmax_xent_mean_kernel1", n),
            mem("loss", "fwd", "topk_errors_kernel1", n * k + n),
            mem("loss", "bwd", "softmax_xent_backward_kernel1", 2 * n * k + n)]
    for layer_bwd in reversed(bwd):
        out += layer_bwd
    params = sum(math.prod(p) for p in _alexnet_param_shapes())
    out.append(mem("sgd", "update", "sgd_update_kernel1", 5 * params))  # w, g, v read; w, v written
    return out


def lrn_split_concat_bytes(batch: int = 128) -> float:
    """Bytes per step the grouped LRN layers would move through channel split/concat if
    applied per group (x split and y concatenated forward; x, y, dy split and dx
    concatenated backward: 12 floats per element), which lrn's groups argument saves."""
    from cuda_convnet import models

    cfg = models.alexnet_config()
    h, w, c = cfg.input_shape
    total = 0
    for blk in cfg.convs:
        pad = blk.padding if isinstance(blk.padding, tuple) else (blk.padding,) * 4
        g = ConvGeom(batch, h, w, c, blk.filters, blk.size, blk.size, blk.stride, pad, 1)
        h, w, c = g.p, g.q, g.k
        if blk.lrn:
            total += 12 * F32 * batch * h * w * c
        if blk.pool:
            h, w = (h - cfg.pool_size) // cfg.pool_stride + 1, (w - cfg.pool_size) // cfg.pool_stride + 1
    return float(total)


@functools.cache
def alexnet_conv_geoms(batch: int = 128) -> tuple:
    """(name, ConvGeom) of conv1..conv5 in the grouped one-device form, and the flattened
    size that fc6 reads."""
    from cuda_convnet import models

    cfg = models.alexnet_config()
    geoms, h, w, c = [], *cfg.input_shape
    for i, blk in enumerate(cfg.convs, 1):
        groups = 1 if blk.both_towers else cfg.towers
        pad = blk.padding if isinstance(blk.padding, tuple) else (blk.padding,) * 4
        g = ConvGeom(batch, h, w, c, blk.filters, blk.size, blk.size, blk.stride, pad, groups)
        geoms.append((f"conv{i}", g))
        h, w, c = g.p, g.q, g.k
        if blk.pool:
            h, w = (h - cfg.pool_size) // cfg.pool_stride + 1, (w - cfg.pool_size) // cfg.pool_stride + 1
    return tuple(geoms), h * w * c


@functools.cache
def _alexnet_param_shapes():
    from cuda_convnet import models

    cfg = models.alexnet_config()
    geoms, fan_in = alexnet_conv_geoms(1)
    shapes = []
    for _, g in geoms:
        shapes += [(g.k, g.r, g.s, g.cg), (g.k,)]
    for u in list(cfg.hidden) + [cfg.classes]:
        shapes += [(u, fan_in), (u,)]
        fan_in = u
    return tuple(shapes)


def predict_alexnet(batch: int = 128, sass=None) -> dict:
    """PREDICTED milliseconds per (layer, direction) of one grouped AlexNet train_step on an
    H100, plus ("step", "train") for the whole step. Directions: "fwd", "dgrad", "wgrad" and
    "bwd" (= dgrad + wgrad; conv1 launches no dgrad) for conv1-5 and fc6-8 (wgrad includes the bias gradient and the
    split-K sums), "fwd"/"bwd" for the memory-bound layers, ("sgd", "update")."""
    out: dict = {}
    launches = alexnet_launches(batch, sass)
    for ln in launches:
        key = (ln.layer, ln.direction)
        out[key] = out.get(key, 0.0) + ln.seconds * 1e3
    for layer in {ln.layer for ln in launches}:
        if (layer, "wgrad") in out:  # conv_bench's "bwd": dx (where launched), dw and db together
            out[(layer, "bwd")] = out.get((layer, "dgrad"), 0.0) + out[(layer, "wgrad")]
    out[("step", "train")] = sum(ln.seconds for ln in launches) * 1e3
    return out


# ---------------------------------------------------------------------------- output
def table(launches: list[Launch]) -> str:
    rows: dict = {}
    for ln in launches:
        r = rows.setdefault((ln.layer, ln.direction), {"ms": 0.0, "launches": 0, "main": ln, "useful": 0.0,
                                                        "padded": 0.0})
        r["ms"] += ln.seconds * 1e3
        r["launches"] += 1
        r["useful"] += ln.useful_flops
        r["padded"] += ln.padded_flops
        if ln.seconds > r["main"].seconds:
            r["main"] = ln
    total = sum(r["ms"] for r in rows.values())
    lines = [("| layer | direction | predicted ms | % of step | launches | longest kernel | blocks | waves "
              "| useful % | predicted TFLOP/s | bound |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (layer, d), r in rows.items():
        useful = f"{100 * r['useful'] / r['padded']:.0f}" if r["padded"] else "-"
        tflops = f"{r['useful'] / (r['ms'] * 1e-3) / 1e12:.1f}" if r["useful"] else "-"
        m = r["main"]
        blocks, waves = (m.blocks, f"{m.waves:.2f}") if m.blocks else ("-", "-")
        lines.append(f"| {layer} | {d} | {r['ms']:.3f} | {100 * r['ms'] / total:.1f} | {r['launches']} "
                     f"| `{m.kernel}` | {blocks} | {waves} | {useful} | {tflops} | {m.bound} |")
    lines.append(f"| **step** | train | **{total:.2f}** | 100 | {len(launches)} | | | | | | |")
    return "\n".join(lines)


def measured_rows(doc) -> dict:
    """(layer, direction) -> measured ms, from conv_bench / kernel_bench / net_bench JSON:
    conv_bench rows {"layer", "op", "ours_ms"} (grouped layers), kernel_bench rows {"op":
    "<op> <layer>", "ours_us"}, net_bench rows {"impl": ours, "mode": "train", "towers":
    "grouped", "images_per_s" or "median_s"} (the step)."""
    out = {}
    for row in doc.get("rows", []) if isinstance(doc, dict) else doc:
        if row.get("layer") and row.get("op") and row.get("ours_ms") is not None:
            out[(row["layer"], {"bwd": "bwd"}.get(row["op"], row["op"]))] = float(row["ours_ms"])
        elif row.get("op") and row.get("ours_us") is not None:
            out[tuple(row["op"].split(" ", 1)[::-1]) if " " in row["op"] else (row["op"], "")] = row["ours_us"] / 1e3
        elif row.get("mode") == "train" and str(row.get("impl", "ours")).startswith("ours") \
                and str(row.get("towers", "grouped")).split()[0] in ("grouped", "1") \
                and row.get("precision", "fp32") == "fp32":  # net_bench labels it "1 (grouped)"
            if row.get("median_s"):
                out[("step", "train")] = row["median_s"] * 1e3
            elif row.get("images_per_s") and row.get("batch"):
                out[("step", "train")] = 1e3 * row["batch"] / row["images_per_s"]
    return out


def calibrate(paths, pred: dict) -> str:
    lines = ["| layer | direction | measured ms | predicted ms | measured / predicted |", "|---|---|---|---|---|"]
    unmatched = []
    missing = []
    for path in paths:
        if not Path(path).is_file():  # a benchmark that failed or was cut wrote nothing
            missing.append(str(path))
            continue
        measured = measured_rows(json.loads(Path(path).read_text()))
        for key, ms in sorted(measured.items()):
            if key in pred:
                lines.append(f"| {key[0]} | {key[1]} | {ms:.3f} | {pred[key]:.3f} | {ms / pred[key]:.2f} |")
            else:
                unmatched.append(key)
    if missing:
        lines.append(f"\nno measurements (file missing): {', '.join(missing)}")
    if unmatched:
        lines.append(f"\n{len(unmatched)} measured rows have no prediction: {unmatched[:10]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--sass-json", help="kernel counts from `sass_report.py --json` (default: build them)")
    ap.add_argument("--calibrate", nargs="+", metavar="RESULTS_JSON",
                    help="conv_bench / kernel_bench / net_bench --json output: print measured / predicted")
    ap.add_argument("--json", metavar="PATH", help="write {layer/direction: predicted ms}")
    ap.add_argument("--tc", action="store_true",
                    help="also print the conv layers on the tensor-core kernels (tf32, 3xtf32, bf16) against fp32")
    args = ap.parse_args(argv)
    try:
        sass = load_sass(args.sass_json)
    except RuntimeError as e:
        print(f"perf_model: {e}", file=sys.stderr)
        return 2
    launches = alexnet_launches(args.batch, sass)
    print(f"## Predicted H100 times, AlexNet grouped form, batch {args.batch} (a model, not a measurement)\n")
    print(table(launches))
    pred = predict_alexnet(args.batch, sass)
    if args.tc:
        print(f"\n## Predicted H100 conv times per precision, batch {args.batch} (a model, not a measurement)\n")
        print(conv_tc_table(args.batch, sass))
    if args.calibrate:
        print("\n## Measured / predicted\n")
        print(calibrate(args.calibrate, pred))
    if args.json:
        Path(args.json).write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in pred.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
