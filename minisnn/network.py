"""Sequential: forward through the layers, backward through them in reverse."""
import numpy as np

from .layers.bntt_lif import bntt_lif_backward, bntt_lif_forward, can_pair_backward, can_pair_forward
from .layers.lif import LIF


class Sequential:
    """A feed-forward SNN. ``forward(x[T, B, ...]) -> logits [B, classes]``;
    ``backward(dlogits) -> dx [T, B, ...]`` fills every parameter's ``.grad``.

    ``spec`` (optional) records how the network was built, so a checkpoint can rebuild it.
    With ``fuse`` (the default) a BNTT layer directly followed by LIF neurons runs as a pair
    that keeps its intermediate in a scratch buffer (``layers/bntt_lif.py``): the same
    results, bit for bit, without two fresh arrays per step.
    """

    def __init__(self, *layers, spec=None, fuse=True):
        self.layers = list(layers)
        self.spec = spec
        self.fuse = fuse
        self._scratch_buffer = None

    def scratch(self, shape, dtype):
        """A reused array for an intermediate that is dead when the call that asked for it
        returns (the BNTT + LIF pair's current): one buffer, the size of the largest request."""
        size, dtype = int(np.prod(shape)), np.dtype(dtype)
        buf = self._scratch_buffer
        if buf is None or buf.dtype != dtype or buf.size < size:
            buf = self._scratch_buffer = np.empty(size, dtype=dtype)
        return buf[:size].reshape(shape)

    def forward(self, x, train=True):
        layers, i = self.layers, 0
        while i < len(layers):
            if self.fuse and i + 1 < len(layers) and can_pair_forward(layers[i], layers[i + 1], train):
                x = bntt_lif_forward(layers[i], layers[i + 1], x, train, self.scratch)
                i += 2
            else:
                x = layers[i].forward(x, train=train)
                i += 1
        return x

    __call__ = forward

    def backward(self, dy):
        layers, i = self.layers, len(self.layers) - 1
        while i >= 0:
            if self.fuse and i >= 1 and can_pair_backward(layers[i - 1], layers[i]):
                dy = bntt_lif_backward(layers[i - 1], layers[i], dy, self.scratch)
                i -= 2
            else:
                dy = layers[i].backward(dy)
                i -= 1
        return dy

    def clear(self):
        """Free what the layers kept for backward."""
        for layer in self.layers:
            layer.clear()

    def named_parameters(self):
        for i, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                yield f"{i}.{name}", p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def set_eval_stats(self, mode):
        """How normalisation layers behave in evaluation: "running" statistics (the standard,
        inductive choice) or each test batch's own "batch" statistics (as in training)."""
        if mode not in ("running", "batch"):
            raise ValueError(f"eval statistics must be 'running' or 'batch', got {mode!r}")
        for layer in self.layers:
            if hasattr(layer, "eval_stats"):
                layer.eval_stats = mode

    def lif_layers(self):
        return [layer for layer in self.layers if isinstance(layer, LIF)]

    def state_dict(self):
        """Name -> array copy, for parameters and buffers (running statistics)."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        for i, layer in enumerate(self.layers):
            for name, buf in layer.buffers().items():
                state[f"{i}.{name}"] = buf.copy()
        return state

    def load_state_dict(self, state):
        """Copy arrays in place; every key must be present with the right shape."""
        targets = {name: p.data for name, p in self.named_parameters()}
        for i, layer in enumerate(self.layers):
            for name, buf in layer.buffers().items():
                targets[f"{i}.{name}"] = buf
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            raise ValueError(f"state dict does not match the network: missing {missing}, unexpected {unexpected}")
        for name, target in targets.items():   # check every entry before changing any
            shape = np.shape(state[name])
            if shape != target.shape:
                raise ValueError(f"state dict entry {name!r} has shape {shape}, the network expects {target.shape}")
        for name, target in targets.items():
            target[...] = state[name]

    def __repr__(self):
        body = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{body}\n)"
