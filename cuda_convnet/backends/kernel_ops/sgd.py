"""The fused momentum/weight-decay update over every parameter tensor (csrc/sgd.cuh), paper §5."""
from __future__ import annotations

import numpy as np

from ... import checks


class SgdOps:
    #: Kernel launches issued by the last sgd_update (1 for any net of up to 64 tensors).
    last_sgd_launches = 0

    def sgd_update(self, params, grads, velocities, *, lr, momentum=0.9, weight_decay=5e-4):
        """Update ``params`` and ``velocities`` in place, all tensors in one kernel launch."""
        lr, momentum, weight_decay = checks.check_sgd_args(params, grads, velocities, lr, momentum, weight_decay)
        for i, (w, g, v) in enumerate(zip(params, grads, velocities)):
            self._float32("sgd_update", **{f"params[{i}]": w, f"grads[{i}]": g, f"velocities[{i}]": v})
        # One launch updates every tensor at once: check_sgd_args has refused any two
        # written tensors (or a written tensor and a gradient) that share a byte.
        # Scalars rounded to float32 once, decay·lr as one float64 product: as the reference.
        self.last_sgd_launches = self.ext.sgd_update(
            w=[self._ptr(w) for w in params], g=[self._ptr(g) for g in grads], v=[self._ptr(v) for v in velocities],
            n=[int(w.size) for w in params], lr=float(np.float32(lr)), momentum=float(np.float32(momentum)),
            decay_lr=float(np.float32(weight_decay * lr)), stream=self._stream())
