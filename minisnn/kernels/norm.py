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
    """
    T, B, C, S = x.shape
    y = np.empty_like(x)
    xhat = np.empty_like(x)
    mean = np.empty((T, C))
    var = np.empty((T, C))
    m = B * S
    for t in prange(T):
        acc = np.zeros(C)
        for b in range(B):
            for c in range(C):
                for s in range(S):
                    acc[c] += x[t, b, c, s]
        mu = acc / m
        acc[:] = 0.0
        for b in range(B):
            for c in range(C):
                for s in range(S):
                    d = x[t, b, c, s] - mu[c]
                    acc[c] += d * d
        sig2 = acc / m
        for c in range(C):
            mean[t, c] = mu[c]
            var[t, c] = sig2[c]
            acc[c] = 1.0 / math.sqrt(sig2[c] + eps)
        for b in range(B):
            for c in range(C):
                for s in range(S):
                    xh = (x[t, b, c, s] - mu[c]) * acc[c]
                    xhat[t, b, c, s] = xh
                    y[t, b, c, s] = gamma[t, c] * xh
    return y, xhat, mean, var


@njit(parallel=True, cache=True)
def bntt_backward(dy, xhat, gamma, var, eps):
    """Backward of ``bntt_forward``; means over the same (B, S) as the forward.

        dγ_tc = Σ_{b,s} dy·x̂
        dx    = γ_tc/√(σ²_tc + ε) · (dy − mean(dy) − x̂·mean(dy·x̂))

    Returns dx (shape of dy) and dγ ``[T, C]``.
    """
    T, B, C, S = dy.shape
    dx = np.empty_like(dy)
    dgamma = np.empty((T, C))
    m = B * S
    for t in prange(T):
        sum_dy = np.zeros(C)
        sum_dy_xhat = np.zeros(C)
        for b in range(B):
            for c in range(C):
                for s in range(S):
                    g = dy[t, b, c, s]
                    sum_dy[c] += g
                    sum_dy_xhat[c] += g * xhat[t, b, c, s]
        scale = np.empty(C)
        for c in range(C):
            dgamma[t, c] = sum_dy_xhat[c]
            scale[c] = gamma[t, c] / math.sqrt(var[t, c] + eps)
            sum_dy[c] /= m
            sum_dy_xhat[c] /= m
        for b in range(B):
            for c in range(C):
                for s in range(S):
                    dx[t, b, c, s] = scale[c] * (dy[t, b, c, s] - sum_dy[c] - xhat[t, b, c, s] * sum_dy_xhat[c])
    return dx, dgamma
