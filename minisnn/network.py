"""Sequential: forward through the layers, backward through them in reverse."""
import numpy as np

from .layers import input_block, lif_readout
from .layers.bntt_lif import PAIR_CURRENT, is_pair
from .layers.lif import LIF
from .layers.linear import Linear
from .layers.norm import EVAL_STATS
from .workspace import Workspace


def observe_inside(observe, key):
    """The observer of a block's insides (``key``: the block's index, or a path's name): each
    inside path, an index or a tuple, prefixed with ``key``. None for no observer."""
    if observe is None:
        return None
    return lambda path, layer, x, y: observe((key, *path) if isinstance(path, tuple) else (key, path), layer, x, y)


class Sequential:
    """A feed-forward SNN. ``forward(x[T, B, ...]) -> logits [B, classes]``;
    ``backward(dlogits) -> dx [T, B, ...]`` fills every parameter's ``.grad``.

    ``spec`` (optional) records how the network was built, so a checkpoint can rebuild it.

    A BNTT layer directly followed by LIF neurons is a *pair*, decided here once by layer type
    (unless ``pair`` is False, for comparisons): BNTT writes the current I into the network's
    workspace instead of a fresh array, and in backward LIF writes ∂L/∂I there; only the pair's
    other layer reads it (``layers/bntt_lif.py`` explains why this pays). The results are bit for
    bit those of fresh arrays.

    A network that opens with Linear(1, H), BNTT, LIF (a pixel sequence: sMNIST) runs those three
    as one scan in training passes nobody observes, unless ``fuse_input`` is False: the current
    is affine in the pixel, so it is never stored (``layers/input_block.py``); the results equal
    the layer-by-layer ones to rounding; when a Linear follows the block, the block hands it
    its spikes as bits, never as floats, unless ``input_bits`` is False (``Linear.forward_from_bits``;
    bit for bit the same). And in a backward nobody observes, a Linear directly
    after LIF neurons computes ∂L/∂spikes only where their surrogate is nonzero
    (``kernels/sparse_grad.py``): the gradients below are the same, to rounding. A network that
    ends in LIF then Readout runs the two as one scan in passes nobody observes, unless
    ``fuse_readout`` is False: the spikes are never written, only their time mean
    (``layers/lif_readout.py``); the results are bit for bit the same.

    ``observe(i, layer, x, y)``, given to ``forward``, is called after layer i maps x to y; given
    to ``backward``, after layer i maps ∂L/∂y (as x) to ∂L/∂x (as y). It is the one way to look
    inside a pass (recording, activity, calibration, gradient profiles): arrays it receives may
    live in the workspace, so it copies what it keeps (``outputs`` does). The layers inside a
    block (``residual.Residual``) are observed too, before the block itself, with a path for i:
    ``(i, "main", j)``, ``(i, "shortcut", j)``, ``(i, "neuron")``.
    """

    def __init__(self, *layers, spec=None, pair=True, fuse_input=True, input_bits=True, fuse_readout=True):
        self.layers = list(layers)
        self.spec = spec
        self.workspace = Workspace()
        self._paired = {i for i in range(len(layers) - 1) if pair and is_pair(layers[i], layers[i + 1])}
        self._current_dtype = {}     # pair index -> dtype of its current in the last forward
        self._input_block = fuse_input and len(layers) > 3 and input_block.is_input_block(*layers[:3])
        self._input_saved = None     # what the fused input block's backward needs, after a fused forward
        self._input_bits = self._input_block and input_bits and type(layers[3]) is Linear
        self._readout_tail = fuse_readout and len(layers) > 1 and lif_readout.is_lif_readout(*layers[-2:])

    def forward(self, x, train=True, observe=None):
        start, self._input_saved = 0, None
        if self._input_block and train and observe is None:
            T, B = x.shape[:2]
            x, self._input_saved = input_block.forward(*self.layers[:3], x, as_bits=self._input_bits)
            start = 3
            if self._input_bits:    # the spikes as bits, straight into the Linear after the block
                x, start = self.layers[3].forward_from_bits(x, (T, B)), 4
        tail = len(self.layers)
        if self._readout_tail and observe is None and tail - 2 >= start:   # not LIF of the input block
            tail -= 2
        for i in range(start, tail):
            layer = self.layers[i]
            if i in self._paired:    # BNTT of a pair: its output I lives in the workspace
                self._current_dtype[i] = x.dtype
                y = layer.forward(x, train=train, out=self.workspace.get(PAIR_CURRENT, x.shape, x.dtype))
            elif observe is not None and layer.sublayers():   # a block: its insides are observed too
                y = layer.forward(x, train=train, observe=observe_inside(observe, i))
            else:
                y = layer.forward(x, train=train)
            if observe is not None:
                observe(i, layer, x, y)
            x = y
        if tail < len(self.layers):
            return lif_readout.forward(*self.layers[tail:], x)
        return x

    __call__ = forward

    def backward(self, dy, observe=None, input_grad=True):
        """``input_grad=False``: the parameters' gradients only; a first layer with weights
        (Linear, Conv2d) then skips ∂L/∂x, which training never reads, and None is returned."""
        stop = 3 if self._input_saved is not None else 0
        for i in reversed(range(stop, len(self.layers))):
            layer = self.layers[i]
            if i == 0 and not input_grad and hasattr(layer, "weight_grad_only"):
                layer.weight_grad_only(dy)
                if observe is not None:
                    observe(i, layer, dy, None)
                return None
            if i - 1 in self._paired:   # LIF of a pair: ∂L/∂I into the workspace for its BNTT
                dx = layer.backward(dy, out=self.workspace.get(PAIR_CURRENT, dy.shape, self._current_dtype[i - 1]))
            elif observe is not None and layer.sublayers():
                dx = layer.backward(dy, observe=observe_inside(observe, i))
            elif observe is None and i > 0 and type(layer) is Linear and type(self.layers[i - 1]) is LIF:
                # ∂L/∂spikes only where the LIF below passes it on (kernels/sparse_grad.py)
                dx = layer.backward(dy, support=self.layers[i - 1].gradient_support())
            else:
                dx = layer.backward(dy)
            if observe is not None:
                observe(i, layer, dy, dx)
            dy = dx
        if stop:
            return input_block.backward(*self.layers[:3], self._input_saved, self.workspace, dy, observe, input_grad)
        return dy

    def outputs(self, x, select, train=False):
        """Run ``forward`` and keep the outputs of the layers ``select`` picks: a layer class, a
        tuple of classes, or ``select(i, layer) -> bool``. Returns (network output, {i: y_i})."""
        picks = select if callable(select) and not isinstance(select, type) else \
            (lambda i, layer: isinstance(layer, select))
        kept = {}

        def keep(i, layer, _, y):
            if picks(i, layer):
                kept[i] = y.copy() if self.workspace.owns(y) else y

        return self.forward(x, train=train, observe=keep), kept

    def clear(self):
        """Free what the layers kept for backward."""
        for layer in self.layers:
            layer.clear()
        self._input_saved = None

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
        """What normalisation layers use in evaluation: "running" averages (the paper's
        protocol), "calibrated" statistics (``minisnn.calibrate``) or each test batch's own
        "batch" statistics (as in training). See ``layers/norm.py``."""
        if mode not in EVAL_STATS:
            raise ValueError(f"eval statistics must be one of {', '.join(EVAL_STATS)}, got {mode!r}")
        norms = self.norm_layers()
        if mode == "calibrated" and not all(layer.is_calibrated() for layer in norms):
            raise ValueError("the network's normalisation statistics were never calibrated; "
                             "evaluate with running or batch statistics")
        for layer in norms:
            layer.eval_stats = mode

    def norm_layers(self):
        """The layers with batch statistics (BNTT, BatchNorm), in order, inside blocks too."""
        return [layer for layer in self.modules() if hasattr(layer, "batch_statistics")]

    def modules(self):
        """Every plain layer, in order, the insides of blocks in place of the blocks."""
        found = []

        def visit(layer):
            inner = layer.sublayers()
            for sub in inner:
                visit(sub)
            if not inner:
                found.append(layer)

        for layer in self.layers:
            visit(layer)
        return found

    def lif_layers(self):
        return [layer for layer in self.modules() if isinstance(layer, LIF)]

    def named_buffers(self):
        """(``"{i}.{name}"``, array) of every layer's buffers (normalisation statistics)."""
        for i, layer in enumerate(self.layers):
            for name, buf in layer.buffers().items():
                yield f"{i}.{name}", buf

    def state_dict(self):
        """Name -> array copy, for parameters and buffers (normalisation statistics)."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: buf.copy() for name, buf in self.named_buffers()})
        return state

    def load_state_dict(self, state):
        """Copy arrays in place; every key must be present with the right shape."""
        targets = {name: p.data for name, p in self.named_parameters()}
        targets.update(self.named_buffers())
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
