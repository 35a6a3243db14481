"""Weight updates (eq 3.26) and the learning-rate schedule.

Optimisers update the live parameter arrays in place from a dict of gradients with the same
keys, and expose ``state_dict()`` / ``load_state_dict()`` (host arrays) for checkpoints. Each
step works in one scratch array per parameter, kept between steps: no temporaries the size of
the weights (a ResNet9's 13 M), which would cost an allocation and its page faults each time.
"""
from __future__ import annotations

import math

import numpy as np

from .loss import array_module
from .ops import flush_subnormals


def _checked(name, value, ok, what):
    """``value`` as a float, or a one-line ValueError: ``name`` must be a finite number ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (math.isfinite(number) and ok(number)):
        raise ValueError(f"{name} must be a finite number {what}, got {value!r}")
    return number


class Optimizer:
    def __init__(self, params: dict, lr: float, weight_decay: float = 0.0):
        self.params = params
        self.lr = _checked("lr", lr, lambda v: v > 0, "> 0")
        self.weight_decay = _checked("weight_decay", weight_decay, lambda v: v >= 0, ">= 0")
        self.state: dict = {}
        self.steps = 0
        self._scratch: dict = {}

    def _decayed(self, key, grad):
        """dE/dW + weight_decay * W (L2 regularisation, as torch.optim applies it), written into
        the parameter's scratch array, which the step may then overwrite."""
        weight = self.params[key]
        xp = array_module(weight)
        scratch = self._scratch.get(key)
        if scratch is None:
            scratch = self._scratch[key] = xp.empty_like(weight)
        xp.multiply(weight, self.weight_decay, out=scratch)
        scratch += grad
        return scratch

    def state_dict(self, to_host=np.asarray):
        return {"lr": self.lr, "steps": self.steps,
                "buffers": {name: {key: to_host(value) for key, value in per.items()}
                            for name, per in self.state.items()}}

    def load_state_dict(self, state, to_device=np.asarray):
        self.lr = float(state["lr"])
        self.steps = int(state["steps"])
        self.state = {name: {key: to_device(value) for key, value in per.items()}
                      for name, per in state["buffers"].items()}


class SGD(Optimizer):
    """W <- W - eta (dE/dW + wd W)  (eq 3.26), with optional momentum v <- mu v + g; W <- W - eta v."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = _checked("momentum", momentum, lambda v: 0 <= v < 1, "in [0, 1)")

    def step(self, grads: dict):
        for key, weight in self.params.items():
            update = self._decayed(key, grads[key])
            if self.momentum:
                buffers = self.state.setdefault("momentum", {})
                if key in buffers:
                    buffers[key] *= self.momentum
                    buffers[key] += update
                else:
                    buffers[key] = update.copy()
                array_module(weight).multiply(buffers[key], self.lr, out=update)
            else:
                update *= self.lr
            weight -= update                                                     # eq 3.26
            flush_subnormals(weight)
        self.steps += 1


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction; used by the thesis for N-MNIST."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = tuple(_checked(f"betas[{i}]", b, lambda v: 0 <= v < 1, "in [0, 1)")
                           for i, b in enumerate(betas))
        self.eps = _checked("eps", eps, lambda v: v > 0, "> 0")

    def step(self, grads: dict):
        b1, b2 = self.betas
        self.steps += 1
        first = self.state.setdefault("m", {})
        second = self.state.setdefault("v", {})
        # lr m_hat / (sqrt(v_hat) + eps) with m_hat = m / c1, v_hat = v / c2 is
        # lr sqrt(c2) / c1 * m / (sqrt(v) + eps sqrt(c2)): the bias corrections become two scalars
        c1, c2 = 1 - b1 ** self.steps, 1 - b2 ** self.steps
        step_size, eps = self.lr * math.sqrt(c2) / c1, self.eps * math.sqrt(c2)
        for key, weight in self.params.items():
            xp = array_module(weight)
            g = self._decayed(key, grads[key])
            if key not in first:
                first[key], second[key] = xp.zeros_like(weight), xp.zeros_like(weight)
            m, v = first[key], second[key]
            m -= g                                     # m <- b1 m + (1 - b1) g
            m *= b1
            m += g
            xp.multiply(g, g, out=g)                   # v <- b2 v + (1 - b2) g^2
            v -= g
            v *= b2
            v += g
            update = xp.sqrt(v, out=g)
            update += eps
            xp.divide(m, update, out=update)
            update *= step_size
            weight -= update
            flush_subnormals(weight)


class MultiStepLR:
    """Multiply the learning rate by ``gamma`` at each milestone epoch (thesis: x0.2 at 70/100/125)."""

    def __init__(self, optimizer: Optimizer, milestones, gamma=0.2):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: base * gamma^(milestones passed)."""
        passed = sum(1 for m in self.milestones if epoch >= m)
        return self.base_lr * self.gamma ** passed

    def set_epoch(self, epoch: int):
        self.optimizer.lr = self.lr_at(epoch)
        return self.optimizer.lr
