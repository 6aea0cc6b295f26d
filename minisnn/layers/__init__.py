"""Layers: each maps a whole ``[T, B, ...]`` sequence forward and its gradient backward."""
from .base import Layer, Parameter
from .linear import Linear
from .lif import LIF
from .norm import BNTT, BatchNorm, LayerNorm
from .readout import Readout

__all__ = ["Layer", "Parameter", "Linear", "LIF", "BNTT", "BatchNorm", "LayerNorm", "Readout"]

from .conv import Conv2d
from .flatten import Flatten
from .pool import AvgPool2d

__all__ += ["Conv2d", "AvgPool2d", "Flatten"]
