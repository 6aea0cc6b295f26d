"""SGD with momentum and weight decay (PyTorch semantics) and the step schedule."""
import numpy as np


class SGD:
    """buf ← μ·buf + (g + wd·w);   w ← w − lr·buf   (buf starts at zero, so buf₁ = g₁ + wd·w).

    ``no_decay``: parameters that get wd = 0 (e.g. BNTT's γ, to tell a γ that weight decay pulls
    down from one that learns to fall)."""

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0, no_decay=()):
        if lr <= 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"need lr > 0, momentum >= 0, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        exempt = {id(p) for p in no_decay}
        self.decays = [self.weight_decay if id(p) not in exempt else 0.0 for p in self.params]
        self.buffers = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        for p, buf, wd in zip(self.params, self.buffers, self.decays):
            g = p.grad + wd * p.data if wd else p.grad
            buf *= self.momentum
            buf += g
            p.data -= self.lr * buf

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def state_dict(self):
        return {f"momentum.{i}": b.copy() for i, b in enumerate(self.buffers)} | {"lr": np.array(self.lr)}

    def load_state_dict(self, state):
        for i, b in enumerate(self.buffers):
            value = state[f"momentum.{i}"]
            if value.shape != b.shape:
                raise ValueError(f"optimizer state momentum.{i} has shape {value.shape}, expected {b.shape}")
            b[...] = value
        self.lr = float(state["lr"])


# ÷10 at 50 / 70 / 90 % of the epochs: the BNTT paper's schedule and its reference code's.
DROPS = (0.5, 0.7, 0.9)


def step_schedule(base_lr, epoch, epochs, milestones=DROPS, after=None):
    """Learning rate of ``epoch`` (0-based): ÷10 at each fraction ``milestones`` of the epochs
    (by default 50 %, 70 % and 90 %).

    As in the reference, a milestone is the epoch ``int(m·epochs)``; it is never the first one.
    ``after`` (epoch counts) replaces the fractions: ÷10 once ``after[i]`` epochs are done.
    """
    if after is not None:
        return base_lr * 0.1 ** sum(epoch >= a for a in after)
    drops = sum(epoch >= max(1, int(m * epochs)) for m in milestones)
    return base_lr * 0.1 ** drops
