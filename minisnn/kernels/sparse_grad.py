"""The input gradient of a layer fed by LIF neurons, only where the neurons can pass it on.

Backward through LIF, the gradient g_t = ∂L/∂o_t of a spike enters only as g_t·σ'(u_t): where
the surrogate σ' is 0 (the triangle's, for |u/θ − 1| ≥ width), g_t is multiplied by 0 whatever
its value. So the layer above needs to compute dx = dy·W only at those (row, neuron) pairs
where σ'(u) ≠ 0 — about a quarter of them in sMNIST (the sparse backward of Perez-Nieves &
Goodman 2021, "Sparse spiking gradient descent") — and can write 0 elsewhere: every gradient
downstream is the same. The test is the surrogate's own function, so the pairs skipped are
exactly those where LIF's backward scan multiplies by 0.

Rows are ``[N, ·]`` samples with time folded in (N = T·B), C-contiguous.
"""
import numpy as np
from numba import njit, prange

from ..surrogate import surrogate_grad

ROWS = 64    # rows per parallel task


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(a, b):
    """Σ_k a[k]·b[k], vectorised: the reassociation lets LLVM keep several SIMD partial sums
    (its order is fixed by the compiled code, so the result is the same on every run)."""
    acc = a.dtype.type(0)
    for k in range(a.shape[0]):
        acc += a[k] * b[k]
    return acc


@njit(parallel=True, cache=True)
def supported_input_grad(dy, weight_t, membrane, kind, threshold, height, width, dx):
    """dx[n, j] = dy[n]·Wᵀ[j] where σ'(u[n, j]) ≠ 0, else 0.

    dy ``[N, out]``, Wᵀ ``[in, out]``, membrane u ``[N, in]`` of the LIF layer whose spikes were
    this layer's input; kind, threshold, height, width as ``lif_scan_backward`` takes them
    (the same types, so the test is the one the scan makes). Writes dx ``[N, in]``; returns the
    fraction of pairs computed.
    """
    N, n_in = membrane.shape
    blocks = (N + ROWS - 1) // ROWS
    computed = np.zeros(blocks, dtype=np.int64)
    for blk in prange(blocks):
        idx = np.empty(n_in + 1, dtype=np.int64)
        for n in range(blk * ROWS, min((blk + 1) * ROWS, N)):
            u, out, g = membrane[n], dx[n], dy[n]
            count = 0
            for j in range(n_in):    # branch-free, as events._nonzero_columns
                out[j] = 0
                idx[count] = j
                count += surrogate_grad(kind, u[j] / threshold - 1.0, height, width) != 0
            for c in range(count):
                out[idx[c]] = _dot(g, weight_t[idx[c]])
            computed[blk] += count
    return computed.sum() / max(N * n_in, 1)
