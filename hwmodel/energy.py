"""Energy of a recorded run on a hardware profile; the CLI ``python -m hwmodel.energy run.npz``.

Per sample and per time step t, with the counts of ``counts.py`` and a profile's constants:

    E_dyn,t = synops_t·E_synop + macs_t·E_mac
              + Σ_LIF [ spikes_t·E_active + (updates_t − spikes_t)·E_inactive ]   (or updates_t·E_update)
              + spikes_t·E_spike + norm_ops_t·E_norm                             (BNTT, LayerNorm)
              + hops_ew,t·E_hop,ew + hops_ns,t·E_hop,ns                          (mapping.py, a mesh)
              + [--memory] E_mem,t                                               (memory.py)
    E_static,t = P_static·(cores used / cores per chip)·Δt   (the whole chip where no mapping
                                                      is given), where the profile has a static power
    E_SNN = Σ_t (E_dyn,t + E_static,t)                (static not added where the profile's event
                                                      energies already contain it: TrueNorth)
    E_ANN = ann_macs·E_mac(ANN profile) [+ its memory term]      (ann_macs: P passes, counts.py)
    E_ANN,skip = ann_macs_skip·E_mac(ANN profile) [+ …]          (zero-skipping of ReLU zeros)

E_norm is the profile's ``norm_op`` (one multiply-add y = a_t·x + b_t), or its ``mac`` where it
gives none. ``--bntt fold`` instead folds BNTT into the neuron: with a_t = γ_t/√(σ²_t+ε),
b_t = −a_t·μ_t and u = v/a_t, the LIF v_t = λ·v_{t−1} + a_t·I_t + b_t becomes

    u_t = (λ·a_{t−1}/a_t)·u_{t−1} + I_t + b_t/a_t ,   spike when u_t > θ/a_t ,   reset by θ/a_t

exact when a_t > 0: no arithmetic, but a per-step leak, threshold and bias current per channel
(3·C values loaded at every step, counted as ``norm_param_loads``), which the chip must support.

Every constant's range (``profiles.Profile.bound``) gives the total's range.

The break-even spike rate scales everything the network's own spikes drive — their synaptic
events, the spikes, the active-neuron premium, their routing — by s while encoder-driven
events, neuron updates, normalisation and static power stay: E(s) = a + b·s is linear, and with
r₀ the measured rate

    r* = r₀ · (E_ANN − a) / b ,     E_SNN(r*) = E_ANN ,   a = E(0), b = E(1) − E(0).
"""
import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

from . import memory as memory_model
from .counts import DEFAULT_ANN_DENSITY, count_run
from .mapping import place
from .nirgraph import read_any_run
from .profiles import ProfileError, load_profile, load_profiles
from .runfile import RunFormatError

NORM_MODES = ("explicit", "fold")


@dataclass
class ProfileEnergy:
    """One profile's prices for one run, per sample."""

    profile: object
    layer_pj: list              # [n_layers] per-layer dynamic energy, summed over steps
    components: dict            # name -> pJ (synops, macs, neurons, spikes, norm, routing, memory)
    per_step_pj: np.ndarray     # [T] dynamic + static-if-added
    dynamic_pj: float
    static_pj: float
    static_added: bool
    ann_pj: float
    ann_profile: str
    spike_rate: float
    fixed_pj: float             # a in E(s) = a + b·s
    spike_driven_pj: float      # b
    ann_skip_pj: float = 0.0
    norm: str = "explicit"
    static_scope: str = ""      # "used cores" or "whole chip"
    mapping: object = None      # mapping.Mapping, or None
    norm_param_loads: float = 0.0
    energy_range: tuple = None  # (low, high) of energy_pj over the constants' ranges
    ann_range: tuple = None

    @property
    def energy_pj(self):
        return self.dynamic_pj + (self.static_pj if self.static_added else 0.0)

    @property
    def ratio(self):
        """E_SNN / E_ANN (below 1: the SNN is cheaper)."""
        return self.energy_pj / self.ann_pj if self.ann_pj else float("inf")

    @property
    def ratio_skip(self):
        """E_SNN / E_ANN,skip: against an ANN that skips the zeros of its activations."""
        return self.energy_pj / self.ann_skip_pj if self.ann_skip_pj else float("inf")

    def energy_at_rate(self, rate):
        """E_SNN at mean spike rate ``rate`` (spikes per neuron per step), linear scaling."""
        if not self.spike_rate:
            return np.full_like(np.asarray(rate, dtype=float), self.energy_pj)
        return self.fixed_pj + self.spike_driven_pj * np.asarray(rate, dtype=float) / self.spike_rate

    def break_even(self):
        """(r*, explanation): the spike rate at which E_SNN = E_ANN, or None with the reason."""
        if not self.spike_rate:
            return None, "no spikes were recorded, so the rate cannot be scaled"
        if self.spike_driven_pj <= 0:
            return None, "no spike-driven energy"
        if self.fixed_pj >= self.ann_pj:
            return 0.0, "the spike-independent costs alone exceed the ANN's energy"
        r = self.spike_rate * (self.ann_pj - self.fixed_pj) / self.spike_driven_pj
        if r > 1:
            return r, "above 1 spike per neuron per step: the SNN is cheaper at every possible rate"
        return r, "the SNN is cheaper below this rate"


