"""Data-parallel scaling: measured images/s of 1, 2, 3 ranks, and the PREDICTED 8-GPU step.

    python bench/scaling_bench.py                       # CPU ranks 1,2,3, then the 8-GPU model
    python bench/scaling_bench.py --ranks 1,2 --steps 10 --batch 16
    python bench/scaling_bench.py --device cuda --ranks 1,2,4,8 --model alexnet --batch 128
    python bench/scaling_bench.py --model-only           # the 8-GPU prediction alone

Measured (one machine): for each world size W, `torchrun --nproc-per-node W` starts this file
with --worker; every rank trains a replica (the CLI's `small` net at width 1 on 64x64
inputs, or AlexNet) with the SAME per-rank batch b through distributed.DataParallel
(gradients all-reduced in buckets during the backward pass). Rank 0 reports, as medians
over the timed steps after two warm-up steps:

  step ms        one train_step (forward, backward with the overlapped all-reduce, update)
  images/s       W * b / step
  efficiency     images/s / (W * images/s of one rank)
  all-reduce ms  one blocking all-reduce of the whole gradient (all parameters, float32),
                 timed on its own: the communication a step must hide
  exposed ms     host time blocked waiting for the buckets after the backward pass

On CPU processes (gloo over loopback TCP) the ranks share the machine's cores and memory
bandwidth, so the CPU figures measure the engine's overhead, not a GPU cluster's scaling.

Modelled (PREDICTIONS, printed with their assumptions): one step of AlexNet on N H100 SXM
GPUs in one machine, per-GPU batch 128 (global 128 N). The compute is bench/perf_model.py's
predicted single-GPU step (`predict_alexnet`, per layer and direction). The gradient is
AlexNet's 60,965,224 float32 parameters = 243.9 MB per all-reduce; a ring all-reduce moves
2 (N-1)/N of it through each GPU's link, so its time is 2 (N-1)/N * 243.9 MB / bus bandwidth.
NVLink 4 gives an H100 SXM about 450 GB/s per direction; NCCL's measured all-reduce bus
bandwidth on 8 H100s is taken as 370 GB/s (ASSUMPTION, within the 360-400 GB/s reported by
nccl-tests). Without overlap the all-reduce follows the backward pass; with overlap each
bucket (25 MB cap, the backward order; fc8, fc7 and fc6, 96 % of the parameters, come first)
starts when its layer's wgrad is done, the buckets go one at a time over the link, and the
update waits for the last. Not modelled: NCCL's use of SMs slowing the concurrent kernels,
the host's launch overheads, stragglers.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.checkout import use_checkout  # noqa: E402  (bench/ is not a package)

use_checkout()  # this checkout when built in place, else the installed package
BUS_BANDWIDTH = 370e9         # bytes/s, NCCL all-reduce bus bandwidth on 8 H100 SXM (ASSUMPTION)
NVLINK_PER_DIRECTION = 450e9  # bytes/s per GPU per direction, NVLink 4 (H100 SXM)
BUCKET_BYTES = 25 * 2 ** 20


# ---------------------------------------------------------------------------- the model
def alexnet_layer_params() -> dict:
    """{layer: float32 parameter count} of AlexNet (conv1-5, fc6-8), weights and biases."""
    from perf_model import _alexnet_param_shapes

    shapes = _alexnet_param_shapes()
    names = [f"conv{i}" for i in range(1, 6)] + ["fc6", "fc7", "fc8"]
    return {n: int(np.prod(shapes[2 * i])) + int(np.prod(shapes[2 * i + 1])) for i, n in enumerate(names)}


def allreduce_seconds(nbytes: float, n: int, bus_bandwidth: float = BUS_BANDWIDTH) -> float:
    """Ring all-reduce of `nbytes` over n GPUs: 2 (n-1)/n * nbytes through each link."""
    return 0.0 if n == 1 else 2 * (n - 1) / n * nbytes / bus_bandwidth


def predict_step(n: int, launches=None, *, bus_bandwidth: float = BUS_BANDWIDTH, bucket_bytes: int = BUCKET_BYTES,
                 batch: int = 128) -> dict:
    """PREDICTED ms of one data-parallel AlexNet step on n GPUs at per-GPU `batch`.

    launches: perf_model.alexnet_launches(batch) (computed when None): forward launches,
    then backward launches in backward order, then the update. Returns {"compute",
    "allreduce", "step_serial", "step_overlap", "efficiency_serial", "efficiency_overlap",
    "exposed_overlap"} (ms, efficiencies as fractions of the one-GPU rate per GPU).
    """
    if launches is None:
        from perf_model import alexnet_launches

        launches = alexnet_launches(batch)
    params = alexnet_layer_params()
    fwd = sum(ln.seconds for ln in launches if ln.direction == "fwd" and ln.layer != "loss")
    update = sum(ln.seconds for ln in launches if ln.direction == "update")
    # The backward pass in order (the loss's forward launches included: they run after the
    # logits), and when each parameterised layer's gradient is complete.
    order, ready, t = [], {}, 0.0
    start = next(i for i, ln in enumerate(launches) if ln.direction != "fwd" or ln.layer == "loss")
    for ln in launches[start:]:
        if ln.direction == "update":
            break
        t += ln.seconds
        if ln.layer in params:
            ready[ln.layer] = t          # the last of its launches: its wgrad is done
            if ln.layer not in order:
                order.append(ln.layer)
    backward = t
    # Buckets in backward order (a layer larger than the cap is a bucket of its own).
    buckets, cur, size = [], [], 0
    for layer in order:
        nbytes = 4 * params[layer]
        if cur and size + nbytes > bucket_bytes:
            buckets.append((cur, size))
            cur, size = [], 0
        cur.append(layer)
        size += nbytes
    buckets.append((cur, size))
    comm_total = sum(allreduce_seconds(b, n, bus_bandwidth) for _, b in buckets)
    link_free = 0.0
    for layers, nbytes in buckets:
        link_free = max(link_free, max(ready[x] for x in layers)) + allreduce_seconds(nbytes, n, bus_bandwidth)
    serial = fwd + backward + comm_total + update
    overlap = fwd + max(backward, link_free) + update
    one = fwd + backward + update
    return {"compute": one * 1e3, "forward": fwd * 1e3, "backward": backward * 1e3, "update": update * 1e3,
            "allreduce": comm_total * 1e3, "step_serial": serial * 1e3, "step_overlap": overlap * 1e3,
            "exposed_overlap": (overlap - one) * 1e3, "efficiency_serial": one / serial,
            "efficiency_overlap": one / overlap, "buckets": len(buckets)}


def model_table(ns=(1, 2, 4, 8), batch: int = 128) -> str:
    from perf_model import alexnet_launches

    launches = alexnet_launches(batch)
    params = sum(alexnet_layer_params().values())
    lines = [(f"PREDICTED data-parallel AlexNet step on N H100 SXM GPUs (one machine, NVLink 4), per-GPU batch "
              f"{batch}"),
             (f"  gradient: {params:,} float32 parameters = {4 * params / 1e6:.1f} MB per all-reduce; ring "
              "all-reduce moves 2(N-1)/N of it through each GPU"),
             (f"  link: NVLink 4 ~{NVLINK_PER_DIRECTION / 1e9:.0f} GB/s per direction per GPU; NCCL bus bandwidth "
              f"{BUS_BANDWIDTH / 1e9:.0f} GB/s (ASSUMPTION)"),
             "  compute: bench/perf_model.py predict_alexnet (PREDICTED single-GPU step)",
             "",
             ("| GPUs | global batch | compute ms | all-reduce ms | step ms, no overlap | step ms, overlap "
              "| images/s (overlap) | efficiency, no overlap | efficiency, overlap |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in ns:
        p = predict_step(n, launches, batch=batch)
        lines.append(f"| {n} | {n * batch} | {p['compute']:.1f} | {p['allreduce']:.2f} | {p['step_serial']:.1f} | "
                     f"{p['step_overlap']:.1f} | {n * batch / p['step_overlap'] * 1e3:,.0f} | "
                     f"{100 * p['efficiency_serial']:.1f} % | {100 * p['efficiency_overlap']:.1f} % |")
    p = predict_step(8, launches, batch=batch)
    lines.append("")
    lines.append(f"  8 GPUs: forward {p['forward']:.1f} ms, backward {p['backward']:.1f} ms, update {p['update']:.2f} "
                 f"ms; {p['buckets']} buckets; exposed communication with overlap {p['exposed_overlap']:.2f} ms "
                 "(PREDICTIONS; cuda-convnet2 reported 6.25x = 78 % on 8 GPUs)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- one rank
def worker(a) -> int:
    from cuda_convnet import SGD, models
    from cuda_convnet.distributed import DataParallel, init_from_env

    group = init_from_env(a.device, timeout_s=120)
    dev = f"cuda:{group.local_rank}" if a.device == "cuda" else a.device
    if a.model == "alexnet":
        net = models.alexnet(towers=1, devices=(dev,), num_classes=1000, seed=0)
        classes, side = 1000, 224
    else:
        net = models.small_net(10, towers=2, devices=(dev, dev), seed=0, width=1)
        classes, side = 10, 64
    opt = SGD(net.parameters(), lr=0.001)
    dp = DataParallel(net, group)
    rng = np.random.default_rng(group.rank)
    x = rng.standard_normal((a.batch, side, side, 3)).astype(np.float32)
    y = rng.integers(0, classes, a.batch).astype(np.int32)
    steps, waits = [], []
    for i in range(a.steps + 2):
        group.barrier()
        t0 = time.perf_counter()
        dp.train_step(x, y, opt)
        if i >= 2:
            steps.append(time.perf_counter() - t0)
            waits.append(dp.reducer.wait_seconds)
    torch, dist = dp.torch, dp.dist
    n = dp.reducer.parameter_count()
    buf = torch.zeros(n, dtype=torch.float32, device="cuda" if a.device == "cuda" else "cpu")
    ar = []
    for i in range(a.steps + 2):
        group.barrier()
        if a.device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        dist.all_reduce(buf)
        if a.device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            ar.append(time.perf_counter() - t0)
    if group.is_main:
        Path(a.worker).write_text(json.dumps({
            "ranks": group.world_size, "batch": a.batch, "backend": group.backend, "params": n,
            "step_s": statistics.median(steps), "exposed_s": statistics.median(waits),
            "allreduce_s": statistics.median(ar) if group.world_size > 1 else 0.0}))
    group.destroy()
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(ranks, *, device: str, model: str, batch: int, steps: int) -> list[dict]:
    rows = []
    for w in ranks:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rank0.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(w), "--master-addr",
                   "127.0.0.1", "--master-port", str(free_port()), __file__, "--worker", str(out), "--device",
                   device, "--model", model, "--batch", str(batch), "--steps", str(steps)]
            env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"{w} ranks failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
            rows.append(json.loads(out.read_text()))
    return rows


def measured_table(rows, device: str, model: str) -> str:
    base = rows[0]["batch"] / rows[0]["step_s"] if rows[0]["ranks"] == 1 else None
    lines = [(f"MEASURED on {os.cpu_count()} CPU cores ({device}, {rows[0]['backend']}), model {model}, "
              f"{rows[0]['params']:,} parameters, per-rank batch {rows[0]['batch']} (medians)"),
             "", "| ranks | step ms | images/s | efficiency | all-reduce ms (whole gradient) | exposed ms |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ips = r["ranks"] * r["batch"] / r["step_s"]
        eff = f"{100 * ips / (r['ranks'] * base):.0f} %" if base else "-"
        lines.append(f"| {r['ranks']} | {1e3 * r['step_s']:.1f} | {ips:.1f} | {eff} | {1e3 * r['allreduce_s']:.2f} | "
                     f"{1e3 * r['exposed_s']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", default="1,2,3", help="world sizes to measure (default 1,2,3)")
    p.add_argument("--device", choices=("cpu", "emu", "cuda"), default="cpu")
    p.add_argument("--model", choices=("small", "alexnet"), default="small")
    p.add_argument("--batch", type=int, default=16, help="per-rank batch (default 16)")
    p.add_argument("--steps", type=int, default=8, help="timed steps per world size (default 8)")
    p.add_argument("--model-only", action="store_true", help="print only the 8-GPU prediction")
    p.add_argument("--no-model", action="store_true", help="skip the 8-GPU prediction")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        return worker(a)
    if not a.model_only:
        ranks = [int(r) for r in a.ranks.split(",") if r.strip()]
        print(measured_table(measure(ranks, device=a.device, model=a.model, batch=a.batch, steps=a.steps),
                             a.device, a.model))
        print()
    if not a.no_model:
        print(model_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
