"""Softmax cross-entropy and top-k errors (csrc/softmax.cuh)."""
from __future__ import annotations

import numpy as np

from ... import checks
from ...reference.softmax import _check_label_values


class SoftmaxOps:
    def _labels32(self, op, labels, classes, check=True):
        # The label range is checked on the values, as the reference does (on the cuda
        # backend this reads two numbers back from the device and waits for them);
        # check=False skips it for labels already checked (a benchmark's timed loop). The
        # kernels refuse to read outside a row whatever the labels hold, so an unchecked
        # out-of-range label gives a wrong loss, never a wild read.
        if check:
            _check_label_values(op, labels, classes)
        return labels.astype(np.int32, copy=False)

    def softmax_cross_entropy(self, logits, labels, *, check_labels=True):
        """-> (loss, probs). loss is a float32 scalar: np.float32 on emu, a 0-d array on cuda
        (no device-to-host copy; float(loss) fetches it). check_labels=False skips the
        label-range check (a host read on cuda) for labels the caller already checked."""
        n, classes = checks.check_softmax_args(logits, labels)
        self._float32("softmax_cross_entropy", logits=logits)
        labels = self._labels32("softmax_cross_entropy", labels, classes, check_labels)
        probs = self._empty((n, classes))
        loss = self._empty(())
        if n == 0:
            loss[()] = 0
        else:
            row_loss = self._empty((n,))
            self.ext.softmax_cross_entropy(logits=self._ptr(logits), labels=self._ptr(labels), probs=self._ptr(probs),
                                           row_loss=self._ptr(row_loss), loss=self._ptr(loss), rows=n, classes=classes,
                                           stream=self._stream())
        return (loss[()] if not self._is_cupy else loss), probs

    def softmax_cross_entropy_backward(self, probs, labels, *, check_labels=True):
        """d(mean loss)/d(logits) = (probs - onehot(labels)) / N; check_labels as above."""
        n, classes = checks.check_softmax_backward_args(probs, labels)
        self._float32("softmax_cross_entropy_backward", probs=probs)
        labels = self._labels32("softmax_cross_entropy_backward", labels, classes, check_labels)
        d = self._empty((n, classes))
        if n:
            self.ext.softmax_cross_entropy_backward(
                probs=self._ptr(probs), labels=self._ptr(labels), dlogits=self._ptr(d), rows=n, classes=classes,
                inv_rows=float(np.float32(1.0 / n)), stream=self._stream())
        return d

    def topk_errors(self, probs, labels, ks=(1, 5), *, check_labels=True, on_device=False):
        """{k: number of top-k errors}, the reference's rule bit for bit (csrc/softmax.cuh):
        a row is top-k correct only when fewer than k classes other than the label have a
        probability >= the label's and all its values are finite. on_device=True returns
        the int32 counts array (len(ks),) on the device instead, with no host read;
        check_labels as above."""
        ks = checks.check_topk_args(probs, labels, ks)
        self._float32("topk_errors", probs=probs)
        n, classes = probs.shape
        labels = self._labels32("topk_errors", labels, classes, check_labels)
        counts = self.xp.zeros(len(ks), dtype=np.int32)
        if n:
            # k beyond the class count can never be reached; clip so it fits an int32.
            self.ext.topk_errors(probs=self._ptr(probs), labels=self._ptr(labels), rows=n, classes=classes,
                                 ks=[min(k, classes + 1) for k in ks], counts=self._ptr(counts), stream=self._stream())
        if on_device:
            return counts
        counts = counts.tolist()
        return {k: int(c) for k, c in zip(ks, counts)}