def norm_op_pj(profile):
    """E_norm: the profile's ``norm_op``, else its ``mac`` (a graded input through one synapse)."""
    return profile.e("norm_op") if "norm_op" in profile.energy else profile.e("mac")


def _cost(count, pj):
    """count·pj, where no event costs nothing even at an unbounded price (pj = inf)."""
    count = np.asarray(count, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(count == 0, 0.0, count * pj)


def layer_energy(layer, profile, memory=False, scale=1.0, norm="explicit", traffic=None):
    """``{component: [T] pJ}`` of one layer; ``scale`` multiplies the network's spikes."""
    T = len(layer.synops)
    event_scale = scale if layer.origin == "spikes" else 1.0
    out = {}
    if layer.is_synaptic:
        out["synops"] = _cost(layer.synops * event_scale, profile.e("synop"))
        out["macs"] = _cost(layer.macs * event_scale, profile.e("mac"))
    if layer.is_norm and not (norm == "fold" and layer.kind == "BNTT"):
        out["norm"] = _cost(layer.norm_ops, norm_op_pj(profile))
    if layer.is_neuron:
        spikes = layer.spikes * scale
        if "neuron_update_active" in profile.energy:
            out["neurons"] = (_cost(spikes, profile.e("neuron_update_active"))
                              + _cost(layer.neuron_updates - spikes, profile.e("neuron_update_inactive")))
        else:
            out["neurons"] = _cost(layer.neuron_updates, profile.e("neuron_update"))
        out["spikes"] = _cost(spikes, profile.e("spike"))
    if traffic is not None and "hop_east_west" in profile.energy:
        hop_scale = scale if traffic.origin == "spikes" else 1.0
        out["routing"] = (_cost(hop_scale * traffic.hops_east_west, profile.e("hop_east_west"))
                          + _cost(hop_scale * traffic.hops_north_south, profile.e("hop_north_south")))
    if memory and not profile.memory_included:
        out["memory"] = (memory_model.snn_layer_pj(layer, profile, event_scale, scale)
                         + memory_model.norm_layer_pj(layer, profile, norm))
    return {k: np.asarray(v, dtype=float) + np.zeros(T) for k, v in out.items()}


def ann_energy(counts, profile, memory=False, skip=False):
    """E_ANN: the same architecture run as an ANN (``skip``: only its non-zero inputs' MACs)."""
    key = "ann_macs_skip" if skip else "ann_macs"
    total = float(_cost(sum(getattr(layer, key) for layer in counts.layers), profile.e("mac")))
    if memory:
        total += sum(memory_model.ann_layer_pj(layer, profile, getattr(layer, key)) for layer in counts.layers)
    return float(total)


def _energies(counts, profile, memory, scale, norm, mapping):
    traffic = mapping.traffic if mapping is not None else {}
    return [layer_energy(layer, profile, memory, scale, norm, traffic.get(layer.index)) for layer in counts.layers]


def _static_pj_per_step(profile, mapping):
    """(pJ per step, scope): the used cores' share of the chip's static power, else the chip's."""
    whole = profile.static_pj_per_step
    if not profile.static or mapping is None:
        return whole, "whole chip"
    return whole * mapping.cores / profile.m("cores_per_chip"), "used cores"


def price(counts, profile, ann_profile=None, memory=False, norm="explicit", mapping=None):
    """Price a run's counts on one profile (the equations of the module docstring).

    Parameters
    ----------
    counts : counts.RunCounts
    profile : profiles.Profile
        Prices the SNN.
    ann_profile : profiles.Profile, optional
        Prices the equivalent ANN (default: ``profile``).
    memory : bool
        Add the memory-aware terms (``memory.py``).
    norm : {"explicit", "fold"}
        BNTT as a multiply-add per element and step, or folded into per-step neuron parameters.
    mapping : mapping.Mapping, optional
        The network placed on this profile's cores: routing energy and the used cores' static power.

    Returns
    -------
    ProfileEnergy
        Per sample: per-layer and per-step energy, static term, ANN energies, break-even inputs.
    """
    if norm not in NORM_MODES:
        raise ValueError(f"norm must be one of {NORM_MODES}, got {norm!r}")
    ann_profile = ann_profile or profile
    T = counts.T
    layer_pj, components, per_step = [], {}, np.zeros(T)
    for parts in _energies(counts, profile, memory, 1.0, norm, mapping):
        layer_pj.append(float(sum(v.sum() for v in parts.values())))
        for name, v in parts.items():
            components[name] = components.get(name, 0.0) + float(v.sum())
            per_step += v
    static_step, scope = _static_pj_per_step(profile, mapping)
    added = bool(profile.static) and not profile.static_in_events
    if added:
        per_step = per_step + static_step
    fixed = sum(float(v.sum()) for parts in _energies(counts, profile, memory, 0.0, norm, mapping)
                for v in parts.values()) + (static_step * T if added else 0.0)
    full = float(sum(layer_pj)) + (static_step * T if added else 0.0)
    loads = 3.0 * T * sum(layer.norm_channels for layer in counts.layers) if norm == "fold" else 0.0
    return ProfileEnergy(profile=profile, layer_pj=layer_pj, components=components, per_step_pj=per_step,
                         dynamic_pj=float(sum(layer_pj)), static_pj=static_step * T, static_added=added,
                         ann_pj=ann_energy(counts, ann_profile, memory), ann_profile=ann_profile.name,
                         ann_skip_pj=ann_energy(counts, ann_profile, memory, skip=True),
                         spike_rate=counts.totals()["spike_rate"], fixed_pj=fixed, spike_driven_pj=full - fixed,
                         norm=norm, static_scope=scope, mapping=mapping, norm_param_loads=loads)


def price_all(counts, profiles, memory=False, norm="explicit", run=None):
    """``{name: ProfileEnergy}`` for every profile, each ANN priced on its ``ann_profile``.

    With the ``run``, each profile that gives a ``[mapping]`` places the network on its cores.
    Each result carries the range of its total over its constants' ranges.
    """
    by_name = {p.name: p for p in profiles}
    out = {}
    for p in profiles:
        ref = p if p.ann_profile == "self" else by_name.get(p.ann_profile) or load_profile(p.ann_profile)
        mapping = place(run, counts, p) if run is not None else None
        res = price(counts, p, ref, memory, norm, mapping)
        ends = [price(counts, p.bound(w), ref.bound(w), memory, norm, mapping) for w in ("low", "high")]
        res.energy_range = tuple(e.energy_pj for e in ends)
        res.ann_range = tuple(e.ann_pj for e in ends)
        out[p.name] = res
    return out


def _density(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}")
    return value


def _passes(text):
    if text == "T" or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"expected a positive integer or T, got {text!r}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m hwmodel.energy",
        description="Count the events of a recorded SNN run (minisnn --record) and price them on "
                    "neuromorphic and CMOS hardware profiles.")
    p.add_argument("run", help="the run file (run.npz, format v1; see docs/run-format.md), or a NIR graph "
                               "(graph.nir) with --spikes (docs/nir.md)")
    p.add_argument("--spikes", metavar="SPIKES.npz|.h5",
                   help="with a NIR graph: the recording of its spikes per node and time step (docs/nir.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--profile", action="append", metavar="NAME|PATH.toml",
                   help="a built-in profile name or a TOML file (repeatable; default: every built-in profile)")
    p.add_argument("--memory", action="store_true",
                   help="per-access memory model (hwmodel's, after Lemaire et al. 2022): price weight and "
                        "state accesses too")
    p.add_argument("--bntt", choices=NORM_MODES, default="explicit",
                   help="BNTT at inference: a multiply-add per element and step (explicit, the default), or "
                        "folded into a per-step leak, threshold and bias current of each channel (fold)")
    p.add_argument("--ann-density", type=_density, default=DEFAULT_ANN_DENSITY, metavar="RHO",
                   help="assumed fraction of non-zero ReLU activations of the equivalent ANN, for its "
                        f"zero-skipping count (default {DEFAULT_ANN_DENSITY})")
    p.add_argument("--per-layer", action="store_true",
                   help="also show each profile's placement of the layers on cores")
    p.add_argument("--fold-pool", action="store_true",
                   help="fold AvgPool2d on spikes into the next synaptic layer (ACs instead of MACs)")
    p.add_argument("--ann-passes", metavar="N|T", type=_passes,
                   help="passes of the equivalent ANN: 1 for a static input, T for a sequence "
                        "(default: T when the run's meta says sequential, else 1)")
    p.add_argument("--per-timestep", action="store_true", help="also report counts and energy per time step")
    p.add_argument("--plot", metavar="OUT.png", help="plot energy per layer and the energy ratio against spike rate")
    return p.parse_args(argv)


def main(argv=None):
    """CLI entry point; errors are one line on stderr and exit status 2."""
    from . import report
    args = parse_args(argv)
    try:
        run = read_any_run(args.run, args.spikes)
        counts = count_run(run, fold_pool=args.fold_pool, passes=args.ann_passes, ann_density=args.ann_density)
        profiles = load_profiles(args.profile)
        results = price_all(counts, profiles, memory=args.memory, norm=args.bntt, run=run)
        if args.plot:
            from .plot import plot_energy
            plot_energy(counts, results, args.plot)
        if args.json:
            doc = report.to_json(run, counts, results, memory=args.memory, per_timestep=args.per_timestep)
            print(json.dumps(doc, indent=1 if sys.stdout.isatty() else None))
        else:
            print(report.to_text(run, counts, results, memory=args.memory, per_timestep=args.per_timestep,
                                 per_layer=args.per_layer))
    except (RunFormatError, ProfileError, memory_model.MemoryModelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:                  # e.g. piped into head
        sys.stderr.close()
        return 0
    except OSError as e:
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
