"""Normalisation layers: BNTT (per time step), BatchNorm (shared over time), LayerNorm.

All take ``[T, B, C]`` or ``[T, B, C, H, W]`` and normalise the channel axis 2.
"""
import numpy as np

from ..kernels.norm import bntt_backward, bntt_forward
from .base import Layer, Parameter

EPS = 1e-4
MOMENTUM = 0.1


def _as_tbcs(x):
    """View ``[T, B, C, ...]`` as ``[T, B, C, S]``."""
    return x.reshape(x.shape[0], x.shape[1], x.shape[2], -1)


def _normalise(layer, x4, gamma, out=None):
    """``bntt_forward`` into ``out`` (or a new y) and the layer's reused x̂ (both NumPy-allocated:
    huge pages)."""
    y = np.empty_like(x4) if out is None else out.reshape(x4.shape)
    return bntt_forward(x4, gamma, EPS, y, layer.workspace.get("xhat", x4.shape, x4.dtype))


def _scratch(x4):
    """Throw-away y and x̂ for ``batch_statistics`` (which must not touch a saved x̂)."""
    return np.empty_like(x4), np.empty_like(x4)


EVAL_STATS = ("running", "calibrated", "batch")


class _Statistics:
    """What BNTT and BatchNorm share about their statistics.

    Two sets of buffers: ``running_mean``/``running_var``, the exponential averages updated by
    every training step, and ``calibrated_mean``/``calibrated_var``, the exact averages over
    training batches that ``minisnn.calibrate`` writes with the current weights (NaN until then).
    ``eval_stats`` chooses what evaluation normalises by: "running" (the paper's protocol),
    "calibrated" (precise BN) or "batch" (each test batch's own statistics, as in training;
    transductive: the result depends on the batch).
    """

    def _init_statistics(self, shape, dtype):
        self.running_mean = np.zeros(shape, dtype=dtype)
        self.running_var = np.ones(shape, dtype=dtype)
        self.calibrated_mean = np.full(shape, np.nan, dtype=dtype)
        self.calibrated_var = np.full(shape, np.nan, dtype=dtype)
        self._buffers.update(running_mean=self.running_mean, running_var=self.running_var,
                             calibrated_mean=self.calibrated_mean, calibrated_var=self.calibrated_var)
        self.eval_stats = "running"

    def uses_batch_statistics(self, train):
        return train or self.eval_stats == "batch"

    def is_calibrated(self):
        """Whether ``calibrate_norm_stats`` has written the calibrated statistics (NaN before)."""
        return not np.isnan(self.calibrated_var).any()

    def fixed_statistics(self):
        """The (mean, var) evaluation normalises by when not using batch statistics."""
        if self.eval_stats == "calibrated":
            if not self.is_calibrated():
                raise ValueError(f"{self!r} has no calibrated statistics (the network was never calibrated); "
                                 "evaluate with running statistics")
            return self.calibrated_mean, self.calibrated_var
        return self.running_mean, self.running_var


def update_running(running_mean, running_var, mean, var, count):
    """r ← (1 − m)·r + m·batch, with the unbiased variance for the running value."""
    unbiased = var * (count / max(count - 1, 1))
    running_mean *= 1.0 - MOMENTUM
    running_mean += MOMENTUM * mean
    running_var *= 1.0 - MOMENTUM
    running_var += MOMENTUM * unbiased


