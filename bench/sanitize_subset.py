"""Every kernel once, on small odd shapes, through backend("cuda"): the program that
bench/gpu_check.sh runs under compute-sanitizer (memcheck: out-of-bounds and misaligned
global/shared accesses; racecheck: shared-memory hazards, e.g. a missing __syncthreads).

The shapes are small (the sanitizer slows kernels 10-100x) and deliberately not multiples
of any tile size, so that every kernel's edge handling runs. CuPy's memory pool is turned
off, so that each array is its own cudaMalloc and a read past its end is outside any
allocation (inside a pool chunk, memcheck could not see it). Each result is also compared
with the float64 reference (relative L2 < 1e-4).

    python bench/sanitize_subset.py                      # backend cuda
    compute-sanitizer --tool memcheck python bench/sanitize_subset.py
    python bench/sanitize_subset.py --backend emu        # the same calls on the emulator

On a kernel backend every call whose op has several kernel versions runs again with each
version forced ("<call> v<n>"): every kernel, not only the launchers' picks, runs under the
sanitizer. A version that cannot run a call (conv_fwd_kernel2 needs C/groups % 4 == 0) is
reported "not run", which is no failure.

Exit status: 0 when every op ran and agreed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.checkout import use_checkout  # noqa: E402  (bench/ is not a package)

use_checkout()

import numpy as np  # noqa: E402
from harness.validation import describe_error, rel_err  # noqa: E402
from harness.versions import forced, versions  # noqa: E402

import cuda_convnet as ccn  # noqa: E402
from cuda_convnet.backends import poison_outputs  # noqa: E402
from cuda_convnet.reference.augment import lighting_constants  # noqa: E402

TOL = 1e-4
SGD = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)


def calls(rng):
    """(name, args, fn(ops, *args) -> outputs tuple)."""
    f = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    conv = dict(stride=1, padding=1, groups=2)
    conv1 = dict(stride=4, padding=0, groups=1)
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    pool = dict(size=3, stride=2)
    drop = dict(p=0.5, seed=7, offset=3, mode="paper")
    x_pool = f(2, 9, 9, 7)
    x_lrn = f(2, 5, 5, 13)
    x_act = f(3, 7, 5, 11)
    logits, labels = f(4, 10) * 3, rng.integers(0, 10, size=4).astype(np.int32)
    sigma, P = lighting_constants(np.array([4200.0, 610.0, 95.0]), np.linalg.qr(f(3, 3).astype(np.float64))[0])
    aug = dict(seed=5, offset=2**64 - 2, sigma=sigma, P=P)
    images = rng.integers(0, 256, size=(3, 37, 37, 3)).astype(np.uint8)
    return [
        ("linear", (f(5, 37), f(19, 37), f(19)), lambda o, *a: (o.linear(*a),)),
        ("linear_backward", (f(5, 37), f(19, 37), f(5, 19)),
         lambda o, *a: tuple(o.linear_backward(*a))),
        ("relu", (x_act,), lambda o, x: (o.relu(x),)),
        ("relu_backward", (np.maximum(x_act, 0), f(3, 7, 5, 11)),
         lambda o, *a: (o.relu_backward(*a),)),
        ("tanh", (x_act,), lambda o, x: (o.tanh(x),)),
        ("tanh_backward", (np.tanh(x_act), f(3, 7, 5, 11)),
         lambda o, *a: (o.tanh_backward(*a),)),
        ("conv2d groups=2", (f(2, 9, 7, 6), f(8, 3, 3, 3), f(8)),
         lambda o, *a: (o.conv2d(*a, **conv),)),
        ("conv2d_backward groups=2", (f(2, 9, 7, 6), f(8, 3, 3, 3), f(2, 9, 7, 8)),
         lambda o, *a: tuple(o.conv2d_backward(*a, **conv))),
        # dgrad and wgrad alone: the launches conv2d_backward makes, through their own entry points
        ("conv2d_dgrad groups=2", (f(2, 9, 7, 8), f(8, 3, 3, 3)),
         lambda o, dy, w: (o.conv2d_dgrad(dy, w, (2, 9, 7, 6), **conv),)),
        ("conv2d_wgrad groups=2", (f(2, 9, 7, 6), f(2, 9, 7, 8)),
         lambda o, x, dy: tuple(o.conv2d_wgrad(x, dy, (8, 3, 3, 3), **conv))),
        ("conv2d groups=2 C/g=4", (f(2, 9, 7, 8), f(8, 3, 3, 4), f(8)),  # C/groups % 4 == 0: conv_fwd_kernel2
         lambda o, *a: (o.conv2d(*a, **conv),)),
        # C/g = 20, K/g = 8: dgrad's pipelined conv_dgrad_kernel2 (48-wide tile, ragged)
        ("conv2d_dgrad kernel2", (f(2, 9, 7, 16), f(16, 3, 3, 20)),
         lambda o, dy, w: (o.conv2d_dgrad(dy, w, (2, 9, 7, 40), **conv),)),
        ("conv2d 7x7/4", (f(2, 19, 17, 3), f(5, 7, 7, 3), f(5)),
         lambda o, *a: (o.conv2d(*a, **conv1),)),
        ("conv2d_backward 7x7/4", (f(2, 19, 17, 3), f(5, 7, 7, 3), f(2, 4, 3, 5)),
         lambda o, *a: tuple(o.conv2d_backward(*a, **conv1))),
        ("lrn", (x_lrn,), lambda o, x: (o.lrn(x, **lrn),)),
        ("lrn_backward",
         (x_lrn, ccn.backend("cpu").lrn(x_lrn, **lrn), f(2, 5, 5, 13)),
         lambda o, *a: (o.lrn_backward(*a, **lrn),)),
        ("max_pool", (x_pool,), lambda o, x: (o.max_pool(x, **pool),)),
        ("max_pool_backward",
         (x_pool, ccn.backend("cpu").max_pool(x_pool, **pool), f(2, 4, 4, 7)),
         lambda o, *a: (o.max_pool_backward(*a, **pool),)),
        ("dropout", (f(3, 33),), lambda o, x: (o.dropout(x, **drop),)),
        ("dropout_backward", (f(3, 33),), lambda o, x: (o.dropout_backward(x, **drop),)),
        ("softmax_cross_entropy", (logits, labels),
         lambda o, *a: tuple(o.softmax_cross_entropy(*a))),
        ("softmax_cross_entropy_backward",
         (ccn.backend("cpu").softmax_cross_entropy(logits, labels)[1], labels),
         lambda o, *a: (o.softmax_cross_entropy_backward(*a),)),
        ("topk_errors", (ccn.backend("cpu").softmax_cross_entropy(logits, labels)[1], labels),
         lambda o, *a: tuple(float(v) for v in o.topk_errors(*a).values())),
        ("sgd_update", ([f(7, 3), f(5), f(2, 3, 3, 1)], [f(7, 3), f(5), f(2, 3, 3, 1)],
                                         [f(7, 3), f(5), f(2, 3, 3, 1)]), None),
        ("concat_channels", (f(2, 3, 3, 5), f(2, 3, 3, 7)),
         lambda o, a, b: (o.concat_channels([a, b]),)),
        ("split_channels", (f(2, 3, 3, 12),),
         lambda o, x: tuple(o.split_channels(x, [5, 7]))),
        # crop 29 (rows not whole float4) and 32 (float4 stores) of odd-sized uint8 images
        ("train_views 37->29", (images, f(37, 37, 3) * 40 + 120),
         lambda o, x, m: (o.train_views(x, mean=m.astype(np.float32), crop=29, **aug),)),
        ("train_views 37->32", (images, f(37, 37, 3) * 40 + 120),
         lambda o, x, m: (o.train_views(x, mean=m.astype(np.float32), crop=32, **aug),)),
    ]


def run_sgd(ops, put, get, args):
    """In place: compare the updated params and velocities."""
    ref = [[a.astype(np.float64) for a in lst] for lst in args]
    ccn.backend("cpu").sgd_update(*ref, **SGD)
    dev = [[put(a) for a in lst] for lst in args]
    ops.sgd_update(*dev, **SGD)
    return max(rel_err(get(a), r) for a, r in zip(dev[0] + dev[2], ref[0] + ref[2]))


def with_versions(ops, call_list):
    """(name, inputs, fn, version) for every call as the launcher picks (version None), and
    again with each kernel version of its op's family forced ("<name> v<n>"), so that every
    kernel runs under the sanitizer, not only the launchers' choices."""
    for name, inputs, fn in call_list:
        yield name, inputs, fn, None
        for v in versions(ops, name.split()[0]):
            yield f"{name} v{v}", inputs, fn, v


