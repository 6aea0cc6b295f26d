"""Recording a run for hwmodel: spike counts per time step and per neuron, summed over samples.

``record_run`` runs the network in evaluation mode, observing every layer (inside residual blocks
too: a block becomes its main path, its shortcut, an ``Add`` of the two and its neuron, linked by
``after`` and ``operands``; ``docs/run-format.md``), and keeps, for every tensor
that a synaptic or pooling layer reads (the encoded input, each LIF layer's spikes, and any
other intermediate such as average-pooled spikes),

    c[t, i] = #{samples b : x_t[b, i] ≠ 0}

which is exactly what counting events needs: a layer performs Σ_i c[t, i]·fanout(i) operations
at step t. Each such tensor is marked binary when every recorded value lies in {−1, 0, 1}
(spikes, signed Poisson input) and not binary otherwise (analogue input, pooled spikes). The
run's meta also says whether the input is a sequence (``sequential``: analogue values that change
from step to step, as sMNIST's one pixel per step), for the equivalent-ANN baseline. The
file format is ``docs/run-format.md``; ``hwmodel.runfile`` writes it (atomically) and reads it.
"""
import numpy as np
from tqdm import tqdm

from hwmodel.runfile import ELEMENTWISE, POOLING, RESHAPE, SYNAPTIC, write_run

from .layers import LIF

KNOWN = SYNAPTIC + POOLING + RESHAPE + ELEMENTWISE + ("LIF",)


def is_binary(x):
    """True when every value of x is −1, 0 or 1."""
    return bool(np.all((x == 0) | (np.abs(x) == 1)))


def _pair(v):
    return [int(v[0]), int(v[1])] if isinstance(v, (tuple, list)) else [int(v), int(v)]


def describe(layer):
    """(kind, params) of a minisnn layer: the run format's kind (``docs/run-format.md``) and what
    counting needs of it."""
    kind = "LIF" if isinstance(layer, LIF) else type(layer).__name__
    if kind not in KNOWN:
        raise ValueError(f"record_run: the run format has no layer kind {kind!r}")
    params = {}
    if kind in ("Linear", "Readout"):
        params = {"in_features": int(layer.in_features), "out_features": int(layer.out_features),
                  "bias": getattr(layer, "bias", None) is not None}
    elif kind == "Conv2d":
        params = {"in_channels": int(layer.in_channels), "out_channels": int(layer.out_channels),
                  "kernel_size": _pair(layer.kernel_size), "stride": _pair(getattr(layer, "stride", 1)),
                  "padding": _pair(getattr(layer, "padding", 0)), "dilation": _pair(getattr(layer, "dilation", 1)),
                  "groups": int(getattr(layer, "groups", 1)), "bias": getattr(layer, "bias", None) is not None}
    elif kind in POOLING:
        stride = getattr(layer, "stride", None)
        params = {"kernel_size": _pair(layer.kernel_size),
                  "stride": _pair(stride if stride is not None else layer.kernel_size),
                  "padding": _pair(getattr(layer, "padding", 0))}
    elif kind == "LIF":
        params = {k: getattr(layer, k) for k in ("leak", "threshold", "reset") if hasattr(layer, k)}
    elif hasattr(layer, "channels"):
        params = {"channels": int(layer.channels)}
    return kind, params


