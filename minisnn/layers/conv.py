"""2-D convolution, time folded into the batch: one GEMM per chunk of T·B images."""
import threading

import numpy as np

from ..init import xavier_uniform
from ..kernels.event_conv import event_conv_forward, event_conv_weight_grad
from ..kernels.events import grad_chunks
from ..kernels.im2col import col2im, im2col, output_size
from ..workspace import Workspace
from .base import Layer, Parameter
from .linear import input_density

# Images per GEMM are chosen so that a chunk's column matrix holds about this many elements
# (4 MiB in float32): small enough to stay in the last-level cache between im2col writing it and
# the GEMM reading it, large enough for an efficient GEMM, and never a memory burden (for VGG9's
# first 64-channel layer the whole batch at T=25, B=16 would need ~0.9 GiB). Chunks of 32 MiB
# went through memory: four dense ResNet convolutions were slower with them in four of five
# alternating runs of benchmarks/bench_conv_chunks.py (docs/conv.md; this machine is noisy).
CHUNK_ELEMENTS = 1 << 20

# Below this fraction of nonzero inputs the event-driven convolution (kernels/event_conv.py)
# beats im2col + BLAS for the forward pass and the weight gradient together
# (benchmarks/bench_events.py --conv on this project's 2-core machine).
EVENT_DENSITY = 0.25

# The chunk loop's column matrices and GEMM outputs are dead once a call returns, so every
# Conv2d of a thread shares one workspace (per thread: layers may run in several threads).
_thread = threading.local()


def _buffer(role, shape, dtype):
    """A reusable work array of the given shape, from this thread's convolution workspace."""
    if not hasattr(_thread, "workspace"):
        _thread.workspace = Workspace()
    return _thread.workspace.get(role, shape, dtype)


