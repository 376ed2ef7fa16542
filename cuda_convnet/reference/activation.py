"""Element-wise nonlinearities: ReLU (§3.1) and tanh (the saturating baseline of Figure 1).

§3.1: f(x) = max(0, x) trains several times faster than tanh. Both backward functions
take the forward *output* y (not x), which is all they need and what a fused kernel has:

    relu_backward(y, dy) = dy where y > 0, else 0      (the kink at 0 gets gradient 0)
    tanh_backward(y, dy) = dy * (1 - y²)

Any shape is accepted (NHWC maps or (N, features)).
"""

from __future__ import annotations

import numpy as np

from .. import checks

__all__ = ["relu", "relu_backward", "tanh", "tanh_backward"]


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x), element-wise, same dtype."""
    checks.check_activation_args(x, op="relu")
    return np.maximum(x, x.dtype.type(0))


def relu_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy · [y > 0] (y is relu's output; the subgradient at 0 is taken as 0)."""
    checks.check_activation_backward_args(y, dy, op="relu_backward")
    return np.where(y > 0, dy, dy.dtype.type(0))


def tanh(x: np.ndarray) -> np.ndarray:
    """tanh(x), element-wise, same dtype."""
    checks.check_activation_args(x, op="tanh")
    return np.tanh(x)


def tanh_backward(y: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dx = dy · (1 - y²), with y = tanh(x) the forward output."""
    checks.check_activation_backward_args(y, dy, op="tanh_backward")
    return dy * (1 - y * y)
