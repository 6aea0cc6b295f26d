"""Per-step batch normalisation kernels (BNTT), parallel over time steps.

Large outputs are allocated by the caller with NumPy and passed in: NumPy asks the kernel for
huge pages on big arrays, Numba's own allocator does not, and faulting in 4 KiB pages made a
BNTT forward five times slower than its arithmetic.

Inputs are viewed as ``[T, B, C, S]``: T groups normalised independently, B samples, C
channels, S spatial positions (S = 1 for fully connected layers). Statistics are per (t, c)
over (B, S), accumulated in float64. Standard BN shared over time is the same kernel on the
view ``[1, T·B, C, S]``.
"""
import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _channel_sum(acc, c, S):
    """Σ over the S spatial positions of channel c in a per-(c, s) accumulator ``[C·S]``."""
    total = 0.0
    for k in range(c * S, (c + 1) * S):
        total += acc[k]
    return total


@njit(parallel=True, cache=True)
def bntt_forward(x, gamma, eps, y, xhat):
    """Normalise each step with its own batch statistics, scale by γ_t (no β).

        μ_tc = mean_{b,s} x ,  σ²_tc = mean_{b,s} (x − μ_tc)²   (biased)
        x̂ = (x − μ_tc)/√(σ²_tc + ε) ,   y = γ_tc·x̂

    x ``[T, B, C, S]``, gamma ``[T, C]``. Writes y and x̂ (shape of x) into the given arrays;
    returns y, x̂, μ and σ² ``[T, C]``.
    The inner loops run over contiguous rows ``[C·S]`` (SIMD); one step's slice stays in cache
    across the three passes.
    """
    T, B, C, S = x.shape
    K = C * S
    xf = x.reshape(T, B, K)
    yf = y.reshape(T, B, K)
    xhf = xhat.reshape(T, B, K)
    mean = np.empty((T, C))
    var = np.empty((T, C))
    m = B * S
    for t in prange(T):
        acc = np.zeros(K)
        for b in range(B):
            row = xf[t, b]
            for k in range(K):
                acc[k] += row[k]
        mu_k = np.empty(K)
        for c in range(C):
            mean[t, c] = _channel_sum(acc, c, S) / m
            for k in range(c * S, (c + 1) * S):
                mu_k[k] = mean[t, c]
        acc[:] = 0.0
        for b in range(B):
            row = xf[t, b]
            for k in range(K):
                d = row[k] - mu_k[k]
                acc[k] += d * d
        inv_k = np.empty(K)
        g_k = np.empty(K)
        for c in range(C):
            var[t, c] = _channel_sum(acc, c, S) / m
            for k in range(c * S, (c + 1) * S):
                inv_k[k] = 1.0 / math.sqrt(var[t, c] + eps)
                g_k[k] = gamma[t, c]
        for b in range(B):
            row, xh_row, y_row = xf[t, b], xhf[t, b], yf[t, b]
            for k in range(K):
                xh = (row[k] - mu_k[k]) * inv_k[k]
                xh_row[k] = xh
                y_row[k] = g_k[k] * xh
    return y, xhat, mean, var


@njit(parallel=True, cache=True)
def bntt_backward(dy, xhat, gamma, var, eps, dx):
    """Backward of ``bntt_forward``; means over the same (B, S) as the forward.

        dγ_tc = Σ_{b,s} dy·x̂
        dx    = γ_tc/√(σ²_tc + ε) · (dy − mean(dy) − x̂·mean(dy·x̂))

    Writes dx (shape of dy) into the given array; returns dx and dγ ``[T, C]``.
    """
    T, B, C, S = dy.shape
    K = C * S
    dyf = dy.reshape(T, B, K)
    xhf = xhat.reshape(T, B, K)
    dxf = dx.reshape(T, B, K)
    dgamma = np.empty((T, C))
    m = B * S
    for t in prange(T):
        sum_dy = np.zeros(K)
        sum_dy_xhat = np.zeros(K)
        for b in range(B):
            g_row, xh_row = dyf[t, b], xhf[t, b]
            for k in range(K):
                g = g_row[k]
                sum_dy[k] += g
                sum_dy_xhat[k] += g * xh_row[k]
        scale_k = np.empty(K)
        mean_dy_k = np.empty(K)
        mean_dyx_k = np.empty(K)
        for c in range(C):
            dgamma[t, c] = _channel_sum(sum_dy_xhat, c, S)
            mean_dy = _channel_sum(sum_dy, c, S) / m
            for k in range(c * S, (c + 1) * S):
                scale_k[k] = gamma[t, c] / math.sqrt(var[t, c] + eps)
                mean_dy_k[k] = mean_dy
                mean_dyx_k[k] = dgamma[t, c] / m
        for b in range(B):
            g_row, xh_row, dx_row = dyf[t, b], xhf[t, b], dxf[t, b]
            for k in range(K):
                dx_row[k] = scale_k[k] * (g_row[k] - mean_dy_k[k] - xh_row[k] * mean_dyx_k[k])
    return dx, dgamma
