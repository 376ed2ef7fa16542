"""The paper's network (§3.5, Figure 2) and a scaled-down one for the demo, in two forms.

    net = models.alexnet(towers=2, devices=("cuda:0", "cuda:1"))   # Figure 2: one tower per device
    net = models.alexnet(towers=1, devices=("cpu",))                # the one-device grouped form
    state = models.map_weights(net2.state_dict(), net1)             # same weights, other form

Both forms are the same function: for the same seed they start from the same weights
(each tower's slice of a layer is drawn from (seed, layer, tower)), and `map_weights`
moves any weights (or optimizer velocities) between them: a tower's tensor is its slice
along the output axis (filters of a conv, units of an fc layer) of the grouped tensor.

AlexNet as built here (input 224x224x3; the output sizes are asserted in the tests)::

    layer    form                                           output       paper's count
    conv1    96 11x11x3 /4, padding (1,2,1,2), both towers  55x55x96     253,440 (true: 290,400)
    relu1, norm1 (LRN per tower), pool1 3/2                 27x27x96
    conv2    256 5x5x48, pad 2, groups 2 (own tower)        27x27x256    186,624
    relu2, norm2, pool2 3/2                                 13x13x256
    conv3    384 3x3x256, pad 1, sees both towers           13x13x384    64,896
    conv4    384 3x3x192, pad 1, groups 2                   13x13x384    64,896
    conv5    256 3x3x192, pad 1, groups 2                   13x13x256    43,264
    relu5, pool5 3/2                                        6x6x256      (9,216 into fc6)
    fc6      4096 (+ relu, dropout 0.5), sees both towers   4096         4096
    fc7      4096 (+ relu, dropout 0.5), sees both towers   4096         4096
    fc8      1000 -> softmax (on the first device)          1000         1000

The paper's neuron counts (§3.5 / Figure 2) are right except conv1's: its 253,440 is not
55*55*96 = 290,400 (nor any square map of 96 kernels: 253,440 / 96 = 2,640 is not a
square). The true counts are 290,400-186,624-64,896-64,896-43,264-4096-4096-1000, after
an input of 150,528 = 224*224*3 (which the paper gets right).

conv1's padding: 11x11 filters at stride 4 give 55x55 outputs from a 227x227 image, so
with the paper's 224x224 crops (§4.1, what cuda_convnet.data.augment produces) we pad
(top, bottom, left, right) = (1, 2, 1, 2): the padded 227x227 image is tiled exactly by
the 55 windows (54*4 + 11 = 227), no input pixel is ignored and the shift is under a
pixel. `input_size=227` builds the unpadded variant (Caffe's choice) instead.

Parameters (weights + biases) of the two-tower form: 60,965,224 (the paper's "60
million"): conv 2,334,080 and fc 58,631,144. The grouped one-device form has the same
count.

Initialisation (§5): weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
fc layers (fc6, fc7), 0 in conv1, conv3 and fc8. LRN per tower (each GPU normalised its
own 48 or 128 maps), so in the grouped form the LRN is applied per channel group, and so
is dropout (each tower's units draw their own mask subsequence).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from .net import LRN, Concat, Conv2d, Dropout, Flatten, Linear, MaxPool, Net, ReLU, SoftmaxCrossEntropy


@dataclass(frozen=True)
class ConvBlock:
    """One conv layer of a tower net, with what follows it (ReLU always)."""

    filters: int               # total over the towers
    size: int
    stride: int = 1
    padding: object = 0
    both_towers: bool = False  # reads every tower's maps (conv3 of the paper) or only its own
    bias: float = 0.0
    lrn: bool = False
    pool: bool = False


@dataclass(frozen=True)
class TowerNetConfig:
    """A net of Figure 2's shape: conv blocks in `towers` towers, then hidden fc layers."""

    input_shape: tuple
    convs: tuple
    hidden: tuple              # units of each hidden fc layer (total over the towers)
    classes: int
    towers: int = 2            # the towers of the paper (two GPUs, §3.2)
    hidden_bias: float = 1.0
    dropout: float = 0.5
    pool_size: int = 3
    pool_stride: int = 2
    weight_std: object = 0.01    # a number, or "he" (see layers._Weighted)
    lrn: dict = field(default_factory=lambda: {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0})
    # How each kind of weighted layer is spread over the ranks of a hybrid job
    # (distributed.HybridParallel): "data" (every rank holds the layer and trains it on its
    # examples) or "model" (every rank holds a slice of its units and sees every example).
    # The default is cuda-convnet2's (Krizhevsky 2014, §3): convolutions data-parallel, the
    # fully connected layers model-parallel. Stated per layer name on the built net, as
    # `Net.parallel` (see parallel_table).
    conv_parallel: str = "data"
    fc_parallel: str = "model"


