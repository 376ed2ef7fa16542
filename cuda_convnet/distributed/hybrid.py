"""The hybrid scheme of cuda-convnet2 (Krizhevsky 2014, "One weird trick for parallelizing
convolutional neural networks", §3): convolutional layers data-parallel, the fully
connected head model-parallel.

    net = models.small_net(10, towers=1, devices=("cpu",))   # net.parallel: convs "data", fcs "model"
    opt = SGD(net.parameters(), lr=0.01)                      # the full net's optimizer, as for one process
    hp = HybridParallel(net, group)                           # or model_parallel=("fc6", "fc7", "fc8")
    fit(net, opt, train, val, batch_size=B // group.world_size, distributed=hp, ...)

The per-layer choice is stated in the model definition (`Net.parallel`, layer name ->
"data" or "model", which models.tower_net fills from its config: convs "data", fc layers
"model"), or overridden by the `model_parallel` argument. The model-parallel layers are
Linear layers which, with the element-wise layers between them (ReLU, Tanh,
Dropout), form the chain that ends at the loss. Everything before the first of them is the
trunk, trained data-parallel. Each rank holds the whole trunk and the r-th slice of the
units of every model-parallel layer (units % world_size == 0), taken from the full net
(rank 0's, broadcast by sync_state), so the slices together are the one-process net.

One step, world size N, per-rank batch b, global batch B = N b (the paper's scheme with
all features exchanged at once):

  forward   the trunk on the rank's b examples -> features (b, F); all-gather the features
            and the labels of every rank -> (B, F); each model-parallel layer computes its
            slice of units for all B examples, the ReLU/Tanh after it act on the slice, and
            an all-gather along the features gives the full (B, U), on which the layer's
            dropout runs (every rank the same: the mask of element (i, j) is a Philox draw of
            its flat index in the (B, U) tensor, cuda_convnet.random, so it is the mask one
            process draws for the global batch: same key, the net's own, and same counter
            (step, subsequence)). The logits (B, C) and the loss (the mean over B) are the same on
            every rank.
  backward  every rank takes its columns of the gradient of each gathered tensor (after the
            dropout's backward on the full tensor); each layer's weight gradient is local
            (its own slice, from all B examples); its input gradient is a partial sum over
            the slices, completed by an all-reduce (SUM) of which the rank keeps its columns
            (for the features: its b rows, a reduce-scatter written as all-reduce + slice since
            gloo has no reduce-scatter). The trunk's backward from those rows gives a share
            of the global-batch gradient; the trunk's buckets are all-reduced as SUMS.
  update    the fused SGD over the trunk and the rank's slices (identical trunks on every
            rank; the slices are the one-process update's rows), with the hyperparameters of
            the full net's optimizer (so a learning-rate schedule acting on it applies).

So N ranks equal one process with batch B up to float32 summation order, dropout included.
The full `net` and its optimizer are brought up to date by gather_state (all-gather of the
slices and their velocities), which `fit` calls before each validation pass and checkpoint:
every rank validates the whole net and rank 0 writes a one-process checkpoint. Limits: one
device per rank (the grouped, one-column form of a net); synchronous exchanges in the head
(the trunk's gradient all-reduce is the overlapped one of reducer.py); the full net is kept
on every rank beside the slices (for validation and checkpoints); the NCCL path (CuPy
arrays through DLPack) has not run on GPUs.
"""
from __future__ import annotations

import numpy as np

from ..net.graph import Net, NonFiniteError, Parameter
from ..net.layers import Context, Linear
from ..optim import SGD
from .rank import Rank
from .reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from .seeds import apply_rank_seeds

_ELEMENTWISE = ("relu", "tanh", "dropout")


def model_parallel_layers(net: Net) -> list[str]:
    """The layers `net.parallel` marks "model", in layer order (ValueError when it states
    no choice or a value other than "data"/"model")."""
    table = net.parallel
    if not table:
        raise ValueError("the net states no per-layer parallel choice (Net.parallel is empty; models.tower_net "
                         "fills it): pass model_parallel=(...) naming the fc layers to split")
    bad = {k: v for k, v in table.items() if v not in ("data", "model")}
    if bad:
        name, v = next(iter(bad.items()))
        raise ValueError(f"Net.parallel: layer {name!r} is {v!r}, expected 'data' or 'model'")
    return [layer.name for layer in net.layers if table.get(layer.name) == "model"]


