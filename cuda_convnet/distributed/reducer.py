"""Gradient averaging across ranks in buckets, launched while the backward pass runs.

The parameters are packed, in the order the backward pass produces their gradients (the
reverse of `net.parameters()`), into buckets of at most `bucket_bytes` (one device's
parameters each; a parameter larger than the cap gets a bucket of its own). The Net calls
`on_grads_ready(params)` (its `grad_hooks`) right after each layer's backward; when the
last gradient of a bucket arrives the bucket is copied into its flat buffer and an
asynchronous all-reduce (SUM) of it starts, so communication overlaps the backward pass
of the layers below. `finish()` waits for the buckets in launch order, divides each sum
by the world size and points every `p.grad` at its slice of the averaged buffer; the
optimizer then applies the same update on every rank.

Determinism: the buckets, their launch order and the collective's reduction order are
fixed for a given net and world size, so repeat runs are bit-identical. Since every
rank's loss is the mean over its b examples, the average of the ranks' gradients is the
gradient of the mean loss over the global batch of world_size * b examples: the update of
one process on the global batch, up to float32 summation order.

Host devices (cpu, emu; gloo): the buffers are NumPy arrays shared with torch tensors
(`torch.from_numpy`, no copy), and gloo runs the all-reduce on its own threads.
cuda (NCCL): the buffers are CuPy arrays handed to torch through DLPack (`torch.from_dlpack`,
zero-copy). A bucket is packed on the Net's stream; an event makes a separate
communication stream wait for it and the all-reduce is issued with that stream current
(NCCL's stream waits on it); in `finish` the communication stream waits on the
collective, divides, and records an event the Net's stream waits on before the update.
The host never blocks on the GPU.
"""
from __future__ import annotations

import time

import numpy as np

from ._torch import require_torch

DEFAULT_BUCKET_BYTES = 25 * 2 ** 20   # torch DDP's default bucket size


class _Bucket:
    def __init__(self, device, params):
        self.device, self.params = device, list(params)
        self.offsets = np.cumsum([0] + [p.size for p in self.params]).tolist()
        self.names = {p.name for p in self.params}
        self.ready = 0
        self.buffer = self.tensor = self.work = None


