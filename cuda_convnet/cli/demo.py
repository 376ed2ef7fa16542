"""`demo`: train a scaled-down AlexNet on real images (scikit-learn's digits) in about a minute.

The net has every layer type of the paper's, in the same arrangement: two towers (on two
logical devices) with convolutions that see only their own tower (conv2, conv4, conv5)
and ones that see both (conv3, and the fc layers), ReLUs, local response normalisation,
overlapping 3/2 max-pooling, dropout on the hidden fc layers, a softmax; trained with the
paper's SGD (momentum 0.9, weight decay 5e-4) and its rule of dividing the learning rate
by 10 when the validation error stops improving. The data are the 1,797 8x8 digits that
ship inside scikit-learn, upsampled to 32x32x3 (cuda_convnet.data.digits), with random
translations as augmentation; no network access is needed.

Differences from AlexNet, for size: conv1 is 5x5 stride 2 (not 11x11 stride 4), the
layers are ~20x narrower, the batch is 32 (the 1,437 training images would make only 11
steps per epoch at 128), and the weights start from N(0, 2/fan_in) with biases 0.1
(with the paper's N(0, 0.01) and biases of 1 this small net sits at chance for many
epochs; the paper's recipe is what models.alexnet builds).

    python -m cuda_convnet demo                       # GPU if there is one, else the CPU
    python -m cuda_convnet demo --device emu --quick  # the CUDA kernels, emulated
    python -m cuda_convnet demo --precision tf32      # conv and fc GEMMs on TF32 tensor cores
"""
from __future__ import annotations

import json
import os
import time


def add_parser(sub):
    from .args import nonnegative_int, path, positive_float, positive_int
    from .common import add_precision

    p = sub.add_parser("demo", help="train a small AlexNet-style net on the digits dataset (about a minute on a CPU)")
    p.add_argument("--device", "--devices", dest="device", default=None,
                   help="cpu, emu or cuda:N, or two comma-separated (one per tower); default: cuda:0 when a GPU "
                        "is usable, else cpu")
    add_precision(p, "fp32 (on --resume: the run's)")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs (default 20, or 2 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="a subset of the data (a sixth of the training images, a third of the validation "
                        "ones), 2 epochs: under a minute on a 2-core CPU (for tests)")
    p.add_argument("--out", type=path, default="demo_out",
                   help="output folder for the checkpoint and curves (default ./demo_out)")
    p.add_argument("--batch", "--batch-size", dest="batch", type=positive_int, default=None,
                   help="batch size (default 32)")
    p.add_argument("--lr", type=positive_float, default=None, help="initial learning rate (default 0.02)")
    p.add_argument("--patience", type=positive_int, default=None,
                   help="epochs without validation improvement before lr /= 10 (default 3)")
    p.add_argument("--max-drops", type=nonnegative_int, default=None, help="at most this many lr drops (default 2)")
    p.add_argument("--width", type=positive_int, default=None,
                   help="layer width multiplier of models.digits_config (default 2)")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="weights, batch order, augmentation and dropout (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue OUT/checkpoint.npz with its recorded settings (a different --batch, --lr, "
                        "--patience, --max-drops, --width, --seed, --precision or --quick is refused: the run "
                        "would not continue bit-identically); --epochs is the new total")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="BLAS threads for the cpu backend (default 1: this net's matrices are small, and "
                        "a second thread made steps several times slower on a busy 2-core CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


# Settings recorded in the checkpoint and their defaults; on --resume a flag left out takes
# the recorded value, one given must equal it (cli/common.py resume_settings).
_DEFAULTS = {"batch": 32, "lr": 0.02, "patience": 3, "max_drops": 2, "width": 2, "seed": 0, "quick": None,
             "precision": "fp32"}
_FLAGS = {"batch": "--batch", "lr": "--lr", "patience": "--patience", "max_drops": "--max-drops",
          "width": "--width", "seed": "--seed", "quick": "--quick", "precision": "--precision"}


