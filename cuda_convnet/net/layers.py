"""The layers of the graph: one class per layer type of the paper's net (§3, §4.2, Figure 2).

Every layer is described by a plain dict (`spec()`: its type, name, inputs, device index
and hyper-parameters), which is what a checkpoint's manifest stores and what
`layer_from_spec` rebuilds. Shapes are per example (the batch axis left out):
activations NHWC (H, W, C), fully connected activations (features,).

A layer computes with the ops of the backend of its device (`dev.ops`, the reference's
names and signatures), so the same layer runs on cpu, emu and cuda:

    type                   class               ops                                  paper
    conv2d                 Conv2d              conv2d(_backward), groups = towers   §3.5, §3.2
    linear                 Linear              linear(_backward)                    §3.5
    relu                   ReLU                relu(_backward)                      §3.1
    tanh                   Tanh                tanh(_backward)                      §3.1 (the baseline)
    lrn                    LRN                 lrn(_backward), per channel group    §3.3
    max_pool               MaxPool             max_pool(_backward), 3/2 overlapping §3.4
    dropout                Dropout             dropout(_backward), Philox mask      §4.2
    concat                 Concat              channel concat where the towers meet §3.2
    slice                  ChannelSlice        one channel range of its input       §3.2
    flatten                Flatten             NHWC -> (N, H*W*C), a reshape
    softmax_cross_entropy  SoftmaxCrossEntropy softmax_cross_entropy(_backward)     §3.5
    copy                   Copy                inserted by the Net on an edge between devices

A layer type is the name of the op it runs (the reference's, the binding's and the
launcher's). Specs written with the earlier type names still load: OLD_TYPE_NAMES.

`groups` on LRN and Dropout exists for the one-device grouped form of the two-tower net:
in the paper each GPU normalises (and drops) only its own maps, so the one-device form
applies the op to each tower's channel range separately, which makes the two forms the
same function (the LRN window never crosses from one tower's maps into the other's). The
lrn ops take `groups` themselves (one launch over every group, no channel split or
concat); dropout is applied per channel range (split, one launch per group, concat).
Max pooling needs no groups: its windows never mix channels.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..shapes import conv_output_size, normalize_padding, pool_output_size

_REGISTRY: dict[str, type] = {}

#: Type names that checkpoints and configs written before the types took their op's name
#: carry, and the type each now is. The only place the old names are known.
OLD_TYPE_NAMES = {"conv": "conv2d", "fc": "linear", "maxpool": "max_pool", "softmax": "softmax_cross_entropy"}


def _register(cls):
    _REGISTRY[cls.type] = cls
    return cls


def layer_from_spec(spec: dict) -> Layer:
    spec = dict(spec)
    kind = spec.pop("type", None)
    kind = OLD_TYPE_NAMES.get(kind, kind) if isinstance(kind, str) else kind
    if kind not in _REGISTRY or kind == "copy":
        raise ValueError(f"unknown layer type {kind!r} in spec {spec!r}")
    name = spec.pop("name")
    inputs = spec.pop("inputs")
    if kind == "dropout" and "stream" in spec:  # the key's name in checkpoints written before "subsequence"
        spec["subsequence"] = spec.pop("stream")
    return _REGISTRY[kind](name, inputs, **spec)


class Context:
    """What a layer needs from the Net besides its arrays: the step and the dropout seed and
    subsequence count, and the GEMM precision of the conv and fc layers (checks.PRECISIONS).
    A subsequence is one dropout mask's Philox counter range per step (cuRAND's term: seed,
    subsequence, offset); "stream" always means a CUDA stream."""

    def __init__(self, step: int, dropout_seed: int, dropout_subsequences: int, precision: str = "fp32"):
        self.step, self.dropout_seed, self.dropout_subsequences = step, dropout_seed, dropout_subsequences
        self.precision = precision

    def dropout_offset(self, subsequence: int) -> int:
        # One Philox counter range per (step, subsequence): each step draws new masks, a
        # resumed run draws exactly the masks an uninterrupted one would (cuda_convnet.random).
        return self.step * self.dropout_subsequences + subsequence


class Layer:
    """Base class. Subclasses set `type`, and override what they need of the methods below."""

    type = ""
    n_inputs = 1  # None: any number >= 1

    def __init__(self, name: str, inputs, *, device: int = 0):
        if not isinstance(name, str) or not name or "." in name or ("->" in name and self.type != "copy"):
            raise ValueError(f"layer name must be a non-empty string without '.' or '->', got {name!r}")
        if isinstance(inputs, str):
            inputs = [inputs]
        self.name = name
        self.inputs = tuple(inputs)
        self.device = int(device)
        if self.n_inputs is not None and len(self.inputs) != self.n_inputs:
            raise ValueError(f"layer {name!r} ({self.type}) takes {self.n_inputs} input(s), got {list(self.inputs)}")
        if not self.inputs:
            raise ValueError(f"layer {name!r} ({self.type}) needs at least one input")

    # ------------------------------------------------------------------ description
    def config(self) -> dict:
        """The hyper-parameters (constructor keyword arguments besides name/inputs/device)."""
        return {}

    def spec(self) -> dict:
        return {"type": self.type, "name": self.name, "inputs": list(self.inputs), "device": self.device,
                **self.config()}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        sep = ", " if args else ""
        return f"{type(self).__name__}({self.name!r}, {list(self.inputs)!r}, device={self.device}{sep}{args})"

    # ------------------------------------------------------------------ shapes, parameters
    def output_shape(self, in_shapes):
        return in_shapes[0]

    def param_shapes(self, in_shapes) -> dict:
        return {}

    def init_params(self, in_shapes, seed: int, dtype) -> dict:
        return {}

    # ------------------------------------------------------------------ computation
    def forward(self, dev, xs, params, train: bool, ctx: Context):
        raise NotImplementedError

    def backward(self, dev, xs, y, dy, params, ctx: Context, need_dx):
        """-> (list of dx per input, None where not needed), dict of parameter gradients."""
        raise NotImplementedError


# ============================================================================ parameters

def _normal_parts(seed: int, key: str, parts, part_shape, std: float, dtype) -> np.ndarray:
    """Concatenation along axis 0 of N(0, std) parts, part j drawn from (seed, key, j).

    So a tower's slice of a layer ("conv2", part 1) is the same numbers as the matching
    slice of the one-device grouped layer (parts 0 and 1): both forms of the net start
    from the same function for the same seed.
    """
    chunks = []
    for j in parts:
        rng = np.random.default_rng([int(seed), zlib.crc32(key.encode()), int(j)])
        chunks.append((rng.standard_normal(part_shape) * std).astype(dtype))
    return np.ascontiguousarray(np.concatenate(chunks, axis=0))


class _Weighted(Layer):
    """A conv or fc layer: a weight (initialised N(0, weight_std), §5) and a bias.

    forward(..., relu=True) applies max(0, y) in the GEMM's epilogue: the Net asks for it
    where a ReLU layer is the only reader of this layer's output (that ReLU then launches
    nothing forward; its backward reads the mask from y > 0 as before).

    weight_std is a number (the paper's 0.01) or "he": sqrt(2 / fan_in), fan_in = the
    weights one output sums over (He et al. 2015; trains a small net in a few epochs).
    """

    def __init__(self, name, inputs, *, device=0, bias_init=0.0, weight_std=0.01, init_key=None, init_parts=None):
        super().__init__(name, inputs, device=device)
        self.bias_init = float(bias_init)
        if weight_std != "he":
            weight_std = float(weight_std)
            if not weight_std >= 0:
                raise ValueError(f"layer {name!r}: weight_std must be >= 0 or 'he', got {weight_std}")
        self.weight_std = weight_std
        self.init_key = init_key or name
        self.init_parts = [int(j) for j in (init_parts if init_parts is not None else [0])]

    def _init_config(self):
        return {"bias_init": self.bias_init, "weight_std": self.weight_std, "init_key": self.init_key,
                "init_parts": list(self.init_parts)}

    def init_params(self, in_shapes, seed, dtype):
        shapes = self.param_shapes(in_shapes)
        wshape = shapes["weight"]
        n = len(self.init_parts)
        if wshape[0] % n:
            raise ValueError(f"layer {self.name!r}: {wshape[0]} outputs do not split into {n} init parts")
        part = (wshape[0] // n,) + tuple(wshape[1:])
        std = self.weight_std
        if std == "he":
            std = float(np.sqrt(2.0 / max(1, int(np.prod(wshape[1:])))))
        w = _normal_parts(seed, self.init_key, self.init_parts, part, std, dtype)
        b = np.full(shapes["bias"], self.bias_init, dtype=dtype)
        return {"weight": w, "bias": b}


@_register
class Conv2d(_Weighted):
    """Grouped 2-D convolution: `filters` KRSC filters of size x size x C/groups (§3.5)."""

    type = "conv2d"

    def __init__(self, name, inputs, *, filters, size, stride=1, padding=0, groups=1, **kw):
        super().__init__(name, inputs, **kw)
        self.filters, self.size, self.stride = int(filters), int(size), int(stride)
        self.padding = normalize_padding(padding)
        self.groups = int(groups)
        if self.filters % self.groups:
            raise ValueError(f"layer {name!r}: {self.filters} filters do not split into {self.groups} groups")

    def config(self):
        return {"filters": self.filters, "size": self.size, "stride": self.stride, "padding": list(self.padding),
                "groups": self.groups, **self._init_config()}

    def output_shape(self, in_shapes):
        h, w, c = _nhwc(self, in_shapes[0])
        if c % self.groups:
            raise ValueError(f"layer {self.name!r}: {c} input channels do not split into {self.groups} groups")
        p, q = conv_output_size(h, w, self.size, self.size, self.stride, self.padding)
        return (p, q, self.filters)

    def param_shapes(self, in_shapes):
        c = in_shapes[0][-1]
        return {"weight": (self.filters, self.size, self.size, c // self.groups), "bias": (self.filters,)}

    def _kw(self):
        return {"stride": self.stride, "padding": self.padding, "groups": self.groups}

    def forward(self, dev, xs, params, train, ctx, relu=False):
        return dev.ops.conv2d(xs[0], params["weight"], params["bias"], **self._kw(), relu=relu,
                              **_precision(ctx))

    def backward(self, dev, xs, y, dy, params, ctx, need_dx):
        # need_dx False (the data, or what only depends on it): no dgrad is launched.
        dx, dw, db = dev.ops.conv2d_backward(xs[0], params["weight"], dy, **self._kw(), need_dx=bool(need_dx[0]),
                                             **_precision(ctx))
        return [dx], {"weight": dw, "bias": db}


@_register
class Linear(_Weighted):
    """y = x w^T + b over (N, features) inputs (§3.5); use Flatten after a conv stack."""

    type = "linear"

    def __init__(self, name, inputs, *, units, **kw):
        super().__init__(name, inputs, **kw)
        self.units = int(units)

    def config(self):
        return {"units": self.units, **self._init_config()}

    def output_shape(self, in_shapes):
        if len(in_shapes[0]) != 1:
            raise ValueError(f"layer {self.name!r} ({self.type}) needs a flat (N, features) input, got per-example "
                             f"shape {in_shapes[0]}: put a Flatten layer before it")
        return (self.units,)

    def param_shapes(self, in_shapes):
        return {"weight": (self.units, in_shapes[0][0]), "bias": (self.units,)}

    def forward(self, dev, xs, params, train, ctx, relu=False):
        return dev.ops.linear(xs[0], params["weight"], params["bias"], relu=relu, **_precision(ctx))

    # backward(acc=...): the dx GEMM adds into the input's gradient already there (beta = 1).
    accumulates_dx = True

    def backward(self, dev, xs, y, dy, params, ctx, need_dx, acc=None):
        kw = {"dx_accumulate": acc[0]} if acc is not None and acc[0] is not None else {}
        dx, dw, db = dev.ops.linear_backward(xs[0], params["weight"], dy, need_dx=bool(need_dx[0]), **kw,
                                             **_precision(ctx))
        return [dx], {"weight": dw, "bias": db}


def _precision(ctx) -> dict:
    """The ``precision=`` keyword of a conv/fc op for the Net's precision. "fp32" is every
    op's default and is left implicit, so an fp32 net calls exactly the float32 ops."""
    return {} if ctx.precision == "fp32" else {"precision": ctx.precision}


def _nhwc(layer, shape):
    if len(shape) != 3:
        raise ValueError(f"layer {layer.name!r} ({layer.type}) needs an NHWC input, got per-example shape {shape}")
    return shape


# ============================================================================ element-wise

@_register
class ReLU(Layer):
    """max(0, x) (§3.1)."""

    type = "relu"

    def forward(self, dev, xs, params, train, ctx):
        return dev.ops.relu(xs[0])

    def backward(self, dev, xs, y, dy, params, ctx, need_dx):
        return [dev.ops.relu_backward(y, dy)], {}


@_register
class Tanh(Layer):
    """tanh(x), the saturating baseline of §3.1 (Figure 1)."""

    type = "tanh"

    def forward(self, dev, xs, params, train, ctx):
        return dev.ops.tanh(xs[0])

    def backward(self, dev, xs, y, dy, params, ctx, need_dx):
        return [dev.ops.tanh_backward(y, dy)], {}


def _check_groups(layer, c):
    if c % layer.groups:
        raise ValueError(f"layer {layer.name!r}: {c} channels do not split into {layer.groups} groups")


@_register
class LRN(Layer):
    """Local response normalisation across channels (§3.3), per channel group.

    Defaults are the paper's k=2, n=5, alpha=1e-4, beta=0.75 with the code's alpha/n
    convention (cuda_convnet.reference.lrn documents both).
    """

    type = "lrn"

    def __init__(self, name, inputs, *, size=5, alpha=1e-4, beta=0.75, k=2.0, divide_alpha_by_size=True, groups=1,
                 device=0):
        super().__init__(name, inputs, device=device)
        self.size, self.alpha, self.beta, self.k = int(size), float(alpha), float(beta), float(k)
        self.divide_alpha_by_size, self.groups = bool(divide_alpha_by_size), int(groups)

    def config(self):
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k,
                "divide_alpha_by_size": self.divide_alpha_by_size, "groups": self.groups}

    def _kw(self):
        return {"size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k,
                "divide_alpha_by_size": self.divide_alpha_by_size, "groups": self.groups}

    def output_shape(self, in_shapes):
        _check_groups(self, in_shapes[0][-1])
        return in_shapes[0]

    def forward(self, dev, xs, params, train, ctx):
        return dev.ops.lrn(xs[0], **self._kw())

    def backward(self, dev, xs, y, dy, params, ctx, need_dx, relu_mask=False):
        # relu_mask: the Net fused the backward of the ReLU producing xs[0] into this one.
        return [dev.ops.lrn_backward(xs[0], y, dy, **self._kw(), relu_mask=relu_mask)], {}


