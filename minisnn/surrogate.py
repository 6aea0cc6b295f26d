"""Surrogate gradients for the spike function.

A LIF neuron spikes with o = H(x), x = u/θ − 1 (H the Heaviside step, strict: H(0) = 0).
H has no useful derivative, so the backward pass replaces dH/dx by a surrogate f(x) of
height ``height`` at the threshold and spread ``width``:

    triangle (BNTT, Kim & Panda 2021):   f(x) = h · max(0, 1 − |x|/w)        h = 0.3, w = 1
    fast sigmoid (SuperSpike):           f(x) = h / (1 + |x|/w)²              h = 1,   w = 0.1
    arctan:                              f(x) = h / (1 + (x/w)²)              h = 1,   w = 1/π

and do/du = f(x)/θ. Finite differences cannot see a surrogate, so each one also has a smooth
stand-in F with F' = f exactly; gradient checks run the forward pass with F in place of H:

    triangle:      F(x) = h·w·P(x/w),  P(s) = 0, (s+1)²/2, 1 − (1−s)²/2, 1  on  s ≤ −1, ≤ 0, < 1, ≥ 1
    fast sigmoid:  F(x) = h · x / (1 + |x|/w)
    arctan:        F(x) = h·w · arctan(x/w)

The backward kernel calls ``surrogate_grad`` with an integer ``kind`` so that one compiled LIF
scan serves every surrogate; each class owns its F (``Surrogate.smooth``), which only gradient
checks run (``minisnn.gradcheck.SmoothLIF``).
"""
import math

import numpy as np
from numba import njit

TRIANGLE, FAST_SIGMOID, ARCTAN = 0, 1, 2


@njit(cache=True, inline="always")
def surrogate_grad(kind, x, height, width):
    """f(x): the surrogate of dH/dx at x = u/θ − 1."""
    if kind == TRIANGLE:
        return height * max(0.0, 1.0 - abs(x) / width)
    if kind == FAST_SIGMOID:
        d = 1.0 + abs(x) / width
        return height / (d * d)
    s = x / width
    return height / (1.0 + s * s)


_grad_array = np.vectorize(lambda kind, x, h, w: surrogate_grad(kind, x, h, w), otypes=[float])


def _floating(x):
    """x as an array of its own floating dtype (float64 for Python numbers and integers)."""
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)


class Surrogate:
    """A spike surrogate: its kind for the kernels, its height and width."""

    name = ""
    kind = -1
    default_height = 1.0
    default_width = 1.0
    compact = False    # f(x) = 0 for |x| ≥ width (then backward can skip those neurons)

    def __init__(self, height=None, width=None):
        self.height = float(self.default_height if height is None else height)
        self.width = float(self.default_width if width is None else width)
        if not (self.height > 0 and self.width > 0):
            raise ValueError(f"surrogate height and width must be positive, got {self.height}, {self.width}")

    def grad(self, x):
        """f(x) elementwise, for plots and tests (the kernels call surrogate_grad)."""
        return _grad_array(self.kind, np.asarray(x, dtype=float), self.height, self.width)

    def smooth(self, x):
        """F(x) elementwise: the smooth stand-in for H, F' = f (module docstring), in x's
        floating dtype."""
        raise NotImplementedError

    def to_dict(self):
        return {"name": self.name, "height": self.height, "width": self.width}

    def __repr__(self):
        return f"{type(self).__name__}(height={self.height:g}, width={self.width:g})"


class Triangle(Surrogate):
    name, kind, default_height, default_width = "triangle", TRIANGLE, 0.3, 1.0
    compact = True

    def smooth(self, x):
        s = np.clip(_floating(x) / self.width, -1.0, 1.0)
        return self.height * self.width * np.where(s <= 0, 0.5 * (s + 1) ** 2, 1 - 0.5 * (1 - s) ** 2)


class FastSigmoid(Surrogate):
    name, kind, default_height, default_width = "fast_sigmoid", FAST_SIGMOID, 1.0, 0.1

    def smooth(self, x):
        x = _floating(x)
        return self.height * x / (1 + np.abs(x) / self.width)


class ArcTan(Surrogate):
    name, kind, default_height, default_width = "arctan", ARCTAN, 1.0, 1.0 / math.pi

    def smooth(self, x):
        x = _floating(x)
        return self.height * self.width * np.arctan(x / self.width)


SURROGATES = {cls.name: cls for cls in (Triangle, FastSigmoid, ArcTan)}


def get_surrogate(spec="triangle", height=None, width=None):
    """A Surrogate from a name ('triangle', 'fast_sigmoid', 'arctan'), a dict, or an instance."""
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, dict):
        return get_surrogate(spec["name"], spec.get("height"), spec.get("width"))
    if spec not in SURROGATES:
        raise ValueError(f"unknown surrogate {spec!r}; choose one of {sorted(SURROGATES)}")
    return SURROGATES[spec](height, width)
