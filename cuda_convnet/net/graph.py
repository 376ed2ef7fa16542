"""The Net: named layers, each with its inputs and its device (ARCHITECTURE.md §6).

    net = Net([Conv2d("conv1", "data", filters=96, size=11, stride=4, padding=(1, 2, 1, 2)),
               ReLU("relu1", "conv1"), ...,
               SoftmaxCrossEntropy("loss", "fc8")],
              input_shape=(224, 224, 3), devices=("cpu",), seed=0)
    stats = net.train_step(x, labels, opt)     # {"loss", "top1_err", "top5_err"}
    probs = net.predict(x)                     # softmax probabilities, NumPy

Rules of the graph:

* "data" is the input batch (N, H, W, C); it lives on the first device. Layers are listed
  so that every input is defined before it is used. The last layer may be a
  SoftmaxCrossEntropy (the loss); `train_step` needs it.
* `device` on a layer is an index into `devices`. Wherever a layer reads an output made
  on another logical device the Net inserts a Copy layer (one per (output, device) pair):
  on cuda a peer-to-peer or device-to-device copy ordered by events, on the host a plain
  copy. Copies are not part of the spec (they follow from it); the summary shows them.
* forward runs the layers in order; backward in reverse; where an output feeds several
  layers its gradient is the sum of theirs. Parameters and their gradients (and the
  optimizer's velocities) live on their layer's device.
* Dropout masks depend on (seed, step, subsequence): `net.step` counts training steps and is
  saved in checkpoints, so a resumed run draws the same masks.
* A ReLU that is the only reader of a conv or fc layer's output is fused into that layer's
  GEMM epilogue (`forward(..., relu=True)`): the ReLU layer stays in the graph under its
  name, launches nothing forward (its output is the fused layer's), and its backward reads
  the mask from its output y > 0 as before. Outputs and gradients are those of the
  unfused graph (`Net(..., fuse_relu=False)`); `features` of the conv/fc layer itself
  runs it unfused, so the pre-activation stays reachable.
* A ReLU whose only reader is an LRN or a max-pool layer (relu1 -> norm1, relu5 -> pool5)
  is fused into that layer's backward (`lrn_backward` / `max_pool_backward(...,
  relu_mask=True)`: dx zeroed where its input, the ReLU's output, is <= 0, in the
  epilogue, where that input is already loaded): the ReLU's backward launches nothing and
  passes the gradient through. Gradients are the unfused graph's bit for bit;
  `fuse_relu=False` turns this fusion off too.
* `precision` (Net(..., precision="tf32")) is the arithmetic of every conv and fc GEMM,
  forward and backward: "fp32" (float32 SIMT kernels, the default), "3xtf32", "tf32" or
  "bf16" (tensor cores; checks.PRECISIONS, reference/linear.py). Activations, weights and
  every other op stay float32; the spec (and so a checkpoint) records it.
* One training step blocks the host once (one device): labels are range-checked on the
  host before their upload, and the loss and the top-k error counts come back in one
  device-to-host read (Device.to_host); every other dependency is stream-ordered.
"""
from __future__ import annotations

import math

import numpy as np

from .. import checks
from .devices import Device
from .layers import Context, Copy, Layer, SoftmaxCrossEntropy, layer_from_spec

SPEC_FORMAT = "cuda_convnet.net"


class NonFiniteError(FloatingPointError):
    """The loss became NaN or infinite; `.step` and `.layer` say where it started."""

    def __init__(self, message, *, step: int, layer: str | None):
        super().__init__(message)
        self.step, self.layer = step, layer


class Parameter:
    """A learned tensor of one layer: `data` and, after a backward pass, `grad`, on `device`."""

    def __init__(self, name: str, layer: str, data, device: Device):
        self.name, self.layer, self.data, self.device = name, layer, data, device
        self.grad = None

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(math.prod(self.data.shape))

    def __repr__(self):
        return f"Parameter({self.name!r}, shape={self.shape}, device={self.device.name!r})"


def _dropout_seed(seed: int) -> int:
    """The Philox key of the dropout masks: derived from the net's seed, not equal to it."""
    return int(np.random.SeedSequence([int(seed), 0xD80F]).generate_state(1, np.uint64)[0])


