"""The output layer: a membrane that only accumulates — no leak, no threshold, no spikes."""
import numpy as np

from ..init import xavier_uniform
from ..kernels.reduce import time_mean
from .base import Layer, Parameter


class Readout(Layer):
    """Class scores from the time-averaged input:

        z = (1/T)·Σ_t W·o_t = W·ō,   ō = mean_t o_t

    x ``[T, B, in]`` -> z ``[B, out]``; W ``[out, in]``. Averaging before the product makes it one
    small GEMM. Backward: dW = dzᵀ·ō, and every step receives the same ∂L/∂o_t = (1/T)·dz·W —
    returned as a read-only broadcast view ``[T, B, in]``, so no T-fold copy is made.
    """

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(xavier_uniform((out_features, in_features), rng=rng, dtype=dtype))
        self._params["weight"] = self.weight
        self._saved_mean = None
        self._saved_T = None

    def forward(self, x, train=True):
        T, B = x.shape[:2]
        return self.forward_from_mean(time_mean(np.ascontiguousarray(x.reshape(T, -1))).reshape(B, -1), T)

    def forward_from_mean(self, mean, T):
        """z = W·ō from the time mean ō ``[B, in]`` of a ``T``-step input, already taken (by the
        LIF scan below: ``layers/lif_readout.py``)."""
        self._saved_T = T
        self._saved_mean = mean
        return mean @ self.weight.data.T

    def backward(self, dz):
        T = self._saved_T
        self.weight.grad += dz.T @ self._saved_mean
        dmean = (dz @ self.weight.data) / T
        return np.broadcast_to(dmean, (T,) + dmean.shape)

    def __repr__(self):
        return f"Readout({self.in_features}, {self.out_features})"
