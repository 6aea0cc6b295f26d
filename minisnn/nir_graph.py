"""minisnn networks ⇄ NIR graphs, as plain data: no ``nir`` package is needed in this file.

A graph here is the dictionary that ``nir.NIRGraph.to_dict()`` returns and ``nir.dict2NIRNode``
reads back (``minisnn/export.py`` does both, and the file I/O):

    {"type": "NIRGraph", "nodes": {name: {"type": NIR node type, **params}},
     "edges": [(name, name), …], "metadata": {"dt": …, "dtype": …, "source": "minisnn"}}

with NumPy arrays as params. The mapping, layer by layer (docs/nir.md gives the reasons):

    minisnn                              NIR
    Linear W (+ b)                       Linear(weight=W)  |  Affine(weight=W, bias=b)
    Linear/Conv2d → BatchNorm (eval)     Affine/Conv2d:  W' = s·W,  b' = s·(b − μ) + β,  s = γ/√(σ² + ε)
    Conv2d k, s, p                       Conv2d(weight, stride=(s, s), padding=(p, p), dilation=(1, 1), groups=1)
    AvgPool2d k, s                       AvgPool2d(kernel_size=(k, k), stride=(s, s), padding=(0, 0))
    Flatten                              Flatten(input_type=[C, H, W], start_dim=0, end_dim=−1)
    LIF λ < 1, θ, hard reset             LIF(tau = dt/(1 − λ), r = 1/(1 − λ), v_leak = 0, v_threshold = θ,
                                             v_reset = 0)
    LIF λ = 1, θ, hard reset             IF(r = 1/dt, v_threshold = θ, v_reset = 0)
    Readout W                            Linear(weight=W) → I(r = 1/dt)

NIR's neurons are ODEs and its graph has no time step. One forward-Euler step of length dt of
NIR's LIF, τ·dv/dt = (v_leak − v) + r·I, with the input held over the step, is

    v_t = (1 − dt/τ)·v_{t−1} + (dt/τ)·v_leak + (dt·r/τ)·I_t

which is minisnn's u_t = λ·v_{t−1} + I_t exactly when dt/τ = 1 − λ, dt·r/τ = 1 and v_leak = 0.
NIR then fires on v > v_threshold (strict, as minisnn's o_t = H(u_t − θ)) and sets v to
v_reset = 0 in the same step: minisnn's hard reset v_t = u_t·(1 − o_t). dt = 1e-4 (``DT``) is
snnTorch's, whose exporter and importer both write and read τ = dt/(1 − β), r = τ/dt, so a graph
means the same discrete network to both. The readout's I integrates dv/dt = r·W·o: after T
steps its state is Σ_t W·o_t = T·z (minisnn's z = W·mean_t o_t), the same class.

What NIR cannot express is refused (``NIRError``, one line), never approximated: the soft reset
(NIR's neurons reset *to* v_reset, minisnn's soft reset subtracts θ), BNTT (a γ_t and statistics
for every step; NIR's nodes are the same at every step), LayerNorm and batch statistics (the
map depends on the sample or the batch), residual blocks (not exported yet).
"""
import numpy as np

from .layers import BNTT, LIF, AvgPool2d, BatchNorm, Conv2d, Flatten, LayerNorm, Linear, Readout
from .layers.norm import EPS
from .network import Sequential

DT = 1e-4           # the time step the graph assumes (snnTorch's); stored in the graph's metadata
ROUND_OFF_ULPS = 16  # |gain − 1| within 16 ulps of the stored dtype is round-off of r·dt/τ: exactly 1


class NIRError(ValueError):
    """A network NIR cannot carry, or a graph minisnn cannot run, exactly; one line."""


def is_one(gain, *arrays):
    """Whether an input gain is 1 up to the round-off of the arrays it was computed from (a graph
    written in float32, as snnTorch's, has r·dt/τ = 1 only to ~1e-7)."""
    eps = np.finfo(np.result_type(*[np.asarray(a).dtype for a in arrays], np.float32)).eps
    return abs(gain - 1.0) <= ROUND_OFF_ULPS * eps


def _full(shape, value):
    return np.full(tuple(shape), float(value), dtype=np.float64)


# --- minisnn → NIR --------------------------------------------------------------------------------

