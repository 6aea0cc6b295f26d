"""Histograms of BNTT's γ per time step (paper Fig. 6).

For BNTT layer l and step t, the values γ_{l,t,c} over the channels c form one histogram;
the paper shows that their distribution shifts through time (high where the input matters,
near zero where it no longer does). No data are needed: γ is read from the checkpoint.
"""
import numpy as np

from . import common


def histograms(net, layers=None, steps=None, bins=30):
    """γ statistics per chosen BNTT layer and time step.

    Parameters
    ----------
    net : Sequential
    layers : list of int, optional
        BNTT layers, counted from 0 among the BNTT layers (default all).
    steps : list of int, optional
        Time steps (default ``default_steps``).
    bins : int

    Returns
    -------
    dict
        {"T", "layers": [{"bntt_layer", "network_index", "channels", "edges" (the layer's bins,
        shared by its steps), "steps": [{"t", "counts", "mean", "std", "min", "max", "median"}]}]}.
    """
    found = common.bntt_layers(net)
    if not found:
        raise ValueError("this network has no BNTT layer, so no γ_t to show")
    layers = list(range(len(found))) if layers is None else layers
    for k in layers:
        if not 0 <= k < len(found):
            raise ValueError(f"--layers: BNTT layer {k} does not exist "
                             f"(this network has {len(found)}: 0..{len(found) - 1})")
    T = found[0][1].T
    steps = default_steps(T) if steps is None else steps
    for t in steps:
        if not 0 <= t < T:
            raise ValueError(f"--steps: time step {t} is outside 0..{T - 1}")
    if bins < 1:
        raise ValueError("--bins must be at least 1")
    out = []
    for k in layers:
        g = found[k][1].gamma.data.astype(np.float64)
        lo, hi = g[steps].min(), g[steps].max()
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
        rows = []
        for t in steps:
            counts, _ = np.histogram(g[t], bins=edges)
            rows.append({"t": t, "counts": counts, "mean": g[t].mean(), "std": g[t].std(), "min": g[t].min(),
                         "max": g[t].max(), "median": float(np.median(g[t]))})
        out.append({"bntt_layer": k, "network_index": found[k][0], "channels": g.shape[1], "edges": edges,
                    "steps": rows})
    return {"T": T, "layers": out}


def default_steps(T, n=6):
    return sorted({int(round(t)) for t in np.linspace(0, T - 1, min(n, T))})


def plot(result, path, title=""):
    """One panel per layer: the histogram of γ_t for each chosen t, coloured by time."""
    plt = common.plt
    layers = result["layers"]
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers) + 0.6, 3.6), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, layer in zip(axes[0], layers):
        edges = np.asarray(layer["edges"])
        centres = (edges[1:] + edges[:-1]) / 2
        n = len(layer["steps"])
        for j, row in enumerate(layer["steps"]):
            ax.step(centres, row["counts"], where="mid", color=cmap(j / max(n - 1, 1)),
                    label=f"t={row['t']}: mean {row['mean']:.3f}, sd {row['std']:.3f}")
        ax.set(xlabel="γ", ylabel="channels", title=f"BNTT layer {layer['bntt_layer'] + 1}")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return common.save_figure(fig, path)


def add_arguments(p):
    p.add_argument("--layers", help="comma-separated BNTT layers, counted from 0 (default: all)")
    p.add_argument("--steps", help="comma-separated time steps, from 0 (default: 6 evenly spaced)")
    p.add_argument("--bins", type=int, default=30)


def run(args):
    net, meta, task = common.load(args.checkpoint)
    layers = common.parse_list(args.layers, int, "--layers") if args.layers else None
    steps = common.parse_list(args.steps, int, "--steps") if args.steps else None
    result = histograms(net, layers, steps, args.bins)
    result["checkpoint"] = str(args.checkpoint)
    out = common.out_dir(args.out, args.checkpoint)
    plot(result, out / "gamma.png", f"{task.name}: distribution of γ_t over channels")
    common.save_json(out / "gamma.json", result)
    means = "; ".join(f"layer {L['bntt_layer'] + 1}: " + ", ".join(f"t={r['t']} {r['mean']:.3f}" for r in L["steps"])
                      for L in result["layers"])
    return f"mean γ_t: {means}; {out / 'gamma.png'}"