def alexnet_config(num_classes: int = 1000, input_size: int = 224) -> TowerNetConfig:
    if input_size == 224:
        pad1 = (1, 2, 1, 2)
    elif input_size == 227:
        pad1 = 0
    else:
        raise ValueError(f"input_size must be 224 (padded conv1) or 227 (unpadded), got {input_size}")
    return TowerNetConfig(
        input_shape=(input_size, input_size, 3),
        convs=(
            ConvBlock(96, 11, 4, pad1, both_towers=True, bias=0.0, lrn=True, pool=True),
            ConvBlock(256, 5, 1, 2, both_towers=False, bias=1.0, lrn=True, pool=True),
            ConvBlock(384, 3, 1, 1, both_towers=True, bias=0.0),
            ConvBlock(384, 3, 1, 1, both_towers=False, bias=1.0),
            ConvBlock(256, 3, 1, 1, both_towers=False, bias=1.0, pool=True),
        ),
        hidden=(4096, 4096),
        classes=num_classes,
    )


def _scaled_convs(w: int, bias: float) -> tuple:
    """Figure 2's five conv layers at 1/6-1/8 of the filters times `w`, conv1 5x5 stride 2:
    the conv stack of the small AlexNet-shaped nets (digits_config, small_config)."""
    return (
        ConvBlock(16 * w, 5, 2, 2, both_towers=True, bias=0.0, lrn=True, pool=True),
        ConvBlock(32 * w, 5, 1, 2, both_towers=False, bias=bias, lrn=True, pool=True),
        ConvBlock(48 * w, 3, 1, 1, both_towers=True, bias=0.0),
        ConvBlock(48 * w, 3, 1, 1, both_towers=False, bias=bias),
        ConvBlock(32 * w, 3, 1, 1, both_towers=False, bias=bias, pool=True),
    )


def digits_config(width: int = 1, weight_std=0.01, bias: float = 1.0) -> TowerNetConfig:
    """AlexNet scaled down for 32x32x3 digits: the same layer types and tower connectivity.

    conv1 5x5 (both towers) -> LRN -> pool 3/2 (15x15) -> conv2 5x5 grouped -> LRN ->
    pool 3/2 (7x7) -> conv3 3x3 (both towers) -> conv4, conv5 3x3 grouped -> pool 3/2 (3x3)
    -> fc 128 -> fc 128 (dropout on both) -> fc 10. `width` multiplies every layer's width.
    """
    w = int(width)
    return TowerNetConfig(
        input_shape=(32, 32, 3),
        convs=_scaled_convs(w, bias),
        hidden=(128 * w, 128 * w),
        hidden_bias=bias,
        classes=10,
        weight_std=weight_std,
    )



def small_config(num_classes: int, width: int = 2, weight_std="he", bias: float = 0.1) -> TowerNetConfig:
    """AlexNet scaled down for 64x64x3 crops (from stores prepared at 72x72): the CLI's `small`.

    The same layers, towers and connectivity as Figure 2, with a third of the filters and
    1/16 of the fc units at the default width 2 (about 0.4 M parameters): conv1 5x5 /2
    (both towers, 32x32) -> LRN -> pool 3/2 (15x15) -> conv2 5x5 grouped -> LRN -> pool
    (7x7) -> conv3 3x3 (both towers) -> conv4, conv5 3x3 grouped -> pool (3x3) -> fc 128w
    -> fc 128w (dropout) -> fc num_classes. The default initialisation is He's
    N(0, 2/fan_in) with biases 0.1, which assumes inputs of unit variance (the CLI scales
    the mean-subtracted pixels by 1/their standard deviation): with the paper's N(0, 0.01)
    and biases of 1 a net this small sits at chance for many epochs (see cli/demo.py);
    weight_std=0.01, bias=1.0 gives the paper's recipe.
    """
    w = int(width)
    return TowerNetConfig(
        input_shape=(64, 64, 3),
        convs=_scaled_convs(w, bias),
        hidden=(128 * w, 128 * w),
        hidden_bias=bias,
        classes=int(num_classes),
        weight_std=weight_std,
    )

PARALLEL_KINDS = ("data", "model")


