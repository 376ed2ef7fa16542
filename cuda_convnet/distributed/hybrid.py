"""The hybrid scheme of cuda-convnet2 (Krizhevsky 2014, "One weird trick for parallelizing
convolutional neural networks", §3): convolutional layers data-parallel, the fully
connected head model-parallel.

    hp = HybridParallel(net, group, model_parallel=("fc6", "fc7", "fc8"))
    opt = SGD(hp.parameters(), lr=0.01)
    stats = hp.train_step(x_local, y_local, opt)        # x_local: this rank's b examples
    full = hp.full_state_dict()                          # the whole net's weights, every rank

The per-layer choice is the `model_parallel` argument: the named FullyConnected layers,
which with the element-wise layers between them (ReLU, Tanh) must form the chain that
ends at the loss. Everything before the first of them is the trunk, trained data-parallel.
Each rank holds the whole trunk and the r-th slice of the units of every model-parallel
layer (units % world_size == 0), taken from the full net built with the same seed, so the
slices together are the one-process net.

One step, world size N, per-rank batch b, global batch B = N b (the paper's scheme with
all features exchanged at once):

  forward   the trunk on the rank's b examples -> features (b, F); all-gather the features
            and the labels of every rank -> (B, F); each model-parallel layer computes its
            slice of units for all B examples, the element-wise layers after it act on the
            slice, and an all-gather along the features gives the next layer its full input
            (B, U); the logits (B, C) and the loss (the mean over B) are the same on every rank.
  backward  every rank takes its columns of dlogits; each layer's weight gradient is local
            (its own slice, from all B examples); its input gradient is a partial sum over
            the slices, completed by an all-reduce (SUM) of which the rank keeps its columns
            (for the features: its b rows, a reduce-scatter written as all-reduce + slice since
            gloo has no reduce-scatter). The trunk's backward from those rows gives a share
            of the global-batch gradient; the trunk's buckets are all-reduced as SUMS.
  update    the fused SGD over the trunk and the rank's slices (identical trunks on every
            rank; the slices are the one-process update's rows).

So N ranks equal one process with batch B up to float32 summation order. Limits: one
device per rank (the grouped, one-column form of a net), no dropout in the model-parallel
head, synchronous exchanges (the trunk's gradient all-reduce is the overlapped one of
reducer.py); the NCCL path (CuPy arrays through DLPack) has not run on GPUs.
"""
from __future__ import annotations

import numpy as np

from ..net.graph import Net, Parameter
from ..net.layers import FullyConnected
from .group import collective_failure
from .reducer import DEFAULT_BUCKET_BYTES, GradientReducer
from .seeds import apply_rank_seeds

_ELEMENTWISE = ("relu", "tanh")


