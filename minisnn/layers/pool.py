"""Average pooling over space, at every time step (on spikes, as in the reference code)."""
import numpy as np

from ..kernels.pool import avgpool_backward, avgpool_forward
from .base import Layer


class AvgPool2d(Layer):
    """Mean over k×k windows placed every s pixels (no padding; a remainder is dropped):

        y[n, c, i, j] = (1/k²)·Σ_{a,b < k} x[n, c, s·i + a, s·j + b],   H_o = ⌊(H − k)/s⌋ + 1

    x ``[T, B, C, H, W]`` -> y ``[T, B, C, H_o, W_o]``; T·B are one batch. ``stride`` defaults to
    ``kernel_size``. A global average pool is ``AvgPool2d(H)`` on an H×H input. The map is
    linear, so backward spreads each gradient evenly over its window:

        dx[n, c, s·i + a, s·j + b] += dy[n, c, i, j]/k²

    (loops in ``kernels/pool.py``).
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

    def forward(self, x, train=True):
        if x.ndim != 5:
            raise ValueError(f"AvgPool2d expects [T, B, C, H, W], got shape {x.shape}")
        ho, wo = self.output_shape(*x.shape[3:])
        if ho < 1 or wo < 1:
            raise ValueError(f"input {x.shape[3]}x{x.shape[4]} is smaller than the pooling window {self.kernel_size}")
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        T, B = x.shape[:2]
        x4 = np.ascontiguousarray(x.reshape(T * B, *x.shape[2:]))
        self._saved_shape = x.shape
        y = np.empty((T * B, x.shape[2], ho, wo), dtype=x4.dtype)
        return avgpool_forward(x4, self.kernel_size, self.stride, y).reshape(T, B, x.shape[2], ho, wo)

    def backward(self, dy):
        T, B, C, H, W = self._saved_shape
        dy4 = np.ascontiguousarray(dy.reshape(T * B, *dy.shape[2:]))
        dx = np.zeros((T * B, C, H, W), dtype=dy4.dtype)
        return avgpool_backward(dy4, self.kernel_size, self.stride, dx).reshape(T, B, C, H, W)

    def __repr__(self):
        return f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride})"