def parallel_table(config: TowerNetConfig, net: Net) -> dict[str, str]:
    """Layer name -> "data" or "model" for every weighted layer of `net` (built from
    `config`): convs take config.conv_parallel, fully connected layers config.fc_parallel.
    Raises ValueError for any other value."""
    for what, v in (("conv_parallel", config.conv_parallel), ("fc_parallel", config.fc_parallel)):
        if v not in PARALLEL_KINDS:
            raise ValueError(f"{what} must be one of {PARALLEL_KINDS}, got {v!r}")
    table = {}
    for layer in net.layers:
        if isinstance(layer, Conv2d):
            table[layer.name] = config.conv_parallel
        elif isinstance(layer, Linear):
            table[layer.name] = config.fc_parallel
    return table


def _devices(towers, devices):
    if devices is None:
        return ("cpu",) * towers
    if isinstance(devices, str):
        devices = (devices,)
    devices = tuple(devices)
    if len(devices) == 1 and towers > 1:
        return devices * towers
    if len(devices) != towers:
        raise ValueError(f"{towers} tower(s) need {towers} device(s), got {list(devices)}")
    return devices


def tower_net(config: TowerNetConfig, *, towers: int = 2, devices=None, seed: int = 0, dtype="float32",
              precision: str = "fp32") -> Net:
    """Build `config` as `towers` towers on their own devices (towers == config.towers), or
    as one device's grouped form (towers == 1, groups == config.towers). `precision` is
    the Net's (the conv and fc GEMMs' arithmetic, checks.PRECISIONS; ValueError otherwise)."""
    cols = config.towers
    if towers not in (1, cols):
        raise ValueError(f"towers must be 1 (the grouped one-device form) or {cols}, got {towers}")
    devices = _devices(towers, devices)
    pool = {"size": config.pool_size, "stride": config.pool_stride}
    std = config.weight_std
    layers = []
    if towers == 1:
        top = "data"
        for k, c in enumerate(config.convs, start=1):
            groups = 1 if (c.both_towers or k == 1) else cols
            layers.append(Conv2d(f"conv{k}", top, filters=c.filters, size=c.size, stride=c.stride, padding=c.padding,
                               groups=groups, bias_init=c.bias, weight_std=std, init_parts=list(range(cols))))
            layers.append(ReLU(f"relu{k}", f"conv{k}"))
            top = f"relu{k}"
            if c.lrn:
                layers.append(LRN(f"norm{k}", top, groups=cols, **config.lrn))
                top = f"norm{k}"
            if c.pool:
                layers.append(MaxPool(f"pool{k}", top, **pool))
                top = f"pool{k}"
        layers.append(Flatten("flatten", top))
        top = "flatten"
        for j, units in enumerate(config.hidden):
            k = len(config.convs) + 1 + j
            layers += [Linear(f"fc{k}", top, units=units, bias_init=config.hidden_bias, weight_std=std,
                                      init_parts=list(range(cols))),
                       ReLU(f"relu{k}", f"fc{k}"),
                       Dropout(f"drop{k}", f"relu{k}", p=config.dropout, groups=cols, subsequence=j * cols)]
            top = f"drop{k}"
    else:
        tops = ["data"] * towers
        for k, c in enumerate(config.convs, start=1):
            new = []
            for t in range(towers):
                inp = tops[t]
                if c.both_towers and k > 1:
                    inp = f"merge{k}/{t}"
                    layers.append(Concat(inp, list(tops), device=t))
                layers.append(Conv2d(f"conv{k}/{t}", inp, filters=c.filters // towers, size=c.size, stride=c.stride,
                                   padding=c.padding, bias_init=c.bias, weight_std=std, init_key=f"conv{k}",
                                   init_parts=[t], device=t))
                layers.append(ReLU(f"relu{k}/{t}", f"conv{k}/{t}", device=t))
                top = f"relu{k}/{t}"
                if c.lrn:
                    layers.append(LRN(f"norm{k}/{t}", top, device=t, **config.lrn))
                    top = f"norm{k}/{t}"
                if c.pool:
                    layers.append(MaxPool(f"pool{k}/{t}", top, device=t, **pool))
                    top = f"pool{k}/{t}"
                new.append(top)
            tops = new
        # The fc layers see every tower: each device gathers all towers' maps, then flattens.
        for t in range(towers):
            layers.append(Concat(f"merge_fc/{t}", list(tops), device=t))
            layers.append(Flatten(f"flatten/{t}", f"merge_fc/{t}", device=t))
        tops = [f"flatten/{t}" for t in range(towers)]
        for j, units in enumerate(config.hidden):
            k = len(config.convs) + 1 + j
            new = []
            for t in range(towers):
                inp = tops[t]
                if j > 0:
                    inp = f"merge{k}/{t}"
                    layers.append(Concat(inp, list(tops), device=t))
                layers += [Linear(f"fc{k}/{t}", inp, units=units // towers, bias_init=config.hidden_bias,
                                          weight_std=std, init_key=f"fc{k}", init_parts=[t], device=t),
                           ReLU(f"relu{k}/{t}", f"fc{k}/{t}", device=t),
                           Dropout(f"drop{k}/{t}", f"relu{k}/{t}", p=config.dropout, subsequence=j * cols + t,
                                   device=t)]
                new.append(f"drop{k}/{t}")
            tops = new
        layers.append(Concat("merge_out", list(tops), device=0))
        top = "merge_out"
    k = len(config.convs) + len(config.hidden) + 1
    layers.append(Linear(f"fc{k}", top, units=config.classes, bias_init=0.0, weight_std=std))
    layers.append(SoftmaxCrossEntropy("loss", f"fc{k}"))
    net = Net(layers, input_shape=config.input_shape, devices=devices, seed=seed, dtype=dtype, precision=precision)
    net.parallel = parallel_table(config, net)
    return net


