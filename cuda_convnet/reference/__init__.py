"""The NumPy reference ops: the definition of every op's math (ARCHITECTURE.md §2, §3).

Written for clarity first, but vectorised (im2col + one matmul per group for
convolution, loops only over filter/window taps), float32 and float64. The ``emu`` and
``cuda`` backends expose the same names and signatures and are tested against these.
Conventions: activations NHWC, conv filters KRSC, FC weights (out, in), all C-contiguous;
argument checking is shared with every backend through ``cuda_convnet.checks``.

===========================  ===========================================================
op                           paper
===========================  ===========================================================
linear, linear_backward      §3.5 fully-connected layers
conv2d, conv2d_backward      §3.5 convolutional layers, groups = the two towers of §3.2
relu, tanh (+ _backward)     §3.1
lrn, lrn_backward            §3.3 local response normalisation
max_pool, max_pool_backward  §3.4 overlapping pooling
dropout, dropout_backward    §4.2
softmax_cross_entropy(...)   §3.5 softmax output, §2 top-1/top-5 errors
sgd_update                   §5 update rule
concat_channels, split_...   §3.2 where the two towers meet (each other's gradient)
train_views                  §4.1 random crop, flip, PCA lighting, mean (augment.py)
===========================  ===========================================================

Note: the re-exported functions shadow three submodules of the same name (``linear``,
``lrn``, ``dropout``): ``cuda_convnet.reference.lrn`` is the function. To reach a module
(e.g. to monkeypatch it in a test) use ``importlib.import_module(
"cuda_convnet.reference.lrn")``.
"""

from .activation import relu, relu_backward, tanh, tanh_backward
from .augment import train_views_from_constants as train_views  # §4.1, the kernel op's signature
from .conv import conv2d, conv2d_backward, conv2d_dgrad, conv2d_wgrad
from .copy import concat_channels, split_channels
from .dropout import dropout, dropout_backward
from .linear import linear, linear_backward
from .lrn import lrn, lrn_backward
from .pool import max_pool, max_pool_backward
from .sgd import sgd_update
from .softmax import softmax_cross_entropy, softmax_cross_entropy_backward, topk_errors

__all__ = [
    "linear", "linear_backward",
    "conv2d", "conv2d_backward", "conv2d_dgrad", "conv2d_wgrad",
    "relu", "relu_backward", "tanh", "tanh_backward",
    "lrn", "lrn_backward",
    "max_pool", "max_pool_backward",
    "dropout", "dropout_backward",
    "softmax_cross_entropy", "softmax_cross_entropy_backward", "topk_errors",
    "sgd_update",
    "concat_channels", "split_channels",
    "train_views",
]
