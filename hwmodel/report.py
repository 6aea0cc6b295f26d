"""What the CLI prints: the per-layer tables with sources, or one JSON document.

Every number is per sample (one inference) and summed over the T time steps unless a column
says otherwise. The JSON's ``totals`` are the contract of ``../shared/DESIGN.md``: synops,
macs, dense_ops, neuron_updates, spikes, and energy_pj per profile.
"""
import textwrap

import numpy as np

from .counts import COUNT_KEYS

SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
ENERGY_UNITS = ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))


def fmt_count(x):
    """3 significant digits with an SI suffix: 1234567 -> '1.23M'."""
    if x is None:
        return "—"
    if x == 0:
        return "0"
    for scale, suffix in SI:
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.3g}"


def fmt_energy(pj):
    """Energy given in pJ, in the unit that keeps 1–999: 4.6e6 -> '4.6 µJ'."""
    if pj is None:
        return "—"
    if pj == 0:
        return "0"
    for scale, unit in ENERGY_UNITS:
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def _shape(shape):
    return "×".join(str(s) for s in shape)


def _input_kind(layer):
    if layer.binary_input is None:
        return ""
    return "binary" if layer.binary_input else "analogue"


def _table(header, rows, align=None):
    """Plain text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    align = align or ["<"] + [">"] * (len(header) - 1)
    line = lambda r: "  ".join(f"{str(c):{a}{w}}" for c, a, w in zip(r, align, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def to_text(run, counts, results, memory=False, per_timestep=False):
    """The human-readable report."""
    totals = counts.totals()
    names = list(results)
    acc = f"accuracy {100 * run.accuracy:.2f} %" if run.accuracy is not None else "no labels"
    meta = ", ".join(f"{k}={v}" for k, v in run.meta.items()
                     if isinstance(v, (str, int, float)) and "\n" not in str(v) and len(str(v)) < 80)
    out = [f"{run.path}: run format v1, T = {run.T} steps, {run.n_samples} samples, {acc}"
           + (f"\n  {meta}" if meta else ""),
           f"input: {'binary spikes (0/±1)' if counts.input_binary else 'analogue values'}, "
           f"{fmt_count(totals['input_events'])} non-zero values per sample",
           "",
           "Events per sample, summed over time steps (NeuroBench: synops = Effective ACs, "
           "MACs = Effective MACs, dense = Dense)"]
    rows = []
    for layer in counts.layers:
        rate = layer.spike_rate
        shown = (("synops", "macs", "dense_ops", "ann_macs") if layer.is_synaptic else ()) + \
                (("neuron_updates", "spikes") if layer.is_neuron else ())
        rows.append([f"{layer.index} {layer.kind}", f"{_shape(layer.in_shape)} → {_shape(layer.out_shape)}",
                     _input_kind(layer),
                     *(fmt_count(layer.total(k)) if k in shown else "" for k in
                       ("synops", "macs", "dense_ops", "ann_macs", "neuron_updates", "spikes")),
                     f"{rate:.4f}" if rate is not None else "", layer.note])
    rows.append(["total", "", "", *(fmt_count(totals[k]) for k in
                                     ("synops", "macs", "dense_ops", "ann_macs", "neuron_updates", "spikes")),
                 f"{totals['spike_rate']:.4f}", ""])
    out.append(_table(["layer", "shape", "input", "synops", "MACs", "dense", "ANN MACs", "neuron upd",
                       "spikes", "rate", ""], rows, ["<", "<", "<"] + [">"] * 7 + ["<"]))
    out += ["", "Energy per inference" + (" (memory-aware, Lemaire et al. 2022)" if memory else "")]
    rows = [[f"{layer.index} {layer.kind}", *(fmt_energy(results[n].layer_pj[i]) for n in names)]
            for i, layer in enumerate(counts.layers) if layer.is_synaptic or layer.is_neuron]
    rows.append(["static (whole chip)", *(_static_cell(results[n]) for n in names)])
    rows.append(["SNN total", *(fmt_energy(results[n].energy_pj) for n in names)])
    passes = "one pass" if counts.ann_passes == 1 else f"{counts.ann_passes} passes (sequence)"
    rows.append([f"ANN, {passes}", *(fmt_energy(results[n].ann_pj) for n in names)])
    rows.append(["  priced on", *(results[n].ann_profile for n in names)])
    rows.append(["SNN / ANN", *(f"{results[n].ratio:.3g}" for n in names)])
    rows.append(["break-even rate", *(_rate_cell(results[n]) for n in names)])
    out.append(_table(["layer", *names], rows))
    out.append(f"measured spike rate: {totals['spike_rate']:.4f} spikes per neuron per step; the break-even "
               "rate scales the network's own spikes and what they drive, all else fixed")
    if per_timestep:
        out += ["", "Per time step (per sample)", _per_step_table(counts, results)]
    out += ["", "Profiles: every constant with its status and source"]
    for n in names:
        out.append(_profile_text(results[n], memory))
    notes = list(counts.notes) + _notes(counts, memory)
    if notes:
        out += ["", "Notes"] + [textwrap.fill(n, 100, initial_indent="- ", subsequent_indent="  ") for n in notes]
    return "\n".join(out)


def _static_cell(res):
    if not res.profile.static:
        return "—"
    return fmt_energy(res.static_pj) + ("" if res.static_added else " (in events)")


def _rate_cell(res):
    r, _ = res.break_even()
    if r is None:
        return "—"
    return "never" if r == 0 else f"{r:.3g}"


def _per_step_table(counts, results):
    names = list(results)
    per = {k: counts.per_timestep(k) for k in ("synops", "macs", "spikes")}
    rows = [[str(t), fmt_count(counts.input_events[t]), *(fmt_count(per[k][t]) for k in per),
             *(fmt_energy(results[n].per_step_pj[t]) for n in names)] for t in range(counts.T)]
    return _table(["t", "input", "synops", "MACs", "spikes", *names], rows)


def _profile_text(res, memory):
    p = res.profile
    lines = [f"{p.name} — {p.title}  ({p.path})"]
    lines += textwrap.wrap(" ".join(p.summary.split()), 100, initial_indent="  ", subsequent_indent="  ")
    if memory and p.memory_included:
        lines.append("  --memory: nothing added, the event energies already include this chip's memory traffic")
    reference = []
    for table, c in p.constants():
        if table == "reference" and not c.note:
            reference.append(f"{c.key} {c.value:g} {c.unit}")
            continue
        tag = "not priced" if table == "reference" else table
        lines.append(f"  {c.key:<24} {c.value:>8g} {c.unit:<3} [{c.status}; {tag}]")
        lines += textwrap.wrap(c.source + (f" — {c.note}" if c.note else ""), 96,
                               initial_indent="      ", subsequent_indent="      ")
    if reference:
        lines += textwrap.wrap("also listed, not priced (sources in the file): " + ", ".join(reference), 96,
                               initial_indent="  ", subsequent_indent="      ")
    lines.append(f"  SNN {fmt_energy(res.energy_pj)} vs ANN {fmt_energy(res.ann_pj)} (on {res.ann_profile}): "
                 f"ratio {res.ratio:.3g}; break-even rate {_rate_cell(res)}: {res.break_even()[1]}")
    return "\n".join(lines)


def _notes(counts, memory):
    notes = ["Readout is counted as a synaptic layer applied at every time step to the binary spikes "
             "(T × events × out_features), as an event-driven chip would run it; it has no spiking neurons."]
    if any(layer.kind == "AvgPool2d" for layer in counts.layers) and not counts.fold_pool:
        notes.append("AvgPool2d is not counted itself (as NeuroBench); its non-binary output makes the next "
                     "layer's operations MACs. --fold-pool folds it into that layer instead.")
    if counts.ann_passes > 1:
        notes.append(f"The input is a sequence (a new value at every step), so the equivalent ANN runs "
                     f"{counts.ann_passes} passes, one per step; --ann-passes 1 prices a single pass.")
    if not memory:
        notes.append("Memory traffic is not priced for the CMOS profiles; --memory adds weight and "
                     "membrane-potential accesses (Lemaire et al. 2022).")
    return notes


def to_json(run, counts, results, memory=False, per_timestep=False):
    """The JSON document (``totals`` is the contract; see the module docstring)."""
    totals = counts.totals()
    totals["energy_pj"] = {n: r.energy_pj for n, r in results.items()}
    layers = []
    for i, layer in enumerate(counts.layers):
        entry = {"index": layer.index, "kind": layer.kind, "in_shape": list(layer.in_shape),
                 "out_shape": list(layer.out_shape), "input": layer.input, "binary_input": layer.binary_input,
                 **{k: layer.total(k) for k in (*COUNT_KEYS, "ann_macs")}, "spike_rate": layer.spike_rate,
                 "energy_pj": {n: r.layer_pj[i] for n, r in results.items()}}
        if layer.note:
            entry["note"] = layer.note
        layers.append(entry)
    profiles = {}
    for n, r in results.items():
        rate, why = r.break_even()
        profiles[n] = {
            "title": r.profile.title, "path": r.profile.path, "energy_pj": r.energy_pj, "dynamic_pj": r.dynamic_pj,
            "static_pj": r.static_pj, "static_added": r.static_added, "components_pj": r.components,
            "ann_energy_pj": r.ann_pj, "ann_profile": r.ann_profile, "ratio": r.ratio,
            "break_even_spike_rate": rate, "break_even_note": why,
            "memory_included": r.profile.memory_included,
            "constants": {f"{table}.{c.key}": {"value": c.value, "unit": c.unit, "status": c.status,
                                               "source": c.source, **({"note": c.note} if c.note else {})}
                          for table, c in r.profile.constants()}}
    doc = {"run": {"path": run.path, "format_version": 1, "T": run.T, "n_samples": run.n_samples,
                   "accuracy": run.accuracy, "input_binary": counts.input_binary, "meta": run.meta},
           "options": {"memory": memory, "fold_pool": counts.fold_pool, "ann_passes": counts.ann_passes,
                       "profiles": list(results)},
           "units": "per sample (one inference), summed over time steps; energies in pJ",
           "totals": totals, "layers": layers, "profiles": profiles,
           "notes": list(counts.notes) + _notes(counts, memory)}
    if per_timestep:
        doc["per_timestep"] = {**{k: counts.per_timestep(k).tolist() for k in COUNT_KEYS},
                               "input_events": counts.input_events.tolist(),
                               "energy_pj": {n: r.per_step_pj.tolist() for n, r in results.items()}}
    return _finite(doc)


def _finite(obj):
    """JSON has no inf/NaN: such values become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
