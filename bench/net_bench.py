"""Whole-network throughput: AlexNet training (images/s) and inference, ours against the
identical network in PyTorch on the same device (ARCHITECTURE.md §9: whole-net training
throughput ahead of the same network in PyTorch on the same card).

Ours: ``models.alexnet(towers=2, devices=("cuda:0", "cuda:0"))`` — the paper's two towers
(§3.2) on one GPU — and, when the model accepts it, the one-tower grouped form
(``towers=1``); ``net.train_step(x, labels, opt)`` with ``SGD(lr=0.01, momentum=0.9,
weight_decay=5e-4)`` (§5), and ``net.predict(x)`` for inference. x is N,224,224,3 float32
on the device (the model's input, conv1 padded to give 55x55).

PyTorch: the same net (bench/reference_bench.py's layer table): grouped convolutions,
torch.nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2), overlapping MaxPool2d(3, 2),
dropout 0.5 after fc6 and fc7, cross-entropy, torch.optim.SGD(momentum=0.9,
weight_decay=5e-4); channels_last, float32 with TF32 off; eager, and torch.compile in a
child process under a time limit (--compile-timeout; a compile that does not finish in
time is reported, not waited for).

Validation first, before anything is timed. PyTorch's net against the NumPy reference
forward in float64 with the same weights (shows it is the paper's net and that TF32 is
off). Ours against its twin: the same Net rebuilt on the cpu backend in float64 with
ours' weights (``cpu_twin``), on --validate-images images: the test-mode probabilities
(centred log-probabilities, relative L2), and one training-mode forward and backward (the
same dropout masks): the loss and every parameter's gradient. The worst relative error
must be below TOL (1e-3), which a kernel wrong by 1e-2 in any one layer, forward or
backward, exceeds (tests/test_bench.py plants one); a row that fails is MISMATCH, not
timed.

--precision (fp32, 3xtf32, tf32, bf16, a list or 'all'; default fp32) gives rows per
precision: ours is ``models.alexnet(..., precision=p)``, validated against its twin at the
same precision (the twin rounds the same GEMM operands; the probabilities and the loss
within OUT_TOL[p], the gradients within GRAD_TOL[p], below). PyTorch's eager net runs at the same
precision (harness/precision.py): float32 with TF32 off for fp32 and 3xtf32, TF32 allowed
in cuDNN and cuBLAS for tf32, and torch.autocast(bfloat16) around the forward and the loss
for bf16; its check against the float64 reference is then at that precision's tolerance
(precision.VS_BASE_TOL).
torch.compile runs at fp32 only.

Timing: blocks of --block steps between device synchronisations (wall clock), median
block; images/s = batch / (median block time / block). Input batches rotate between two
buffers.

    python bench/net_bench.py                         # GPU if usable, else CPU mode
    python bench/net_bench.py --smoke                 # batch 2, one step (tests)
    python bench/net_bench.py --backend cpu --batch 8
    python bench/net_bench.py --precision tf32,bf16   # against PyTorch with TF32, and autocast(bf16)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness.checkout import use_checkout  # noqa: E402  (bench/ is not a package)

use_checkout()

import numpy as np  # noqa: E402
from harness import precision as P  # noqa: E402
from harness.cli import common_args  # noqa: E402
from harness.devices import import_torch, make_device, pick_backend  # noqa: E402
from harness.report import environment, format_table, write_json  # noqa: E402
from harness.validation import MISMATCH, OK, describe_error, rel_err  # noqa: E402
from reference_bench import DROP_P, FULL, LRN, POOL, make_params  # noqa: E402

import cuda_convnet as ccn  # noqa: E402

SGD_ARGS = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
TOL = 1e-3  # centred log-probabilities and loss, float32 net against float64 reference
# Parameter gradients, float32 net against its float64 twin: conv1's dw sums N*55*55 terms
# that largely cancel, so float32 alone leaves ~4e-3 there (measured at batch 2, cpu backend);
# the other layers' gradients agree to ~1e-5. At tf32 and bf16 the float32 net and its
# float64 twin round slightly different values (1e-7 apart) to TF32/BF16, and a value near
# a rounding boundary goes to the other neighbour: a 2^-11 / 2^-8 change that the same
# cancelling sums amplify. Measured at batch 2 on the cpu backend: conv1's dw 0.20 (tf32)
# and 0.14 (bf16), conv2-conv4 1e-2 to 8e-2, the fc layers ~2e-4, while the probabilities
# and the loss stay within TOL at tf32 (2e-4 and 1e-7) and come close to it at bf16 (9.2e-4
# and 1.4e-4: the same effect through 2^-8, other inputs can pass 1e-3), so OUT_TOL is 4e-3
# there. At those precisions the gradient check only catches gross errors; the tight per-op checks at every precision
# are conv_bench's and kernel_bench's rows and the kernel tests.
GRAD_TOL = {"fp32": 2e-2, "3xtf32": 2e-2, "tf32": 0.5, "bf16": 0.5}
OUT_TOL = {"fp32": TOL, "3xtf32": TOL, "tf32": TOL, "bf16": 4e-3}  # probabilities and loss


# --------------------------------------------------------------------------- the nets

def torch_alexnet(torch, cfg, params):
    """The paper's net in PyTorch with the reference's weights (KRSC -> KCRS)."""
    nn = torch.nn

    class AlexNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            for name, k, r, st, pad, groups, lrn, pool in cfg["convs"]:
                conv = nn.Conv2d(c, k, r, st, pad, groups=groups)
                conv.weight.data = torch.from_numpy(params[name + ".w"]).permute(0, 3, 1, 2).contiguous()
                conv.bias.data = torch.from_numpy(params[name + ".b"]).clone()
                layers += [conv, nn.ReLU(inplace=True)]
                if lrn:
                    layers.append(nn.LocalResponseNorm(LRN["size"], LRN["alpha"], LRN["beta"], LRN["k"]))
                if pool:
                    layers.append(nn.MaxPool2d(POOL["size"], POOL["stride"]))
                c = k
            self.features = nn.Sequential(*layers)
            fcs = []
            for name in ("fc6", "fc7", "fc8"):
                w = params[name + ".w"]
                fc = nn.Linear(w.shape[1], w.shape[0])
                fc.weight.data = torch.from_numpy(w).clone()
                fc.bias.data = torch.from_numpy(params[name + ".b"]).clone()
                fcs.append(fc)
            self.fc6, self.fc7, self.fc8 = fcs
            self.drop = nn.Dropout(DROP_P)

        def forward(self, x):  # x: NCHW (channels_last)
            h = self.features(x)
            h = h.permute(0, 2, 3, 1).flatten(1)  # NHWC feature order, as ours and the reference
            h = self.drop(torch.relu(self.fc6(h)))
            h = self.drop(torch.relu(self.fc7(h)))
            return self.fc8(h)

    return AlexNet()


def reference_logprobs(cfg, params, x, test_scale=1.0):
    """log-softmax of the reference forward (eval mode) in the arrays' dtype."""
    R = ccn.backend("cpu")
    h = x
    for name, _k, _r, st, pad, groups, lrn, pool in cfg["convs"]:
        h = R.relu(R.conv2d(h, params[name + ".w"], params[name + ".b"], stride=st, padding=pad,
                            groups=groups))
        if lrn:
            h = R.lrn(h, **LRN)
        if pool:
            h = R.max_pool(h, **POOL)
    h = h.reshape(len(h), -1)
    for name in ("fc6", "fc7"):
        h = R.relu(R.linear(h, params[name + ".w"], params[name + ".b"])) * h.dtype.type(test_scale)
    z = R.linear(h, params["fc8.w"], params["fc8.b"])
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def centred(logp):
    """Log-probabilities up to the per-row constant: the logits' shape, comparable."""
    logp = np.asarray(logp, dtype=np.float64)
    return logp - logp.mean(axis=1, keepdims=True)


