"""Placing a recorded network on a chip's cores: cores and chips used, spike traffic between them.

A profile's ``[mapping]`` gives neurons per core N_c, synapses per core S_c, cores per chip K and,
where the chip has them, the axons (distinct inputs) per core A and the width M of its mesh.
Every layer that holds neurons (a LIF layer; the Readout's output integrators) gets cores of its
own, in network order, and its neurons are spread evenly and contiguously (flat order) over them:

    cores(ℓ) = max(⌈n_ℓ / N_c⌉, ⌈S_ℓ / S_c⌉) ,   S_ℓ = Σ_i f(i), the connections of the synaptic
                                                  layer feeding ℓ (chips store every synapse:
                                                  no weight sharing for convolutions)
    chips = ⌈Σ_ℓ cores(ℓ) / K⌉ ;   the layer does not fit where a neuron's fan-in exceeds A

A spike (any non-zero input) at position i of a synaptic layer is sent once to every core D(i)
that holds one of its targets. On a mesh, core k sits at (row, col) = divmod(k mod K, M) and a
message from core a to core b on the same chip crosses |col(a) − col(b)| east-west and
|row(a) − row(b)| north-south routers (dimension-order routing):

    packets_t = (1/N)·Σ_i c_t(i)·|D(i)|
    hops_ew_t = (1/N)·Σ_i c_t(i)·Σ_{d∈D(i)} |col(src(i)) − col(d)|      (likewise north-south)

src(i) is the core of the LIF neuron that emitted the spike (through a pooling window: the
neuron at the window's first position); the encoder's input enters at core 0. Messages between
chips are counted (``chip_crossings``), not priced: no profile gives their energy.
"""
from dataclasses import dataclass, field

import numpy as np

from . import geometry
from .runfile import MERGE, NEURONS, POOLING, SYNAPTIC