def alexnet(towers: int = 2, devices=None, num_classes: int = 1000, seed: int = 0, *, input_size: int = 224,
            dtype="float32", precision: str = "fp32") -> Net:
    """The network of §3.5 / Figure 2 (see the module docstring for every layer); `precision`
    as for tower_net."""
    return tower_net(alexnet_config(num_classes, input_size), towers=towers, devices=devices, seed=seed, dtype=dtype,
                     precision=precision)


def digits_net(towers: int = 2, devices=None, seed: int = 0, *, width: int = 1, weight_std=0.01, bias: float = 1.0,
               dtype="float32", precision: str = "fp32") -> Net:
    """The demo's scaled-down AlexNet for 32x32x3 digits (digits_config)."""
    return tower_net(digits_config(width, weight_std, bias), towers=towers, devices=devices, seed=seed, dtype=dtype,
                     precision=precision)


_TOWER_PARAM = re.compile(r"^(?P<base>.+)/(?P<tower>\d+)\.(?P<param>[^./]+)$")


def small_net(num_classes: int, towers: int = 2, devices=None, seed: int = 0, *, width: int = 2, weight_std="he",
              bias: float = 0.1, dtype="float32", precision: str = "fp32") -> Net:
    """The scaled-down AlexNet for 64x64x3 crops (small_config)."""
    return tower_net(small_config(num_classes, width, weight_std, bias), towers=towers, devices=devices, seed=seed,
                     dtype=dtype, precision=precision)


def map_weights(state: dict, net: Net) -> dict:
    """Express `state` (parameter name -> array, from either form) in `net`'s parameter names.

    Works both ways: tower tensors "conv2/0.weight", "conv2/1.weight" are concatenated
    along axis 0 into the grouped "conv2.weight", and a grouped tensor is split along
    axis 0 into its towers. Names present in both forms (fc8) are passed through. Use it
    for weights (`net.state_dict()`) and velocities (`opt.state_dict()["velocities"]`).
    """
    towers_in_state: dict[tuple[str, str], dict[int, np.ndarray]] = defaultdict(dict)
    for name, a in state.items():
        m = _TOWER_PARAM.match(name)
        if m:
            towers_in_state[(m["base"], m["param"])][int(m["tower"])] = a
    target = {p.name: p.shape for p in net.parameters()}
    towers_in_target: dict[tuple[str, str], int] = defaultdict(int)
    for name in target:
        m = _TOWER_PARAM.match(name)
        if m:
            towers_in_target[(m["base"], m["param"])] += 1
    out = {}
    for name, shape in target.items():
        m = _TOWER_PARAM.match(name)
        if name in state:
            a = np.asarray(state[name])
        elif m and f"{m['base']}.{m['param']}" in state:
            full = np.asarray(state[f"{m['base']}.{m['param']}"])
            n = towers_in_target[(m["base"], m["param"])]
            if full.shape[0] % n:
                raise ValueError(f"map_weights: {m['base']}.{m['param']} {full.shape} does not split into {n} towers")
            a = np.split(full, n, axis=0)[int(m["tower"])]
        elif "." in name and tuple(name.rsplit(".", 1)) in towers_in_state:
            parts = towers_in_state[tuple(name.rsplit(".", 1))]
            a = np.concatenate([parts[t] for t in sorted(parts)], axis=0)
        else:
            raise ValueError(f"map_weights: nothing in the given state maps to {name!r}")
        if tuple(a.shape) != tuple(shape):
            raise ValueError(f"map_weights: {name} would get shape {tuple(a.shape)}, the net needs {tuple(shape)}")
        out[name] = np.ascontiguousarray(a)
    return out