def cpu_twin(net):
    """The same net (same layers, weights, step counter and dropout seed) on the cpu
    backend in float64: what ours is validated against."""
    from cuda_convnet import Net

    twin = Net.from_spec(dict(net.spec(), dtype="float64"), devices="cpu", init=False)
    twin.load_state_dict(net.state_dict())
    twin.step = net.step
    return twin


def validate_against_twin(net, x, labels):
    """-> (error, ok, note). Ours against its float64 cpu twin on one small batch: the
    test-mode probabilities (centred log-probabilities, relative L2) and the loss of one
    training-mode forward (dropout on, the same masks: a function of seed and step), both
    within OUT_TOL[net.precision]; every parameter's gradient of that step (relative L2
    each) within GRAD_TOL[net.precision].
    error: the worst of these; ok: each within its tolerance."""
    twin = cpu_twin(net)
    x64 = np.asarray(x, dtype=np.float64)
    logp = np.log(np.maximum(net.predict(x).astype(np.float64), 1e-300))
    logp_twin = np.log(np.maximum(twin.predict(x64), 1e-300))
    errs = {"predict": rel_err(centred(logp), centred(logp_twin))}
    stats, stats_twin = net.gradients(x, labels, train=True), twin.gradients(x64, labels, train=True)
    errs["loss"] = abs(stats["loss"] - stats_twin["loss"]) / max(abs(stats_twin["loss"]), 1e-30)
    twin_grads = {p.name: p.grad for p in twin.parameters()}
    grad_errs = {p.name: rel_err(p.device.to_host(p.grad), twin_grads[p.name]) for p in net.parameters()}
    worst = max(grad_errs, key=grad_errs.get)
    errs[f"grad {worst}"] = grad_errs[worst]
    for p in net.parameters():
        p.grad = None
    err = max(errs.values())
    if not math.isfinite(err):
        err = math.inf
    grad_tol, out_tol = GRAD_TOL[net.precision], OUT_TOL[net.precision]
    ok = (errs["predict"] <= out_tol and errs["loss"] <= out_tol and grad_errs[worst] <= grad_tol)
    note = (f"against its float64 cpu twin on {len(x)} images: "
            + ", ".join(f"{k} rel err {v:.1e}" for k, v in errs.items())
            + f" (tolerances {out_tol:g}, gradients {grad_tol:g} at {net.precision})")
    return err, ok, note


