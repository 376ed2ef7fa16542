"""`selfcheck`: run the kernels on the paper's conv and fully connected layer shapes
(forward, ReLU) through every available kernel backend (the emulator always, the GPU when present) and compare them with
the NumPy reference, with timings. A quick answer to "does this install work?"."""
from __future__ import annotations

import time

import numpy as np


def add_parser(sub):
    from .args import nonnegative_int, positive_int

    p = sub.add_parser("selfcheck", help="check the kernels against the reference on AlexNet's layer shapes")
    p.add_argument("--batch", "--batch-size", dest="batch", type=positive_int, default=1,
                   help="batch size (default 1; the emulator runs on the CPU)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the random inputs (default 0)")
    p.set_defaults(func=run)


# The paper's layers (§3.5), one-device grouped form: (name, H, C, K, R, stride, pad, groups).
CONV_LAYERS = (
    ("conv1", 227, 3, 96, 11, 4, 0, 1),
    ("conv2", 27, 96, 256, 5, 1, 2, 2),
    ("conv3", 13, 256, 384, 3, 1, 1, 1),
    ("conv4", 13, 384, 384, 3, 1, 1, 2),
    ("conv5", 13, 384, 256, 3, 1, 1, 2),
)
# fc6, fc7, fc8: 6*6*256 -> 4096 -> 4096 -> 1000.
FC_LAYERS = (("fc6", 9216, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000))


def _check_backend(name, ops, put, get, batch, rng):
    from .. import backend
    from . import UsageError

    cpu = backend("cpu")
    worst = 0.0
    print(f"backend {name}:")
    def report(layer, shape, flops, y, ref, dt):
        nonlocal worst
        err = float(np.max(np.abs(y - ref)) / max(1e-12, np.max(np.abs(ref))))
        worst = max(worst, err)
        print(f"  {layer:5s} {shape:28s} max rel err {err:.2e}, {dt * 1e3:8.1f} ms ({flops / dt / 1e9:.2f} GFLOP/s)")

    for layer, h, c, k, r, stride, pad, groups in CONV_LAYERS:
        x = rng.standard_normal((batch, h, h, c)).astype(np.float32)
        w = (rng.standard_normal((k, r, r, c // groups)) * 0.01).astype(np.float32)
        b = rng.standard_normal(k).astype(np.float32)
        t = time.perf_counter()
        y = get(ops.relu(ops.conv2d(put(x), put(w), put(b), stride=stride, padding=pad, groups=groups)))
        dt = time.perf_counter() - t
        ref = cpu.relu(cpu.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), stride=stride,
                                  padding=pad, groups=groups))
        flops = 2 * y.size * r * r * (c // groups)
        report(layer, f"{batch}x{h}x{h}x{c} -> {'x'.join(map(str, y.shape[1:]))}", flops, y, ref, dt)
    for layer, fan_in, fan_out in FC_LAYERS:
        x = rng.standard_normal((batch, fan_in)).astype(np.float32)
        w = (rng.standard_normal((fan_out, fan_in)) * 0.01).astype(np.float32)
        b = rng.standard_normal(fan_out).astype(np.float32)
        t = time.perf_counter()
        y = get(ops.relu(ops.linear(put(x), put(w), put(b))))
        dt = time.perf_counter() - t
        ref = cpu.relu(cpu.linear(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)))
        report(layer, f"{batch}x{fan_in} -> {fan_out}", 2 * batch * fan_in * fan_out, y, ref, dt)
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