@_register
class MaxPool(Layer):
    """Max pooling, size x size windows at `stride` (§3.4: 3/2, overlapping)."""

    type = "max_pool"

    def __init__(self, name, inputs, *, size=3, stride=2, padding=0, device=0):
        super().__init__(name, inputs, device=device)
        self.size, self.stride, self.padding = int(size), int(stride), normalize_padding(padding)

    def config(self):
        return {"size": self.size, "stride": self.stride, "padding": list(self.padding)}

    def _kw(self):
        return {"size": self.size, "stride": self.stride, "padding": self.padding}

    def output_shape(self, in_shapes):
        h, w, c = _nhwc(self, in_shapes[0])
        return pool_output_size(h, w, self.size, self.stride, self.padding) + (c,)

    def forward(self, dev, xs, params, train, ctx):
        return dev.ops.max_pool(xs[0], **self._kw())

    def backward(self, dev, xs, y, dy, params, ctx, need_dx, relu_mask=False):
        # relu_mask: the Net fused the backward of the ReLU producing xs[0] into this one.
        return [dev.ops.max_pool_backward(xs[0], y, dy, **self._kw(), relu_mask=relu_mask)], {}


@_register
class Dropout(Layer):
    """Dropout (§4.2) with the counter-based Philox mask of cuda_convnet.random.

    Group g of the channel axis draws its mask at offset step * S + subsequence + g (S =
    the Net's number of dropout subsequences), so every step draws fresh masks, a resumed run the
    same masks, and a tower's dropout the same mask as its range in the grouped form.
    `subsequence=None` lets the Net number the subsequences in layer order.
    """

    type = "dropout"

    def __init__(self, name, inputs, *, p=0.5, mode="paper", groups=1, subsequence=None, device=0):
        super().__init__(name, inputs, device=device)
        self.p, self.mode, self.groups = float(p), str(mode), int(groups)
        self.subsequence = None if subsequence is None else int(subsequence)

    def config(self):
        return {"p": self.p, "mode": self.mode, "groups": self.groups, "subsequence": self.subsequence}

    def output_shape(self, in_shapes):
        _check_groups(self, in_shapes[0][-1])
        return in_shapes[0]

    def _kw(self, ctx):
        return {"p": self.p, "seed": ctx.dropout_seed, "offset": ctx.dropout_offset(self.subsequence),
                "mode": self.mode}

    # One launch over all groups: the op draws group g at offset + g itself (no split/concat).
    def forward(self, dev, xs, params, train, ctx):
        if not train:
            return dev.ops.dropout(xs[0], train=False, **self._kw(ctx))
        return dev.ops.dropout(xs[0], train=True, groups=self.groups, **self._kw(ctx))

    def backward(self, dev, xs, y, dy, params, ctx, need_dx):
        return [dev.ops.dropout_backward(dy, groups=self.groups, **self._kw(ctx))], {}


