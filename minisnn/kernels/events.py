"""Event-driven products: the work of a fully connected layer in proportion to its input's
nonzeros, as on neuromorphic hardware.

A layer fed by spiking neurons sees inputs that are mostly 0 (a few per cent of the neurons fire
at a step). The dense product y = x·Wᵀ spends a multiply-add on every zero; accumulating, for
each nonzero x[n, j], the row x[n, j]·Wᵀ[j] into y[n] does only the useful work — exact for any
input, not only spikes, and faster than BLAS below a density ``layers/linear.py`` chooses.

Rows of x are ``[N, in]`` samples (time folded into the batch, N = T·B), C-contiguous.
"""
import numpy as np
from numba import njit, prange

ROWS = 256                  # rows of x per parallel task
GRAD_CHUNKS = 16            # at most this many partial weight gradients, summed at the end;
GRAD_CHUNK_ROWS = 1024      # each sums at least this many rows,
GRAD_PARTIAL_BYTES = 2**26  # and all of them together take at most 64 MiB.


def grad_chunks(rows, n_in, n_out, itemsize):
    """How many partial gradients ``event_weight_grad`` sums: from the shapes alone, never the
    number of threads, so the result is the same on every machine."""
    by_memory = GRAD_PARTIAL_BYTES // (n_in * n_out * itemsize)
    return max(1, min(GRAD_CHUNKS, rows // GRAD_CHUNK_ROWS, by_memory))


@njit(cache=True, inline="always")
def _nonzero_columns(row, idx):
    """Write the indices of ``row``'s nonzeros into ``idx`` (length ≥ len(row) + 1); return how
    many. Branch-free — always write, advance only past a nonzero — because where spikes fall
    is unpredictable and a mispredicted branch per spike cost three times the scan."""
    count = 0
    for j in range(row.shape[0]):
        idx[count] = j
        count += row[j] != 0
    return count


@njit(parallel=True, cache=True)
def event_matmul(x, weight_t, y):
    """y[n] = Σ_{j: x[n,j] ≠ 0} x[n, j]·Wᵀ[j]   (= x·Wᵀ),   x ``[N, in]``, Wᵀ ``[in, out]``.

    Writes into y ``[N, out]`` and returns it. Parallel over blocks of rows; each row's nonzero
    columns are found once, then each adds one contiguous row of Wᵀ (SIMD) into an accumulator
    that stays in L1 until the row is done.
    """
    N, n_in = x.shape
    n_out = weight_t.shape[1]
    for blk in prange((N + ROWS - 1) // ROWS):
        idx = np.empty(n_in + 1, dtype=np.int64)
        acc = np.empty(n_out, dtype=y.dtype)
        for n in range(blk * ROWS, min((blk + 1) * ROWS, N)):
            row = x[n]
            count = _nonzero_columns(row, idx)
            acc[:] = 0
            for c in range(count):
                a, w = row[idx[c]], weight_t[idx[c]]
                for k in range(n_out):
                    acc[k] += a * w[k]
            y[n] = acc
    return y


@njit(parallel=True, cache=True)
def event_weight_grad(dy, x, n_chunks):
    """dWᵀ = Σ_n x[n]ᵀ·dy[n]: for each nonzero x[n, j], add x[n, j]·dy[n] to row j of dWᵀ.

    dy ``[N, out]``, x ``[N, in]`` -> dWᵀ ``[in, out]`` (transpose it for dW ``[out, in]``).
    Each of ``n_chunks`` tasks (``grad_chunks``) sums a contiguous range of rows into its own
    partial gradient — no two threads add into the same cell — and the partials are summed at
    the end.
    """
    N, n_in = x.shape
    n_out = dy.shape[1]
    partial = np.zeros((n_chunks, n_in, n_out), dtype=dy.dtype)
    per_chunk = (N + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        acc = partial[chunk]
        idx = np.empty(n_in + 1, dtype=np.int64)
        for n in range(chunk * per_chunk, min((chunk + 1) * per_chunk, N)):
            row, g = x[n], dy[n]
            count = _nonzero_columns(row, idx)
            for c in range(count):
                a, acc_j = row[idx[c]], acc[idx[c]]
                for k in range(n_out):
                    acc_j[k] += a * g[k]
    return partial.sum(axis=0)
