"""Fully connected layer, time folded into the batch: one GEMM for all T steps."""
import numpy as np

from ..init import xavier_uniform
from ..kernels.events import NO_PATTERN, bits_matmul, event_matmul, event_weight_grad, grad_chunks, pattern_bytes
from ..kernels.sparse_grad import supported_input_grad
from .base import Layer, Parameter

# Below this fraction of nonzero inputs the event-driven products (kernels/events.py) beat BLAS:
# they broke even between 0.17 and 0.3 nonzeros in runs on this project's 2-core machine
# (benchmarks/bench_events.py).
EVENT_DENSITY = 0.15
# Above this fraction of neurons where the LIF below passes a gradient on, BLAS's dense dx = dy·W
# is used instead of the dot products at those neurons only (kernels/sparse_grad.py).
SUPPORT_DENSITY = 0.5


def input_density(x2):
    """Fraction of nonzeros in ``[N, in]``, estimated from about 1024 evenly spaced rows."""
    sample = x2[::max(1, x2.shape[0] // 1024)]
    return np.count_nonzero(sample) / max(sample.size, 1)


class Linear(Layer):
    """y_t = W·x_t (+ b) for every t, computed as one ``[T·B, in] @ [in, out]`` product.

    x ``[T, B, in]`` -> y ``[T, B, out]``; W ``[out, in]``; no bias by default.

    Fed by spiking neurons, x is mostly zeros; below ``EVENT_DENSITY`` nonzeros the products
    with x (y = x·Wᵀ and dW = dyᵀ·x) are done event by event, in time proportional to the
    nonzeros. ``event_driven``: "auto" (default), True (always) or False (always BLAS). A binary
    x (spikes) is then kept for backward as its bits of nonzeros, not as floats: 1/32 of the
    memory, and the spikes array itself is freed as soon as the layers are done with it.
    """

    def __init__(self, in_features, out_features, bias=False, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(xavier_uniform((out_features, in_features), rng=rng, dtype=dtype))
        self._params["weight"] = self.weight
        self.bias = None
        if bias:
            self.bias = Parameter(np.zeros(out_features, dtype=dtype))
            self._params["bias"] = self.bias
        self.event_driven = "auto"
        self._saved_x = None
        self._saved_events = False
        self._saved_pattern = None

    def _use_events(self, dtype, density):
        """Events or BLAS for an input of ``dtype`` whose fraction of nonzeros is ``density()``
        (called only if the choice depends on it)."""
        if dtype != self.weight.data.dtype:
            return False
        if self.event_driven == "auto":
            return self.in_features > 1 and density() < EVENT_DENSITY
        return bool(self.event_driven)

    def forward(self, x, train=True):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        events = self._use_events(x2.dtype, lambda: input_density(x2))
        pattern = None
        if events:
            x2 = np.ascontiguousarray(x2)
            y = np.empty((x2.shape[0], self.out_features), dtype=x2.dtype)
            pattern = np.zeros((x2.shape[0], pattern_bytes(self.in_features)), dtype=np.uint8)
            if not event_matmul(x2, np.ascontiguousarray(self.weight.data.T), y, pattern):
                pattern = None                          # not binary: keep x itself
        elif self.in_features == 1:   # an outer product: broadcasting is 3x faster than BLAS's GEMM
            y = x2 * self.weight.data.T
        else:
            y = x2 @ self.weight.data.T
        if self.bias is not None:
            y += self.bias.data
        self._saved_x, self._saved_events, self._saved_pattern = (None if pattern is not None else x2), events, pattern
        return y.reshape(*lead, self.out_features)

    def forward_from_bits(self, pattern, lead):
        """``forward`` of a binary x ``[*lead, in]`` given only as its bits ``[N, ⌈in/8⌉]``
        (N = prod(lead); ``kernels/events.py``), as the fused input block writes them: the same
        y, and the same state for backward, as ``forward(x)``, without x's floats ever written.
        The layer makes the same events-or-BLAS choice, from the same rows; for BLAS it unpacks x.
        """
        n, dtype = pattern.shape[0], self.weight.data.dtype
        unpack = lambda bits: np.unpackbits(bits, axis=1, count=self.in_features, bitorder="little")  # noqa: E731
        if not self._use_events(dtype, lambda: input_density(unpack(pattern[::max(1, n // 1024)]))):
            return self.forward(unpack(pattern).astype(dtype).reshape(*lead, self.in_features))
        y = np.empty((n, self.out_features), dtype=dtype)
        bits_matmul(pattern, np.ascontiguousarray(self.weight.data.T), y)
        if self.bias is not None:
            y += self.bias.data
        self._saved_x, self._saved_events, self._saved_pattern = None, True, pattern
        return y.reshape(*lead, self.out_features)

    def backward(self, dy, support=None):
        """dW = Σ_{t,b} dy·xᵀ ,  db = Σ dy ,  dx = dy·W.

        ``support``: the LIF layer below's ``gradient_support()`` (``Sequential`` passes it when
        nobody observes the pass), to compute dx only where that layer's surrogate is nonzero
        and 0 elsewhere, as long as that is under ``SUPPORT_DENSITY`` of the neurons: every
        gradient below is the same (``kernels/sparse_grad.py``), dx itself is not.
        """
        dy2 = self.weight_grad_only(dy)
        shape = (*dy.shape[:-1], self.in_features)
        if support is not None:
            membrane, kind, threshold, height, width = support
            u = membrane.reshape(-1, self.in_features)
            sample = u[::max(1, u.shape[0] // 1024)]
            if np.mean(np.abs(sample / threshold - 1.0) < width) < SUPPORT_DENSITY:
                dx = np.empty(u.shape, dtype=dy2.dtype)
                supported_input_grad(np.ascontiguousarray(dy2), np.ascontiguousarray(self.weight.data.T), u,
                                     kind, threshold, height, width, dx)
                return dx.reshape(shape)
        return (dy2 @ self.weight.data).reshape(shape)

    def weight_grad_only(self, dy):
        """dW and db of ``backward`` without dx (a first layer's, which training never reads);
        returns dy as ``[N, out]``."""
        dy2 = dy.reshape(-1, self.out_features)
        if self._saved_events:
            dtype, pattern = self.weight.data.dtype, self._saved_pattern
            x2 = np.empty((0, self.in_features), dtype) if pattern is not None else self._saved_x
            pattern = NO_PATTERN if pattern is None else pattern
            chunks = grad_chunks(dy2.shape[0], self.in_features, self.out_features, dtype.itemsize)
            self.weight.grad += event_weight_grad(np.ascontiguousarray(dy2, dtype=dtype), x2, chunks, pattern).T
        else:
            self.weight.grad += dy2.T @ self._saved_x
        if self.bias is not None:
            self.bias.grad += dy2.sum(axis=0)
        return dy2

    def __repr__(self):
        return f"Linear({self.in_features}, {self.out_features}, bias={self.bias is not None})"