class HybridParallel(Rank):
    def __init__(self, net: Net, group, *, model_parallel=None, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        """net: the full one-process net; group: a ProcessGroup. model_parallel: the fc layers
        to split (default: those `net.parallel` marks "model").

        Raises ValueError when the named layers are not a chain of fc (and element-wise)
        layers ending at the loss, a layer's units do not split over the ranks, the net
        spans several devices, or (model_parallel=None) the net states no choice.
        """
        super().__init__(net, group)
        names = list(model_parallel_layers(net) if model_parallel is None else model_parallel)
        if not names:
            raise ValueError("model_parallel names no layer")
        if net.loss_layer is None:
            raise ValueError("the hybrid scheme trains a net that ends in a SoftmaxCrossEntropy loss")
        if len(set(net.device_names)) != 1 or len(net.devices) != 1:
            raise ValueError(f"the hybrid scheme runs one device per rank (the grouped one-column form of a net); "
                             f"this net is on {net.device_names}")
        layers = net.layers[:-1]
        by_name = {layer.name: i for i, layer in enumerate(layers)}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"model_parallel: no layer {missing[0]!r} in the net")
        not_fc = [n for n in names if not isinstance(layers[by_name[n]], Linear)]
        if not_fc:
            layer = layers[by_name[not_fc[0]]]
            raise ValueError(f"model_parallel: layer {layer.name!r} ({layer.type}) cannot be split over the ranks; "
                             "only fully connected layers are model-parallel")
        first = by_name[names[0]]
        head = layers[first:]
        prev = head[0].inputs[0]
        for layer in head:
            if layer.inputs != (prev,):
                raise ValueError(f"model_parallel: layer {layer.name!r} does not read {prev!r}; the head must be a "
                                 "chain")
            if isinstance(layer, Linear):
                if layer.name not in names:
                    raise ValueError(f"model_parallel: fc layer {layer.name!r} of the head is not named")
                if layer.units % self.world_size:
                    raise ValueError(f"model_parallel: {layer.name!r} has {layer.units} units, which do not split "
                                     f"over {self.world_size} ranks")
            elif layer.type not in _ELEMENTWISE:
                raise ValueError(f"model_parallel: layer {layer.name!r} ({layer.type}) between the fc layers is not "
                                 f"element-wise ({', '.join(_ELEMENTWISE)})")
            prev = layer.name
        if net.loss_layer.inputs != (prev,):
            raise ValueError("model_parallel: the head must end at the loss's input")

        # The data-parallel trunk (its weights are set by _load_full).
        self.trunk = Net(layers[:first], input_shape=net.input_shape, devices=net.device_names, seed=net.seed,
                         dtype=net.dtype.name, init=False, precision=net.precision)
        self.trunk.dropout_subsequences = net.dropout_subsequences
        apply_rank_seeds(self.trunk, self.rank)
        self.dev = self.trunk.devices[0]
        self.head = list(head)
        self.loss_layer = net.loss_layer
        self.slices: dict[str, dict[str, Parameter]] = {}
        self.local_optimizer: SGD | None = None     # over the trunk and the slices
        self._load_full(net.state_dict(), None)
        self.reducer = GradientReducer(self.trunk, self.world_size, bucket_bytes=bucket_bytes, average=False)

    def _rows(self, layer) -> slice:
        u = layer.units // self.world_size
        return slice(self.rank * u, (self.rank + 1) * u)

    def _load_full(self, state: dict, velocities: dict | None, hyper: dict | None = None) -> None:
        """Set the trunk and this rank's slices (rows [r u/N, (r+1) u/N) of each fc weight and
        bias) from the full net's host arrays; likewise the velocities (None: zeros)."""
        self.trunk.load_state_dict({k: v for k, v in state.items() if k.split(".")[0] in self.trunk.params})
        for layer in self.head:
            if isinstance(layer, Linear):
                rows = self._rows(layer)
                self.slices[layer.name] = {k: Parameter(f"{layer.name}.{k}", layer.name,
                                                        self.dev.asarray(state[f"{layer.name}.{k}"][rows], copy=True),
                                                        self.dev)
                                           for k in ("weight", "bias")}
        self.local_optimizer = SGD(self.parameters(), **(hyper or {}))
        if velocities is not None:
            mine = {}
            for p in self.parameters():
                v = velocities[p.name]
                mine[p.name] = v[self._rows(next(l for l in self.head if l.name == p.layer))] \
                    if p.layer in self.slices else v
            self.local_optimizer.load_state_dict({**self.local_optimizer.hyperparameters(), "velocities": mine})
        self.trunk.step = self.net.step

    # ------------------------------------------------------------------ collectives
    # gloo takes host tensors (NumPy memory, no copy); NCCL takes GPU tensors: CuPy arrays
    # through DLPack, after the Net's stream has finished them (these exchanges are synchronous).
    def _collective(self, what, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as e:  # torch's DistBackendError and kin
            raise self._failure(what, e) from e

    def _to_torch(self, a):
        if self.group.backend == "nccl":
            if isinstance(a, np.ndarray):
                return self.torch.from_numpy(np.ascontiguousarray(a)).cuda()
            self.dev.synchronize()
            return self.torch.from_dlpack(self.dev.xp.ascontiguousarray(a)).clone()
        self.dev.synchronize()
        return self.torch.from_numpy(np.array(self.dev.to_host(a), order="C", copy=True))

    def _from_torch(self, t):
        if t.is_cuda:
            self.torch.cuda.current_stream().synchronize()
            return self.dev.asarray(self.dev.xp.from_dlpack(t))
        return self.dev.asarray(t.numpy())

    def _all_gather(self, a, axis: int):
        """Concatenate every rank's `a` along `axis`, in rank order (on the rank's device)."""
        t = self._to_torch(a)
        parts = [self.torch.empty_like(t) for _ in range(self.world_size)]
        self._collective("an all-gather of the hybrid scheme", self.dist.all_gather, parts, t)
        return self._from_torch(self.torch.cat(parts, dim=axis).contiguous())

    def _all_reduce(self, a):
        t = self._to_torch(a)
        self._collective("an all-reduce of the hybrid scheme", self.dist.all_reduce, t)
        return self._from_torch(t)

    def _host(self, a) -> np.ndarray:
        self.dev.synchronize()
        return np.ascontiguousarray(self.dev.to_host(a))

    # ------------------------------------------------------------------ training
    def parameters(self) -> list[Parameter]:
        """The trunk's parameters, then this rank's slices (what the rank's SGD updates)."""
        return self.trunk.parameters() + [p for s in self.slices.values() for p in s.values()]

    def sync_state(self, optimizer) -> None:
        """Start every rank from rank 0's full net and velocities (`optimizer` is built on
        `self.net.parameters()`): broadcast them, then take this rank's slices."""
        optimizer.check_parameters(self.net.parameters(), "HybridParallel")
        self.broadcast_state(optimizer)
        self._load_full(self.net.state_dict(), optimizer.state_dict()["velocities"], optimizer.hyperparameters())

    def gather_state(self, optimizer) -> None:
        """Make `self.net` and `optimizer` the one-process state: the trunk, the all-gathered
        slices and their velocities, and the step (a collective: every rank calls it)."""
        state, vel = self.trunk.state_dict(), {}
        for p in self.trunk.parameters():
            vel[p.name] = self._host(self.local_optimizer.velocities[p.name])
        for params in self.slices.values():
            for p in params.values():
                state[p.name] = self._host(self._all_gather(p.data, axis=0))
                vel[p.name] = self._host(self._all_gather(self.local_optimizer.velocities[p.name], axis=0))
        self.net.load_state_dict(state)
        optimizer.load_state_dict({**optimizer.hyperparameters(), "velocities": vel})
        self.net.step = self.trunk.step

    def train_step(self, x, labels, optimizer) -> dict:
        """One SGD step on this rank's b examples of the global batch, with `optimizer`'s
        hyperparameters (the full net's SGD; its velocities are this object's until
        gather_state); -> the global batch's {"loss", "top1_err", "top5_err"} (the same on
        every rank). Raises NonFiniteError (on every rank) for a NaN/Inf loss."""
        optimizer.check_parameters(self.net.parameters(), "HybridParallel")
        opt = self.local_optimizer
        opt.lr, opt.momentum, opt.weight_decay = optimizer.lr, optimizer.momentum, optimizer.weight_decay
        try:
            return self._step(x, labels, opt)
        except BaseException:
            self.reducer.reset()
            raise

    def _step(self, x, labels, optimizer) -> dict:
        trunk, dev, n = self.trunk, self.dev, self.world_size
        b = x.shape[0]
        acts = trunk._forward(x, True, keep=True)
        # The head draws the one-process net's dropout masks: its key, its counter.
        ctx = Context(trunk.step, self.net.dropout_seed, self.net.dropout_subsequences, self.net.precision)
        h = self._all_gather(acts[trunk.output_name], axis=0)                  # (B, F)
        y = self._all_gather(np.asarray(labels, dtype=np.int32), axis=0)
        saved = []           # (layer, input, output), or None: an all-gather along the features
        sliced = False       # h holds this rank's columns only
        with dev.activate():
            for i, layer in enumerate(self.head):
                if sliced and layer.type == "dropout":
                    h = self._all_gather(h, axis=1)                              # the full (B, U)
                    saved.append(None)
                    sliced = False
                params = {k: p.data for k, p in self.slices.get(layer.name, {}).items()}
                out = layer.forward(dev, [h], params, True, ctx)
                saved.append((layer, h, out))
                h = out
                sliced = sliced or isinstance(layer, Linear)
                nxt = self.head[i + 1] if i + 1 < len(self.head) else None
                if sliced and (nxt is None or isinstance(nxt, Linear)):
                    h = self._all_gather(out, axis=1)
                    saved.append(None)
                    sliced = False
            labels_dev = dev.asarray(np.asarray(dev.to_host(y)).astype(np.int32))
            loss, probs = self.loss_layer.forward(dev, [h], {}, True, ctx, labels=labels_dev)
            loss = float(dev.to_host(loss))
            if not np.isfinite(loss):   # the same loss on every rank: all stop here
                raise NonFiniteError(f"training stopped at step {trunk.step}: the loss is {loss} (hybrid scheme). "
                                     "The parameters are those before this step.", step=trunk.step, layer=None)
            classes = h.shape[1]
            k5 = min(5, classes)
            errs = dev.ops.topk_errors(probs, labels_dev, ks=(1, k5))
            dy = self.loss_layer.backward(dev, probs, labels_dev)              # d(mean over B)/dlogits
            for item in reversed(saved):
                if item is None:           # the backward of an all-gather along features: my columns
                    u = dy.shape[1] // n
                    dy = dev.xp.ascontiguousarray(dy[:, self.rank * u:(self.rank + 1) * u])
                    continue
                layer, inp, out = item
                params = self.slices.get(layer.name, {})
                dxs, dparams = layer.backward(dev, [inp], out, dy, {k: p.data for k, p in params.items()}, ctx,
                                              [True])
                for k, p in params.items():
                    p.grad = dparams[k]
                dy = dxs[0]
                if isinstance(layer, Linear):                            # partial over the slices
                    dy = self._all_reduce(dy)
        dfeat = dev.xp.ascontiguousarray(dy[self.rank * b:(self.rank + 1) * b])   # my rows
        trunk._backward(acts, {trunk.output_name: dfeat})
        trunk.synchronize()
        self._reduce_and_update(trunk, optimizer)
        self.net.step = trunk.step
        total = max(1, h.shape[0])
        return {"loss": loss, "top1_err": errs[1] / total, "top5_err": errs[k5] / total}

    # ------------------------------------------------------------------ state
    def full_state_dict(self) -> dict[str, np.ndarray]:
        """The whole net's parameters (trunk + gathered slices) as host arrays, on every rank."""
        state = self.trunk.state_dict()
        for name, params in self.slices.items():
            for k, p in params.items():
                state[f"{name}.{k}"] = self._host(self._all_gather(p.data, axis=0))
        return state