# ============================================================================ plumbing

@_register
class Concat(Layer):
    """Concatenate the inputs' channels (last axis), in input order: where towers meet."""

    type = "concat"
    n_inputs = None

    def output_shape(self, in_shapes):
        first = in_shapes[0]
        for s in in_shapes[1:]:
            if tuple(s[:-1]) != tuple(first[:-1]):
                raise ValueError(f"layer {self.name!r} (concat): inputs {list(self.inputs)} have shapes "
                                 f"{[tuple(s) for s in in_shapes]}, which differ outside the channel axis")
        return tuple(first[:-1]) + (sum(s[-1] for s in in_shapes),)

    # backward(acc=...): where an input's gradient already holds another reader's part, the
    # split adds this layer's part into it in place (split_channels' beta = 1).
    accumulates_dx = True

    def forward(self, dev, xs, params, train, ctx):
        return dev.concat_channels(xs)

    def backward(self, dev, xs, y, dy, params, ctx, need_dx, acc=None):
        parts = dev.split_channels(dy, [x.shape[-1] for x in xs], accumulate=acc)
        return [p if need else None for p, need in zip(parts, need_dx)], {}


@_register
class ChannelSlice(Layer):
    """Channels [start, stop) of the input: how one device's maps are split into towers."""

    type = "slice"

    def __init__(self, name, inputs, *, start, stop, device=0):
        super().__init__(name, inputs, device=device)
        self.start, self.stop = int(start), int(stop)

    def config(self):
        return {"start": self.start, "stop": self.stop}

    def output_shape(self, in_shapes):
        c = in_shapes[0][-1]
        if not 0 <= self.start < self.stop <= c:
            raise ValueError(f"layer {self.name!r} (slice): [{self.start}, {self.stop}) is not a channel range of {c}")
        return tuple(in_shapes[0][:-1]) + (self.stop - self.start,)

    def _sizes(self, c):
        return [self.start, self.stop - self.start, c - self.stop]

    def forward(self, dev, xs, params, train, ctx):
        x = xs[0]
        return dev.split_channels(x, self._sizes(x.shape[-1]))[1]

    def backward(self, dev, xs, y, dy, params, ctx, need_dx):
        c = xs[0].shape[-1]
        pieces = [dev.zeros(dy.shape[:-1] + (n,), dy.dtype) if i != 1 else dy
                  for i, n in enumerate(self._sizes(c)) if n or i == 1]
        return [dev.concat_channels(pieces)], {}


