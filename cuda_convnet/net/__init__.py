"""The layer graph (ARCHITECTURE.md §6): layers, the Net, devices, checkpoints.

    layers.py      one class per layer type, named after its op (conv2d, linear, relu, tanh,
                   lrn, max_pool, dropout, concat, slice, flatten, softmax_cross_entropy)
                   and the Copy the graph inserts
    graph.py       Net: forward in order, backward in reverse, gradients accumulated,
                   a Copy on every edge between logical devices; summary()
    devices.py     Device: cpu / emu / cuda:N, streams and events, peer copies
    checkpoint.py  atomic .npz + JSON manifest, validated on load; bit-identical resume
                   (it builds on graph.py; the graph does not know checkpoints)
"""
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .devices import Device, parse_device
from .graph import Net, NonFiniteError, Parameter
from .layers import (
    LRN,
    ChannelSlice,
    Concat,
    Conv2d,
    Copy,
    Dropout,
    Flatten,
    Layer,
    Linear,
    MaxPool,
    ReLU,
    SoftmaxCrossEntropy,
    Tanh,
)

__all__ = ["Net", "NonFiniteError", "Parameter", "Device", "parse_device", "Checkpoint", "CheckpointError",
           "load_checkpoint", "save_checkpoint", "Layer", "Conv2d", "Linear", "ReLU", "Tanh", "LRN", "MaxPool",
           "Dropout", "Concat", "ChannelSlice", "Flatten", "SoftmaxCrossEntropy", "Copy"]
