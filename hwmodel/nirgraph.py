"""A NIR graph and a recording of its spikes as a ``runfile.Run``: the same validated object
``read_run`` returns, so counting and pricing are literally the same code for a network from any
framework that writes NIR (snnTorch, Norse, Lava, Sinabs, …) and for minisnn's run files.

    python -m hwmodel.energy graph.nir --spikes spikes.h5        (``read_any_run`` dispatches)

The graph must be a chain, Input → … → Output. Its nodes become the run format's layers:

    NIR node                              run-format kind
    Linear, Affine                        Linear (in_features = weight.shape[1], out_features = weight.shape[0])
    Linear/Affine → I | LI | CubaLI       Readout (one layer: synapses, then a non-spiking integrator)
    Conv2d                                Conv2d
    AvgPool2d, SumPool2d                  AvgPool2d (pooling: not counted itself; its output is not binary)
    Flatten                               Flatten
    LIF, IF, CubaLIF, Threshold           LIF (neurons: one update per neuron and step, its spikes)
    Scale                                 Identity (elementwise)

and the recording (``spikefile``) gives each source's counts c[t, i]: the Input node's (the
encoded input, source ``input``), every spiking node's, and the output of any other node that a
synaptic layer reads (looked up at the node before it, back through Flattens). A source's
``origin`` is "input" when the nearest recorded node upstream is the Input, else "spikes".
Everything else (Conv1d, Delay, recurrent subgraphs, branches) is refused in one line.

Shapes follow the graph from the Input node's shape: NIR's per-sample shapes, without time or
batch. Sources are named as in minisnn's run files (``input``; ``L<i>``, the spikes of layer i;
``X<i>``, the input of layer i, of its input shape), so a minisnn network prices the same way
from either file; ``meta["nir_sources"]`` maps each source to its node.
"""
import numpy as np

from . import geometry
from .runfile import Run, RunFormatError, read_run, validate
from .spikefile import read_spikes

DT = 1e-4     # the time step assumed when the graph's metadata has none (snnTorch's convention)
SYNAPSES = ("Linear", "Affine", "Conv2d")
INTEGRATORS = ("I", "LI", "CubaLI")
SPIKING = ("LIF", "IF", "CubaLIF", "Threshold")
POOLS = ("AvgPool2d", "SumPool2d")
KIND = {"Linear": "Linear", "Affine": "Linear", "Conv2d": "Conv2d", "AvgPool2d": "AvgPool2d",
        "SumPool2d": "AvgPool2d", "Flatten": "Flatten", "Scale": "Identity", **{k: "LIF" for k in SPIKING}}


class NIRGraphError(RunFormatError):
    """A NIR graph hwmodel cannot count; the message is one line."""


def _fail(where, message):
    raise NIRGraphError(f"{where}: {message}")


