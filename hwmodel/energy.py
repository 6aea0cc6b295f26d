"""Energy of a recorded run on a hardware profile; the CLI ``python -m hwmodel.energy run.npz``.

Per sample and per time step t, with the counts of ``counts.py`` and a profile's constants:

    E_dyn,t = synops_t·E_synop + macs_t·E_mac
              + Σ_LIF [ spikes_t·E_active + (updates_t − spikes_t)·E_inactive ]   (or updates_t·E_update)
              + spikes_t·E_spike + [--memory] E_mem,t                             (memory.py)
    E_static,t = P_static·Δt                         where the profile gives a static power
    E_SNN = Σ_t (E_dyn,t + E_static,t)                (static not added where the profile's event
                                                      energies already contain it: TrueNorth)
    E_ANN = ann_macs·E_mac(ANN profile) [+ its memory term]      (ann_macs: P passes, counts.py)

The break-even spike rate scales everything the network's own spikes drive — their synaptic
events, the spikes, the active-neuron premium — by s while encoder-driven events, neuron
updates and static power stay: E(s) = a + b·s is linear, and with r₀ the measured rate

    r* = r₀ · (E_ANN − a) / b ,     E_SNN(r*) = E_ANN ,   a = E(0), b = E(1) − E(0).
"""
import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

from . import memory as memory_model
from .counts import count_run
from .profiles import ProfileError, load_profile, load_profiles
from .runfile import RunFormatError, read_run


@dataclass
class ProfileEnergy:
    """One profile's prices for one run, per sample."""

    profile: object
    layer_pj: list              # [n_layers] per-layer dynamic energy, summed over steps
    components: dict            # name -> pJ (synops, macs, neurons, spikes, memory)
    per_step_pj: np.ndarray     # [T] dynamic + static-if-added
    dynamic_pj: float
    static_pj: float
    static_added: bool
    ann_pj: float
    ann_profile: str
    spike_rate: float
    fixed_pj: float             # a in E(s) = a + b·s
    spike_driven_pj: float      # b

    @property
    def energy_pj(self):
        return self.dynamic_pj + (self.static_pj if self.static_added else 0.0)

    @property
    def ratio(self):
        """E_SNN / E_ANN (below 1: the SNN is cheaper)."""
        return self.energy_pj / self.ann_pj if self.ann_pj else float("inf")

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


def layer_energy(layer, profile, memory=False, scale=1.0):
    """``{component: [T] pJ}`` of one layer; ``scale`` multiplies the network's spikes."""
    T = len(layer.synops)
    event_scale = scale if layer.origin == "spikes" else 1.0
    out = {}
    if layer.is_synaptic:
        out["synops"] = layer.synops * event_scale * profile.e("synop")
        out["macs"] = layer.macs * event_scale * profile.e("mac")
    if layer.is_neuron:
        spikes = layer.spikes * scale
        if "neuron_update_active" in profile.energy:
            out["neurons"] = (spikes * profile.e("neuron_update_active")
                              + (layer.neuron_updates - spikes) * profile.e("neuron_update_inactive"))
        else:
            out["neurons"] = layer.neuron_updates * profile.e("neuron_update")
        out["spikes"] = spikes * profile.e("spike")
    if memory and not profile.memory_included:
        out["memory"] = memory_model.snn_layer_pj(layer, profile, event_scale, scale)
    return {k: np.asarray(v, dtype=float) + np.zeros(T) for k, v in out.items()}


def ann_energy(counts, profile, memory=False):
    """E_ANN: the same architecture run once as an ANN, priced on ``profile``."""
    total = sum(layer.ann_macs for layer in counts.layers) * profile.e("mac")
    if memory:
        total += sum(memory_model.ann_layer_pj(layer, profile) for layer in counts.layers)
    return float(total)


def _dynamic_total(counts, profile, memory, scale):
    return float(sum(v.sum() for layer in counts.layers for v in layer_energy(layer, profile, memory, scale).values()))


def price(counts, profile, ann_profile=None, memory=False):
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

    Returns
    -------
    ProfileEnergy
        Per sample: per-layer and per-step energy, static term, ANN energy, break-even inputs.
    """
    ann_profile = ann_profile or profile
    T = counts.T
    layer_pj, components, per_step = [], {}, np.zeros(T)
    for layer in counts.layers:
        parts = layer_energy(layer, profile, memory)
        layer_pj.append(float(sum(v.sum() for v in parts.values())))
        for name, v in parts.items():
            components[name] = components.get(name, 0.0) + float(v.sum())
            per_step += v
    static_step = profile.static_pj_per_step
    added = bool(profile.static) and not profile.static_in_events
    if added:
        per_step = per_step + static_step
    fixed = _dynamic_total(counts, profile, memory, 0.0) + (static_step * T if added else 0.0)
    full = float(sum(layer_pj)) + (static_step * T if added else 0.0)
    return ProfileEnergy(profile=profile, layer_pj=layer_pj, components=components, per_step_pj=per_step,
                         dynamic_pj=float(sum(layer_pj)), static_pj=static_step * T, static_added=added,
                         ann_pj=ann_energy(counts, ann_profile, memory), ann_profile=ann_profile.name,
                         spike_rate=counts.totals()["spike_rate"], fixed_pj=fixed, spike_driven_pj=full - fixed)


def price_all(counts, profiles, memory=False):
    """``{name: ProfileEnergy}`` for every profile, each ANN priced on its ``ann_profile``."""
    by_name = {p.name: p for p in profiles}
    out = {}
    for p in profiles:
        ref = p if p.ann_profile == "self" else by_name.get(p.ann_profile) or load_profile(p.ann_profile)
        out[p.name] = price(counts, p, ref, memory)
    return out


def _passes(text):
    if text == "T" or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"expected a positive integer or T, got {text!r}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m hwmodel.energy",
        description="Count the events of a recorded SNN run (minisnn --record) and price them on "
                    "neuromorphic and CMOS hardware profiles.")
    p.add_argument("run", help="the run file (run.npz, format v1; see docs/run-format.md)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--profile", action="append", metavar="NAME|PATH.toml",
                   help="a built-in profile name or a TOML file (repeatable; default: every built-in profile)")
    p.add_argument("--memory", action="store_true",
                   help="memory-aware model (Lemaire et al. 2022): price weight and state accesses too")
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
        run = read_run(args.run)
        counts = count_run(run, fold_pool=args.fold_pool, passes=args.ann_passes)
        profiles = load_profiles(args.profile)
        results = price_all(counts, profiles, memory=args.memory)
        if args.plot:
            from .plot import plot_energy
            plot_energy(counts, results, args.plot)
        if args.json:
            doc = report.to_json(run, counts, results, memory=args.memory, per_timestep=args.per_timestep)
            print(json.dumps(doc, indent=1 if sys.stdout.isatty() else None))
        else:
            print(report.to_text(run, counts, results, memory=args.memory, per_timestep=args.per_timestep))
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