@_register
class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C) in NHWC order (a reshape; no copy)."""

    type = "flatten"

    def output_shape(self, in_shapes):
        return (int(np.prod(in_shapes[0])),)

    def forward(self, dev, xs, params, train, ctx):
        return xs[0].reshape(xs[0].shape[0], -1)

    def backward(self, dev, xs, y, dy, params, ctx, need_dx):
        return [dy.reshape(xs[0].shape)], {}


@_register
class SoftmaxCrossEntropy(Layer):
    """The 1000-way softmax and the multinomial logistic loss (§3.5); the Net's last layer.

    Its input is the logits; the Net feeds it the labels. forward returns (loss, probs).
    """

    type = "softmax_cross_entropy"

    def output_shape(self, in_shapes):
        if len(in_shapes[0]) != 1:
            raise ValueError(f"layer {self.name!r} ({self.type}) needs (N, classes) logits, got {in_shapes[0]}")
        return ()

    def forward(self, dev, xs, params, train, ctx, labels=None, check_labels=True):
        # check_labels=False: the caller checked the range on the host before the upload,
        # so no op reads the labels back from the device.
        return dev.ops.softmax_cross_entropy(xs[0], labels, check_labels=check_labels)

    def backward(self, dev, probs, labels, check_labels=True):
        return dev.ops.softmax_cross_entropy_backward(probs, labels, check_labels=check_labels)


class Copy(Layer):
    """Moves an activation to another device (forward) and its gradient back (backward).

    Never written by hand: the Net inserts one on every edge that crosses devices.
    """

    type = "copy"

    def __init__(self, name, inputs, *, src: int, device: int):
        super().__init__(name, inputs, device=device)
        self.src = int(src)
        self.src_device = self.dst_device = None  # Device objects, set by the Net

    def forward(self, dev, xs, params, train, ctx):
        return self.dst_device.copy_from(xs[0], self.src_device)

    def backward(self, dev, xs, y, dy, params, ctx, need_dx):
        return [self.src_device.copy_from(dy, self.dst_device)], {}


_register(Copy)

__all__ = ["Layer", "Conv2d", "Linear", "ReLU", "Tanh", "LRN", "MaxPool", "Dropout", "Concat",
           "ChannelSlice", "Flatten", "SoftmaxCrossEntropy", "Copy", "Context", "layer_from_spec"]
