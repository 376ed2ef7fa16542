"""What a learning-rate drop does with the paper's update rule (§5), against PyTorch's SGD.

The paper keeps the learning rate inside the velocity, v <- 0.9 v - 0.0005 lr w - lr g,
w <- w + v; PyTorch's SGD keeps it outside, buf <- 0.9 buf + g + 0.0005 w, w <- w - lr buf.
With a constant rate they are the same (v = -lr buf). When the rate drops, the paper's v
still holds steps of the old rate and decays into the new one over ~1/(1 - 0.9) = 10 steps;
PyTorch's steps shrink at once. PyTorch's rule is therefore the paper's with v multiplied
by lr_new / lr_old at the drop, which is how it is run here, so the runs share every step
before the drop bit for bit (and every batch, augmentation and dropout mask after it). A
third run keeps the rate (no drop) as the control.

Trains the demo's net (models.digits_net, width 2, He init, biases 0.1, batch 32, the
demo's digits augmentation) at the demo's lr 0.02 for --epochs-before epochs, divides the
rate by 10, and prints the mean training loss over windows of steps before and after:

    python dev/lr_drop_momentum.py                   # cpu backend, ~1-2 minutes on 2 cores
    python dev/lr_drop_momentum.py --epochs-before 8 --seed 1
"""
from __future__ import annotations

import argparse

import numpy as np


def train(rule: str, args) -> list[float]:
    from cuda_convnet import SGD, models
    from cuda_convnet.data.digits import DigitsAugment, load_digits
    from cuda_convnet.data.loader import BatchLoader

    data = load_digits(size=32, standardize=True, seed=args.seed)
    fill = float(-data.mean[0] / data.std[0])
    net = models.digits_net(towers=2, devices=(args.device, args.device), seed=args.seed, width=2,
                            weight_std="he", bias=0.1)
    opt = SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    loader = BatchLoader((data.train_images, data.train_labels), 32, shuffle=True, seed=args.seed,
                         augment=DigitsAugment(seed=args.seed, pad=4, fill=fill), drop_last=True)
    losses, epoch = [], 0
    drop_at = args.epochs_before * len(loader)
    while len(losses) < drop_at + args.steps_after:
        for x, y in loader.iter_epoch(epoch):
            if len(losses) == drop_at and rule != "none":
                if rule == "pytorch":  # v = -lr buf: keep buf, so v scales with the rate
                    for v in opt.velocities.values():
                        v *= np.float32(0.1)
                opt.lr = args.lr * 0.1
            losses.append(net.train_step(np.ascontiguousarray(x, np.float32), y, opt)["loss"])
            if len(losses) == drop_at + args.steps_after:
                break
        epoch += 1
    return losses


def build_parser() -> argparse.ArgumentParser:
    from cuda_convnet.cli.args import nonnegative_int, positive_float, positive_int

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs-before", type=positive_int, metavar="N", default=6,
                   help="epochs trained at --lr before the rate is divided by 10 (default 6)")
    p.add_argument("--steps-after", type=positive_int, metavar="N", default=40,
                   help="training steps (batches of 32) run after the drop (default 40)")
    p.add_argument("--window", type=positive_int, metavar="N", default=10,
                   help="steps averaged per printed column, before and after the drop (default 10; at most "
                        "--steps-after)")
    p.add_argument("--lr", type=positive_float, default=0.02,
                   help="learning rate before the drop, divided by 10 at it (default 0.02, the demo's)")
    p.add_argument("--device", default="cpu", metavar="DEVICE",
                   help="backend both towers run on: cpu (default), emu or cuda:N")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="weights, batch order, augmentation and dropout, the same for the three runs (default 0)")
    return p


def main():
    p = build_parser()
    args = p.parse_args()
    if args.window > args.steps_after:
        p.error(f"--window {args.window} is longer than --steps-after {args.steps_after}")
    from cuda_convnet.cli.common import blas_threads, count

    with blas_threads(1):
        runs = {rule: train(rule, args) for rule in ("paper", "pytorch", "none")}
    n = len(runs["paper"]) - args.steps_after
    assert runs["paper"][:n] == runs["pytorch"][:n] == runs["none"][:n], "the runs differ before the drop"
    w = args.window
    print(f"lr {args.lr:g} -> {args.lr / 10:g} after step {n} ({count(args.epochs_before, 'epoch')}); "
          f"mean training loss over steps (relative to the drop):")
    spans = [(-w, 0)] + [(a, a + w) for a in range(0, args.steps_after - w + 1, w)]
    print(f"{'rule':8s}" + "".join(f"{f'{a + 1 if a >= 0 else a}..{b if a >= 0 else -1}':>11s}" for a, b in spans))
    for rule, losses in runs.items():
        print(f"{rule:8s}" + "".join(f"{np.mean(losses[n + a:n + b]):11.4f}" for a, b in spans))


if __name__ == "__main__":
    main()