class Conv2d(Layer):
    """Cross-correlation with a k×k kernel, stride s and zero padding p, at every time step:

        y_t[b, o, i, j] = Σ_{c,a,b'} W[o, c, a, b'] · x_t[b, c, s·i + a − p, s·j + b' − p]  (+ bias[o])

    x ``[T, B, C_in, H, W]`` -> y ``[T, B, C_out, H_o, W_o]``, H_o = ⌊(H + 2p − k)/s⌋ + 1.
    W ``[C_out, C_in, k, k]``, Xavier-uniform (gain 2); no bias by default.

    The T·B images are one batch: with X_col = im2col(x) (``kernels/im2col.py``) and
    W₂ = W reshaped ``[C_out, C_in·k·k]``, the forward pass is Y = W₂·X_col, and backward

        dW₂ = dY·X_colᵀ ,    dX_col = W₂ᵀ·dY ,    dx = col2im(dX_col) ,    dbias = Σ dY.

    Only x is kept for backward; X_col is rebuilt there (it is k² times larger than x).

    Fed by spikes, x is mostly zeros: below ``EVENT_DENSITY`` nonzeros, Y and dW₂ are computed
    event by event instead (``kernels/event_conv.py``; no column matrix at all), in time
    proportional to the nonzeros; dx stays W₂ᵀ·dY and col2im. ``event_driven``: "auto"
    (default), True (always) or False (always im2col + BLAS).
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False,
                 rng=None, dtype=np.float32):
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("kernel_size", kernel_size, 1), ("stride", stride, 1), ("padding", padding, 0)):
            if int(value) != value or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        k = self.kernel_size
        self.weight = Parameter(xavier_uniform((out_channels, in_channels, k, k), rng=rng, dtype=dtype))
        self._params["weight"] = self.weight
        self.bias = None
        if bias:
            self.bias = Parameter(np.zeros(out_channels, dtype=dtype))
            self._params["bias"] = self.bias
        self.event_driven = "auto"
        self._saved_x = None
        self._saved_events = False

    def _use_events(self, x4):
        if x4.dtype != self.weight.data.dtype or self.event_driven is False:
            return False
        return self.event_driven is True or input_density(x4.reshape(x4.shape[0], -1)) < EVENT_DENSITY

    def output_shape(self, height, width):
        """(H_o, W_o) for an input of spatial size (height, width)."""
        k, s, p = self.kernel_size, self.stride, self.padding
        return output_size(height, k, s, p), output_size(width, k, s, p)

    def _chunks(self, n, height, width):
        """Slices of the T·B images, each small enough for one column matrix of ~CHUNK_ELEMENTS."""
        ho, wo = self.output_shape(height, width)
        per_image = self.in_channels * self.kernel_size ** 2 * ho * wo
        step = max(1, CHUNK_ELEMENTS // max(per_image, 1))
        return [slice(i, min(i + step, n)) for i in range(0, n, step)]

    def forward(self, x, train=True):
        if x.ndim != 5 or x.shape[2] != self.in_channels:
            raise ValueError(f"Conv2d expects [T, B, {self.in_channels}, H, W], got shape {x.shape}")
        T, B, C, H, W = x.shape
        ho, wo = self.output_shape(H, W)
        if ho < 1 or wo < 1:
            raise ValueError(f"input {H}x{W} is smaller than the kernel {self.kernel_size} with padding {self.padding}")
        k, s, p = self.kernel_size, self.stride, self.padding
        x4 = np.ascontiguousarray(x.reshape(T * B, C, H, W))
        w2 = self.weight.data.reshape(self.out_channels, -1)
        y = np.empty((T * B, self.out_channels, ho * wo), dtype=np.result_type(x4, w2))
        events = self._use_events(x4)
        if events:        # y[n, :, i, j] += x[n, c, h, w]·W[:, c, a, b] for every nonzero x
            event_conv_forward(x4, np.ascontiguousarray(self.weight.data.transpose(1, 2, 3, 0)), s, p,
                               y.reshape(T * B, self.out_channels, ho, wo))
        else:
            for sl in self._chunks(T * B, H, W):
                n = sl.stop - sl.start
                cols = im2col(x4[sl], k, s, p, _buffer("cols", (w2.shape[1], n * ho * wo), y.dtype))
                y_chunk = np.matmul(w2, cols, out=_buffer("y", (self.out_channels, n * ho * wo), y.dtype))   # Y = W₂·X_col
                y[sl] = y_chunk.reshape(self.out_channels, n, ho * wo).transpose(1, 0, 2)
        if self.bias is not None:
            y += self.bias.data[:, None]
        self._saved_x, self._saved_events = x4, events
        return y.reshape(T, B, self.out_channels, ho, wo)

    def backward(self, dy):
        return self._backward(dy, input_grad=True)

    def weight_grad_only(self, dy):
        """dW (and db) of ``backward`` without dx (a first layer's, which training never reads)."""
        self._backward(dy, input_grad=False)

    def _backward(self, dy, input_grad):
        x4 = self._saved_x
        N, C, H, W = x4.shape
        T, B, _, ho, wo = dy.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        dy3 = dy.reshape(N, self.out_channels, ho * wo)
        w2 = self.weight.data.reshape(self.out_channels, -1)
        dw2 = self.weight.grad.reshape(self.out_channels, -1)
        dtype = np.result_type(dy3, w2)
        dx = np.empty((N, C, H, W), dtype=dtype) if input_grad else None
        if self._saved_events:   # dW from the input's nonzeros, against ∂L/∂y channels last
            dy_cl = np.ascontiguousarray(dy3.reshape(N, self.out_channels, ho, wo).transpose(0, 2, 3, 1), dtype=dtype)
            chunks = grad_chunks(N, w2.shape[1], self.out_channels, dtype.itemsize)
            dw2 += event_conv_weight_grad(dy_cl, x4, k, s, p, chunks).reshape(w2.shape[1], -1).T
        for sl in self._chunks(N, H, W):
            if self._saved_events and not input_grad:
                break
            n = sl.stop - sl.start
            dy2 = _buffer("dy", (self.out_channels, n, ho * wo), dtype)
            dy2[...] = dy3[sl].transpose(1, 0, 2)
            dy2 = dy2.reshape(self.out_channels, n * ho * wo)
            if not self._saved_events:
                cols = im2col(x4[sl], k, s, p, _buffer("cols", (w2.shape[1], n * ho * wo), dtype))
                dw2 += dy2 @ cols.T                                          # dW₂ = dY·X_colᵀ
            if not input_grad:
                continue
            dcols = np.matmul(w2.T, dy2, out=_buffer("dcols", (w2.shape[1], n * ho * wo), dtype))   # dX_col = W₂ᵀ·dY
            col2im(dcols, k, s, p, dx[sl])
        if self.bias is not None:
            self.bias.grad += dy3.sum(axis=(0, 2))
        return dx.reshape(T, B, C, H, W) if input_grad else None

    def __repr__(self):
        return (f"Conv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None})")
