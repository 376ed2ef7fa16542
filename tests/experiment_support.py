"""A tiny trained checkpoint on the bundled digits, for the experiment and figure tests."""
from __future__ import annotations

from cuda_convnet.experiments import ablate
from cuda_convnet.experiments.data import load_dataset, subset


def tiny_digits():
    """Every 12th training and 3rd validation digit (120 + 120 images, uint8 32x32x3)."""
    return subset(load_dataset(None), 12, 3)


def train_tiny_checkpoint(path, *, variant: str = "full", epochs: int = 1) -> str:
    """One epoch of the ablations' full model (two towers) on tiny_digits, checkpointed at `path`."""
    ablate.train_variant(tiny_digits(), variant, 0, epochs=epochs, batch=32, lr=0.02, width=1, checkpoint=str(path))
    return str(path)
