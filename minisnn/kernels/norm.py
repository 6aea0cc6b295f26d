"""Per-step batch normalisation kernels (BNTT), parallel over time steps.

Inputs are viewed as ``[T, B, C, S]``: T groups normalised independently, B samples, C
channels, S spatial positions (S = 1 for fully connected layers). Statistics are per (t, c)
over (B, S), accumulated in float64. Standard BN shared over time is the same kernel on the
view ``[1, T·B, C, S]``.
"""
import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def bntt_forward(x, gamma, eps):
    """Normalise each step with its own batch statistics, scale by γ_t (no β).

        μ_tc = mean_{b,s} x ,  σ²_tc = mean_{b,s} (x − μ_tc)²   (biased)
        x̂ = (x − μ_tc)/√(σ²_tc + ε) ,   y = γ_tc·x̂

    x ``[T, B, C, S]``, gamma ``[T, C]``. Returns y, x̂ (same shape as x), μ and σ² ``[T, C]``.
    The inner loops run over the contiguous (c, s) axis; one step's slice stays in cache
    across the three passes.
    """
    T, B, C, S = x.shape
    K = C * S
    xf = x.reshape(T, B, K)
    y = np.empty_like(xf)
    xhat = np.empty_like(xf)
    mean = np.empty((T, C))
    var = np.empty((T, C))
    m = B * S
    for t in prange(T):
        acc = np.zeros(K)
        for b in range(B):
            for k in range(K):
                acc[k] += xf[t, b, k]
        mu_k = np.empty(K)
        for c in range(C):
            mean[t, c] = acc[c * S:(c + 1) * S].sum() / m
            mu_k[c * S:(c + 1) * S] = mean[t, c]
        acc[:] = 0.0
        for b in range(B):
            for k in range(K):
                d = xf[t, b, k] - mu_k[k]
                acc[k] += d * d
        inv_k = np.empty(K)
        g_k = np.empty(K)
        for c in range(C):
            var[t, c] = acc[c * S:(c + 1) * S].sum() / m
            inv_k[c * S:(c + 1) * S] = 1.0 / math.sqrt(var[t, c] + eps)
            g_k[c * S:(c + 1) * S] = gamma[t, c]
        for b in range(B):
            for k in range(K):
                xh = (xf[t, b, k] - mu_k[k]) * inv_k[k]
                xhat[t, b, k] = xh
                y[t, b, k] = g_k[k] * xh
    return y.reshape(x.shape), xhat.reshape(x.shape), mean, var


@njit(parallel=True, cache=True)
def bntt_backward(dy, xhat, gamma, var, eps):
    """Backward of ``bntt_forward``; means over the same (B, S) as the forward.

        dγ_tc = Σ_{b,s} dy·x̂
        dx    = γ_tc/√(σ²_tc + ε) · (dy − mean(dy) − x̂·mean(dy·x̂))

    Returns dx (shape of dy) and dγ ``[T, C]``.
    """
    T, B, C, S = dy.shape
    K = C * S
    dyf = dy.reshape(T, B, K)
    xhf = xhat.reshape(T, B, K)
    dx = np.empty_like(dyf)
    dgamma = np.empty((T, C))
    m = B * S
    for t in prange(T):
        sum_dy = np.zeros(K)
        sum_dy_xhat = np.zeros(K)
        for b in range(B):
            for k in range(K):
                g = dyf[t, b, k]
                sum_dy[k] += g
                sum_dy_xhat[k] += g * xhf[t, b, k]
        scale_k = np.empty(K)
        mean_dy_k = np.empty(K)
        mean_dyx_k = np.empty(K)
        for c in range(C):
            sl = slice(c * S, (c + 1) * S)
            dgamma[t, c] = sum_dy_xhat[sl].sum()
            scale_k[sl] = gamma[t, c] / math.sqrt(var[t, c] + eps)
            mean_dy_k[sl] = sum_dy[sl].sum() / m
            mean_dyx_k[sl] = dgamma[t, c] / m
        for b in range(B):
            for k in range(K):
                dx[t, b, k] = scale_k[k] * (dyf[t, b, k] - mean_dy_k[k] - xhf[t, b, k] * mean_dyx_k[k])
    return dx.reshape(dy.shape), dgamma
