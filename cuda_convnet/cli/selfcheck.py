"""`selfcheck`: run the kernels on the paper's fully connected layer shapes through every
available kernel backend (the emulator always, the GPU when present) and compare them with
the NumPy reference, with timings. A quick answer to "does this install work?"."""
from __future__ import annotations

import time

import numpy as np


def add_parser(sub):
    p = sub.add_parser("selfcheck", help="check the kernels against the reference on AlexNet's FC shapes")
    p.add_argument("--batch", type=int, default=2, help="batch size (default 2; the emulator runs on the CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


# fc6, fc7, fc8 of the paper (§3.5): 6*6*256 -> 4096 -> 4096 -> 1000.
FC_LAYERS = (("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000))


def _check_backend(name, ops, put, get, batch, rng):
    from .. import backend
    from . import UsageError

    cpu = backend("cpu")
    worst = 0.0
    print(f"backend {name}:")
    for layer, fan_in, fan_out in FC_LAYERS:
        x = rng.standard_normal((batch, fan_in)).astype(np.float32)
        w = (rng.standard_normal((fan_out, fan_in)) * 0.01).astype(np.float32)
        b = rng.standard_normal(fan_out).astype(np.float32)
        t = time.perf_counter()
        y = get(ops.relu(ops.linear(put(x), put(w), put(b))))
        dt = time.perf_counter() - t
        ref = cpu.relu(cpu.linear(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)))
        err = float(np.max(np.abs(y - ref)) / max(1e-12, np.max(np.abs(ref))))
        worst = max(worst, err)
        gflops = 2 * batch * fan_in * fan_out / dt / 1e9
        print(f"  {layer} {batch}x{fan_in} -> {fan_out}: max rel err {err:.2e}, {dt * 1e3:8.1f} ms ({gflops:.2f} GFLOP/s)")
    if not worst < 1e-4:
        raise UsageError(f"backend {name} disagrees with the reference (max rel err {worst:.2e})")


def run(args):
    import cuda_convnet as ccn

    print("build:", ccn.build_info())
    rng = np.random.default_rng(args.seed)
    _check_backend("emu", ccn.backend("emu"), lambda a: a, lambda a: a, args.batch, rng)
    if ccn.has_cuda():
        import cupy

        _check_backend("cuda", ccn.backend("cuda"), cupy.asarray, cupy.asnumpy, args.batch, rng)
    else:
        print("backend cuda: not available (no GPU, driver, CUDA build or CuPy)")
    print("selfcheck passed")
    return 0