# --------------------------------------------------------------------------- timing

def throughput(dev, fn, batch, *, warmup, block, budget_s, max_blocks):
    """images/s from the median wall time of blocks of `block` calls (synchronised)."""
    for i in range(warmup):
        fn(i)
    dev.sync()
    times, t_end = [], time.perf_counter() + budget_s
    for b in range(max_blocks):
        t0 = time.perf_counter()
        for i in range(block):
            fn(warmup + b * block + i)
        dev.sync()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > t_end:
            break
    per_step = statistics.median(times) / block
    return {"images_per_s": batch / per_step, "ms_per_batch": per_step * 1e3, "blocks": len(times)}


class Setup:
    def __init__(self, args, torch, dev, backend_name):
        self.args, self.torch, self.dev, self.backend_name = args, torch, dev, backend_name
        self.batch = args.batch or (2 if args.smoke else 128 if dev.kind == "cuda" else 8)
        self.classes = 1000
        self.cfg = FULL
        if args.smoke:
            self.warmup, self.block, self.max_blocks, self.budget = 0, 1, 1, 0.0
        elif dev.kind == "cuda":
            self.warmup, self.block, self.max_blocks, self.budget = 3, args.block or 5, 50, args.time_budget
        else:
            self.warmup, self.block, self.max_blocks, self.budget = 1, args.block or 1, 10, args.time_budget

    def timed(self, fn):
        return throughput(self.dev, fn, self.batch, warmup=self.warmup, block=self.block,
                          budget_s=self.budget, max_blocks=self.max_blocks)

    def inputs(self, image, seed):
        dev = self.dev
        xs = [dev.randn(seed + i, (self.batch, image, image, 3)) for i in range(2)]
        labels = [dev.randint(seed + 10 + i, self.classes, (self.batch,)) for i in range(2)]
        return xs, labels


