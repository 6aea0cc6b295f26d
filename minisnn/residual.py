"""Residual blocks: two paths from one input, summed into the input current of the last LIF.

The spiking counterpart of the ANN ResNet block that Ledinauskas et al. 2020 train (their Fig. 1):

    I = F(x) + S(x),    y = LIF(I)                                          (standard)
    F = conv → norm → LIF → conv → norm,   S = identity, or 1×1 conv → norm when the shape changes

and, as an option, the spike-element-wise block of Fang et al. 2021 (SEW-ResNet, ADD), whose sum
comes after the main path's own LIF:

    y = LIF(F(x)) + S(x)                                                    (sew)

Backward, by the chain rule through a sum (both paths read the same x, so their gradients add):

    standard:  δI = LIF.backward(∂L/∂y),   ∂L/∂x = F.backward(δI) + S.backward(δI)
    sew:       δI = LIF.backward(∂L/∂y),   ∂L/∂x = F.backward(δI) + S.backward(∂L/∂y)

with S.backward the identity for an identity shortcut. F and S are ``Sequential``s — they walk
their own layers; a ``Residual`` is one layer of the network around it. x ``[T, B, C, H, W]``.
"""
from .layers.base import Layer
from .layers.lif import LIF
from .network import Sequential, observe_inside


class Residual(Layer):
    """A residual block (module docstring): ``main`` and ``shortcut`` are lists of layers (an
    empty shortcut is the identity), ``neuron`` the LIF layer after the sum (standard) or at the
    end of the main path (``sew``)."""

    def __init__(self, main, shortcut=(), neuron=None, sew=False):
        super().__init__()
        if not isinstance(neuron, LIF):
            raise ValueError(f"a residual block needs a LIF neuron layer, got {neuron!r}")
        self.main, self.shortcut = Sequential(*main), Sequential(*shortcut)
        self.neuron, self.sew = neuron, bool(sew)
        self._paths = (("main", self.main), ("shortcut", self.shortcut))

    def forward(self, x, train=True, observe=None):
        """``observe(path, layer, x, y)`` sees every inner layer, path ``("main", j)``,
        ``("shortcut", j)`` or ``("neuron",)``."""
        current = self.main.forward(x, train=train, observe=observe_inside(observe, "main"))
        skip = self.shortcut.forward(x, train=train, observe=observe_inside(observe, "shortcut"))
        if current.shape != skip.shape:
            raise ValueError(f"residual paths disagree: main gives {current.shape}, shortcut {skip.shape}")
        if not self.sew:
            current = current + skip
        spikes = self.neuron.forward(current, train=train)
        if observe is not None:
            observe(("neuron",), self.neuron, current, spikes)
        return spikes + skip if self.sew else spikes

    def backward(self, dy, observe=None):
        """The module docstring's sums; ``observe`` as in ``forward``, in backward order."""
        d_current = self.neuron.backward(dy)
        if observe is not None:
            observe(("neuron",), self.neuron, dy, d_current)
        d_skip = self.shortcut.backward(dy if self.sew else d_current, observe=observe_inside(observe, "shortcut"))
        dx = self.main.backward(d_current, observe=observe_inside(observe, "main"))
        return dx + d_skip

    def sublayers(self):
        return [*self.main.layers, *self.shortcut.layers, self.neuron]

    def with_layers(self, fn):
        return Residual([layer.with_layers(fn) for layer in self.main.layers],
                        [layer.with_layers(fn) for layer in self.shortcut.layers],
                        self.neuron.with_layers(fn), self.sew)

    def named_parameters(self):
        return [(f"{name}.{key}", p) for name, path in self._paths for key, p in path.named_parameters()]

    def buffers(self):
        return {f"{name}.{key}": buf for name, path in self._paths for key, buf in path.named_buffers()}

    def clear(self):
        self.main.clear()
        self.shortcut.clear()
        self.neuron.clear()

    def __repr__(self):
        kind = "SEW residual" if self.sew else "Residual"
        short = ", ".join(map(repr, self.shortcut.layers)) or "identity"
        return f"{kind}(main=[{', '.join(map(repr, self.main.layers))}], shortcut=[{short}], neuron={self.neuron!r})"