class _Recorder:
    """Accumulates the counts of one run over its batches."""

    def __init__(self):
        self.counts, self.sources, self.layers = {}, {}, None
        self.T = None
        self.varies = False          # does the input change over time (a sequence, not a static image)?
        self.n_samples = self.n_labelled = self.n_correct = 0

    def add(self, name, x, origin):
        """c[t, i] += #{b : x[t, b, i] ≠ 0}; the source stays binary only if x is."""
        nonzero = np.count_nonzero(x, axis=1).astype(np.int64)
        if name not in self.counts:
            self.counts[name] = nonzero
            self.sources[name] = {"shape": list(x.shape[2:]), "binary": is_binary(x), "origin": origin}
            return
        if self.counts[name].shape != nonzero.shape:
            raise ValueError(f"record_run: tensor {name!r} changed shape between batches "
                             f"({list(self.counts[name].shape)} vs {list(nonzero.shape)})")
        self.counts[name] += nonzero
        self.sources[name]["binary"] = self.sources[name]["binary"] and is_binary(x)

    def batch(self, net, x, labels):
        x = np.asarray(x)
        if x.ndim < 3:
            raise ValueError(f"record_run: inputs must be time-major [T, B, ...], got shape {x.shape}")
        if self.T is None:
            self.T = x.shape[0]
        elif x.shape[0] != self.T:
            raise ValueError(f"record_run: every batch needs the same T; got {x.shape[0]} after {self.T}")
        self.add("input", x, "input")
        self.varies = self.varies or not np.all(x == x[:1])
        layers = []
        state = {"current": "input", "origin": "input"}   # the recorded tensor the next layer reads
        blocks = {}                                        # network index -> what its block needs

        def entry(layer, x, y, after=None):
            """Append one layer's entry; record its input or output where counting needs them."""
            k = len(layers)
            kind, params = describe(layer)
            e = {"index": k, "kind": kind, "class": type(layer).__name__, "repr": repr(layer),
                 "in_shape": list(x.shape[2:]), "params": params, "input": None, "output": None,
                 "out_shape": list(y.shape[2:] if y.ndim >= 3 else y.shape[1:])}
            if after is not None and after != k - 1:
                e["after"] = after
            if kind in SYNAPTIC + POOLING:
                if state["current"] is None:        # an intermediate no recorded tensor holds
                    state["current"] = f"X{k}"
                    self.add(state["current"], x, state["origin"])
                e["input"] = state["current"]
            if kind == "LIF":
                state.update(current=f"L{k}", origin="spikes")
                self.add(state["current"], y, "spikes")
                e["output"] = state["current"]
            elif kind not in RESHAPE:
                state["current"] = None
            layers.append(e)
            return k

        def add_entry(block, shape, operands):
            """The sum of a block's two paths; an identity shortcut names the block input's source."""
            b = blocks[block]
            identity = b["shortcut_last"] is None
            layers.append({"index": len(layers), "kind": "Add", "class": "Add", "repr": "Add()",
                           "in_shape": shape, "out_shape": shape, "params": {"operands": operands},
                           "input": b["source"][0] if identity else None, "output": None})
            state["current"] = None

        def observe(i, layer, x, y):
            if not isinstance(i, tuple):
                if layer.sublayers():               # the block's insides were observed already
                    b = blocks[i]
                    if layer.sew:                   # spikes + shortcut, after the neuron
                        add_entry(i, list(y.shape[2:]), [b["neuron"], b["before"] if b["shortcut_last"] is None else b["shortcut_last"]])
                    del blocks[i]
                    return
                entry(layer, x, y)
                return
            block, path = i[0], i[1:]
            if block not in blocks:                 # the block's input, as the first inner layer sees it
                before = len(layers) - 1
                if state["current"] is None:
                    state["current"] = f"X{before + 1}"
                    self.add(state["current"], x, state["origin"])
                blocks[block] = {"before": before, "source": (state["current"], state["origin"]),
                                 "main_last": None, "shortcut_last": None, "neuron": None,
                                 "sew": bool(net.layers[block].sew)}
            b = blocks[block]
            if path[0] == "neuron":
                if b["sew"]:
                    state["current"] = None
                    b["neuron"] = entry(layer, x, y, after=b["main_last"])
                else:
                    add_entry(block, list(x.shape[2:]), [b["main_last"], b["before"] if b["shortcut_last"] is None else b["shortcut_last"]])
                    b["neuron"] = entry(layer, x, y)
                return
            last = b[f"{path[0]}_last"]
            if last is None:                        # a path's first layer reads the block input
                state["current"], state["origin"] = b["source"]
            b[f"{path[0]}_last"] = entry(layer, x, y, after=b["before"] if last is None else last)

        x = net.forward(x, train=False, observe=observe)
        net.clear()
        if self.layers is None:
            self.layers = layers
        elif [(e["in_shape"], e["out_shape"]) for e in layers] != [(e["in_shape"], e["out_shape"]) for e in self.layers]:
            raise ValueError("record_run: layer shapes changed between batches")
        self.n_samples += x.shape[1] if x.ndim >= 3 else x.shape[0]
        if labels is not None:
            logits = x.mean(axis=0) if x.ndim >= 3 else x
            labels = np.asarray(labels).reshape(-1)
            self.n_labelled += labels.size
            self.n_correct += int(np.sum(np.argmax(logits, axis=-1) == labels))


