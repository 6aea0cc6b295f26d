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

The equivalent ANN with zero-skipping (an accelerator that skips the zeros of its ReLU
activations) performs only the MACs of its non-zero inputs:

    ann_macs_skip = P·Σ_i f(i)·ρ ,   ρ = the assumed ReLU density (``ann_density``) for a layer
                                         fed by hidden activations; for the first layer, the
                                         measured fraction of non-zero analogue inputs (a
                                         sequence's pixels), 1 for an image it reads densely

Normalisation at inference (per element, per step, n elements of the layer):

    BNTT       norm_ops_t = n     y = a_t·x + b_t, a_t = γ_t/√(σ²_t+ε), b_t = −a_t·μ_t: the
                                  statistics and γ change at every step, so nothing folds
                                  into the (time-shared) weights; norm_channels = C values of
                                  (a_t, b_t) per step
    BatchNorm  norm_ops_t = 0     one (γ, β, μ, σ²) for all steps folds exactly into the
                                  preceding layer's weights and a bias current
    LayerNorm  norm_ops_t = 3n    per-sample statistics: a mean (add), a variance (multiply-add)
                                  and the normalisation (multiply-add) per element

and, for a LIF layer of n neurons with spike counts s_t(i),

    neuron_updates_t = n ,   spikes_t = (1/N)·Σ_i s_t(i) ,   rate = Σ_t spikes_t / Σ_t neuron_updates_t

A residual block's identity shortcut (an ``Add`` reading the block's input) is a synaptic layer
of fan-out 1: each non-zero input adds into its own neuron's current (an AC on spikes; the same
for the equivalent ANN's residual sum, n per pass). An ``Add`` of two computed currents costs
nothing itself: both paths' synapses feed the same neurons.

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
from .runfile import MERGE, NEURONS, POOLING, RESHAPE, SYNAPTIC

COUNT_KEYS = ("synops", "macs", "dense_ops", "neuron_updates", "spikes", "norm_ops")
NORM_OPS_PER_ELEMENT = {"BNTT": 1, "BatchNorm": 0, "LayerNorm": 3}
DEFAULT_ANN_DENSITY = 0.5


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
    norm_ops: np.ndarray = None    # [T] multiply-adds of a normalisation (BNTT, LayerNorm)
    norm_channels: int = 0         # BNTT: per-step (a_t, b_t) pairs, one per channel
    ann_macs: float = 0.0       # P passes of the equivalent ANN
    ann_macs_skip: float = 0.0  # the same with zero-skipping of its inputs
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
        """A layer of connections: Linear, Conv2d, Readout, and the identity shortcut of a
        residual block (an ``Add`` that reads the block's input: one connection per neuron)."""
        return self.kind in SYNAPTIC or (self.kind in MERGE and self.input is not None)

    @property
    def is_neuron(self):
        return self.kind in NEURONS

    @property
    def is_norm(self):
        return self.kind in NORM_OPS_PER_ELEMENT

    def total(self, key):
        """Σ_t of a count (or ``ann_macs`` / ``ann_macs_skip``), per sample."""
        if key in ("ann_macs", "ann_macs_skip"):
            return float(getattr(self, key))
        return float(np.sum(getattr(self, key)))

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
    ann_density: float = DEFAULT_ANN_DENSITY
    notes: list = field(default_factory=list)

    def per_timestep(self, key):
        """``[T]`` array: the count summed over layers at each step (per sample)."""
        if key in ("ann_macs", "ann_macs_skip"):
            raise KeyError(f"{key} is the ANN's, not per step")
        return np.sum([getattr(layer, key) for layer in self.layers], axis=0)

    def totals(self):
        """Per sample, summed over all time steps: the JSON contract's counts, plus extras."""
        out = {key: float(self.per_timestep(key).sum()) for key in COUNT_KEYS}
        out["ann_macs"] = float(sum(layer.ann_macs for layer in self.layers))
        out["ann_macs_skip"] = float(sum(layer.ann_macs_skip for layer in self.layers))
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


def count_run(run, fold_pool=False, passes=None, ann_density=DEFAULT_ANN_DENSITY):
    """Count every layer of a run (the equations of the module docstring).

    Parameters
    ----------
    run : runfile.Run
        A validated run.
    fold_pool : bool
        Fold AvgPool2d on binary spikes into the next synaptic layer.
    passes : int or "T", optional
        Passes of the equivalent ANN; default T if the run's meta says ``sequential``, else 1.
    ann_density : float
        ρ in (0, 1]: the assumed fraction of non-zero ReLU activations of the equivalent ANN,
        for its zero-skipping count.

    Returns
    -------
    RunCounts
    """
    T, N = run.T, run.n_samples
    P = ann_passes(run, passes)
    if not 0 < ann_density <= 1:
        raise ValueError(f"ann_density must be in (0, 1], got {ann_density!r}")
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
                         spikes=zeros.copy(), norm_ops=zeros.copy(), n_in=int(np.prod(in_shape)),
                         n_out=int(np.prod(out_shape)))
        if kind in SYNAPTIC + POOLING or (kind in MERGE and layer.get("input") is not None):
            lc.input = layer["input"]
            src = run.sources[lc.input]
            lc.binary_input, lc.origin = src["binary"], src["origin"]
        if lc.is_synaptic:
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
            lc.ann_macs_skip = lc.ann_macs * _ann_input_density(run, lc, ann_density)
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
        elif kind in NORM_OPS_PER_ELEMENT:
            lc.norm_ops = np.full(T, float(NORM_OPS_PER_ELEMENT[kind] * lc.n_in))
            lc.norm_channels = int(layer["params"].get("channels", in_shape[0])) if kind == "BNTT" else 0
            if kind == "BatchNorm":
                lc.note = "folded into the preceding layer's weights and a bias (exact in evaluation)"
        elif kind in NEURONS:
            spikes = np.asarray(run.counts[layer["output"]], dtype=np.int64).reshape(T, -1)
            lc.neuron_updates = np.full(T, float(spikes.shape[1]))
            lc.spikes = spikes.sum(axis=1) / N
        layers.append(lc)
    input_counts = np.asarray(run.counts["input"], dtype=np.int64).reshape(T, -1)
    return RunCounts(T=T, n_samples=N, layers=layers, input_events=input_counts.sum(axis=1) / N,
                     input_binary=bool(run.sources["input"]["binary"]), fold_pool=fold_pool, ann_passes=P,
                     ann_density=float(ann_density), notes=notes)


def _ann_input_density(run, layer, assumed):
    """ρ of a synaptic layer's input in the equivalent ANN (see the module docstring)."""
    if layer.origin != "input":
        return assumed                        # hidden activations: the ANN's ReLU outputs
    if layer.binary_input:
        return 1.0                            # spikes encode an image the ANN reads densely
    counts = np.asarray(run.counts[layer.input], dtype=np.int64)
    return float(counts.sum()) / (counts.size * run.n_samples)     # the analogue values themselves
