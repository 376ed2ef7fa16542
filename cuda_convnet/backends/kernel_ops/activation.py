"""Elementwise activations on csrc/activation.cuh: ReLU (§3.1) and tanh."""
from __future__ import annotations

from ... import checks


class ActivationOps:
    def relu(self, x):
        checks.check_activation_args(x, op="relu")
        self._float32("relu", x=x)
        y = self._empty(x.shape)
        self.ext.relu(x=self._ptr(x), y=self._ptr(y), n=int(x.size), stream=self._stream())
        return y

    def relu_backward(self, y, dy):
        checks.check_activation_backward_args(y, dy, op="relu_backward")
        self._float32("relu_backward", y=y, dy=dy)
        dx = self._empty(y.shape)
        self.ext.relu_backward(y=self._ptr(y), dy=self._ptr(dy), dx=self._ptr(dx), n=int(y.size), stream=self._stream())
        return dx

    def tanh(self, x):
        checks.check_activation_args(x, op="tanh")
        self._float32("tanh", x=x)
        y = self._empty(x.shape)
        self.ext.tanh(x=self._ptr(x), y=self._ptr(y), n=int(x.size), stream=self._stream())
        return y

    def tanh_backward(self, y, dy):
        checks.check_activation_backward_args(y, dy, op="tanh_backward")
        self._float32("tanh_backward", y=y, dy=dy)
        dx = self._empty(y.shape)
        self.ext.tanh_backward(y=self._ptr(y), dy=self._ptr(dy), dx=self._ptr(dx), n=int(y.size), stream=self._stream())
        return dx
