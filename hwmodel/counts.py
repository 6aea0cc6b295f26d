"""Counting events from a run file, per layer, per time step, per sample.

With c_t(i) the number of samples whose input to a layer is non-zero at position i and step t
(recorded exactly in the run file), N the number of samples and f(i) the fan-out of position i
(``geometry.fanout``), the definitions are NeuroBench's (Yik et al., 2024):

    synops_t = (1/N)·Σ_i c_t(i)·f(i)        the layer's input is binary (0/±1): Effective ACs
    macs_t   = (1/N)·Σ_i c_t(i)·f(i)        the layer's input is not binary:   Effective MACs
    dense_t  = Σ_i f(i)                     every connection at every step:    Dense
    ann_macs = P·Σ_i f(i)                   the same architecture as an ANN, P passes

P = 1 for a static input (the image repeated or rate-coded over the T steps); P = T for a
sequence, where every step brings new data (sMNIST: one pixel per step), since an ANN must then
run once per element. The run's meta says which (``sequential``, set by the recorder).

and, for a LIF layer of n neurons with spike counts s_t(i),

    neuron_updates_t = n ,   spikes_t = (1/N)·Σ_i s_t(i) ,   rate = Σ_t spikes_t / Σ_t neuron_updates_t

Readout (z = mean_t W·o_t) is counted as a synaptic layer applied at every step to the binary
o_t — what an event-driven chip does — so its events are T·(spikes × out_features); it has no
neurons that spike. Pooling is not a synaptic layer: by default (as NeuroBench) it costs nothing
itself and an average-pooled input, no longer binary, makes the next layer's operations MACs.
With ``fold_pool=True`` an AvgPool2d on binary spikes is folded into the next Conv2d / Linear
(its 1/k² into the weights), so that layer performs ACs on the spikes with the fan-out of the
composed kernel (``geometry.folded_fanout``).
"""
from dataclasses import dataclass, field

import numpy as np

from . import geometry
from .runfile import NEURONS, POOLING, RESHAPE, SYNAPTIC

COUNT_KEYS = ("synops", "macs", "dense_ops", "neuron_updates", "spikes")


@dataclass
class LayerCounts:
    """Per-sample event counts of one layer; the arrays are ``[T]`` (one value per step)."""

    index: int
    kind: str
    in_shape: tuple
    out_shape: tuple
    synops: np.ndarray
    macs: np.ndarray
    dense_ops: np.ndarray
    neuron_updates: np.ndarray
    spikes: np.ndarray
    ann_macs: float = 0.0       # P passes of the equivalent ANN
    ann_passes: int = 1
    input: str = None           # the source read (synaptic / pooling layers)
    binary_input: bool = None
    origin: str = None          # "input" (driven by the encoder) or "spikes" (by the network)
    n_weights: int = 0          # for the memory model
    n_in: int = 0
    n_out: int = 0
    note: str = ""

    @property
    def is_synaptic(self):
        return self.kind in SYNAPTIC

    @property
    def is_neuron(self):
        return self.kind in NEURONS

    def total(self, key):
        """Σ_t of a count (or ``ann_macs``), per sample."""
        return float(self.ann_macs) if key == "ann_macs" else float(np.sum(getattr(self, key)))

    @property
    def spike_rate(self):
        """Spikes per neuron per time step (LIF layers), else None."""
        updates = self.total("neuron_updates")
        return self.total("spikes") / updates if updates else None


@dataclass
class RunCounts:
    """The counts of a whole run: ``layers`` in network order, plus the encoder's activity."""

    T: int
    n_samples: int
    layers: list
    input_events: np.ndarray           # [T] non-zero encoder values per sample
    input_binary: bool
    fold_pool: bool = False
    ann_passes: int = 1
    notes: list = field(default_factory=list)

    def per_timestep(self, key):
        """``[T]`` array: the count summed over layers at each step (per sample)."""
        if key == "ann_macs":
            raise KeyError("ann_macs is one pass, not per step")
        return np.sum([getattr(layer, key) for layer in self.layers], axis=0)

    def totals(self):
        """Per sample, summed over all time steps: the JSON contract's counts, plus extras."""
        out = {key: float(self.per_timestep(key).sum()) for key in COUNT_KEYS}
        out["ann_macs"] = float(sum(layer.ann_macs for layer in self.layers))
        out["spike_rate"] = out["spikes"] / out["neuron_updates"] if out["neuron_updates"] else 0.0
        out["input_events"] = float(self.input_events.sum())
        return out