def fold_batchnorm(weight, bias, bn):
    """Fold a BatchNorm in evaluation into the synaptic layer before it, exactly:

        y = γ·(W·x + b − μ)/√(σ² + ε) + β = (s·W)·x + s·(b − μ) + β ,   s = γ/√(σ² + ε)

    per output channel (W's first axis), with the statistics evaluation uses (running or
    calibrated). Computed in float64 and returned in the weight's dtype: (W', b')."""
    if bn.eval_stats == "batch":
        raise NIRError(REFUSALS["batch"])
    mean, var = (np.asarray(a, dtype=np.float64) for a in bn.fixed_statistics())
    s = bn.gamma.data.astype(np.float64) / np.sqrt(var + EPS)
    b = np.zeros_like(s) if bias is None else bias.astype(np.float64)
    w = weight.astype(np.float64) * s.reshape((-1,) + (1,) * (weight.ndim - 1))
    return w.astype(weight.dtype), (s * (b - mean) + bn.beta.data.astype(np.float64)).astype(weight.dtype)


def lif_node(leak, threshold, shape, dt=DT):
    """The NIR neuron of a hard-reset LIF layer of ``shape`` (the module docstring's mapping):
    LIF with τ = dt/(1 − λ), r = 1/(1 − λ), v_leak = v_reset = 0, v_threshold = θ; IF with
    r = 1/dt when λ = 1 (no leak: τ would be infinite)."""
    if leak == 1.0:
        return {"type": "IF", "r": _full(shape, 1.0 / dt), "v_threshold": _full(shape, threshold),
                "v_reset": _full(shape, 0.0)}
    return {"type": "LIF", "tau": _full(shape, dt / (1.0 - leak)), "r": _full(shape, 1.0 / (1.0 - leak)),
            "v_leak": _full(shape, 0.0), "v_threshold": _full(shape, threshold), "v_reset": _full(shape, 0.0)}


REFUSALS = {
    "soft": "soft reset (v = u − θ·o) has no NIR equivalent: NIR's LIF resets to v_reset; train with --reset hard",
    "BNTT": "BNTT has its own γ_t and statistics at every time step, but a NIR node is the same at every step; "
            "train with --norm bn or --norm none",
    "LayerNorm": "LayerNorm divides by each sample's own statistics, which no NIR node computes; "
                 "train with --norm bn or --norm none",
    "batch": "BatchNorm with batch statistics depends on the batch; export with running or calibrated statistics",
    "lone norm": "a normalisation layer not directly after a Linear or Conv2d cannot be folded",
    "block": "residual blocks are not exported (this exporter writes chains of layers)",
}