@dataclass
class Placement:
    """The cores of one neuron-holding layer."""

    index: int                  # the layer in the run
    kind: str
    neurons: int
    synapses: int               # connections stored on these cores
    fan_in: int                 # the largest number of inputs of one neuron
    first_core: int
    cores: int
    limit: str                  # what set the number of cores: "neurons" or "synapses"
    fits: bool = True
    reason: str = ""

    def core_of(self, flat):
        """Core of each neuron (flat index into the layer's output)."""
        per_core = -(-self.neurons // self.cores)
        return self.first_core + np.asarray(flat) // per_core


@dataclass
class Traffic:
    """Messages sent to cores by one synaptic layer's input, per sample, ``[T]`` arrays."""

    index: int
    origin: str                 # "spikes" or "input": what the break-even scaling may scale
    packets: np.ndarray
    hops_east_west: np.ndarray
    hops_north_south: np.ndarray
    chip_crossings: np.ndarray


@dataclass
class Mapping:
    """A whole network on one profile's chips."""

    profile: str
    placements: list
    traffic: dict = field(default_factory=dict)      # synaptic layer index -> Traffic
    cores_per_chip: int = 1

    @property
    def cores(self):
        return sum(p.cores for p in self.placements)

    @property
    def chips(self):
        return -(-self.cores // self.cores_per_chip)

    @property
    def fits(self):
        return all(p.fits for p in self.placements)

    def total(self, key):
        """Σ over layers and steps of a traffic count (per sample)."""
        return float(sum(np.sum(getattr(t, key)) for t in self.traffic.values()))


def _inputs_of(layer, k):
    """The layers whose outputs layer k reads (−1: the network input); for an identity shortcut's
    ``Add``, only the computed path: its other operand arrives through the Add's own synapses."""
    if layer["kind"] in MERGE:
        ops = layer["params"]["operands"]
        return ops[:1] if layer.get("input") is not None else ops
    return [predecessor_index(layer, k)]


def predecessor_index(layer, k):
    return int(layer.get("after", k - 1))


def _feeding_synapses(run, counts, j):
    """(synapses, fan-in) of the connections that reach layer ``j``'s neurons: the synaptic
    layers found walking back through element-wise layers and residual sums (both paths of a
    sum feed the same neurons, so their synapses and fan-ins add)."""
    synapses = fan_in = 0
    todo = _inputs_of(run.layers[j], j)
    while todo:
        k = todo.pop()
        if k < 0:
            continue
        layer, lc = run.layers[k], counts.layers[k]
        if lc.is_synaptic:
            synapses += int(lc.dense_ops[0])
            fan_in += _fan_in(layer)
            if layer["kind"] in MERGE:           # the identity: one synapse per neuron, then the path
                todo += _inputs_of(layer, k)
        elif layer["kind"] not in NEURONS + POOLING:
            todo += _inputs_of(layer, k)
    return synapses, fan_in


def _fan_in(layer):
    p = layer["params"]
    if layer["kind"] in MERGE:
        return 1
    if layer["kind"] in ("Linear", "Readout"):
        return int(p["in_features"])
    kh, kw = geometry.pair(p["kernel_size"])
    return int(p["in_channels"]) // int(p.get("groups", 1)) * kh * kw


def place(run, counts, profile):
    """Place every neuron-holding layer on ``profile``'s cores; None without ``[mapping]``."""
    if not profile.mapping:
        return None
    n_c, s_c, axons = profile.m("neurons_per_core"), profile.m("synapses_per_core"), profile.m("fan_in_per_core")
    placements, next_core = [], 0
    for j, layer in enumerate(run.layers):
        if layer["kind"] not in NEURONS + ("Readout",):
            continue
        if layer["kind"] == "Readout":
            synapses, fan_in = int(counts.layers[j].dense_ops[0]), _fan_in(layer)
        else:
            synapses, fan_in = _feeding_synapses(run, counts, j)
        n = counts.layers[j].n_out
        by_neurons, by_synapses = -(-n // n_c), -(-synapses // s_c)
        pl = Placement(index=j, kind=layer["kind"], neurons=n, synapses=synapses, fan_in=fan_in,
                       first_core=next_core, cores=max(by_neurons, by_synapses, 1),
                       limit="neurons" if by_neurons >= by_synapses else "synapses")
        if axons is not None and fan_in > axons:
            pl.fits, pl.reason = False, (f"fan-in {fan_in} > {axons} axons per core: needs its sums split "
                                         "over cores and merged by extra neurons (not modelled)")
        placements.append(pl)
        next_core += pl.cores
    mapping = Mapping(profile=profile.name, placements=placements, cores_per_chip=profile.m("cores_per_chip"))
    by_layer = {p.index: p for p in placements}
    readers = {k: [] for k in range(-1, len(run.layers))}
    for j, layer in enumerate(run.layers):
        for k in (layer["params"]["operands"] if layer["kind"] in MERGE else [predecessor_index(layer, j)]):
            readers[k].append(j)
    for i, layer in enumerate(run.layers):
        if counts.layers[i].is_synaptic:
            dest = by_layer.get(i) if layer["kind"] == "Readout" else _destination(run, counts, i, readers, by_layer)
            if dest is not None:
                mapping.traffic[i] = _traffic(run, counts.layers[i], dest, by_layer, profile)
    return mapping


def _destination(run, counts, i, readers, by_layer):
    """The neurons that synaptic layer i's output reaches through element-wise layers and sums."""
    todo = list(readers[i])
    while todo:
        j = todo.pop(0)
        if j in by_layer:
            return by_layer[j]
        if not counts.layers[j].is_synaptic and run.layers[j]["kind"] not in NEURONS + POOLING:
            todo += readers[j]
    return None


def _source_cores(run, name, by_layer):
    """Core of the neuron behind each position of the recorded tensor ``name`` (0: the host).

    A LIF layer's spikes come from its cores; an intermediate ``X<k>`` (the input of layer k) is
    traced back through reshapes, element-wise layers and sums (their first operand) to the
    LIF behind it, and through a pool to the neuron at each window's first position."""
    size = int(np.prod(run.sources[name]["shape"]))
    for j, layer in enumerate(run.layers):
        if layer.get("output") == name and j in by_layer:
            return by_layer[j].core_of(np.arange(size))
    if not name.startswith("X"):
        return np.zeros(size, dtype=np.int64)
    k = int(name[1:])
    k = predecessor_index(run.layers[k], k) if k < len(run.layers) else k - 1
    while k >= 0:
        layer = run.layers[k]
        if layer["kind"] in NEURONS and k in by_layer:
            return by_layer[k].core_of(np.arange(size))
        if layer["kind"] in POOLING:
            c, h, w = layer["in_shape"]
            (_, sh, ph, _), (_, sw, pw, _) = geometry._pool(layer["params"])
            oc, oh, ow = np.unravel_index(np.arange(size), layer["out_shape"])
            first = oc * h * w + np.clip(oh * sh - ph, 0, h - 1) * w + np.clip(ow * sw - pw, 0, w - 1)
            return _source_cores(run, layer["input"], by_layer)[first]
        if layer["kind"] in SYNAPTIC:
            break
        k = layer["params"]["operands"][0] if layer["kind"] in MERGE else predecessor_index(layer, k)
    return np.zeros(size, dtype=np.int64)


def _targets(run, layer, lc):
    """For each input position: a function returning the flat output indices it reaches."""
    kind, params = layer["kind"], layer["params"]
    if kind in MERGE:                                   # an identity shortcut: position i → neuron i
        return lambda pos: np.array([pos])
    if kind in ("Linear", "Readout"):
        n_out = int(np.prod(layer["out_shape"]))
        every = np.arange(n_out)
        return lambda pos: every
    (kh, sh, ph, dh), (kw, sw, pw, dw) = geometry._conv(params)
    c_in, h, w = layer["in_shape"]
    c_out, ho, wo = layer["out_shape"]
    rh, rw = geometry.reach(h, kh, sh, ph, dh), geometry.reach(w, kw, sw, pw, dw)
    if lc.input != layer["input"]:                      # an AvgPool2d folded in: reach through it
        pool = next(p for p in run.layers if p.get("input") == lc.input and p["kind"] in POOLING)
        (qk, qs, qp, _), (rk, rs, rp, _) = geometry._pool(pool["params"])
        rh = (geometry.reach(pool["in_shape"][1], qk, qs, qp).astype(np.int64) @ rh) > 0
        rw = (geometry.reach(pool["in_shape"][2], rk, rs, rp).astype(np.int64) @ rw) > 0
        c_in, h, w = pool["in_shape"]
    groups = int(params.get("groups", 1))
    per_group = c_out // groups

    def reached(pos):
        c, y, x = np.unravel_index(pos, (c_in, h, w))
        g = c // (c_in // groups)
        oy, ox = np.nonzero(rh[y])[0], np.nonzero(rw[x])[0]
        co = np.arange(g * per_group, (g + 1) * per_group)
        return (co[:, None, None] * ho * wo + oy[None, :, None] * wo + ox[None, None, :]).ravel()
    return reached


def _traffic(run, lc, dest, by_layer, profile):
    """Packets and router hops of one synaptic layer's input (the module docstring)."""
    layer = run.layers[lc.index]
    src = _source_cores(run, lc.input, by_layer)
    size = src.size
    reached = _targets(run, layer, lc)
    K, M = profile.m("cores_per_chip"), profile.m("mesh_width")
    n_dest, ew, ns, cross = (np.zeros(size) for _ in range(4))
    cache = {}
    for pos in range(size):
        key = pos if layer["kind"] in ("Conv2d",) + MERGE else 0
        if key not in cache:
            cache[key] = np.unique(dest.core_of(reached(pos)))
        d = cache[key]
        n_dest[pos] = d.size
        same = (d // K) == (src[pos] // K)
        cross[pos] = np.count_nonzero(~same)
        if M:
            (ra, ca), (rb, cb) = divmod(src[pos] % K, M), divmod(d[same] % K, M)
            ew[pos], ns[pos] = np.abs(cb - ca).sum(), np.abs(rb - ra).sum()
    counts = np.asarray(run.counts[lc.input], dtype=np.int64).reshape(run.T, -1)
    per = lambda v: (counts @ v) / run.n_samples
    return Traffic(index=lc.index, origin=lc.origin, packets=per(n_dest), hops_east_west=per(ew),
                   hops_north_south=per(ns), chip_crossings=per(cross))
