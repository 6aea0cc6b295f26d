"""Flatten: the bridge from convolutional feature maps to fully connected layers."""
from .base import Layer


class Flatten(Layer):
    """x ``[T, B, C, H, W]`` -> ``[T, B, C·H·W]`` (C-order, so feature f = (c·H + h)·W + w).

    A reshape: backward reshapes the gradient back.
    """

    def __init__(self):
        super().__init__()
        self._saved_shape = None

    def forward(self, x, train=True):
        if x.ndim < 3:
            raise ValueError(f"Flatten expects [T, B, ...], got shape {x.shape}")
        self._saved_shape = x.shape
        return x.reshape(x.shape[0], x.shape[1], -1)

    def backward(self, dy):
        return dy.reshape(self._saved_shape)