def _settings(args, ckpt):
    """The run's settings (and the checkpoint's extra to record them): the defaults, the
    recorded ones on --resume, and the command line's (refused where they differ)."""
    from . import UsageError
    from .common import read_manifest, resume_settings

    given = {k: getattr(args, k) for k in _FLAGS}
    given["quick"] = True if args.quick else None
    if args.resume:
        if not os.path.exists(ckpt):
            raise UsageError(f"--resume: no checkpoint at {ckpt}")
        recorded = read_manifest(ckpt).get("extra", {})
        # A run recorded before --precision existed computed in fp32.
        recorded = ({"precision": "fp32", **recorded, "quick": recorded.get("quick") or None}
                    if "batch" in recorded else recorded)
        given = resume_settings(ckpt, recorded, given, _FLAGS)
    settings = {k: _DEFAULTS[k] if given[k] is None else given[k] for k in _FLAGS}
    settings["quick"] = bool(settings["quick"])
    return settings


def run(args):
    from .common import says_what_is_saved

    with says_what_is_saved(args.out):  # OUT/checkpoint.npz, as below
        return _run(args)


def _run(args):
    from .. import SGD, PlateauSchedule, models
    from ..data.digits import load_digits
    from . import UsageError
    from .common import count, output_dir, parse_devices, towers

    t_start = time.perf_counter()
    devices = towers(parse_devices(args.device, flag="--device"))
    out = output_dir(args.out)
    ckpt = os.path.join(out, "checkpoint.npz")
    for k, v in _settings(args, ckpt).items():
        setattr(args, k, v)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 20)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot create the folder ({e.strerror})") from None

    data = load_digits(size=32, standardize=True, seed=args.seed)
    x_train, y_train, x_val, y_val = data.train_images, data.train_labels, data.val_images, data.val_labels
    if args.quick:  # a stratified-enough subset: every 6th training image, every 3rd validation one
        x_train, y_train, x_val, y_val = x_train[::6], y_train[::6], x_val[::3], y_val[::3]
    background = float(-data.mean[0] / data.std[0])  # a standardised 0 (digits are grey: equal channels)

    net = models.digits_net(towers=2, devices=devices, seed=args.seed, width=args.width, weight_std="he",
                            bias=0.1, precision=args.precision)
    opt = SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    schedule = PlateauSchedule(opt, factor=0.1, patience=args.patience, max_drops=args.max_drops)
    print(f"digits: {len(y_train)} training and {len(y_val)} validation images, 32x32x3, 10 classes")
    print(f"devices: towers on {', '.join(devices)}; precision {args.precision}")
    print(net.summary())
    print(f"SGD: lr {args.lr:g}, momentum 0.9, weight decay 5e-4, batch {args.batch}; lr /10 after "
          f"{count(args.patience, 'epoch')} without improvement (at most {count(args.max_drops, 'time')})")

    # One BLAS thread: this net's matrices are small, and on a 2-core x86 CPU
    # OpenBLAS's second thread made a training step 5-20x SLOWER whenever anything else was
    # running (0.04-0.07 s -> 0.37-0.92 s per batch of 32, measured): its threads spin
    # waiting for each other. threadpoolctl ships with scikit-learn, the dataset's package.
    from .common import blas_threads

    with blas_threads(args.threads):
        history = _train(args, net, opt, schedule, x_train, y_train, x_val, y_val, background, epochs, ckpt)
    return _report(args, history, out, ckpt, len(y_val), t_start)


def _train(args, net, opt, schedule, x_train, y_train, x_val, y_val, background, epochs, ckpt):
    from ..data.digits import DigitsAugment
    from ..training import fit

    return fit(net, opt, (x_train, y_train), (x_val, y_val), epochs=epochs, batch_size=args.batch,
               schedule=schedule, augment=DigitsAugment(seed=args.seed, pad=4, fill=background), seed=args.seed,
               checkpoint=ckpt, resume=ckpt if args.resume else None, progress=not args.no_progress,
               extra={k: getattr(args, k) for k in _FLAGS})


def _report(args, history, out, ckpt, n_val, t_start):
    from ..viz import plot_training_curves
    from .common import count

    png = plot_training_curves(history, os.path.join(out, "curves.png"), title="AlexNet-style net on digits")
    from ..atomic import open_atomic

    with open_atomic(os.path.join(out, "history.json"), "w") as f:
        json.dump(history, f, indent=1)
    final = history[-1]
    wall = time.perf_counter() - t_start
    print(f"final validation top-1 error: {100 * final['val_top1_err']:.2f}% "
          f"({round(final['val_top1_err'] * n_val)}/{n_val} wrong) after {count(final['epoch'], 'epoch')}, "
          f"{count(final['step'], 'step')}")
    print(f"checkpoint: {ckpt}")
    print(f"curves:     {png}")
    print(f"wall time:  {wall:.1f}s")
    return 0