class BNTT(_Statistics, Layer):
    """Batch Normalization Through Time (Kim & Panda 2021).

    Step t has its own γ_t and its own statistics (no β):

        y_t = γ_t·(x_t − μ_t)/√(σ²_t + ε)

    Training uses the batch statistics of step t (over batch and space); evaluation uses fixed
    statistics of step t (running or calibrated) or the test batch's own (``_Statistics``). γ,
    running and calibrated mean/var ``[T, C]``. An input with fewer than T steps uses the first
    ones (early exit).
    """

    def __init__(self, T, channels, dtype=np.float32):
        super().__init__()
        self.T, self.channels = T, channels
        self.gamma = Parameter(np.ones((T, channels), dtype=dtype))
        self._params["gamma"] = self.gamma
        self._init_statistics((T, channels), dtype)
        self._saved = None

    def forward(self, x, train=True, out=None):
        """``out``: where to write y (an array of x's size, e.g. a reused scratch buffer), else
        a new array."""
        self.check_input(x.shape)
        T = x.shape[0]
        gamma = self.gamma.data[:T]
        x4 = np.ascontiguousarray(_as_tbcs(x))
        if self.uses_batch_statistics(train):
            y, xhat, mean, var = _normalise(self, x4, gamma, out)
            if train:
                update_running(self.running_mean[:T], self.running_var[:T], mean, var, x4.shape[1] * x4.shape[3])
            self._saved = ("batch", xhat, var, T)
            return y.reshape(x.shape)
        # evaluation: fixed statistics r, so x̂ = (x − r_mean)/√(r_var + ε) does not depend on the batch
        r_mean, r_var = self.fixed_statistics()
        inv_std = (1.0 / np.sqrt(r_var[:T] + EPS)).astype(x.dtype)
        xhat = (x4 - r_mean[:T, None, :, None]) * inv_std[:, None, :, None]
        self._saved = ("fixed", xhat, inv_std, T)
        y = np.multiply(xhat, gamma[:, None, :, None], out=None if out is None else out.reshape(x4.shape))
        return y.reshape(x.shape)

    def check_input(self, shape):
        """Raise ValueError unless an input of ``shape`` ``[T, B, C, ...]`` fits: T ≤ the layer's
        steps, C its channels."""
        if shape[0] > self.T:
            raise ValueError(f"BNTT was built for {self.T} time steps, got an input with {shape[0]}")
        if shape[2] != self.channels:
            raise ValueError(f"BNTT expects {self.channels} channels, got shape {tuple(shape)}")

    def batch_statistics(self, x):
        """Mean and unbiased variance of each step of ``x`` per channel, ``[T, C]``."""
        x4 = np.ascontiguousarray(_as_tbcs(x))
        _, _, mean, var = bntt_forward(x4, self.gamma.data[:x4.shape[0]], EPS, *_scratch(x4))
        m = x4.shape[1] * x4.shape[3]
        return mean, var * (m / max(m - 1, 1))

    def backward(self, dy):
        """Batch statistics: ``bntt_backward``. Fixed (running) statistics: y = γ_t·x̂ is affine
        in x, so dγ_t = Σ dy·x̂ and dx = γ_t/√(r_var + ε)·dy."""
        mode, xhat, stat, T = self._saved
        dy4 = np.ascontiguousarray(_as_tbcs(dy))
        gamma = self.gamma.data[:T]
        if mode == "fixed":
            self.gamma.grad[:T] += (dy4 * xhat).sum(axis=(1, 3)).astype(self.gamma.grad.dtype)
            return (dy4 * (gamma * stat)[:, None, :, None]).reshape(dy.shape)
        dx, dgamma = bntt_backward(dy4, xhat, gamma, stat, EPS, np.empty_like(dy4))
        self.gamma.grad[:T] += dgamma.astype(self.gamma.grad.dtype)
        return dx.reshape(dy.shape)

    def __repr__(self):
        return f"BNTT(T={self.T}, channels={self.channels})"