def to_graph(net, input_shape, dt=DT, names=None):
    """The NIR graph of ``net`` (a dict; the module docstring's mapping), in evaluation.

    Parameters
    ----------
    net : Sequential
        BatchNorm layers are folded with the statistics their ``eval_stats`` selects (set it with
        ``net.set_eval_stats``).
    input_shape : tuple of int
        One sample's input, without ``[T, B]``: ``(784,)``, ``(1, 28, 28)``.
    dt : float
        The time step the graph assumes (stored as ``metadata["dt"]``).
    names : dict, optional
        Filled with {layer index: name of the NIR node holding that layer's output}.

    Raises
    ------
    NIRError
        Listing, in one line, every layer NIR cannot carry and why.
    """
    if not dt > 0:
        raise NIRError(f"dt must be positive, got {dt!r}")
    shape = tuple(int(s) for s in input_shape)
    nodes = {"input": {"type": "Input", "shape": np.array(shape, dtype=np.int64)}}
    order, problems, names = ["input"], {}, {} if names is None else names
    layers, i = net.layers, 0
    dtype = net.layers[0].weight.data.dtype if hasattr(net.layers[0], "weight") else np.dtype(np.float32)
    while i < len(layers):
        layer = layers[i]
        after = layers[i + 1] if i + 1 < len(layers) else None
        if layer.sublayers():
            problems.setdefault("block", []).append(i)
            i += 1
            continue
        if isinstance(layer, (Linear, Conv2d)):
            # a normalisation right after the synapses: BatchNorm folds into them, the others are refused
            weight = layer.weight.data
            bias = None if layer.bias is None else layer.bias.data
            dtype = weight.dtype
            norm = after if isinstance(after, (BNTT, BatchNorm, LayerNorm)) else None
            if isinstance(norm, BatchNorm):
                if norm.eval_stats == "batch":
                    problems.setdefault("batch", []).append(i + 1)
                else:
                    weight, bias = fold_batchnorm(weight, bias, norm)
            elif norm is not None:
                problems.setdefault(type(norm).__name__, []).append(i + 1)
            if isinstance(layer, Linear):
                if shape[-1] != layer.in_features:
                    raise NIRError(f"layer {i} (Linear) expects {layer.in_features} inputs, "
                                   f"the graph gives it {list(shape)}")
                node = {"type": "Linear", "weight": weight} if bias is None else \
                    {"type": "Affine", "weight": weight, "bias": bias}
                shape = shape[:-1] + (layer.out_features,)
            else:
                k, s, p = layer.kernel_size, layer.stride, layer.padding
                # NIR's Conv2d always has a bias (zeros for none) and needs the input's H, W for its types
                node = {"type": "Conv2d", "input_shape": np.array(shape[1:], dtype=np.int64), "weight": weight,
                        "stride": np.array([s, s]), "padding": np.array([p, p]), "dilation": np.array([1, 1]),
                        "groups": 1, "bias": np.zeros(layer.out_channels, weight.dtype) if bias is None else bias}
                shape = (layer.out_channels, *layer.output_shape(*shape[1:]))
            name = f"{node['type'].lower()}_{i}"
            names.update({i: name, **({i + 1: name} if norm is not None else {})})
            i += 2 if norm is not None else 1
        elif isinstance(layer, LIF):
            if layer.reset != "hard":
                problems.setdefault("soft", []).append(i)
            name, node = f"lif_{i}", lif_node(layer.leak, layer.threshold, shape, dt)
            names[i] = name
            i += 1
        elif isinstance(layer, AvgPool2d):
            k, s = layer.kernel_size, layer.stride
            name, node = f"avgpool2d_{i}", {"type": "AvgPool2d", "kernel_size": np.array([k, k]),
                                            "stride": np.array([s, s]), "padding": np.array([0, 0])}
            shape = (shape[0], *layer.output_shape(*shape[1:]))
            names[i] = name
            i += 1
        elif isinstance(layer, Flatten):
            name, node = f"flatten_{i}", {"type": "Flatten", "input_type": np.array(shape, dtype=np.int64),
                                          "start_dim": 0, "end_dim": -1}
            shape = (int(np.prod(shape)),)
            names[i] = name
            i += 1
        elif isinstance(layer, Readout):
            # no node averages over time: the synapses, then a leaky-free integrator whose state after
            # T steps is Σ_t W·o_t = T·z
            nodes[f"readout_{i}"] = {"type": "Linear", "weight": layer.weight.data}
            order.append(f"readout_{i}")
            shape = (layer.out_features,)
            name, node = f"integrator_{i}", {"type": "I", "r": _full(shape, 1.0 / dt)}
            names[i] = name
            i += 1
        elif isinstance(layer, (BNTT, BatchNorm, LayerNorm)):
            problems.setdefault(type(layer).__name__ if isinstance(layer, (BNTT, LayerNorm)) else "lone norm",
                                []).append(i)
            i += 1
            continue
        else:
            raise NIRError(f"layer {i} ({type(layer).__name__}) has no NIR node in this exporter")
        nodes[name] = node
        order.append(name)
    if problems:
        raise NIRError("cannot export to NIR: " + "; ".join(
            f"layer{'s' if len(at) > 1 else ''} {', '.join(map(str, at))}: {REFUSALS[why]}"
            for why, at in problems.items()))
    nodes["output"] = {"type": "Output", "shape": np.array(shape, dtype=np.int64)}
    order.append("output")
    return {"type": "NIRGraph", "nodes": nodes, "edges": list(zip(order[:-1], order[1:])),
            "metadata": {"source": "minisnn", "dt": float(dt), "dtype": np.dtype(dtype).name}}


# --- NIR → minisnn --------------------------------------------------------------------------------

def chain(graph):
    """The node names from the Input node to the Output node, following the edges; refuses
    anything that is not a single chain (branches, recurrence, subgraphs)."""
    nodes, edges = graph["nodes"], [tuple(e) for e in graph["edges"]]
    inputs = [n for n, node in nodes.items() if node["type"] == "Input"]
    if len(inputs) != 1:
        raise NIRError(f"the graph needs exactly one Input node, it has {len(inputs)}")
    succ = {}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise NIRError(f"edge ({a!r}, {b!r}) names a node the graph does not have")
        if a in succ:
            raise NIRError(f"node {a!r} feeds two nodes ({succ[a]!r}, {b!r}): only chains of layers are supported")
        succ[a] = b
    order = [inputs[0]]
    while order[-1] in succ:
        if succ[order[-1]] in order:
            raise NIRError(f"the graph has a cycle through {succ[order[-1]]!r} (recurrence is not supported)")
        order.append(succ[order[-1]])
    if len(order) != len(nodes) or nodes[order[-1]]["type"] != "Output":
        missing = sorted(set(nodes) - set(order))
        raise NIRError("the graph is not one chain from Input to Output"
                       + (f" (not on it: {missing})" if missing else ""))
    return order


