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


def fmt_range(bounds):
    """(low, high) in pJ: 'low – high', '≥ low' for an unbounded high, '' for no range."""
    if bounds is None:
        return ""
    low, high = bounds
    if not np.isfinite(high):
        return f"≥ {fmt_energy(low)}"
    if np.isclose(low, high, rtol=1e-12, atol=0):
        return ""
    return f"{fmt_energy(low)} – {fmt_energy(high)}"


def to_text(run, counts, results, memory=False, per_timestep=False, per_layer=False):
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
    if totals["norm_ops"]:
        out.append(f"normalisation at inference: {fmt_count(totals['norm_ops'])} multiply-adds per sample "
                   "(BNTT: one per element and step; BatchNorm folds into the weights; LayerNorm: three)")
    any_norm = any(layer.is_norm and layer.total("norm_ops") for layer in counts.layers)
    title = "Energy per inference" + (" (with the per-access memory model, --memory)" if memory else "")
    if any_norm:
        title += f"; BNTT {'folded into per-step neuron parameters' if _norm(results) == 'fold' else 'as a multiply-add per element and step'}"
    out += ["", title]
    rows = [[f"{layer.index} {layer.kind}", *(fmt_energy(results[n].layer_pj[i]) for n in names)]
            for i, layer in enumerate(counts.layers)
            if layer.is_synaptic or layer.is_neuron or (layer.is_norm and layer.total("norm_ops"))]
    if any(r.components.get("routing") for r in results.values()):
        rows.append(["  of which routing", *(fmt_energy(results[n].components.get("routing")) if
                                             "routing" in results[n].components else "—" for n in names)])
    rows.append(["static", *(_static_cell(results[n]) for n in names)])
    rows.append(["SNN total", *(fmt_energy(results[n].energy_pj) for n in names)])
    if any(fmt_range(r.energy_range) for r in results.values()):
        rows.append(["  range", *(fmt_range(results[n].energy_range) for n in names)])
    passes = "one pass" if counts.ann_passes == 1 else f"{counts.ann_passes} passes (sequence)"
    rows.append([f"ANN dense, {passes}", *(fmt_energy(results[n].ann_pj) for n in names)])
    rows.append([f"ANN zero-skip (ρ = {counts.ann_density:g}, assumed)",
                 *(fmt_energy(results[n].ann_skip_pj) for n in names)])
    rows.append(["  priced on", *(results[n].ann_profile for n in names)])
    rows.append(["SNN / ANN dense", *(f"{results[n].ratio:.3g}" for n in names)])
    rows.append(["SNN / ANN zero-skip", *(f"{results[n].ratio_skip:.3g}" for n in names)])
    rows.append(["break-even rate (dense)", *(_rate_cell(results[n]) for n in names)])
    out.append(_table(["layer", *names], rows))
    loads = next(iter(results.values())).norm_param_loads if results else 0
    if loads:
        out.append(f"BNTT folded: {fmt_count(loads)} per-step parameter loads per sample (leak, threshold and bias "
                   "of each channel at every step), priced only by the memory model (--memory)")
    mapped = {n: r.mapping for n, r in results.items() if r.mapping is not None}
    if mapped:
        out += ["", "Core mapping (each neuron layer on cores of its own; mapping.py)", _mapping_table(mapped)]
        for n, m in mapped.items():
            for pl in m.placements:
                if not pl.fits:
                    out.append(f"  {n}: layer {pl.index} ({pl.kind}) does not fit: {pl.reason}")
        if per_layer:
            for n, m in mapped.items():
                out += ["", f"Placement on {n}", _placement_table(m)]
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


def _norm(results):
    return next(iter(results.values())).norm if results else "explicit"


def _static_cell(res):
    if not res.profile.static:
        return "—"
    return f"{fmt_energy(res.static_pj)} ({res.static_scope}{'' if res.static_added else ', in events'})"


def _mapping_table(mapped):
    names = list(mapped)
    rows = [["cores", *(str(mapped[n].cores) for n in names)],
            ["chips", *(str(mapped[n].chips) for n in names)],
            ["fits", *("yes" if mapped[n].fits else "no" for n in names)],
            ["packets to cores", *(fmt_count(mapped[n].total("packets")) for n in names)],
            ["router hops E-W", *(fmt_count(mapped[n].total("hops_east_west")) for n in names)],
            ["router hops N-S", *(fmt_count(mapped[n].total("hops_north_south")) for n in names)],
            ["between chips", *(fmt_count(mapped[n].total("chip_crossings")) for n in names)]]
    return _table(["per sample", *names], rows)


