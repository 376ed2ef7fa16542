"""The paper's optimiser (§5): SGD with momentum and weight decay, and its learning-rate rule.

    opt = SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    sched = PlateauSchedule(opt, patience=2, max_drops=3)
    for epoch ...:
        ... net.train_step(x, y, opt) ...
        if sched.step(val_error):          # True when the rate was divided by 10
            print("lr ->", opt.lr)

Update rule, exactly as printed (the reference `sgd_update` documents the evaluation
order): v = 0.9 v - 0.0005 lr w - lr <dL/dw>; w = w + v. `step()` calls the backend's fused
`sgd_update` ONCE per device with the lists of all that device's parameters (one kernel
launch over a table of pointers on a GPU), not once per tensor. The decay applies to every
parameter, biases included, as the printed rule does (cuda-convnet's configs set it per
layer; with lr 0.01 the bias decay is 5e-6 of the bias per step, immaterial).

§5: "divide the learning rate by 10 when the validation error rate stopped improving with
the current learning rate ... reduced three times prior to termination". PlateauSchedule
makes "stopped improving" precise: no improvement by more than `min_delta` for `patience`
consecutive evaluations; at most `max_drops` drops (3 in the paper); `finished` turns true
when a further drop is due but none are left (a training loop may stop then).
"""
from __future__ import annotations

import math

import numpy as np

from . import checks