def uniform(node, key, where):
    """The one value of a per-neuron parameter, or refuse: minisnn's LIF has scalar λ and θ."""
    values = np.unique(np.asarray(node[key], dtype=np.float64))
    if values.size != 1:
        raise NIRError(f"{where}: {key} differs between neurons ({values.size} values); minisnn's LIF has one")
    return float(values[0])


def leak_from(tau, dt):
    """λ = 1 − dt/τ, the inverse of τ = dt/(1 − λ); among the floats next to the computed value,
    the one that maps back to exactly τ is taken, so an exported λ ≥ 1/2 (where 1 − λ is exact)
    comes back bit for bit. Below 1/2, 1 − λ rounds and several λ give the same τ: the one read
    back is within 2⁻⁵² (one ulp of 1 − λ) of the one written."""
    guess = 1.0 - dt / tau
    candidates = [guess]
    up = down = guess
    for _ in range(8):
        up, down = np.nextafter(up, 2.0), np.nextafter(down, -1.0)
        candidates += [float(up), float(down)]
    for c in candidates:
        if c < 1.0 and dt / (1.0 - c) == tau:
            return c
    return guess


def _neuron(node, dt, where):
    """minisnn's hard-reset LIF for a NIR LIF or IF node: λ from τ, θ = v_threshold / gain, where
    gain = r·dt/τ (LIF) or r·dt (IF) is the input's weight in one Euler step."""
    kind = node["type"]
    stored = [node[k] for k in ("tau", "r") if k in node]
    if uniform(node, "v_reset", where) != 0.0:
        raise NIRError(f"{where}: v_reset ≠ 0; minisnn's hard reset sets the membrane to 0")
    if kind == "LIF":
        if uniform(node, "v_leak", where) != 0.0:
            raise NIRError(f"{where}: v_leak ≠ 0; minisnn's LIF leaks towards 0")
        tau, r = uniform(node, "tau", where), uniform(node, "r", where)
        if not tau >= dt:
            raise NIRError(f"{where}: τ = {tau:g} is below dt = {dt:g}: λ = 1 − dt/τ would be negative")
        leak, gain = leak_from(tau, dt), r * dt / tau
    else:
        leak, gain = 1.0, uniform(node, "r", where) * dt
    if not gain > 0:
        raise NIRError(f"{where}: the input gain r·dt/τ = {gain:g} must be positive")
    threshold = uniform(node, "v_threshold", where)
    if not is_one(gain, *stored):       # v' = v/gain: the same spikes with θ' = θ/gain
        threshold /= gain
    if not threshold > 0:
        raise NIRError(f"{where}: threshold {threshold:g} must be positive")
    return LIF(leak=leak, threshold=threshold, reset="hard")


def _pair(value, where, what):
    v = np.atleast_1d(np.asarray(value)).astype(np.int64)
    v = np.repeat(v, 2) if v.size == 1 else v
    if v.size != 2 or v[0] != v[1]:
        raise NIRError(f"{where}: {what} {v.tolist()} is not square; minisnn's layers are")
    return int(v[0])


def _synapse(node, dtype, where):
    """Linear or Conv2d for a NIR Linear, Affine or Conv2d node (a zero bias is no bias)."""
    weight = np.asarray(node["weight"])
    bias = np.asarray(node["bias"]) if "bias" in node else None
    has_bias = bias is not None and bool(np.any(bias != 0)) if node["type"] == "Conv2d" else bias is not None
    if node["type"] in ("Linear", "Affine"):
        if weight.ndim != 2:
            raise NIRError(f"{where}: weight of shape {list(weight.shape)} is not [out, in]")
        layer = Linear(weight.shape[1], weight.shape[0], bias=has_bias, dtype=dtype)
    else:
        if int(np.asarray(node.get("groups", 1))) != 1 or _pair(node.get("dilation", 1), where, "dilation") != 1:
            raise NIRError(f"{where}: grouped or dilated convolutions have no minisnn layer")
        padding = node.get("padding", 0)
        if isinstance(padding, (str, bytes)):
            padding = padding.decode() if isinstance(padding, bytes) else padding
            if padding == "same" and weight.shape[-1] % 2 == 0:
                raise NIRError(f"{where}: 'same' padding of an even kernel is asymmetric; minisnn pads symmetrically")
            padding = 0 if padding == "valid" else (weight.shape[-1] - 1) // 2
        k = _pair(weight.shape[2:], where, "kernel")
        layer = Conv2d(weight.shape[1], weight.shape[0], k, _pair(node.get("stride", 1), where, "stride"),
                       _pair(padding, where, "padding"), bias=has_bias, dtype=dtype)
    layer.weight.data[...] = weight
    if has_bias:
        layer.bias.data[...] = bias
    return layer


