"""The readout's time average, parallel over neurons."""
import numpy as np
from numba import njit, prange

from .lif import BLOCK


@njit(parallel=True, cache=True)
def time_mean(x):
    """ō_n = (1/T)·Σ_t x[t, n] for x ``[T, N]``, accumulated in float64; returns ``[N]`` in x's dtype.

    Each thread sums a block of adjacent neurons over all T rows (unit-stride inner loop);
    NumPy's ``mean(axis=0, dtype=float64)`` converts element by element and is 3× slower.
    """
    T, N = x.shape
    out = np.empty(N, dtype=x.dtype)
    for blk in prange((N + BLOCK - 1) // BLOCK):
        n0 = blk * BLOCK
        n1 = min(n0 + BLOCK, N)
        acc = np.zeros(n1 - n0)
        for t in range(T):
            row = x[t, n0:n1]
            for i in range(n1 - n0):
                acc[i] += row[i]
        for i in range(n1 - n0):
            out[n0 + i] = acc[i] / T
    return out