class GradientReducer:
    """Average `net`'s gradients over the process group's ranks; hooks itself into `net`.

    group: a distributed.group.ProcessGroup (its world size) with torch.distributed
    initialised. Every parameter must be float32 or float64, and on cuda all of a rank's
    parameters on one GPU (NCCL takes one device per process). Raises ValueError otherwise.
    """

    def __init__(self, net, world_size: int, *, bucket_bytes: int = DEFAULT_BUCKET_BYTES, average: bool = True):
        if bucket_bytes < 1:
            raise ValueError(f"bucket_bytes must be >= 1, got {bucket_bytes}")
        self.torch, self.dist = require_torch()
        self.world_size = int(world_size)
        # average=False keeps the sum: for gradients that are already shares of one
        # global-batch gradient (the hybrid scheme's data-parallel layers).
        self._divisor = self.world_size if average else 1
        params = list(reversed(net.parameters()))
        if not params:
            raise ValueError("GradientReducer: the net has no parameters")
        gpus = {p.device.name for p in params if p.device.kind == "cuda"}
        if gpus and (len(gpus) > 1 or any(p.device.kind != "cuda" for p in params)):
            raise ValueError(f"distributed training puts each rank's net on one GPU (NCCL takes one device per "
                             f"process); this net's parameters are on {sorted({p.device.name for p in params})}")
        self.buckets: list[_Bucket] = []
        cur, size = [], 0
        for p in params:
            nbytes = p.size * p.dtype.itemsize
            if cur and (size + nbytes > bucket_bytes or cur[-1].device is not p.device or cur[-1].dtype != p.dtype):
                self.buckets.append(_Bucket(cur[0].device, cur))
                cur, size = [], 0
            cur.append(p)
            size += nbytes
        self.buckets.append(_Bucket(cur[0].device, cur))
        self._of = {p.name: b for b in self.buckets for p in b.params}
        self._comm = {}
        for b in self.buckets:
            self._allocate(b)
        self._launched: list[_Bucket] = []
        self.wait_seconds = 0.0     # host time blocked in the last finish() (exposed communication)
        net.grad_hooks.append(self.on_grads_ready)
        self.net = net

    # ------------------------------------------------------------------ buffers
    def _allocate(self, b: _Bucket) -> None:
        n, dtype, dev = b.offsets[-1], b.params[0].dtype, b.device
        if dev.kind == "cuda":
            import cupy

            with dev.activate():
                b.buffer = cupy.zeros(n, dtype=dtype)
            if dev.name not in self._comm:
                with cupy.cuda.Device(dev.ordinal):
                    stream = cupy.cuda.Stream(non_blocking=True)
                self._comm[dev.name] = (stream, self.torch.cuda.ExternalStream(
                    stream.ptr, device=self.torch.device("cuda", dev.ordinal)))
            dev.synchronize()
            b.tensor = self.torch.from_dlpack(b.buffer)
        else:
            b.buffer = np.zeros(n, dtype=dtype)
            b.tensor = self.torch.from_numpy(b.buffer)

    # ------------------------------------------------------------------ the hook
    def on_grads_ready(self, params) -> None:
        """Called by the Net after a layer's backward with that layer's Parameters."""
        for p in params:
            b = self._of[p.name]
            b.ready += 1
            if b.ready == len(b.params):
                self._launch(b)

    def _launch(self, b: _Bucket) -> None:
        dev = b.device
        with dev.activate():
            for p, lo, hi in zip(b.params, b.offsets, b.offsets[1:]):
                b.buffer[lo:hi] = p.grad.reshape(-1)
        if dev.kind == "cuda":
            import cupy

            stream, tstream = self._comm[dev.name]
            packed = cupy.cuda.Event(disable_timing=True)
            packed.record(dev._stream)
            stream.wait_event(packed)
            with self.torch.cuda.stream(tstream):
                b.work = self.dist.all_reduce(b.tensor, op=self.dist.ReduceOp.SUM, async_op=True)
        else:
            b.work = self.dist.all_reduce(b.tensor, op=self.dist.ReduceOp.SUM, async_op=True)
        self._launched.append(b)

    # ------------------------------------------------------------------ completion
    def finish(self) -> None:
        """Wait for every bucket, average, and set each p.grad to its averaged slice.

        Raises RuntimeError if a parameter's gradient never arrived (no backward pass) or
        if a collective failed (a rank died or the group's timeout passed).
        """
        missing = [p.name for b in self.buckets if b.ready != len(b.params) for p in b.params]
        if missing:
            self.reset()
            raise RuntimeError(f"GradientReducer.finish: no gradient arrived for {missing[:3]} "
                               "(run the backward pass first)")
        t0 = time.perf_counter()
        for b in self._launched:
            dev = b.device
            if dev.kind == "cuda":
                import cupy

                stream, tstream = self._comm[dev.name]
                with self.torch.cuda.stream(tstream):
                    b.work.wait()                     # the comm stream waits for NCCL's
                with cupy.cuda.Device(dev.ordinal), stream:
                    if self._divisor != 1:
                        b.buffer /= b.buffer.dtype.type(self._divisor)
                done = cupy.cuda.Event(disable_timing=True)
                done.record(stream)
                dev._stream.wait_event(done)          # the update runs after the average
            else:
                b.work.wait()
                if self._divisor != 1:
                    b.buffer /= b.buffer.dtype.type(self._divisor)
            for p, lo, hi in zip(b.params, b.offsets, b.offsets[1:]):
                p.grad = b.buffer[lo:hi].reshape(p.shape)
        self.wait_seconds = time.perf_counter() - t0
        self.reset()

    def reset(self) -> None:
        """Forget a partial step (after a failed backward pass)."""
        for b in self.buckets:
            b.ready, b.work = 0, None
        self._launched = []

    def parameter_count(self) -> int:
        return sum(b.offsets[-1] for b in self.buckets)