def torch_step_fns(torch, model, forward, txs, tls, precision=None):
    """(train(i), infer(i)) for PyTorch's side: one SGD step / one softmax forward on input
    set i % 2. `forward` is `model` (eager) or torch.compile(model); the optimizer holds
    `model`'s parameters either way. precision: a precision.Baseline (None: float32, TF32
    off); the forward and the loss run in its autocast, the backward after it (PyTorch's
    recipe for autocast)."""
    F = torch.nn.functional
    opt = torch.optim.SGD(model.parameters(), **SGD_ARGS)
    ctx = (lambda: precision.autocast(txs[0].device.type)) if precision is not None else contextlib.nullcontext

    def train(i):
        opt.zero_grad(set_to_none=True)
        with ctx():
            loss = F.cross_entropy(forward(txs[i % 2]), tls[i % 2])
        loss.backward()
        opt.step()

    def infer(i):
        with torch.no_grad(), ctx():
            return torch.softmax(forward(txs[i % 2]), dim=1)

    return train, infer


def torch_rows(S, params, val_x, ref_logp, precision="fp32"):
    """PyTorch eager rows (training, inference) at `precision` and its validation: against
    the float64 reference at that precision's tolerance (TOL for fp32 and 3xtf32)."""
    torch, dev = S.torch, S.dev
    F = torch.nn.functional
    bl = P.Baseline(torch, precision)
    rows = []
    model = torch_alexnet(torch, S.cfg, params).to(S.dev.torch_device).to(memory_format=torch.channels_last)
    model.eval()
    with torch.no_grad(), bl.autocast(S.dev.torch_device):
        xt = dev.to_torch(dev.put(val_x.astype(np.float32))).permute(0, 3, 1, 2)
        logp = F.log_softmax(model(xt).float(), dim=1)
    err = rel_err(centred(dev.get(dev.from_torch(logp))), centred(ref_logp))
    xs, labels = S.inputs(227, S.args.seed + 500)
    txs = [dev.to_torch(x).permute(0, 3, 1, 2) for x in xs]
    tls = [dev.to_torch(y).long() for y in labels]
    train, infer = torch_step_fns(torch, model, model, txs, tls, bl)

    tol = max(TOL, P.VS_BASE_TOL[precision])
    status = OK if err <= tol else MISMATCH
    for mode, fn, train_mode in (("train", train, True), ("infer", infer, False)):
        row = {"impl": "torch eager", "precision": precision, "mode": mode, "towers": "grouped", "batch": S.batch,
               "err": err, "checked": "float64 ref", "status": status}
        if status == OK:
            model.train(train_mode)
            with bl.active():  # TF32 allowed around the whole step for tf32 (backward included)
                row.update(S.timed(fn))
        rows.append(row)
    return rows