class Net:
    """A network: named layers, each with its inputs and its device (module docstring).

    Build one with `models` (models.alexnet: §3.5, Figure 2) or from layers
    (net.layers: Conv2d, Linear, ReLU, LRN, MaxPool, Dropout, ..., SoftmaxCrossEntropy).
    Inputs are NHWC: x of shape (N, *input_shape), e.g. (N, 224, 224, 3), in the net's
    dtype (float32, or float64 on the cpu backend), C-contiguous; a NumPy array, or a CuPy
    array on a cuda net. Labels are integers of shape (N,) in [0, classes). A wrong shape
    (NCHW included) raises ValueError, a wrong dtype or a non-array TypeError, each naming
    what the net takes.

    train_step(x, labels, opt) -> {"loss", "top1_err", "top5_err"} (Python floats, the
    batch's mean loss and error fractions); predict(x) -> (N, classes) softmax
    probabilities; forward(x) -> logits; features(x, layer) -> any layer's activations;
    parameters() -> for SGD; state_dict() / load_state_dict(); spec() / Net.from_spec;
    save_checkpoint / load_checkpoint (cuda_convnet.net.checkpoint); summary() prints the
    Figure 2-like table. `step` counts training steps (it keys the dropout masks, §4.2).
    """

    def __init__(self, layers, *, input_shape, devices=("cpu",), seed: int = 0, dtype="float32", init: bool = True,
                 fuse_relu: bool = True, precision: str = "fp32"):
        """init=False allocates zero parameters instead of drawing them (to load weights next).
        fuse_relu=False runs every ReLU as its own launch, forward and backward (the
        fusions' test twin).

        precision: the arithmetic of every conv and fc GEMM, forward and backward
        (checks.PRECISIONS: "fp32", the default, "3xtf32", "tf32", "bf16"; README
        "Precision" gives the PyTorch equivalents); ValueError for any other value. It can
        be changed between steps (``net.precision = "tf32"``); checkpoints record it.
        """
        self.precision = precision
        self.fuse_relu = bool(fuse_relu)
        if isinstance(devices, str):
            devices = (devices,)
        self.devices = [Device(d) for d in devices]
        self.device_names = [d.name for d in self.devices]
        if not self.devices:
            raise ValueError("a Net needs at least one device")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.seed = int(seed)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        if self.dtype != np.float32 and any(d.kind != "cpu" for d in self.devices):
            raise ValueError("the emu and cuda backends compute in float32; use dtype='float32'")
        self.step = 0
        # Called as hook(params) with a layer's Parameters as soon as the backward pass has
        # set their .grad (in backward order), e.g. to start their all-reduce across ranks.
        self.grad_hooks: list = []
        # Layer name -> "data" or "model": how a hybrid job spreads each weighted layer over
        # its ranks (distributed.HybridParallel); models.tower_net states it for its nets.
        self.parallel: dict[str, str] = {}
        self._init = bool(init)
        # Rebuilt from their specs: the caller's layer objects are never mutated.
        self.layers: list[Layer] = [layer_from_spec(l.spec()) if isinstance(l, Layer) else layer_from_spec(l)
                                    for l in layers]
        self._build()

    @property
    def precision(self) -> str:
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        self._precision = checks.check_precision("Net", value)

    # ================================================================== construction
    def _build(self):
        names = set()
        self.loss_layer = None
        for i, layer in enumerate(self.layers):
            if layer.name in names or layer.name == "data":
                raise ValueError(f"duplicate layer name {layer.name!r}" if layer.name != "data"
                                 else "'data' is the input; no layer may be called that")
            if not 0 <= layer.device < len(self.devices):
                raise ValueError(f"layer {layer.name!r}: device {layer.device} is not an index into the "
                                 f"{len(self.devices)} devices {self.device_names}")
            for inp in layer.inputs:
                if inp != "data" and inp not in names:
                    raise ValueError(f"layer {layer.name!r} reads {inp!r}, which is not defined before it")
            if isinstance(layer, SoftmaxCrossEntropy):
                if i != len(self.layers) - 1:
                    raise ValueError(f"the loss layer {layer.name!r} must be the last layer")
                self.loss_layer = layer
            names.add(layer.name)
        if not self.layers:
            raise ValueError("a Net needs at least one layer")
        body = self.layers[:-1] if self.loss_layer else self.layers
        if not body:
            raise ValueError("a Net needs at least one layer before the loss")
        self.output_name = self.loss_layer.inputs[0] if self.loss_layer else body[-1].name

        # Dropout subsequences: number the unnumbered ones after the largest given one.
        drops = [l for l in body if l.type == "dropout"]
        nxt = max([l.subsequence + l.groups for l in drops if l.subsequence is not None], default=0)
        for l in drops:
            if l.subsequence is None:
                l.subsequence = nxt
                nxt += l.groups
        self.dropout_subsequences = max([l.subsequence + l.groups for l in drops], default=1)
        self.dropout_seed = _dropout_seed(self.seed)

        # The executed graph: the body, with a Copy wherever an edge crosses devices.
        where = {"data": 0}
        copies: dict[tuple[str, int], str] = {}
        self._exec: list[Layer] = []
        self._actual_inputs: dict[str, tuple[str, ...]] = {}
        for layer in self.layers:
            actual = []
            for inp in layer.inputs:
                src = where[inp]
                if src != layer.device:
                    key = (inp, layer.device)
                    if key not in copies:
                        cp = Copy(f"{inp}->{layer.device}", [inp], src=src, device=layer.device)
                        cp.src_device, cp.dst_device = self.devices[src], self.devices[layer.device]
                        self._exec.append(cp)
                        self._actual_inputs[cp.name] = (inp,)
                        where[cp.name] = layer.device
                        copies[key] = cp.name
                    inp = copies[key]
                actual.append(inp)
            self._actual_inputs[layer.name] = tuple(actual)
            where[layer.name] = layer.device
            if layer is not self.loss_layer:
                self._exec.append(layer)
        self._where = where

        # Shapes (per example) and parameters.
        self.shapes = {"data": self.input_shape}
        self.params: dict[str, dict[str, Parameter]] = {}
        for layer in self._exec + ([self.loss_layer] if self.loss_layer else []):
            in_shapes = [self.shapes[i] for i in self._actual_inputs[layer.name]]
            try:
                self.shapes[layer.name] = tuple(layer.output_shape(in_shapes))
            except ValueError as e:
                raise ValueError(f"layer {layer.name!r} with inputs of shapes {in_shapes}: {e}") from None
            dev = self.devices[layer.device]
            if self._init:
                host = layer.init_params(in_shapes, self.seed, self.dtype)
            else:
                host = {k: np.zeros(v, dtype=self.dtype) for k, v in layer.param_shapes(in_shapes).items()}
            self.params[layer.name] = {k: Parameter(f"{layer.name}.{k}", layer.name, dev.asarray(v), dev)
                                       for k, v in host.items()}

        # Which outputs need a gradient (not the input, nor what only depends on it).
        self._needs_grad = {"data": False}
        for layer in self._exec:
            self._needs_grad[layer.name] = bool(self.params[layer.name]) or any(
                self._needs_grad[i] for i in self._actual_inputs[layer.name])
        # The last layer (in execution order) that reads each output, to free early in eval.
        self._last_use = {}
        for idx, layer in enumerate(self._exec):
            for i in self._actual_inputs[layer.name]:
                self._last_use[i] = idx
        self._fuse_relus()

    def _fuse_relus(self):
        """{conv/fc name: relu name} for each ReLU fused into its producer's epilogue.

        Fused only where the ReLU is the sole reader of the output (so nothing else sees
        the pre-activation; a reader on another device reads through a Copy, which is then
        the reader) and the output is not the net's output.
        """
        readers: dict[str, list[Layer]] = {}
        for layer in self._exec + ([self.loss_layer] if self.loss_layer else []):
            for i in self._actual_inputs[layer.name]:
                readers.setdefault(i, []).append(layer)
        self._relu_of: dict[str, str] = {}
        self._fused_into: dict[str, str] = {}
        # The backward fusion: {relu name: lrn/max_pool name} and its inverse.
        self._masked_by: dict[str, str] = {}
        self._mask_of: dict[str, str] = {}
        if not self.fuse_relu:
            return
        for layer in self._exec:
            rd = readers.get(layer.name, [])
            if (layer.type in ("conv2d", "linear") and len(rd) == 1 and rd[0].type == "relu"
                    and layer.name != self.output_name):
                self._relu_of[layer.name] = rd[0].name
                self._fused_into[rd[0].name] = layer.name
            # The reader's dx is then the ReLU's whole dy (no other gradient is summed into
            # it), so masking it in the reader's epilogue is the ReLU's backward.
            if (layer.type == "relu" and len(rd) == 1 and rd[0].type in ("lrn", "max_pool")
                    and layer.name != self.output_name):
                self._masked_by[layer.name] = rd[0].name
                self._mask_of[rd[0].name] = layer.name

    def _run_forward(self, layer, dev, xs, params, train, ctx, fuse: bool = True):
        if fuse and layer.name in self._relu_of:
            return layer.forward(dev, xs, params, train, ctx, relu=True)
        if fuse and layer.name in self._fused_into:
            return xs[0]  # the producer's epilogue applied it: no launch
        return layer.forward(dev, xs, params, train, ctx)

    @classmethod
    def from_spec(cls, spec: dict, *, devices=None, init: bool = True, precision: str | None = None) -> Net:
        """Rebuild a Net from `net.spec()`; `devices` overrides the saved device names and
        `precision` the saved precision (a spec without one, written before nets had a
        precision, is "fp32": what those nets computed in).

        With the same seed the weights are the same as the original's at construction.
        """
        if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
            raise ValueError("not a cuda_convnet Net spec")
        devs = spec["devices"] if devices is None else devices
        if isinstance(devs, str):
            devs = [devs] * len(spec["devices"])
        if len(devs) != len(spec["devices"]):
            raise ValueError(f"this net has {len(spec['devices'])} logical devices {spec['devices']}; "
                             f"got {len(devs)}: {list(devs)}")
        if precision is None:
            precision = spec.get("precision", "fp32")
        net = cls(spec["layers"], input_shape=spec["input_shape"], devices=devs, seed=spec["seed"],
                  dtype=spec["dtype"], init=init, precision=precision)
        return net

    def spec(self) -> dict:
        """Everything needed to rebuild this net (JSON-serialisable); a checkpoint stores it."""
        return {"format": SPEC_FORMAT, "version": 1, "input_shape": list(self.input_shape),
                "devices": list(self.device_names), "seed": self.seed, "dtype": self.dtype.name,
                "precision": self.precision, "layers": [l.spec() for l in self.layers]}

    # ================================================================== parameters
    def parameters(self) -> list[Parameter]:
        return [p for layer in self.layers for p in self.params.get(layer.name, {}).values()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name -> host NumPy copy."""
        return {p.name: np.array(p.device.to_host(p.data), copy=True) for p in self.parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Set every parameter from host arrays (exact shapes; cast to the net's dtype)."""
        params = {p.name: p for p in self.parameters()}
        missing = sorted(set(params) - set(state))
        extra = sorted(set(state) - set(params))
        if missing or extra:
            raise ValueError(f"load_state_dict: missing {missing}, unexpected {extra}")
        for name, p in params.items():
            shape = tuple(np.shape(state[name]))
            if shape != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {shape}, the net needs {p.shape}")
        for name, p in params.items():
            p.data = p.device.asarray(state[name], dtype=self.dtype, copy=True)
            p.grad = None
        # The host-to-device copies are asynchronous on each device's stream: finish them,
        # so the caller may reuse its arrays and every stream sees the new weights.
        self.synchronize()

    def _context(self) -> Context:
        return Context(self.step, self.dropout_seed, self.dropout_subsequences, self.precision)

    # ================================================================== forward / backward
    def _input(self, x):
        want = f"(N, {', '.join(map(str, self.input_shape))})"
        if not (hasattr(x, "shape") and hasattr(x, "dtype")):
            raise TypeError(f"the net takes a {self.dtype.name} array of shape {want} (NumPy or CuPy), "
                            f"got {type(x).__name__}" + (" (convert it with np.asarray)"
                                                          if isinstance(x, (list, tuple)) else ""))
        shape = tuple(x.shape)
        if len(shape) != 1 + len(self.input_shape) or shape[1:] != self.input_shape:
            nchw = len(self.input_shape) == 3 and shape[1:] == (self.input_shape[2], *self.input_shape[:2])
            raise ValueError(f"the net takes input of shape {want}, got {shape}"
                             + (": that is NCHW; the net is NHWC (channels last): pass x.transpose(0, 2, 3, 1)"
                                if nchw else ""))
        if shape[0] == 0:
            raise ValueError(f"the input batch is empty (shape {shape}); pass at least one example")
        dt = np.dtype(x.dtype)
        if dt != self.dtype:
            if dt.newbyteorder("=") == self.dtype:  # same kind and size: only the byte order differs
                order = "big" if dt.byteorder == ">" else "little"
                raise TypeError(f"the input is {self.dtype.name} in {order}-endian byte order ({dt.str}); "
                                f"the net needs native byte order: convert it with x.astype(np.{self.dtype.name})")
            raise TypeError(f"the net computes in {self.dtype.name}; the input is {dt.name}")
        return self.devices[0].asarray(x)

    def _forward(self, x, train: bool, keep: bool):
        acts = {"data": self._input(x)}
        ctx = self._context()
        for idx, layer in enumerate(self._exec):
            dev = self.devices[layer.device]
            xs = [acts[i] for i in self._actual_inputs[layer.name]]
            params = {k: p.data for k, p in self.params[layer.name].items()}
            with dev.activate():
                acts[layer.name] = self._run_forward(layer, dev, xs, params, train, ctx)
            if not keep:
                for i in self._actual_inputs[layer.name]:
                    if self._last_use.get(i) == idx and i != self.output_name:
                        del acts[i]
        return acts

    def forward(self, x, train: bool = False):
        """The logits (the loss layer's input, or the last layer's output), (N, classes), on
        the device that computes them (a NumPy array on cpu/emu, CuPy on cuda).

        x: (N, *input_shape) NHWC in the net's dtype. train=True applies dropout with the
        masks of the current step (`net.step`).
        """
        out = self._forward(x, train, keep=False)[self.output_name]
        self.synchronize()
        return out

    def synchronize(self) -> None:
        """Wait for every device's queued work (a no-op on the host backends)."""
        for d in self.devices:
            d.synchronize()

    def features(self, x, layer: str | None = None) -> np.ndarray:
        """One layer's activations for a batch, test mode, as a host NumPy array.

        x: (N, *input_shape) in the net's dtype. layer: any layer name (or "data"; a Copy's
        name works too); None: the logits. Returns (N, *net.shapes[layer]) (NHWC for conv
        maps, (N, units) for fc layers). Only the layers up to `layer` run, and outputs no
        later layer reads are freed as it goes. Figure 4's neighbours use the last hidden
        layer (the input of the output fc layer). Raises ValueError for an unknown name
        or the loss layer (its output is a scalar, not an activation).
        """
        name = self.output_name if layer is None else str(layer)
        if self.loss_layer is not None and name == self.loss_layer.name:
            raise ValueError(f"features: {name!r} is the loss layer; ask for its input {self.output_name!r}")
        if name not in self.shapes:
            raise ValueError(f"features: no layer {name!r}; the net has {[l.name for l in self._exec]}")
        acts = {"data": self._input(x)}
        ctx = self._context()
        for idx, lay in enumerate(self._exec):
            if name in acts:
                break
            dev = self.devices[lay.device]
            params = {k: p.data for k, p in self.params[lay.name].items()}
            with dev.activate():
                # The layer asked for itself runs unfused: its pre-activation is the answer.
                acts[lay.name] = self._run_forward(lay, dev, [acts[i] for i in self._actual_inputs[lay.name]],
                                                   params, False, ctx, fuse=lay.name != name)
            for i in self._actual_inputs[lay.name]:
                if self._last_use.get(i) == idx and i != name:
                    del acts[i]
        self.synchronize()
        owner = self.devices[self._where[name]] if name in self._where else self.devices[0]  # "data": the first
        return np.asarray(owner.to_host(acts[name]))

    def predict(self, x) -> np.ndarray:
        """Softmax probabilities (N, classes) as a host NumPy array (test mode: dropout off,
        §4.2's scaling), in the net's dtype; each row sums to 1. x as for train_step."""
        logits = self.forward(x, train=False)
        dev = self.devices[self._where[self.output_name]]
        with dev.activate():
            # softmax_cross_entropy's probs do not depend on the labels; any valid ones do.
            dummy = dev.xp.zeros((logits.shape[0],), dtype=np.int32)
            _, probs = dev.ops.softmax_cross_entropy(logits, dummy)
        return dev.to_host(probs)

    def gradients(self, x, labels, train: bool = True) -> dict:
        """Forward and backward: leaves each parameter's gradient in `p.grad`; no update.

        Returns {"loss", "top1_err", "top5_err"} of the batch, the errors counted by the
        backend op ``topk_errors`` (a label tied with the k-th class is an error; top-5 is
        top-min(5, classes)). Raises NonFiniteError (and leaves the parameters untouched) if
        the loss is NaN or infinite, so non-finite probabilities never reach the counts.
        """
        if self.loss_layer is None:
            raise ValueError("this net has no SoftmaxCrossEntropy layer to train with")
        acts = self._forward(x, train, keep=True)
        ldev = self.devices[self.loss_layer.device]
        logits = acts[self._actual_inputs[self.loss_layer.name][0]]
        first = self.devices[0]
        # Labels are checked on the host (while the forward runs): the device ops then skip
        # their own range check, which on cuda is a read back from the device. A caller's
        # CuPy labels are read once, in stream order; NumPy labels cost no synchronisation.
        labels = first.to_host(first.adopt(labels))
        if labels.ndim != 1 or labels.shape[0] != logits.shape[0] or labels.dtype.kind not in "iu":
            raise ValueError(f"labels must be integers of shape ({logits.shape[0]},), got {labels.dtype} "
                             f"{labels.shape}")
        classes = logits.shape[1]
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"labels must be in [0, {classes}), got values in [{labels.min()}, {labels.max()}]")
        labels_dev = ldev.asarray(labels.astype(np.int32))
        k5 = min(5, classes)
        with ldev.activate():
            loss, probs = self.loss_layer.forward(ldev, [logits], {}, train, self._context(), labels=labels_dev,
                                                  check_labels=False)
            counts = ldev.ops.topk_errors(probs, labels_dev, ks=(1, k5), check_labels=False, on_device=True)
            # The step's one host read: loss and both counts together (float64 holds the
            # counts exactly), before the backward is queued, so a non-finite loss stops
            # the step with the parameters and gradients untouched.
            xp = ldev.xp
            packed = xp.concatenate([xp.asarray(loss, dtype=np.float64).reshape(1), counts.astype(np.float64)])
            loss, top1, top5 = (float(v) for v in ldev.to_host(packed))
            if not math.isfinite(loss):
                raise self._non_finite(acts, loss)
            dlogits = self.loss_layer.backward(ldev, probs, labels_dev, check_labels=False)
        self._backward(acts, {self._actual_inputs[self.loss_layer.name][0]: dlogits})
        # The loss device's queue needs no wait (its reads are stream-ordered); the others
        # may hold arrays lent to their streams by cross-device copies until they finish.
        for d in self.devices:
            if d is not ldev:
                d.synchronize()
        n = max(1, logits.shape[0])
        return {"loss": loss, "top1_err": top1 / n, "top5_err": top5 / n}

    def _backward(self, acts, grads: dict):
        """Backward pass from `grads` (output name -> its gradient; consumed), freeing `acts`."""
        ctx = self._context()
        for layer in reversed(self._exec):
            dy = grads.pop(layer.name, None)
            y = acts.pop(layer.name)
            if not self._needs_grad[layer.name]:
                continue
            dev = self.devices[layer.device]
            ins = self._actual_inputs[layer.name]
            params = self.params[layer.name]
            if dy is None:  # an output the loss does not depend on
                for p in params.values():
                    p.grad = dev.zeros(p.shape, p.dtype)
                self._grads_ready(dev, params)
                continue
            xs = [acts[i] for i in ins]
            need = [self._needs_grad[i] for i in ins]
            kw = {}
            acc = self._accumulate_into(layer, dev, ins, need, dy, grads)
            if acc is not None:
                kw["acc"] = acc
            if layer.name in self._mask_of:
                kw["relu_mask"] = True  # this layer's epilogue applies its producer ReLU's backward
            with dev.activate():
                if layer.name in self._masked_by:
                    dxs, dparams = [dy], {}  # the reader's epilogue applied the mask: no launch
                else:
                    dxs, dparams = layer.backward(dev, xs, y, dy, {k: p.data for k, p in params.items()}, ctx,
                                                  need, **kw)
                for k, p in params.items():
                    p.grad = dparams[k]
                self._grads_ready(dev, params)
                for n, (i, dx, nd) in enumerate(zip(ins, dxs, need)):
                    if nd and dx is not None:
                        if acc is not None and acc[n] is not None:
                            grads[i] = dx  # the layer added its gradient into grads[i] in place
                        else:
                            # Out of place: dx may be a view (Flatten) of a gradient still in use.
                            grads[i] = dx if i not in grads else self._add_gradients(grads[i], dx)
        acts.clear()

    @staticmethod
    def _add_gradients(a, b):
        """a + b, a new array: one elementwise kernel on a GPU (bench/launch_count.py counts
        these calls as launches)."""
        return a + b

    @staticmethod
    def _accumulate_into(layer, dev, ins, need, dy, grads):
        """For a layer whose backward can add into existing gradients (`accumulates_dx`,
        e.g. Concat through split_channels' beta): per input, the gradient already summed
        for it (to be added to in place, no separate add launched), else None; None when
        there is nothing to add to. An input listed twice accumulates at its first place
        only. A gradient that is a view (a Flatten's reshape of another gradient) or shares
        memory with dy is left to the out-of-place add: only an array the Net alone holds
        is written in place."""
        if not getattr(layer, "accumulates_dx", False):
            return None
        acc, seen = [], set()
        for i, nd in zip(ins, need):
            g = grads.get(i) if nd and i not in seen else None
            if g is not None and (g.base is not None or dev.xp.may_share_memory(g, dy)):
                g = None
            seen.add(i)
            acc.append(g)
        return acc if any(a is not None for a in acc) else None

    def _grads_ready(self, dev, params: dict) -> None:
        if params and self.grad_hooks:
            with dev.activate():  # on cuda the hooks see the layer's device and stream current
                for hook in self.grad_hooks:
                    hook(list(params.values()))

    def _non_finite(self, acts, loss) -> NonFiniteError:
        first = None
        for name in ["data"] + [l.name for l in self._exec]:
            if name in acts:
                dev = self.devices[self._where[name]]
                if not dev.all_finite(acts[name]):
                    first = name
                    break
        where = ("the input batch itself is not finite" if first == "data" else
                 f"first non-finite output: layer {first!r}" if first else
                 "every layer's output is finite (the logits overflow the softmax)")
        return NonFiniteError(f"training stopped at step {self.step}: the loss is {loss}; {where}. "
                              f"The parameters are those before this step.", step=self.step, layer=first)

    def train_step(self, x, labels, optimizer) -> dict:
        """One SGD step on a batch: forward (dropout on), backward, the optimizer's update
        (§5), step += 1.

        x: (N, *input_shape) NHWC in the net's dtype; labels: integers (N,) in [0, classes).
        Returns {"loss": mean cross-entropy, "top1_err", "top5_err": error fractions of the
        batch} as Python floats. Raises TypeError when `optimizer` is not a
        cuda_convnet.SGD, ValueError when it was built for another net's parameters or for
        a bad x or labels, NonFiniteError (parameters untouched) when the loss is not finite.
        """
        check_owner = getattr(optimizer, "check_parameters", None)
        if check_owner is None:
            raise TypeError(f"train_step: optimizer must be a cuda_convnet.optim.SGD, got {type(optimizer).__name__}")
        check_owner(self.parameters(), "train_step")
        stats = self.gradients(x, labels, train=True)
        # Queued behind the backward on each device's stream; no host wait (a host read of
        # a parameter goes through Device.to_host, which is ordered after it).
        optimizer.step(synchronize=False)
        self.step += 1
        return stats

    def device_label(self, index: int) -> str:
        name = self.device_names[index]
        return name if self.device_names.count(name) == 1 else f"{name}#{index}"

    def summary(self) -> str:
        """A table like the paper's Figure 2: layer, type, device, output shape, parameters."""
        rows = [("layer", "type", "device", "output (per example)", "parameters")]
        for layer in self._exec + ([self.loss_layer] if self.loss_layer else []):
            if isinstance(layer, Copy):
                dev = f"{self.device_label(layer.src)} -> {self.device_label(layer.device)}"
            else:
                dev = self.device_label(layer.device)
            shape = self.shapes[layer.name]
            n = sum(p.size for p in self.params[layer.name].values())
            # A fused ReLU is applied in its producer's epilogue: it launches nothing forward.
            kind = f"{layer.type} (fused)" if layer.name in self._fused_into else layer.type
            rows.append((layer.name, kind, dev, "x".join(map(str, shape)) if shape else "loss",
                         f"{n:,}" if n else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.append("-" * len(lines[0]))
        lines.append(f"input {'x'.join(map(str, self.input_shape))} on {self.device_label(0)}; "
                     f"total parameters: {self.num_parameters():,}")
        return "\n".join(lines)

    def __repr__(self):
        return (f"<Net: {len(self.layers)} layers on {self.device_names}, input {self.input_shape}, "
                f"{self.num_parameters():,} parameters>")