class HybridParallel:
    def __init__(self, net: Net, group, *, model_parallel, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        """net: the full one-process net (same seed on every rank); group: a ProcessGroup.

        Raises ValueError when the named layers are not a chain of fc (and element-wise)
        layers ending at the loss, a layer's units do not split over the ranks, or the net
        spans several devices.
        """
        from ._torch import require_torch

        self.torch, self.dist = require_torch()
        self.group, self.rank, self.world_size = group, group.rank, group.world_size
        names = list(model_parallel)
        if not names:
            raise ValueError("model_parallel names no layer")
        if net.loss_layer is None:
            raise ValueError("the hybrid scheme trains a net that ends in a SoftmaxCrossEntropy loss")
        if len(set(net.device_names)) != 1:
            raise ValueError(f"the hybrid scheme runs one device per rank; this net is on {net.device_names}")
        layers = net.layers[:-1]
        by_name = {layer.name: i for i, layer in enumerate(layers)}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(f"model_parallel: no layer {missing[0]!r} in the net")
        first = by_name[names[0]]
        head = layers[first:]
        prev = head[0].inputs[0]
        for layer in head:
            if layer.inputs != (prev,):
                raise ValueError(f"model_parallel: layer {layer.name!r} does not read {prev!r}; the head must be a "
                                 "chain")
            if isinstance(layer, FullyConnected):
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

        # The data-parallel trunk, with the full net's weights.
        self.trunk = Net(layers[:first], input_shape=net.input_shape, devices=net.device_names, seed=net.seed,
                         dtype=net.dtype.name, init=False)
        full = net.state_dict()
        self.trunk.load_state_dict({k: v for k, v in full.items() if k.split(".")[0] in self.trunk.params})
        self.dev = self.trunk.devices[0]
        self.head = list(head)
        self.loss_layer = net.loss_layer
        # This rank's slices: rows [r u/N, (r+1) u/N) of each fc weight and bias.
        self.slices: dict[str, dict[str, Parameter]] = {}
        for layer in self.head:
            if isinstance(layer, FullyConnected):
                u = layer.units // self.world_size
                rows = slice(self.rank * u, (self.rank + 1) * u)
                self.slices[layer.name] = {k: Parameter(f"{layer.name}.{k}", layer.name,
                                                        self.dev.asarray(full[f"{layer.name}.{k}"][rows], copy=True),
                                                        self.dev)
                                           for k in ("weight", "bias")}
        apply_rank_seeds(self.trunk, self.rank)
        self.reducer = GradientReducer(self.trunk, self.world_size, bucket_bytes=bucket_bytes, average=False)

    # ------------------------------------------------------------------ collectives
    # gloo takes host tensors (NumPy memory, no copy); NCCL takes GPU tensors: CuPy arrays
    # through DLPack, after the Net's stream has finished them (these exchanges are synchronous).
    def _collective(self, what, fn, *args):
        try:
            return fn(*args)
        except RuntimeError as e:  # torch's DistBackendError and kin
            raise collective_failure(self.rank, self.world_size, self.group.timeout_s, what, e) from e

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
        """The trunk's parameters, then this rank's slices (what the optimizer updates)."""
        return self.trunk.parameters() + [p for s in self.slices.values() for p in s.values()]

    def train_step(self, x, labels, optimizer) -> dict:
        """One SGD step on this rank's b examples of the global batch; -> the global batch's
        {"loss", "top1_err", "top5_err"} (the same on every rank)."""
        try:
            return self._step(x, labels, optimizer)
        except BaseException:
            self.reducer.reset()
            raise

    def _step(self, x, labels, optimizer) -> dict:
        trunk, dev, n = self.trunk, self.dev, self.world_size
        b = x.shape[0]
        ctx = trunk._context()
        acts = trunk._forward(x, True, keep=True)
        h = self._all_gather(acts[trunk.output_name], axis=0)                  # (B, F)
        y = self._all_gather(np.asarray(labels, dtype=np.int32), axis=0)
        saved = []                                                               # (layer, input, output)
        with dev.activate():
            for i, layer in enumerate(self.head):
                params = {k: p.data for k, p in self.slices.get(layer.name, {}).items()}
                out = layer.forward(dev, [h], params, True, ctx)
                saved.append((layer, h, out))
                nxt = self.head[i + 1] if i + 1 < len(self.head) else None
                h = out
                if nxt is None or isinstance(nxt, FullyConnected):
                    h = self._all_gather(out, axis=1)                            # the full (B, U)
                    saved.append(None)
            labels_dev = dev.asarray(np.asarray(dev.to_host(y)).astype(np.int32))
            loss, probs = self.loss_layer.forward(dev, [h], {}, True, ctx, labels=labels_dev)
            loss = float(dev.to_host(loss))
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
                if isinstance(layer, FullyConnected):                            # partial over the slices
                    dy = self._all_reduce(dy)
        dfeat = dev.xp.ascontiguousarray(dy[self.rank * b:(self.rank + 1) * b])   # my rows
        trunk._backward(acts, {trunk.output_name: dfeat})
        trunk.synchronize()
        self.reducer.finish()
        optimizer.step()
        trunk.synchronize()
        trunk.step += 1
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