class SGD:
    """The paper's SGD (§5): v <- momentum*v - weight_decay*lr*w - lr*grad; w <- w + v.

    params: a Net's parameters() (each a float32 or float64 tensor on its device); lr,
    momentum, weight_decay: finite numbers >= 0 (defaults: the paper's 0.01, 0.9, 5e-4;
    lr is read at every step, so a schedule may change it). The learning rate sits inside
    the velocity, as in the paper, unlike torch.optim.SGD (README, "Learning-rate drops").
    Raises ValueError for no parameters, duplicate names or a negative or non-finite
    hyperparameter. step() updates every parameter tensor of a device in one fused launch;
    state_dict()/load_state_dict() carry the velocities (checkpoints save them).
    """

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4):
        self.params = list(params)
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError("SGD: parameter names must be unique")
        if not self.params:
            raise ValueError("SGD: no parameters")
        # Python or NumPy numbers, checked in the precision the update runs in.
        dt = np.dtype(self.params[0].dtype)
        lr, momentum, weight_decay = (checks.check_real("SGD", what, v, minimum=0.0, dtype=dt)
                                      for what, v in (("lr", lr), ("momentum", momentum),
                                                      ("weight_decay", weight_decay)))
        checks.check_real("SGD", "weight_decay * lr", weight_decay * lr, dtype=dt)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocities = {p.name: p.device.zeros(p.shape, p.dtype) for p in self.params}
        # One group per logical device, in order of first appearance.
        self._groups: list[tuple[object, list]] = []
        for p in self.params:
            for dev, group in self._groups:
                if dev is p.device:
                    group.append(p)
                    break
            else:
                self._groups.append((p.device, [p]))

    def check_parameters(self, params, who: str = "SGD") -> None:
        """Refuse to update a net this optimizer was not built for (``params``: that net's
        ``parameters()``): its velocities belong to other tensors."""
        mine = {id(p) for p in self.params}
        theirs = list(params)
        if mine != {id(p) for p in theirs}:
            names = [p.name for p in theirs if id(p) not in mine][:3]
            missing = f"; this net's {', '.join(names)} are not among them" if names else ""
            raise ValueError(f"{who}: the optimizer was built for another net (it updates "
                             f"{len(self.params)} parameter tensors that are not exactly this net's "
                             f"{len(theirs)}{missing}); build it with SGD(net.parameters(), ...)")

    def step(self, *, synchronize: bool = True) -> None:
        """Apply the update to every parameter from its `grad` (one fused call per device).

        synchronize=False leaves the updates queued on each device's stream (Net.train_step:
        every later read of them is stream-ordered); the default waits for them.
        """
        for dev, group in self._groups:
            missing = [p.name for p in group if p.grad is None]
            if missing:
                raise ValueError(f"SGD.step: no gradient for {missing[:3]}{'...' if len(missing) > 3 else ''} "
                                 "(run a backward pass first)")
            with dev.activate():
                dev.ops.sgd_update([p.data for p in group], [p.grad for p in group],
                                   [self.velocities[p.name] for p in group],
                                   lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        # Leave every device consistent: a host read or another stream may look next.
        if synchronize:
            for dev, _ in self._groups:
                dev.synchronize()

    def hyperparameters(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "weight_decay": self.weight_decay}

    def state_dict(self) -> dict:
        """{"lr", "momentum", "weight_decay", "velocities": {name: host array}}."""
        # Each velocity lives on its parameter's device, which knows how to fetch it (no
        # import of the net package here: net.checkpoint imports this module).
        return {**self.hyperparameters(),
                "velocities": {p.name: np.array(p.device.to_host(self.velocities[p.name]), copy=True)
                               for p in self.params}}

    def load_state_dict(self, state: dict) -> None:
        vel = state.get("velocities", {})
        missing = sorted(set(self.velocities) - set(vel))
        if missing:
            raise ValueError(f"SGD.load_state_dict: no velocity for {missing[:3]}")
        for p in self.params:
            shape = tuple(np.shape(vel[p.name]))
            if shape != p.shape:
                raise ValueError(f"SGD.load_state_dict: velocity {p.name} has shape {shape}, expected {p.shape}")
            self.velocities[p.name] = p.device.asarray(vel[p.name], dtype=p.dtype, copy=True)
        # The host-to-device copies are asynchronous: finish them before anyone reads.
        for dev, _ in self._groups:
            dev.synchronize()
        self.lr = float(state.get("lr", self.lr))
        self.momentum = float(state.get("momentum", self.momentum))
        self.weight_decay = float(state.get("weight_decay", self.weight_decay))

    def __repr__(self):
        return (f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, weight_decay={self.weight_decay:g}, "
                f"{len(self.params)} tensors on {len(self._groups)} device(s))")


class PlateauSchedule:
    """Divide the optimiser's lr by `1/factor` when the validation error stops improving (§5)."""

    def __init__(self, optimizer, *, factor: float = 0.1, patience: int = 2, max_drops: int = 3,
                 min_delta: float = 0.0):
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        if patience < 1 or max_drops < 0:
            raise ValueError("patience must be >= 1 and max_drops >= 0")
        self.optimizer = optimizer
        self.factor, self.patience, self.max_drops, self.min_delta = float(factor), int(patience), int(max_drops), \
            float(min_delta)
        self.best: float | None = None
        self.bad_epochs = 0
        self.drops = 0
        self.finished = False
        self.history: list[dict] = []  # one entry per drop: {"evaluation", "lr"}
        self.evaluations = 0

    def step(self, val_error: float) -> bool:
        """Record one validation error; returns True if the learning rate was just divided.

        Raises ValueError for a NaN or infinite error (a diverged net): it must never become
        the best, nor count as an evaluation; the caller stops instead (as `fit` does).
        """
        val_error = float(val_error)
        if not math.isfinite(val_error):
            raise ValueError(f"PlateauSchedule.step: the validation error is {val_error}; a non-finite "
                             "result is never recorded (stop training instead)")
        self.evaluations += 1
        if self.best is None or val_error < self.best - self.min_delta:
            self.best = val_error
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return False
        self.bad_epochs = 0
        if self.drops >= self.max_drops:
            self.finished = True
            return False
        self.optimizer.lr *= self.factor
        self.drops += 1
        self.history.append({"evaluation": self.evaluations, "lr": self.optimizer.lr})
        return True

    def state_dict(self) -> dict:
        return {"factor": self.factor, "patience": self.patience, "max_drops": self.max_drops,
                "min_delta": self.min_delta, "best": self.best, "bad_epochs": self.bad_epochs, "drops": self.drops,
                "finished": self.finished, "history": list(self.history), "evaluations": self.evaluations}

    def load_state_dict(self, state: dict) -> None:
        self.factor, self.patience = float(state["factor"]), int(state["patience"])
        self.max_drops, self.min_delta = int(state["max_drops"]), float(state["min_delta"])
        self.best = None if state["best"] is None else float(state["best"])
        self.bad_epochs, self.drops = int(state["bad_epochs"]), int(state["drops"])
        self.finished = bool(state["finished"])
        self.history = [dict(h) for h in state.get("history", [])]
        self.evaluations = int(state.get("evaluations", 0))

    def __repr__(self):
        return (f"PlateauSchedule(lr={self.optimizer.lr:g}, drops={self.drops}/{self.max_drops}, "
                f"patience={self.patience}, best={self.best})")
