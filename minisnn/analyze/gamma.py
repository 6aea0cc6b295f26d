"""Histograms of BNTT's γ per time step (paper Fig. 6).

For BNTT layer l and step t, the values γ_{l,t,c} over the channels c form one histogram;
the paper shows that their distribution shifts through time (high where the input matters,
near zero where it no longer does). No data are needed: γ is read from the checkpoint.

``--gradient-batches N`` also measures what moves γ_t: on N training batches, in training
mode, the mean over channels of |∂L/∂γ_{l,t}|, beside the pull of weight decay, wd·|γ_{l,t}|.
Where the gradient is far below that pull, γ_t follows the decay alone, to γ₀·exp(−κ).
"""
import numpy as np

from ..layers import BNTT
from ..tasks import batch_rng
from ..training import train_step
from . import common

GRADIENT_KEY = 10**9 + 4   # (seed, GRADIENT_KEY, k): the training batches whose gradients are measured


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


def gradients(net, task, images, labels, T, n_batches, batch_size, seed):
    """Mean over channels of |∂L/∂γ_{l,t}| on ``n_batches`` training batches (training mode, the
    whole pass; no update). Returns ``[layers, T]`` (BNTT layers in network order, inside blocks too).
    The training-mode passes update the running averages; they are restored, so ``net`` evaluates
    as before."""
    found = [layer for layer in net.modules() if isinstance(layer, BNTT)]
    if not found:
        raise ValueError("this network has no BNTT layer, so no γ_t to show")
    kept = [(layer.running_mean.copy(), layer.running_var.copy()) for layer in net.norm_layers()]
    order = batch_rng(seed, GRADIENT_KEY).permutation(len(images))
    total = np.zeros((len(found), found[0].T))
    for k in range(n_batches):
        idx = np.take(order, np.arange(k * batch_size, (k + 1) * batch_size), mode="wrap")
        net.zero_grad()
        train_step(net, None, task.encode(images[idx], T, batch_rng(seed, GRADIENT_KEY, k)), labels[idx])
        total += np.array([np.abs(layer.gamma.grad).mean(axis=1) for layer in found])
    net.zero_grad()
    for layer, (mean, var) in zip(net.norm_layers(), kept):
        layer.running_mean[:], layer.running_var[:] = mean, var
    return total / n_batches


def plot_gradients(grad, gamma, weight_decay, path, title=""):
    """|∂L/∂γ_t| per layer against t (log scale), and weight decay's pull wd·|γ_t| dashed
    (``grad``, ``gamma``: ``[layers, T]`` means over channels)."""
    plt = common.plt
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    t = np.arange(grad.shape[1])
    for l, (g, gam) in enumerate(zip(grad, gamma)):
        ax.semilogy(t, g, color=f"C{l}", label=f"BNTT layer {l + 1}: |∂L/∂γ_t|")
        if weight_decay:
            ax.semilogy(t, weight_decay * np.abs(gam), color=f"C{l}", ls="--", lw=0.8)
    ax.set(xlabel="time step t", ylabel="mean over channels", title=title)
    ax.plot([], [], "k--", lw=0.8, label=f"weight decay's pull, wd·|γ_t| (wd = {weight_decay:g})")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return common.save_figure(fig, path)


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
    p.add_argument("--gradient-batches", type=int, default=0, metavar="N",
                   help="also measure |∂L/∂γ_t| on N training batches (needs the data; default 0: off)")


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
    summary = f"mean γ_t: {means}; {out / 'gamma.png'}"
    if args.gradient_batches:
        common.positive_int("--gradient-batches", args.gradient_batches)
        config = meta["config"]
        images, labels = task.load(args.data_dir, True)
        grad = gradients(net, task, images, labels, config["T"], args.gradient_batches, config["batch_size"],
                         config.get("seed", 0))
        gamma = np.array([np.abs(layer.gamma.data).mean(axis=1) for layer in net.modules() if isinstance(layer, BNTT)])
        wd = config.get("weight_decay", 0.0) if config.get("gamma_decay", True) else 0.0
        result["gradient"] = {"batches": args.gradient_batches, "mean_abs": grad, "weight_decay": wd,
                              "first_to_last": [g[0] / g[-1] if g[-1] > 0 else float("inf") for g in grad]}
        common.save_json(out / "gamma.json", result)
        plot_gradients(grad, gamma, wd, out / "gamma_gradient.png",
                       f"{task.name}: what moves γ_t ({args.gradient_batches} training batches)")
        ratios = ", ".join(f"{r:.2g}" for r in result["gradient"]["first_to_last"])
        summary += f"; |∂L/∂γ_0| / |∂L/∂γ_T−1| per layer: {ratios}; {out / 'gamma_gradient.png'}"
    return summary