def forced_version(ops, name, version):
    return forced(ops, (name.split()[0],), version) if version is not None else contextlib.nullcontext()


def reference_of(name, fn, args):
    cpu = ccn.backend("cpu")
    host64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in args]
    name = name.split(" v")[0]
    if name in ("concat_channels",):
        return (np.concatenate(host64, axis=-1),)
    if name in ("split_channels",):
        return tuple(np.split(host64[0], [5], axis=-1))
    return fn(cpu, *host64)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", default="cuda", choices=("cuda", "emu", "cpu"),
                    help="cpu: the reference against itself in float64 (tests this script)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    ops = ccn.backend(args.backend)
    if args.backend == "cuda":
        import cupy

        cupy.cuda.set_allocator(None)  # every array its own allocation (see above)
        put, get = cupy.asarray, cupy.asnumpy
    else:
        put, get = np.ascontiguousarray, np.asarray
    failed = 0
    for name, inputs, fn, version in with_versions(ops, calls(np.random.default_rng(args.seed))):
        try:
            with poison_outputs(), forced_version(ops, name, version):
                if fn is None:
                    err = run_sgd(ops, put, get, inputs)
                else:
                    outs = fn(ops, *[put(a) for a in inputs])
                    if args.backend == "cuda":
                        cupy.cuda.Device().synchronize()  # a kernel fault surfaces here, by name
                    refs = reference_of(name, fn, inputs)
                    err = max(rel_err(get(o) if hasattr(o, "shape") else o, r) for o, r in zip(outs, refs))
            ok = err <= TOL
            failed += not ok
            print(f"{name:32s} rel err {err:.1e} {'ok' if ok else 'MISMATCH'}")
        except ValueError as e:
            if version is None:
                failed += 1
                print(f"{name:32s} {describe_error(e)}")
            else:  # a forced version refuses a call it cannot run (conv_fwd_kernel2 with C/groups % 4 != 0)
                print(f"{name:32s} not run: {str(e).splitlines()[0]}")
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"{name:32s} {describe_error(e)}")
    print(f"sanitize_subset: {'all ops ok' if not failed else f'{failed} failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