def _placement_table(m):
    rows = [[f"{p.index} {p.kind}", str(p.neurons), fmt_count(p.synapses), str(p.fan_in),
             f"{p.first_core}–{p.first_core + p.cores - 1}", str(p.cores), p.limit,
             "yes" if p.fits else "no"] for p in m.placements]
    return _table(["layer", "neurons", "synapses", "fan-in", "cores", "n", "set by", "fits"], rows)


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
        span = ""
        if c.has_range:
            span = f" (range {c.bound('low'):g}–{c.bound('high'):g})" if np.isfinite(c.bound("high")) else \
                f" (a lower bound: ≥ {c.bound('low'):g})"
        lines.append(f"  {c.key:<24} {c.value:>8g} {c.unit:<5} [{c.status}; {tag}]{span}")
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
                     "membrane-potential accesses (hwmodel's per-access model, after Lemaire et al. 2022).")
    if any(layer.kind == "Add" for layer in counts.layers):
        notes.append("Residual blocks: an identity shortcut (an Add reading the block's input) is counted as one "
                     "connection per neuron (fan-out 1), an Add of two computed paths as free: both paths' synapses "
                     "feed the same neurons. The core mapping adds both paths' synapses to the block's neurons.")
    if any(layer.kind == "BNTT" for layer in counts.layers):
        notes.append("BNTT's per-step statistics and γ cannot fold into the time-shared weights. --bntt fold "
                     "prices it instead as a per-step leak λ·a_{t−1}/a_t, threshold θ/a_t and bias b_t/a_t of each "
                     "channel (a_t = γ_t/√(σ²_t+ε)): exact only while every γ_t > 0, which a run file does not record.")
    notes.append(f"The zero-skipping ANN performs only the MACs of non-zero inputs, at an assumed ReLU density "
                 f"ρ = {counts.ann_density:g} for hidden layers (--ann-density); its first layer reads the input "
                 "densely (an image) or at its measured density (a sequence's analogue values).")
    if counts.ann_passes > 1:
        notes.append("For a sequence, the equivalent ANN is the same feed-forward layers run once per element, "
                     "with no state between elements: it prices the arithmetic, but such a network cannot solve a "
                     "task that needs memory (sMNIST); a recurrent ANN of the same widths would cost more per step.")
    return notes


def to_json(run, counts, results, memory=False, per_timestep=False):
    """The JSON document (``totals`` is the contract; see the module docstring)."""
    totals = counts.totals()
    totals["energy_pj"] = {n: r.energy_pj for n, r in results.items()}
    layers = []
    for i, layer in enumerate(counts.layers):
        entry = {"index": layer.index, "kind": layer.kind, "in_shape": list(layer.in_shape),
                 "out_shape": list(layer.out_shape), "input": layer.input, "binary_input": layer.binary_input,
                 **{k: layer.total(k) for k in (*COUNT_KEYS, "ann_macs", "ann_macs_skip")}, "spike_rate": layer.spike_rate,
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
            "energy_range_pj": list(r.energy_range) if r.energy_range else None,
            "ann_energy_pj": r.ann_pj, "ann_zero_skip_energy_pj": r.ann_skip_pj, "ann_profile": r.ann_profile,
            "ratio": r.ratio, "ratio_zero_skip": r.ratio_skip,
            "break_even_spike_rate": rate, "break_even_note": why,
            "memory_included": r.profile.memory_included, "bntt": r.norm, "norm_param_loads": r.norm_param_loads,
            "static_scope": r.static_scope, "mapping": _mapping_json(r.mapping),
            "constants": {f"{table}.{c.key}": {"value": c.value, "unit": c.unit, "status": c.status,
                                               "source": c.source, **({"note": c.note} if c.note else {}),
                                               **({"low": c.bound("low"), "high": c.bound("high")}
                                                  if c.has_range else {})}
                          for table, c in r.profile.constants()}}
    doc = {"run": {"path": run.path, "format_version": 1, "T": run.T, "n_samples": run.n_samples,
                   "accuracy": run.accuracy, "input_binary": counts.input_binary, "meta": run.meta},
           "options": {"memory": memory, "fold_pool": counts.fold_pool, "ann_passes": counts.ann_passes,
                       "ann_density": counts.ann_density, "bntt": _norm(results), "profiles": list(results)},
           "units": "per sample (one inference), summed over time steps; energies in pJ",
           "totals": totals, "layers": layers, "profiles": profiles,
           "notes": list(counts.notes) + _notes(counts, memory)}
    if per_timestep:
        doc["per_timestep"] = {**{k: counts.per_timestep(k).tolist() for k in COUNT_KEYS},
                               "input_events": counts.input_events.tolist(),
                               "energy_pj": {n: r.per_step_pj.tolist() for n, r in results.items()}}
    return _finite(doc)


def _mapping_json(m):
    if m is None:
        return None
    return {"cores": m.cores, "chips": m.chips, "fits": m.fits,
            **{k: m.total(k) for k in ("packets", "hops_east_west", "hops_north_south", "chip_crossings")},
            "layers": [{"index": p.index, "kind": p.kind, "neurons": p.neurons, "synapses": p.synapses,
                        "fan_in": p.fan_in, "first_core": p.first_core, "cores": p.cores, "limit": p.limit,
                        "fits": p.fits, **({"reason": p.reason} if p.reason else {})} for p in m.placements]}


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
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj
