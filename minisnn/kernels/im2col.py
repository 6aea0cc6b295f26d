"""im2col / col2im: turn a convolution into one matrix product, and its gradient back.

A k×k convolution with stride s and zero padding p,

    y[n, o, i, j] = Σ_{c, a, b} W[o, c, a, b] · x[n, c, s·i + a − p, s·j + b − p]     (x = 0 outside)

is the product Y = W₂ · X_col, with W₂ = W reshaped ``[C_out, C·k·k]`` and the column matrix

    X_col[(c, a, b), (n, i, j)] = x[n, c, s·i + a − p, s·j + b − p]                 ``[C·k·k, N·H_o·W_o]``.

Putting the whole batch (time folded in: N = T·B) on the column axis makes every layer one
large GEMM. The rows of X_col are contiguous runs over (n, i, j), so both kernels read and
write along j with unit stride. ``col2im`` is the adjoint of ``im2col``: it scatters every
column entry back to the pixel it was read from, summing where windows overlap.
"""
from numba import njit, prange


def output_size(size, kernel_size, stride, padding):
    """H_o = ⌊(H + 2p − k)/s⌋ + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


@njit(cache=True, inline="always")
def _valid_range(b, stride, padding, size, out_size):
    """The output columns j whose input column s·j + b − p lies inside [0, size): j0 ≤ j < j1."""
    j0 = min(out_size, max(0, -((b - padding) // stride)))     # ⌈(p − b)/s⌉, clipped
    j1 = min(out_size, (size - 1 + padding - b) // stride + 1)
    return j0, max(j0, j1)


@njit(parallel=True, cache=True)
def im2col(x, k, stride, padding, out):
    """X_col[(c, a, b), n, i, j] = x[n, c, s·i + a − p, s·j + b − p] (0 in the padding).

    x ``[N, C, H, W]`` (C-contiguous); ``out`` a C-contiguous ``[C·k·k, N·H_o·W_o]`` array that
    receives X_col (passing it in lets the caller reuse one buffer). Returns ``out``.
    Parallel over the C·k·k rows: each thread fills whole rows, no shared cells.
    """
    N, C, H, W = x.shape
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (W + 2 * padding - k) // stride + 1
    cols = out.reshape(C * k * k, N, Ho, Wo)
    for row in prange(C * k * k):
        c = row // (k * k)
        a = (row // k) % k
        b = row % k
        j0, j1 = _valid_range(b, stride, padding, W, Wo)
        for n in range(N):
            for i in range(Ho):
                dst = cols[row, n, i]                # 1-D rows: unit-stride loops (SIMD)
                h = stride * i + a - padding
                if h < 0 or h >= H:                  # a padding row
                    dst[:] = 0.0
                    continue
                src = x[n, c, h]
                dst[:j0] = 0.0
                for j in range(j0, j1):
                    dst[j] = src[stride * j + b - padding]
                dst[j1:] = 0.0
    return out


@njit(parallel=True, cache=True)
def col2im(cols, k, stride, padding, dx):
    """The adjoint of ``im2col``:

        dx[n, c, h, w] = Σ_{a, b, i, j : s·i + a − p = h, s·j + b − p = w} dX_col[(c, a, b), n, i, j]

    cols ``[C·k·k, N·H_o·W_o]`` (C-contiguous); ``dx`` ``[N, C, H, W]`` receives the result
    (overwritten). Returns ``dx``. Parallel over the N·C image planes: each thread owns the
    plane it sums into, so overlapping windows never race.
    """
    N, C, H, W = dx.shape
    Ho = (H + 2 * padding - k) // stride + 1
    Wo = (W + 2 * padding - k) // stride + 1
    c4 = cols.reshape(C * k * k, N, Ho, Wo)
    for plane in prange(N * C):
        n = plane // C
        c = plane % C
        plane_dx = dx[n, c]
        plane_dx[:] = 0.0
        for a in range(k):
            for b in range(k):
                row = (c * k + a) * k + b
                j0, j1 = _valid_range(b, stride, padding, W, Wo)
                for i in range(Ho):
                    h = stride * i + a - padding
                    if h < 0 or h >= H:
                        continue
                    dst, src = plane_dx[h], c4[row, n, i]   # 1-D rows: unit-stride loops (SIMD)
                    for j in range(j0, j1):
                        dst[stride * j + b - padding] += src[j]
    return dx