def _events(counts, fan, T, n_samples):
    """(1/N)·Σ_i c_t(i)·f(i) for every t, exactly (integer arithmetic, then one division)."""
    flat = np.asarray(counts, dtype=np.int64).reshape(T, -1)
    return (flat @ fan.reshape(-1).astype(np.int64)) / n_samples


def _next_synaptic(layers, i):
    """Index of the layer a pool at ``i`` feeds, skipping reshapes; None if not synaptic."""
    j = i + 1
    while j < len(layers) and layers[j]["kind"] in RESHAPE:
        j += 1
    return j if j < len(layers) and layers[j]["kind"] in SYNAPTIC else None


def ann_passes(run, passes=None):
    """P: ``passes`` if given ('T' or an int), else T for a sequential run and 1 otherwise."""
    if passes is None:
        return run.T if run.meta.get("sequential") is True else 1
    return run.T if str(passes) == "T" else int(passes)


def count_run(run, fold_pool=False, passes=None):
    """Count every layer of a run (the equations of the module docstring).

    Parameters
    ----------
    run : runfile.Run
        A validated run.
    fold_pool : bool
        Fold AvgPool2d on binary spikes into the next synaptic layer.
    passes : int or "T", optional
        Passes of the equivalent ANN; default T if the run's meta says ``sequential``, else 1.

    Returns
    -------
    RunCounts
    """
    T, N = run.T, run.n_samples
    P = ann_passes(run, passes)
    zeros = np.zeros(T)
    folds = {}                    # synaptic layer index -> pool layer index folded into it
    notes = []
    if fold_pool:
        for i, layer in enumerate(run.layers):
            if layer["kind"] != "AvgPool2d":
                continue
            src = run.sources[layer["input"]]
            j = _next_synaptic(run.layers, i)
            if src["binary"] and j is not None:
                nxt = run.layers[j]
                fan = geometry.folded_fanout(layer["params"], layer["in_shape"], nxt["kind"], nxt["params"],
                                             nxt["in_shape"])
                if fan is not None:
                    folds[j] = (i, fan)
                    continue
            notes.append(f"layer {i} (AvgPool2d) not folded: its input is not binary or no Conv2d/Linear follows")
    layers = []
    for i, layer in enumerate(run.layers):
        kind = layer["kind"]
        in_shape, out_shape = tuple(layer["in_shape"]), tuple(layer["out_shape"])
        lc = LayerCounts(index=i, kind=kind, in_shape=in_shape, out_shape=out_shape, synops=zeros.copy(),
                         macs=zeros.copy(), dense_ops=zeros.copy(), neuron_updates=zeros.copy(),
                         spikes=zeros.copy(), n_in=int(np.prod(in_shape)), n_out=int(np.prod(out_shape)))
        if kind in SYNAPTIC + POOLING:
            lc.input = layer["input"]
            src = run.sources[lc.input]
            lc.binary_input, lc.origin = src["binary"], src["origin"]
        if kind in SYNAPTIC:
            lc.n_weights = geometry.n_weights(kind, layer["params"])
            fan = geometry.fanout(kind, layer["params"], in_shape)
            lc.ann_macs, lc.ann_passes = float(fan.sum()) * P, P
            if i in folds:
                p, fan = folds[i]
                pool = run.layers[p]
                lc.input = pool["input"]
                src = run.sources[lc.input]
                lc.binary_input, lc.origin = True, src["origin"]
                lc.note = f"AvgPool2d (layer {p}) folded in"
            events = _events(run.counts[lc.input], fan, T, N)
            if lc.binary_input:
                lc.synops = events
            else:
                lc.macs = events
            lc.dense_ops = np.full(T, float(fan.sum()))
        elif kind in POOLING and any(p == i for p, _ in folds.values()):
            lc.note = "folded into the next synaptic layer"
        elif kind in POOLING:
            lc.note = "not counted (NeuroBench); the next layer sees its non-binary output"
        elif kind in NEURONS:
            spikes = np.asarray(run.counts[layer["output"]], dtype=np.int64).reshape(T, -1)
            lc.neuron_updates = np.full(T, float(spikes.shape[1]))
            lc.spikes = spikes.sum(axis=1) / N
        layers.append(lc)
    input_counts = np.asarray(run.counts["input"], dtype=np.int64).reshape(T, -1)
    return RunCounts(T=T, n_samples=N, layers=layers, input_events=input_counts.sum(axis=1) / N,
                     input_binary=bool(run.sources["input"]["binary"]), fold_pool=fold_pool, ann_passes=P,
                     notes=notes)
