"""Event-driven products: the work of a fully connected layer in proportion to its input's
nonzeros, as on neuromorphic hardware.

A layer fed by spiking neurons sees inputs that are mostly 0 (a few per cent of the neurons fire
at a step). The dense product y = x·Wᵀ spends a multiply-add on every zero; accumulating, for
each nonzero x[n, j], the row x[n, j]·Wᵀ[j] into y[n] does only the useful work — exact for any
input, not only spikes, and faster than BLAS below a density ``layers/linear.py`` chooses.

Rows of x are ``[N, in]`` samples (time folded into the batch, N = T·B), C-contiguous.

For the weight gradient, backward needs x again. When x is binary (spikes: every nonzero is 1),
its pattern of nonzeros is all of it, and ``event_matmul`` writes that pattern as bits on the
way (``[N, ⌈in/8⌉]`` uint8, 1/32 of the float32 array), so ``Linear`` keeps the bits instead of
the spikes and ``event_weight_grad`` reads them: the same additions in the same order.
"""
import numpy as np
from numba import njit, prange

ROWS = 256                  # rows of x per parallel task
GRAD_CHUNKS = 16            # at most this many partial weight gradients, summed at the end;
GRAD_CHUNK_ROWS = 1024      # each sums at least this many rows,
GRAD_PARTIAL_BYTES = 2**26  # and all of them together take at most 64 MiB.
NO_PATTERN = np.zeros((0, 1), dtype=np.uint8)   # "no bits wanted / given" for the kernels below


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


def pattern_bytes(n_in):
    """Bytes per row of a nonzero pattern: ⌈in/8⌉."""
    return (n_in + 7) // 8


@njit(parallel=True, cache=True)
def event_matmul(x, weight_t, y, pattern):
    """y[n] = Σ_{j: x[n,j] ≠ 0} x[n, j]·Wᵀ[j]   (= x·Wᵀ),   x ``[N, in]``, Wᵀ ``[in, out]``.

    Writes into y ``[N, out]``. Parallel over blocks of rows; each row's nonzero columns are
    found once, then each adds one contiguous row of Wᵀ (SIMD) into an accumulator that stays in
    L1 until the row is done. With a zeroed ``pattern`` ``[N, ⌈in/8⌉]`` uint8 (0 rows: none
    wanted), also sets bit j of row n where x[n, j] ≠ 0, and returns whether every nonzero of x
    is 1 (True: the bits are all of x).
    """
    N, n_in = x.shape
    n_out = weight_t.shape[1]
    blocks = (N + ROWS - 1) // ROWS
    ones = np.ones(blocks, dtype=np.bool_)
    bits = pattern.shape[0] > 0
    for blk in prange(blocks):
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
                if bits:
                    ones[blk] &= a == 1
                    pattern[n, idx[c] >> 3] |= np.uint8(1 << (idx[c] & 7))
            y[n] = acc
    return bits and ones.all()


@njit(cache=True, inline="always")
def pack_bits(row, bits):
    """Bit j of ``bits`` (uint8, ⌈len(row)/8⌉ bytes) = row[j] ≠ 0: one row of the pattern
    ``event_matmul`` writes, but a byte at a time, so ``bits`` need not be zeroed first."""
    n = row.shape[0]
    for k in range(bits.shape[0]):
        byte = 0
        for j in range(8 * k, min(8 * k + 8, n)):
            byte |= np.int64(row[j] != 0) << (j - 8 * k)
        bits[k] = byte


@njit(cache=True, inline="always")
def _set_bits(bits, n_in, idx):
    """Write the indices of the set bits of one pattern row into ``idx``, ascending; return how
    many (branch-free, as ``_nonzero_columns``)."""
    count = 0
    for j in range(n_in):
        idx[count] = j
        count += (bits[j >> 3] >> (j & 7)) & 1
    return count


@njit(parallel=True, cache=True)
def bits_matmul(pattern, weight_t, y):
    """y = x·Wᵀ for a binary x given only as its bits ``pattern`` ``[N, ⌈in/8⌉]``: for each set
    bit j of row n, add Wᵀ[j] into y[n] — the additions ``event_matmul`` makes on x itself, in
    the same order (its a·Wᵀ[j] is Wᵀ[j] exactly when a = 1), so the same y bit for bit.

    Lets a LIF scan hand the next Linear its spikes as bits (``kernels/input_lif.py``) instead
    of a float32 array 32 times the size that this layer would only read to find the bits.
    """
    N = pattern.shape[0]
    n_in, n_out = weight_t.shape
    blocks = (N + ROWS - 1) // ROWS
    for blk in prange(blocks):
        idx = np.empty(n_in + 1, dtype=np.int64)
        acc = np.empty(n_out, dtype=y.dtype)
        for n in range(blk * ROWS, min((blk + 1) * ROWS, N)):
            count = _set_bits(pattern[n], n_in, idx)
            acc[:] = 0
            for c in range(count):
                w = weight_t[idx[c]]
                for k in range(n_out):
                    acc[k] += w[k]
            y[n] = acc


@njit(parallel=True, cache=True)
def event_weight_grad(dy, x, n_chunks, pattern):
    """dWᵀ = Σ_n x[n]ᵀ·dy[n]: for each nonzero x[n, j], add x[n, j]·dy[n] to row j of dWᵀ.

    dy ``[N, out]``, x ``[N, in]`` -> dWᵀ ``[in, out]`` (transpose it for dW ``[out, in]``).
    Each of ``n_chunks`` tasks (``grad_chunks``) sums a contiguous range of rows into its own
    partial gradient — no two threads add into the same cell — and the partials are summed at
    the end. With rows in ``pattern`` (a binary x's bits from ``event_matmul``; x then has no
    rows, only its ``in`` columns), the nonzeros come from the bits, each a 1: the same rows,
    chunks and order of additions (1·dy[n] = dy[n] exactly), so the same result.
    """
    bits = pattern.shape[0] > 0
    N = pattern.shape[0] if bits else x.shape[0]
    n_in, n_out = x.shape[1], dy.shape[1]
    one = np.ones(1, dtype=x.dtype)[0]          # a 1 in x's precision: 1·g is then g exactly
    partial = np.zeros((n_chunks, n_in, n_out), dtype=dy.dtype)
    per_chunk = (N + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        acc = partial[chunk]
        idx = np.empty(n_in + 1, dtype=np.int64)
        for n in range(chunk * per_chunk, min((chunk + 1) * per_chunk, N)):
            g = dy[n]
            count = _set_bits(pattern[n], n_in, idx) if bits else _nonzero_columns(x[n], idx)
            for c in range(count):
                a, acc_j = (one if bits else x[n, idx[c]]), acc[idx[c]]
                for k in range(n_out):
                    acc_j[k] += a * g[k]
    return partial.sum(axis=0)