def from_graph(graph, dt=None):
    """The minisnn network of a NIR graph (a dict as ``to_graph`` returns or ``nir`` reads).

    Parameters
    ----------
    graph : dict
    dt : float, optional
        The time step to read the neurons' τ and r with; default the graph's ``metadata["dt"]``,
        else ``DT`` (snnTorch's convention).

    Returns
    -------
    Sequential
        Without a ``spec``; its layers run in the graph's dtype (``metadata["dtype"]``, else the
        weights').

    Raises
    ------
    NIRError
        For a node minisnn has no exact layer for, with the node and the reason.
    """
    metadata = graph.get("metadata") or {}
    dt = float(dt if dt is not None else metadata.get("dt", DT))
    nodes, order = graph["nodes"], chain(graph)
    weights = [np.asarray(n["weight"]).dtype for n in nodes.values() if "weight" in n]
    dtype = np.dtype(str(metadata["dtype"])) if "dtype" in metadata else np.result_type(*weights, np.float32)
    layers, k = [], 1
    while k < len(order) - 1:
        name = order[k]
        node, kind, where = nodes[name], nodes[name]["type"], f"node {name!r} ({nodes[name]['type']})"
        after = nodes[order[k + 1]]["type"]
        if kind in ("Linear", "Affine") and after in ("I", "LI", "CubaLI"):
            if after != "I":
                raise NIRError(f"node {order[k + 1]!r} ({after}): minisnn's readout integrates without a leak")
            if nodes[order[k + 2]]["type"] != "Output":
                raise NIRError(f"node {order[k + 1]!r} (I): a non-spiking integrator is only supported as the readout")
            if kind == "Affine" and np.any(np.asarray(node["bias"]) != 0):
                raise NIRError(f"{where}: minisnn's readout has no bias")
            weight = np.asarray(node["weight"])
            gain = uniform(nodes[order[k + 1]], "r", f"node {order[k + 1]!r} (I)") * dt
            readout = Readout(weight.shape[1], weight.shape[0], dtype=dtype)
            # z = (1/T)·Σ_t gain·W·o_t: the readout's mean, up to NIR's sum over the T steps
            readout.weight.data[...] = weight if is_one(gain, nodes[order[k + 1]]["r"]) else weight * gain
            layers.append(readout)
            k += 2
            continue
        if kind in ("Linear", "Affine", "Conv2d"):
            layers.append(_synapse(node, dtype, where))
        elif kind in ("LIF", "IF"):
            layers.append(_neuron(node, dt, where))
        elif kind == "AvgPool2d":
            if np.any(np.asarray(node["padding"]) != 0):
                raise NIRError(f"{where}: minisnn's AvgPool2d has no padding")
            layers.append(AvgPool2d(_pair(node["kernel_size"], where, "kernel_size"),
                                    _pair(node["stride"], where, "stride")))
        elif kind == "Flatten":
            last = np.asarray(node["input_type"]).size - 1 if node.get("input_type") is not None else -1
            if int(node.get("start_dim", 0)) != 0 or int(node.get("end_dim", -1)) not in (-1, last):
                raise NIRError(f"{where}: only a flatten of the whole sample (start_dim 0, end_dim −1) is supported")
            layers.append(Flatten())
        else:
            raise NIRError(f"{where}: minisnn has no layer for this node type")
        k += 1
    if not layers:
        raise NIRError("the graph has no layers between Input and Output")
    return Sequential(*layers)


def input_shape(graph):
    """One sample's input shape, from the graph's Input node."""
    node = graph["nodes"][chain(graph)[0]]
    return tuple(int(s) for s in np.atleast_1d(node["shape"]))
