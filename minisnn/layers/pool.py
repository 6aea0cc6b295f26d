"""Average pooling over space, at every time step (on spikes, as in the reference code)."""
import numpy as np

from .base import Layer


class AvgPool2d(Layer):
    """Mean over k×k windows placed every s pixels (no padding; a remainder is dropped):

        y[n, c, i, j] = (1/k²)·Σ_{a,b < k} x[n, c, s·i + a, s·j + b],   H_o = ⌊(H − k)/s⌋ + 1

    x ``[T, B, C, H, W]`` -> y ``[T, B, C, H_o, W_o]``; T·B are one batch. ``stride`` defaults to
    ``kernel_size``. A global average pool is ``AvgPool2d(H)`` on an H×H input. The map is
    linear, so backward spreads each gradient evenly over its window:

        dx[n, c, s·i + a, s·j + b] += dy[n, c, i, j]/k²
    """

    def __init__(self, kernel_size=2, stride=None):
        super().__init__()
        stride = kernel_size if stride is None else stride
        for name, value in (("kernel_size", kernel_size), ("stride", stride)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.kernel_size, self.stride = int(kernel_size), int(stride)
        self._saved_shape = None

    def output_shape(self, height, width):
        """(H_o, W_o) for an input of spatial size (height, width)."""
        k, s = self.kernel_size, self.stride
        return (height - k) // s + 1, (width - k) // s + 1

    def _window(self, a, b, ho, wo):
        """The strided view selecting element (a, b) of every window."""
        s = self.stride
        return (Ellipsis, slice(a, a + s * (ho - 1) + 1, s), slice(b, b + s * (wo - 1) + 1, s))

    def forward(self, x, train=True):
        if x.ndim != 5:
            raise ValueError(f"AvgPool2d expects [T, B, C, H, W], got shape {x.shape}")
        ho, wo = self.output_shape(*x.shape[3:])
        if ho < 1 or wo < 1:
            raise ValueError(f"input {x.shape[3]}x{x.shape[4]} is smaller than the pooling window {self.kernel_size}")
        k = self.kernel_size
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        if self.stride == k and x.shape[3] == ho * k and x.shape[4] == wo * k:
            # non-overlapping windows tiling the image: one reshape and one sum
            y = x.reshape(*x.shape[:3], ho, k, wo, k).sum(axis=(4, 6))
        else:
            y = np.zeros(x.shape[:3] + (ho, wo), dtype=x.dtype)
            for a in range(k):
                for b in range(k):
                    y += x[self._window(a, b, ho, wo)]
        y *= x.dtype.type(1.0 / (k * k))
        self._saved_shape = x.shape
        return y

    def backward(self, dy):
        shape = self._saved_shape
        k = self.kernel_size
        ho, wo = dy.shape[3:]
        g = dy * dy.dtype.type(1.0 / (k * k))
        if self.stride == k and shape[3] == ho * k and shape[4] == wo * k:
            dx = np.broadcast_to(g[:, :, :, :, None, :, None], dy.shape[:4] + (k, wo, k))
            return np.ascontiguousarray(dx).reshape(shape)
        dx = np.zeros(shape, dtype=dy.dtype)
        for a in range(k):
            for b in range(k):
                dx[self._window(a, b, ho, wo)] += g
        return dx

    def __repr__(self):
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride})"