def compile_rows(S):
    """torch.compile rows, measured in a child process that is killed at the time limit."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-worker", "--backend", S.backend_name,
           "--batch", str(S.batch), "--time-budget", str(S.budget), "--seed", str(S.args.seed)]
    if S.args.smoke:
        cmd.append("--smoke")
    t0 = time.perf_counter()
    # The child leads its own process group, so that its compile workers can be killed with
    # it. That group is outside ours: a SIGTERM/SIGINT to this process (`timeout` at a step
    # limit, Ctrl-C) must take the group down too, or the compile would outlive the step.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)

    def kill_child(signum, frame):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, kill_child) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        out, err = proc.communicate(timeout=S.args.compile_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and its compile workers
        proc.communicate()
        status = f"did not finish within {S.args.compile_timeout:.0f} s"
        return [{"impl": "torch.compile", "mode": m, "towers": "grouped", "batch": S.batch, "status": status}
                for m in ("train", "infer")]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        msg = (err.strip().splitlines() or ["no output"])[-1][:150]
        return [{"impl": "torch.compile", "mode": m, "towers": "grouped", "batch": S.batch,
                 "status": f"error: {msg}"} for m in ("train", "infer")]
    res = json.loads(lines[-1])
    rows = res["rows"]
    for r in rows:
        r["child_wall_s"] = time.perf_counter() - t0
    return rows


def compile_worker(S):
    """Child: compile the PyTorch net, then time it (the parent keeps the clock)."""
    torch, dev = S.torch, S.dev
    params = make_params(S.cfg, np.random.default_rng(S.args.seed), np.float32)
    model = torch_alexnet(torch, S.cfg, params).to(dev.torch_device).to(memory_format=torch.channels_last)
    cmodel = torch.compile(model)
    xs, labels = S.inputs(227, S.args.seed + 500)
    txs = [dev.to_torch(x).permute(0, 3, 1, 2) for x in xs]
    tls = [dev.to_torch(y).long() for y in labels]
    train, infer = torch_step_fns(torch, model, cmodel, txs, tls)

    rows = []
    for mode, fn, train_mode in (("train", train, True), ("infer", infer, False)):
        model.train(train_mode)
        t0 = time.perf_counter()
        fn(0)  # the compile
        dev.sync()
        compile_s = time.perf_counter() - t0
        row = {"impl": "torch.compile", "mode": mode, "towers": "grouped", "batch": S.batch,
               "compile_s": compile_s, "status": OK}
        row.update(S.timed(fn))
        rows.append(row)
    print(json.dumps({"rows": rows}))
    return 0


def ours_rows(S, precision="fp32"):
    """Ours at `precision`: towers=2 on one device, and towers=1 (the grouped form)."""
    from cuda_convnet import SGD, models
    devname = {"cuda": "cuda:0"}.get(S.backend_name, S.backend_name)
    rows = []
    for towers in (2, 1):
        label = f"{towers}" if towers == 2 else "1 (grouped)"
        base = {"impl": "ours", "precision": precision, "towers": label, "batch": S.batch}
        try:
            net = models.alexnet(towers=towers, devices=(devname,) * towers, num_classes=S.classes,
                                 precision=precision)
            opt = SGD(net.parameters(), **SGD_ARGS)
        except Exception as e:  # noqa: BLE001
            rows += [dict(base, mode=m, status=describe_error(e)) for m in ("train", "infer")]
            continue
        try:
            err, ok, note, image = validate_ours(S, net)
            checked = "float64 cpu twin"
        except Exception as e:  # noqa: BLE001
            rows += [dict(base, mode=m, status=describe_error(e)) for m in ("train", "infer")]
            continue
        print(f"ours towers={towers} {precision}: {note}")
        status = OK if ok else MISMATCH
        xs, labels = S.inputs(image, S.args.seed + 700)
        # The lambdas run inside this iteration (S.timed below), on this iteration's net.
        for mode, fn in (("train", lambda i, net=net, xs=xs, labels=labels, opt=opt: net.train_step(
                             xs[i % 2], labels[i % 2], opt)),
                         ("infer", lambda i, net=net, xs=xs: net.predict(xs[i % 2]))):
            row = dict(base, mode=mode, err=err, checked=checked, status=status, image=image)
            if status == OK:
                try:
                    row.update(S.timed(fn))
                except Exception as e:  # noqa: BLE001
                    row["status"] = describe_error(e)
            rows.append(row)
    return rows


def validate_ours(S, net):
    """-> (error, ok, note, image size): validate_against_twin on --validate-images images."""
    image = net.input_shape[0]
    rng = np.random.default_rng(S.args.seed + 1)
    x = rng.standard_normal((S.args.validate_images,) + tuple(net.input_shape)).astype(np.float32)
    labels = rng.integers(0, S.classes, S.args.validate_images).astype(np.int32)
    err, ok, note = validate_against_twin(net, x, labels)
    return err, ok, note, image


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap, default_budget=8.0)
    ap.add_argument("--block", type=int, default=None, help="steps per synchronised block")
    ap.add_argument("--compile", dest="compile", action="store_true", default=None,
                    help="also time torch.compile (default: on a GPU only)")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--compile-timeout", type=float, default=150.0)
    ap.add_argument("--validate-images", type=int, default=2)
    ap.add_argument("--compile-only", action="store_true",
                    help="only the torch.compile rows (a separate, lower-priority step of bench/gpu_check.sh)")
    ap.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)
    P.add_argument(ap)
    args = ap.parse_args(argv)
    precisions = P.from_args(ap, args)

    torch = import_torch()
    backend_name = pick_backend(args.backend)
    dev = make_device(backend_name, torch)
    S = Setup(args, torch, dev, backend_name)
    if args.compile_worker:
        return compile_worker(S)

    env = environment(dev, torch)
    print(f"net_bench: AlexNet, batch {S.batch}, ours = backend {backend_name!r}, PyTorch "
          f"{env['torch'] or '(not installed)'} on {env['device']}; precisions {', '.join(precisions)} "
          f"(each against PyTorch at the same precision); {env['commit']}, {env['date']}")
    columns = [
        ("impl", "impl", "{}"), ("precision", "precision", "{}"), ("towers", "towers", "{}"), ("mode", "mode", "{}"),
        ("batch", "batch", "{}"),
        ("images_per_s", "images/s", "{:.1f}"), ("ms_per_batch", "ms/batch", "{:.2f}"),
        ("vs_eager", "x torch eager", "{:.2f}"), ("compile_s", "compile s", "{:.1f}"), ("err", "err", "{:.1e}"),
        ("checked", "err against", "{}"), ("status", "status", "{}")]
    meta = dict(env, batch=S.batch, backend=backend_name, precisions=precisions)

    def save(rows, partial):
        # "x torch eager": against PyTorch eager at the row's precision (compile rows: fp32).
        eager = {(r["precision"], r["mode"]): r.get("images_per_s") for r in rows if r["impl"] == "torch eager"}
        for r in rows:
            key = (r.setdefault("precision", "fp32"), r["mode"])
            if r.get("images_per_s") and eager.get(key):
                r["vs_eager"] = r["images_per_s"] / eager[key]
        table = format_table(rows, columns)
        if args.json:  # also as it goes: a run cut short by a time limit keeps what it measured
            write_json(args.json, "net_bench", meta, rows, table, partial=partial)
        return table

    if args.compile_only:
        rows = compile_rows(S) if torch is not None else []
        table = save(rows, False)
        print(table)
        return 0
    params = make_params(S.cfg, np.random.default_rng(args.seed), np.float32)
    val_x = np.random.default_rng(args.seed + 1).standard_normal(
        (args.validate_images, 227, 227, 3))  # float64
    ref_logp = reference_logprobs(S.cfg, {k: v.astype(np.float64) for k, v in params.items()}, val_x)
    rows = []
    for precision in precisions:
        rows += ours_rows(S, precision)
        dev.sync()
        save(rows, True)
    if torch is not None:
        for precision in precisions:
            rows += torch_rows(S, params, val_x, ref_logp, precision)
            save(rows, True)
        if (args.compile if args.compile is not None else dev.kind == "cuda") and "fp32" in precisions:
            rows += compile_rows(S)
    else:
        print("torch: not installed; no baseline")
    table = save(rows, False)
    print(table)
    bad = [r for r in rows if r["status"] != OK and not r["status"].startswith("did not finish")
           and r["impl"] != "torch.compile"]
    print(f"net_bench: {len(rows)} rows, {sum(r['status'] == OK for r in rows)} ok, {len(bad)} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