# -- variants for the ablations of §3-4 and the Figure 1 net (cuda_convnet/experiments) --------
ABLATIONS = {
    "full": "the model as built (LRN, overlapping 3/2 pooling, dropout 0.5, two towers, PCA lighting)",
    "no-lrn": "no local response normalisation (§3.3)",
    "pool-2/2": "non-overlapping 2/2 max-pooling instead of 3/2 (§3.4)",
    "no-dropout": "dropout off in the hidden fc layers (§4.2)",
    "one-tower": "one tower with half the kernels in each conv layer but the last, fc layers kept (§3.2, "
                 "footnote 2)",
    "no-lighting": "PCA lighting off (§4.1); a training-data change, the net is the full one",
    "no-conv4": "conv4, a middle conv layer, removed (§1, §7)",
}


def ablated(config: TowerNetConfig, variant: str) -> TowerNetConfig:
    """`config` with one of the paper's design choices undone (ABLATIONS names them).

    "one-tower" follows §3.2's comparison net: a single tower (towers=1) whose conv
    layers have half the filters, except the last conv layer and the fc layers, which
    keep their size (the paper's footnote 2: so both nets have about as many parameters).
    "no-lighting" changes the training data, not the net: the config is returned as is.
    Raises ValueError for an unknown variant.
    """
    from dataclasses import replace

    if variant not in ABLATIONS:
        raise ValueError(f"unknown ablation {variant!r}; choose from {', '.join(ABLATIONS)}")
    if variant in ("full", "no-lighting"):
        return config
    if variant == "no-lrn":
        return replace(config, convs=tuple(replace(c, lrn=False) for c in config.convs))
    if variant == "pool-2/2":
        return replace(config, pool_size=2, pool_stride=2)
    if variant == "no-dropout":
        return replace(config, dropout=0.0)
    if variant == "one-tower":
        last = len(config.convs) - 1
        convs = tuple(c if k == last else replace(c, filters=c.filters // 2) for k, c in enumerate(config.convs))
        return replace(config, convs=convs, towers=1)
    # "no-conv4": a middle layer (not the first, which reads the image, nor the last, which pools).
    if len(config.convs) < 4:
        raise ValueError(f"no-conv4: the config has only {len(config.convs)} conv layers")
    return replace(config, convs=config.convs[:3] + config.convs[4:])


def four_layer_net(activation: str = "relu", *, input_shape=(32, 32, 3), classes: int = 10, width: int = 16,
                   weight_std="he", devices=("cpu",), seed: int = 0, dtype="float32", precision: str = "fp32") -> Net:
    """Figure 1's kind of net: three conv layers and a softmax fc layer, no regularisation.

    conv1 5x5 pad 2 (width filters) -> act -> pool 3/2 -> conv2 5x5 pad 2 (2 width) -> act
    -> pool 3/2 -> conv3 3x3 pad 1 (2 width) -> act -> pool 3/2 -> fc classes. activation
    is "relu" (§3.1) or "tanh" (the saturating baseline); the weights start from He's
    N(0, 2/fan_in) and the biases at 0 for both, so the two nets differ only in the unit.
    No LRN, dropout or weight decay: the paper's Figure 1 uses none.
    """
    from .net import Tanh

    if activation not in ("relu", "tanh"):
        raise ValueError(f"activation must be 'relu' or 'tanh', got {activation!r}")
    act = ReLU if activation == "relu" else Tanh
    w = int(width)
    layers, top = [], "data"
    for k, (filters, size) in enumerate(((w, 5), (2 * w, 5), (2 * w, 3)), start=1):
        layers += [Conv2d(f"conv{k}", top, filters=filters, size=size, padding=size // 2, weight_std=weight_std),
                   act(f"{activation}{k}", f"conv{k}"),
                   MaxPool(f"pool{k}", f"{activation}{k}", size=3, stride=2)]
        top = f"pool{k}"
    layers += [Flatten("flatten", top), Linear("fc4", "flatten", units=classes, weight_std=weight_std),
               SoftmaxCrossEntropy("loss", "fc4")]
    return Net(layers, input_shape=input_shape, devices=devices, seed=seed, dtype=dtype, precision=precision)


__all__ = ["alexnet", "alexnet_config", "digits_net", "digits_config", "small_net", "small_config", "tower_net",
           "TowerNetConfig", "ConvBlock", "map_weights",
           "ABLATIONS", "ablated", "four_layer_net"]
