"""Event-driven convolution: the work of a Conv2d in proportion to its input's nonzeros.

A convolution fed by spikes sees mostly zeros. Instead of building the column matrix (k² copies
of the input) and multiplying it densely, each nonzero input x[n, c, h, w] adds its value times
the kernel column W[:, c, a, b] into every output (i, j) its window reaches,

    s·i + a − p = h ,  s·j + b − p = w    ⇒    y[n, :, i, j] += x[n, c, h, w]·W[:, c, a, b]

and, backward, the weight gradient gathers the same pairs:

    ∂L/∂W[:, c, a, b] = Σ_{n, h, w : x ≠ 0} x[n, c, h, w]·∂L/∂y[n, :, i, j]

Both loop over the C_out outputs of a pair innermost, on channels-last copies (``[Ho, Wo, C_out]``
per image, ``W`` as ``[C, k, k, C_out]``), so that loop is unit-stride (SIMD). Exact for any
input, summed in another order than BLAS (float32 results differ in the last bits). The input
gradient stays dense (∂L/∂y is not sparse): ``layers/conv.py`` computes it as before.
Arrays are C-contiguous; N = T·B images.
"""
import numpy as np
from numba import njit, prange

from .events import _nonzero_columns

IMAGES = 16                 # images per parallel task of the forward pass


@njit(cache=True, inline="always")
def _reach(pos, k_index, stride, padding, size):
    """The output index o with s·o + k_index − p = pos, or −1 when there is none."""
    q = pos + padding - k_index
    if q < 0 or q % stride != 0:
        return -1
    o = q // stride
    return o if o < size else -1


@njit(cache=True, inline="always")
def _axpy(v, src, dst):
    """dst += v·src over the C_out outputs (unit stride)."""
    for o in range(dst.shape[0]):
        dst[o] += v * src[o]


@njit(cache=True, inline="always")
def _image_pairs(x_n, k, stride, padding, per_tap, per_output, to_output):
    """Visit every (input nonzero, kernel tap) pair of one image: for v = x_n[c, h, w] ≠ 0 and
    each tap (a, b) that puts it at output (i, j),

        to_output:  per_output[i, j] += v·per_tap[c, a, b]    (forward: per_tap = Wᵀ)
        otherwise:  per_tap[c, a, b] += v·per_output[i, j]    (weight gradient: per_output = ∂L/∂y)

    x_n ``[C, H, W]``; per_tap ``[C, k, k, C_out]``; per_output ``[Ho, Wo, C_out]``.
    """
    C, H, W = x_n.shape
    Ho, Wo = per_output.shape[0], per_output.shape[1]
    idx = np.empty(W + 1, dtype=np.int64)
    for c in range(C):
        for h in range(H):
            row = x_n[c, h]
            for e in range(_nonzero_columns(row, idx)):
                w = idx[e]
                v = row[w]
                for a in range(k):
                    i = _reach(h, a, stride, padding, Ho)
                    if i < 0:
                        continue
                    for b in range(k):
                        j = _reach(w, b, stride, padding, Wo)
                        if j < 0:
                            continue
                        if to_output:
                            _axpy(v, per_tap[c, a, b], per_output[i, j])
                        else:
                            _axpy(v, per_output[i, j], per_tap[c, a, b])


@njit(parallel=True, cache=True)
def event_conv_forward(x, weight_t, stride, padding, y):
    """y = conv(x, W) from x's nonzeros (module docstring).

    x ``[N, C, H, W]``; weight_t ``[C, k, k, C_out]`` (W transposed); y ``[N, C_out, Ho, Wo]``,
    overwritten and returned. Parallel over blocks of images: each task owns its images' outputs.
    """
    N = x.shape[0]
    k, O = weight_t.shape[1], weight_t.shape[3]
    Ho, Wo = y.shape[2], y.shape[3]
    for blk in prange((N + IMAGES - 1) // IMAGES):
        acc = np.empty((Ho, Wo, O), dtype=y.dtype)
        for n in range(blk * IMAGES, min((blk + 1) * IMAGES, N)):
            acc[:] = 0
            _image_pairs(x[n], k, stride, padding, weight_t, acc, True)
            for o in range(O):
                plane = y[n, o]
                for i in range(Ho):
                    for j in range(Wo):
                        plane[i, j] = acc[i, j, o]
    return y


@njit(parallel=True, cache=True)
def event_conv_weight_grad(dy_cl, x, k, stride, padding, n_chunks):
    """∂L/∂Wᵀ ``[C, k, k, C_out]`` from x's nonzeros (module docstring).

    dy_cl ``[N, Ho, Wo, C_out]`` (∂L/∂y, channels last); x ``[N, C, H, W]``. Each of ``n_chunks``
    tasks (``events.grad_chunks``: from the shapes, never the thread count) sums a contiguous
    range of images into its own partial gradient; the partials are summed at the end.
    """
    N, C = x.shape[0], x.shape[1]
    O = dy_cl.shape[3]
    partial = np.zeros((n_chunks, C, k, k, O), dtype=dy_cl.dtype)
    per_chunk = (N + n_chunks - 1) // n_chunks
    for chunk in prange(n_chunks):
        for n in range(chunk * per_chunk, min((chunk + 1) * per_chunk, N)):
            _image_pairs(x[n], k, stride, padding, partial[chunk], dy_cl[n], False)
    return partial.sum(axis=0)
