"""Weight updates (eq 3.26) and the learning-rate schedule.

Optimisers update the live parameter arrays in place from a dict of gradients with the same
keys, and expose ``state_dict()`` / ``load_state_dict()`` (host arrays) for checkpoints.
"""
from __future__ import annotations

import math

import numpy as np

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

    def _decayed(self, key, grad):
        """dE/dW + weight_decay * W (L2 regularisation, as torch.optim applies it)."""
        return grad + self.weight_decay * self.params[key] if self.weight_decay else grad

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
            grad = self._decayed(key, grads[key])
            if self.momentum:
                buffers = self.state.setdefault("momentum", {})
                if key in buffers:
                    buffers[key] *= self.momentum
                    buffers[key] += grad
                else:
                    buffers[key] = grad.copy()
                grad = buffers[key]
            weight -= self.lr * grad                                             # eq 3.26
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
        for key, weight in self.params.items():
            grad = self._decayed(key, grads[key])
            if key not in first:
                first[key] = grad * 0
                second[key] = grad * 0
            first[key] *= b1
            first[key] += (1 - b1) * grad
            second[key] *= b2
            second[key] += (1 - b2) * grad * grad
            m_hat = first[key] / (1 - b1 ** self.steps)
            v_hat = second[key] / (1 - b2 ** self.steps)
            weight -= self.lr * m_hat / (v_hat ** 0.5 + self.eps)
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