def record_run(net, batches, path, meta=None):
    """Run ``net`` (eval mode) on every batch and write the run file.

        c_src[t, i] = Σ_batches #{b : x_src[t, b, i] ≠ 0}

    Parameters
    ----------
    net : minisnn.network.Sequential
        Run with ``forward(x, train=False, observe=...)``, which shows every layer's input and
        output.
    batches : iterable of (x, labels)
        x the encoded input ``[T, B, ...]`` (same T throughout); labels ``[B]`` or None.
    path : str or Path
        Where the run file goes (format v1, ``docs/run-format.md``), written atomically.
    meta : dict, optional
        Provenance stored in the file (dataset, checkpoint, …); it overrides recorded fields.

    Returns
    -------
    dict
        path, T, n_samples, accuracy (None without labels), layers (kinds), input_binary,
        sequential, spikes_per_sample, spike_rate (LIF spikes per neuron per step).
    """
    return write_recording(collect(net, batches), net, path, meta)


def collect(net, batches):
    """The counts of ``record_run`` (one pass over ``batches``), not yet written: a ``_Recorder``
    whose ``counts``, ``sources`` and ``layers`` are the run file's (``minisnn.export`` writes
    them as a NIR spikes file too)."""
    rec = _Recorder()
    total = len(batches) if hasattr(batches, "__len__") else None
    for x, labels in tqdm(batches, desc="record", unit="batch", total=total, disable=None, leave=False):
        rec.batch(net, x, labels)
    if rec.T is None:
        raise ValueError("record_run: no batches to record")
    return rec


def run_meta(rec, net, meta=None):
    """The run's meta: the network, its spec, minisnn's version, ``sequential``, then ``meta``."""
    info = {"network": repr(net), "spec": getattr(net, "spec", None)}
    try:
        from . import __version__
        info["minisnn_version"] = __version__
    except ImportError:
        pass
    # analogue values that change from step to step are a sequence (sMNIST): an equivalent ANN must
    # run once per step. Constant input is direct coding, binary input rate coding: one pass.
    info["sequential"] = bool(rec.varies and not rec.sources["input"]["binary"])
    info.update(meta or {})
    return info


def write_recording(rec, net, path, meta=None):
    """Write what ``collect`` gathered as a run file; returns ``record_run``'s summary."""
    info = run_meta(rec, net, meta)
    write_run(path, T=rec.T, n_samples=rec.n_samples, layers=rec.layers, sources=rec.sources, counts=rec.counts,
              meta=info, n_labelled=rec.n_labelled, n_correct=rec.n_correct)
    lif = [e for e in rec.layers if e["kind"] == "LIF"]
    spikes = sum(int(rec.counts[e["output"]].sum()) for e in lif)
    neurons = sum(int(np.prod(e["out_shape"])) for e in lif)
    return {"path": str(path), "T": rec.T, "n_samples": rec.n_samples,
            "accuracy": rec.n_correct / rec.n_labelled if rec.n_labelled else None,
            "layers": [e["kind"] for e in rec.layers], "input_binary": rec.sources["input"]["binary"],
            "sequential": info["sequential"],
            "spikes_per_sample": spikes / rec.n_samples,
            "spike_rate": spikes / (rec.n_samples * rec.T * neurons) if neurons else 0.0}
