"""Average-pooling loops, parallel over image planes (each thread owns whole planes).

Arrays are ``[N, C, H, W]`` with N = T·B; windows k×k every s pixels, no padding.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def avgpool_forward(x, k, s):
    """y[n, c, i, j] = (1/k²)·Σ_{a,b<k} x[n, c, s·i + a, s·j + b],  H_o = ⌊(H − k)/s⌋ + 1."""
    N, C, H, W = x.shape
    Ho = (H - k) // s + 1
    Wo = (W - k) // s + 1
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    inv = 1.0 / (k * k)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for i in range(Ho):
            for j in range(Wo):
                acc = 0.0
                for a in range(k):
                    for b in range(k):
                        acc += x[n, c, s * i + a, s * j + b]
                y[n, c, i, j] = acc * inv
    return y


@njit(parallel=True, cache=True)
def avgpool_backward(dy, k, s, H, W):
    """dx[n, c, s·i + a, s·j + b] += dy[n, c, i, j]/k²  (0 where no window reaches)."""
    N, C, Ho, Wo = dy.shape
    dx = np.zeros((N, C, H, W), dtype=dy.dtype)
    inv = 1.0 / (k * k)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        for i in range(Ho):
            for j in range(Wo):
                g = dy[n, c, i, j] * inv
                for a in range(k):
                    for b in range(k):
                        dx[n, c, s * i + a, s * j + b] += g
    return dx