def read_nir_graph(path):
    """The graph of a ``.nir`` file as plain data {"nodes", "edges", "metadata"} (needs nir)."""
    where = str(path)
    try:
        import nir
    except ImportError:
        _fail(where, "reading a NIR graph needs the nir package: pip install nir h5py "
                     "(or pip install -e '.[nir]' in minisnn's repository)")
    try:
        graph = nir.read(path)
    except FileNotFoundError:
        _fail(where, "no such file")
    except Exception as e:     # h5py, nir's own checks: not a NIR graph we can read
        _fail(where, f"not a readable NIR graph ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    return graph_dict(graph)


def graph_dict(graph):
    """{"nodes": {name: {"type", **params}}, "edges", "metadata"} from a ``nir.NIRGraph`` or
    from such a dict (``nir.NIRGraph.to_dict()``'s form)."""
    if not isinstance(graph, dict):
        graph = graph.to_dict()
    nodes = {str(k): dict(v) for k, v in graph["nodes"].items()}
    edges = [(str(a), str(b)) for a, b in graph["edges"]]
    return {"nodes": nodes, "edges": edges, "metadata": dict(graph.get("metadata") or {})}


def _chain(graph, where):
    nodes = graph["nodes"]
    for name, node in nodes.items():
        if node["type"] == "NIRGraph":
            _fail(where, f"node {name!r} is a subgraph (a recurrent layer?); the run format has no recurrence")
    inputs = [n for n, node in nodes.items() if node["type"] == "Input"]
    if len(inputs) != 1:
        _fail(where, f"the graph needs exactly one Input node, it has {len(inputs)}")
    succ, pred = {}, {}
    for a, b in graph["edges"]:
        if a not in nodes or b not in nodes:
            _fail(where, f"edge ({a!r}, {b!r}) names a node the graph does not have")
        if a in succ or b in pred:
            _fail(where, f"the graph branches at ({a!r}, {b!r}); the run format (v1) holds chains of layers only")
        succ[a], pred[b] = b, a
    order = [inputs[0]]
    while order[-1] in succ and succ[order[-1]] not in order:
        order.append(succ[order[-1]])
    if len(order) != len(nodes) or nodes[order[-1]]["type"] != "Output":
        _fail(where, "the graph is not one chain from its Input node to an Output node")
    return order


def _pair(value):
    v = np.atleast_1d(np.asarray(value)).astype(np.int64).tolist()
    return v * 2 if len(v) == 1 else v


def _conv_params(node, where):
    weight = np.asarray(node["weight"])
    groups = int(np.asarray(node.get("groups", 1)))
    kernel = list(weight.shape[2:])
    padding = node.get("padding", 0)
    if isinstance(padding, (bytes, np.bytes_)) or (isinstance(padding, np.ndarray) and padding.dtype.kind in "SU"):
        padding = np.asarray(padding).item()
        padding = padding.decode() if isinstance(padding, bytes) else padding
    if isinstance(padding, str):      # NIR also allows "valid" and "same"
        if padding == "same" and (any(k % 2 == 0 for k in kernel) or _pair(node.get("stride", 1)) != [1, 1]):
            _fail(where, "'same' padding with an even kernel or a stride is not a symmetric padding")
        padding = [0, 0] if padding == "valid" else \
            [(k - 1) // 2 * d for k, d in zip(kernel, _pair(node.get("dilation", 1)))]
    return {"in_channels": int(weight.shape[1]) * groups, "out_channels": int(weight.shape[0]),
            "kernel_size": kernel, "stride": _pair(node.get("stride", 1)), "padding": _pair(padding),
            "dilation": _pair(node.get("dilation", 1)), "groups": groups,
            "bias": bool(np.any(np.asarray(node.get("bias", 0)) != 0))}


def _flatten_shape(shape, node):
    start, end = int(node.get("start_dim", 0)), int(node.get("end_dim", -1))
    start, end = start % len(shape), end % len(shape)
    return shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:]


def _neuron_params(node, dt):
    """Informative LIF params (as minisnn's run files have), where they are one value per layer."""
    def one(key):
        v = np.unique(np.asarray(node[key], dtype=np.float64)) if key in node else []
        return float(v[0]) if len(v) == 1 else None
    params = {"nir_type": node["type"], "threshold": one("v_threshold") if "v_threshold" in node else one("threshold")}
    if node["type"] == "LIF" and one("tau"):
        params["leak"] = 1.0 - dt / one("tau")
    if "v_reset" in node:
        params["reset"] = "to v_reset"
    return {k: v for k, v in params.items() if v is not None}


def run_from_graph(graph, spikes, path="<memory>"):
    """The ``Run`` of a NIR graph and its recording (the module docstring's mapping).

    Parameters
    ----------
    graph : dict or nir.NIRGraph
    spikes : spikefile.Spikes
    path : str
        Names the run in messages and reports (the graph file).

    Returns
    -------
    runfile.Run
        Validated; ``meta`` holds the recording's meta, ``nir_graph``, ``spikes``, ``dt`` and
        ``nir_sources`` (source name -> node name).

    Raises
    ------
    NIRGraphError, RunFormatError
        One line naming the node or source at fault.
    """
    graph = graph_dict(graph)
    where = str(path)
    nodes, order = graph["nodes"], _chain(graph, where)
    dt = float(graph["metadata"].get("dt", DT))
    unknown = sorted(set(spikes.counts) - set(nodes))
    if unknown:
        _fail(spikes.path, f"entries for {unknown}, which are not nodes of the graph {where}")
    source_of, origin_of = {order[0]: "input"}, {order[0]: "input"}   # node -> source name; origin
    sources, counts = {}, {}

    def record(node, origin, name, shape):
        """Source ``name`` of ``shape`` (the run format's names: input, L<i>, X<i>) holds ``node``'s
        output, from the recording."""
        if node not in spikes.counts:
            _fail(spikes.path, f"no entry for node {node!r} ({nodes[node]['type']}) of the graph {where}")
        c = spikes.counts[node]
        if int(np.prod(c.shape[1:])) != int(np.prod(shape)):
            _fail(spikes.path, f"node {node!r} has counts of shape {list(c.shape[1:])}, the graph's output "
                               f"shape is {list(shape_of[node])}")
        sources[name] = {"shape": list(shape), "binary": spikes.binary[node], "origin": origin}
        counts[name] = c.reshape((spikes.T,) + tuple(shape))
        source_of[node] = name
        return name

    def reads(k, index, in_shape):
        """The source layer ``index`` (at position k of the chain) reads: its input, back through
        Flattens; an intermediate is X<index>, of the layer's input shape (as minisnn records it)."""
        j = k - 1
        while True:
            node = order[j]
            if node in source_of:
                return source_of[node]
            if node in spikes.counts:
                return record(node, origin_of[node], f"X{index}", in_shape)
            if nodes[node]["type"] != "Flatten":
                _fail(spikes.path, f"no entry for node {node!r} ({nodes[node]['type']}), whose output node "
                                   f"{order[k]!r} of {where} reads")
            j -= 1

    shape_of = {order[0]: tuple(int(s) for s in np.atleast_1d(nodes[order[0]]["shape"]))}
    record(order[0], "input", "input", shape_of[order[0]])
    layers, k = [], 1
    while k < len(order) - 1:
        name, node = order[k], nodes[order[k]]
        kind, lw = node["type"], f"node {order[k]!r} ({nodes[order[k]]['type']})"
        in_shape = shape_of[order[k - 1]]
        entry = {"index": len(layers), "class": kind, "node": name, "repr": f"{name} ({kind})",
                 "in_shape": list(in_shape), "params": {}, "input": None, "output": None}
        readout = kind in ("Linear", "Affine") and nodes[order[k + 1]]["type"] in INTEGRATORS
        if kind in ("Linear", "Affine"):
            weight = np.asarray(node["weight"])
            if weight.ndim != 2:
                _fail(where, f"{lw}: weight of shape {list(weight.shape)} is not [out, in]")
            entry["params"] = {"in_features": int(weight.shape[1]), "out_features": int(weight.shape[0]),
                               "bias": kind == "Affine"}
            if readout:
                if nodes[order[k + 2]]["type"] != "Output":
                    _fail(where, f"node {order[k + 1]!r}: a non-spiking integrator is only counted as the readout")
                entry.update(kind="Readout", **{"class": f"{kind}+{nodes[order[k + 1]]['type']}"})
                out_shape = (int(weight.shape[0]),)
            else:
                if in_shape[-1] != weight.shape[1]:
                    _fail(where, f"{lw}: input shape {list(in_shape)} does not end in {weight.shape[1]}")
                out_shape = in_shape[:-1] + (int(weight.shape[0]),)
        elif kind == "Conv2d":
            entry["params"] = _conv_params(node, lw)
            p = entry["params"]
            if len(in_shape) != 3:
                _fail(where, f"{lw}: input shape {list(in_shape)} is not [C, H, W]")
            out_shape = (p["out_channels"], *(geometry.out_size(n, kk, s, pp, d) for n, kk, s, pp, d in zip(
                in_shape[1:], p["kernel_size"], p["stride"], p["padding"], p["dilation"])))
        elif kind in POOLS:
            entry["params"] = {"kernel_size": _pair(node["kernel_size"]), "stride": _pair(node["stride"]),
                               "padding": _pair(node.get("padding", 0))}
            p = entry["params"]
            if len(in_shape) != 3:
                _fail(where, f"{lw}: input shape {list(in_shape)} is not [C, H, W]")
            out_shape = (in_shape[0], *(geometry.out_size(n, kk, s, pp) for n, kk, s, pp in zip(
                in_shape[1:], p["kernel_size"], p["stride"], p["padding"])))
        elif kind == "Flatten":
            out_shape = _flatten_shape(in_shape, node)
        elif kind in SPIKING or kind == "Scale":
            out_shape = in_shape
            entry["params"] = _neuron_params(node, dt) if kind in SPIKING else {}
        elif kind in INTEGRATORS:
            _fail(where, f"{lw}: a non-spiking integrator is only counted as the readout, after a Linear or Affine")
        else:
            _fail(where, f"{lw}: the run format has no layer for this node type")
        entry.setdefault("kind", KIND.get(kind))
        if entry["kind"] in ("Linear", "Readout", "Conv2d", "AvgPool2d"):
            entry["input"] = reads(k, len(layers), in_shape)
        shape_of[name] = tuple(int(s) for s in out_shape)
        origin_of[name] = origin_of[order[k - 1]]
        if kind in SPIKING:
            origin_of[name] = "spikes"
            entry["output"] = record(name, "spikes", f"L{len(layers)}", shape_of[name])
        entry["out_shape"] = list(shape_of[name])
        layers.append(entry)
        if readout:
            shape_of[order[k + 1]], origin_of[order[k + 1]] = shape_of[name], origin_of[name]
            k += 1
        k += 1
    meta = {**spikes.meta, "nir_graph": where, "spikes": spikes.path, "dt": dt,
            "nir_sources": {s: n for n, s in source_of.items()}}
    run = Run(T=spikes.T, n_samples=spikes.n_samples, layers=layers, sources=sources, counts=counts, meta=meta,
              n_labelled=spikes.n_labelled, n_correct=spikes.n_correct, path=where)
    return validate(run)


def read_nir_run(graph_path, spikes_path):
    """``run_from_graph`` of a ``.nir`` file and a spikes file (``spikefile``)."""
    if spikes_path is None:
        _fail(str(graph_path), "a NIR graph has no activity of its own: give its recording with --spikes "
                               "(docs/nir.md)")
    return run_from_graph(read_nir_graph(graph_path), read_spikes(spikes_path), path=str(graph_path))


def read_any_run(path, spikes=None):
    """A run file, or a NIR graph (``.nir``) with its spikes file: what ``hwmodel.energy`` reads."""
    if str(path).lower().endswith(".nir"):
        return read_nir_run(path, spikes)
    if spikes is not None:
        raise RunFormatError(f"{path}: --spikes goes with a NIR graph (a .nir file), not a run file")
    return read_run(path)
