"""cuda_convnet: AlexNet (Krizhevsky, Sutskever, Hinton 2012) rebuilt from scratch.

Hand-written CUDA kernels (csrc/), run on a GPU through CuPy or on the CPU through the SIMT
emulator, a NumPy reference that defines every op's math, and a thin layer graph.

    import cuda_convnet as ccn
    ccn.backend("cpu").linear(x, w, b)     # NumPy reference
    ccn.backend("emu").linear(x, w, b)     # the CUDA kernels, emulated on the CPU
    ccn.ops.linear(x, w, b)                # dispatch on the array type (NumPy/CuPy)

    from cuda_convnet import Net, SGD, models
    net = models.alexnet(towers=2, devices=("cuda:0", "cuda:1"))   # or ("cpu",), ("emu",)
    opt = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    stats = net.train_step(x, labels, opt)
"""
from __future__ import annotations

from . import models, ops  # noqa: F401
from ._ext import build_info, cuda_unavailable_reason, has_cuda  # noqa: F401
from .backends import backend  # noqa: F401
from .net import CheckpointError, Net, NonFiniteError, load_checkpoint, save_checkpoint  # noqa: F401
from .optim import SGD, PlateauSchedule  # noqa: F401

__version__ = "0.1.0"