class BatchNorm(_Statistics, Layer):
    """Standard BN on input currents, one (γ, β, statistics) shared by all time steps
    (the baseline of Ledinauskas et al. 2020): statistics over time, batch and space.

        y = γ·(x − μ)/√(σ² + ε) + β
    """

    def __init__(self, channels, dtype=np.float32):
        super().__init__()
        self.channels = channels
        self.gamma = Parameter(np.ones(channels, dtype=dtype))
        self.beta = Parameter(np.zeros(channels, dtype=dtype))
        self._params.update(gamma=self.gamma, beta=self.beta)
        self._init_statistics(channels, dtype)
        self._saved = None

    def forward(self, x, train=True):
        x4 = np.ascontiguousarray(_as_tbcs(x))
        shared = x4.reshape(1, -1, x4.shape[2], x4.shape[3])   # time folded into the batch
        beta = self.beta.data[None, None, :, None]
        if self.uses_batch_statistics(train):
            y, xhat, mean, var = _normalise(self, shared, self.gamma.data[None])
            if train:
                update_running(self.running_mean, self.running_var, mean[0], var[0],
                                shared.shape[1] * shared.shape[3])
            self._saved = ("batch", xhat, var)
            return (y + beta).reshape(x.shape).astype(x.dtype, copy=False)
        r_mean, r_var = self.fixed_statistics()
        inv_std = (1.0 / np.sqrt(r_var + EPS)).astype(x.dtype)
        xhat = (x4 - r_mean[None, None, :, None]) * inv_std[None, None, :, None]
        self._saved = ("fixed", xhat, inv_std)
        return (xhat * self.gamma.data[None, None, :, None] + beta).reshape(x.shape)

    def batch_statistics(self, x):
        """Mean and unbiased variance per channel over time, batch and space, ``[C]``."""
        x4 = np.ascontiguousarray(_as_tbcs(x))
        shared = x4.reshape(1, -1, x4.shape[2], x4.shape[3])
        _, _, mean, var = bntt_forward(shared, self.gamma.data[None], EPS, *_scratch(shared))
        m = shared.shape[1] * shared.shape[3]
        return mean[0], var[0] * (m / max(m - 1, 1))

    def backward(self, dy):
        mode, xhat, stat = self._saved
        dy4 = np.ascontiguousarray(_as_tbcs(dy))
        self.beta.grad += dy4.sum(axis=(0, 1, 3)).astype(self.beta.grad.dtype)
        if mode == "fixed":   # affine in x: dγ = Σ dy·x̂, dx = γ/√(r_var + ε)·dy
            self.gamma.grad += (dy4 * xhat).sum(axis=(0, 1, 3)).astype(self.gamma.grad.dtype)
            return (dy4 * (self.gamma.data * stat)[None, None, :, None]).reshape(dy.shape)
        shared = dy4.reshape(1, -1, dy4.shape[2], dy4.shape[3])
        dx, dgamma = bntt_backward(shared, xhat, self.gamma.data[None], stat, EPS,
                                   np.empty_like(shared))
        self.gamma.grad += dgamma[0].astype(self.gamma.grad.dtype)
        return dx.reshape(dy.shape)

    def __repr__(self):
        return f"BatchNorm(channels={self.channels})"


class LayerNorm(Layer):
    """Normalise each sample at each step over its features (C and space), then γ_c, β_c.

        x̂ = (x − mean_f x)/√(var_f x + ε),   y = γ·x̂ + β
        dx = (1/√(var+ε))·(g − mean_f g − x̂·mean_f(g·x̂)),   g = γ·dy
    The same in training and evaluation.
    """

    def __init__(self, channels, dtype=np.float32):
        super().__init__()
        self.channels = channels
        self.gamma = Parameter(np.ones(channels, dtype=dtype))
        self.beta = Parameter(np.zeros(channels, dtype=dtype))
        self._params.update(gamma=self.gamma, beta=self.beta)
        self._saved = None

    def forward(self, x, train=True):
        x4 = _as_tbcs(x)
        mean = x4.mean(axis=(2, 3), keepdims=True)
        inv_std = 1.0 / np.sqrt(x4.var(axis=(2, 3), keepdims=True) + EPS)
        xhat = (x4 - mean) * inv_std
        self._saved = (xhat, inv_std)
        y = xhat * self.gamma.data[:, None] + self.beta.data[:, None]
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    def backward(self, dy):
        xhat, inv_std = self._saved
        dy4 = _as_tbcs(dy)
        self.gamma.grad += (dy4 * xhat).sum(axis=(0, 1, 3)).astype(self.gamma.grad.dtype)
        self.beta.grad += dy4.sum(axis=(0, 1, 3)).astype(self.beta.grad.dtype)
        g = dy4 * self.gamma.data[:, None]
        dx = inv_std * (g - g.mean(axis=(2, 3), keepdims=True) - xhat * (g * xhat).mean(axis=(2, 3), keepdims=True))
        return dx.reshape(dy.shape).astype(dy.dtype, copy=False)

    def __repr__(self):
        return f"LayerNorm(channels={self.channels})"
