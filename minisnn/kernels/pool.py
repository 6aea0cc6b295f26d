"""Average-pooling loops, parallel over image planes (each thread owns whole planes).

Arrays are ``[N, C, H, W]`` with N = T·B; windows k×k every s pixels, no padding. The caller
allocates the output with NumPy (huge pages; see ``kernels/norm.py``).
"""
from numba import njit, prange


@njit(parallel=True, cache=True)
def avgpool_forward(x, k, s, y):
    """y[n, c, i, j] = (1/k²)·Σ_{a,b<k} x[n, c, s·i + a, s·j + b],  H_o = ⌊(H − k)/s⌋ + 1.

    Writes y ``[N, C, H_o, W_o]`` and returns it."""
    N, C, Ho, Wo = y.shape
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
def avgpool_backward(dy, k, s, dx):
    """dx[n, c, s·i + a, s·j + b] += dy[n, c, i, j]/k²  (0 where no window reaches).

    ``dx`` ``[N, C, H, W]`` must come in zeroed; returns it."""
    N, C, Ho, Wo = dy.shape
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
