"""Why depth breaks surrogate-gradient training, and what fixes it (Ledinauskas et al. 2020).

For spiking ResNets (the sum into the block's LIF, or SEW's spikes added after it) and their
plain twins (``models.resnet``: the same layers without shortcuts)
of increasing depth on MNIST (Poisson input, T steps), with each normalisation and reset
gradient and a grid of surrogate widths w and heights h, at initialisation, one training batch
gives (``surrogate_sweep.gradient_profile``, every LIF layer in depth order, inside blocks too)

    G_l(t) = ‖∂L/∂I_{l,t}‖   over batch and neurons,     ‖G_l‖ = (Σ_t G_l(t)²)^½
    ratio  = ‖G_first‖ / ‖G_last‖        first-to-last LIF layer: < 10⁻² vanishing, > 10² exploding,
                                         "dead" when not even the last LIF layer gets a gradient
    gain   = ratio^(1/(L−1))             per LIF layer

The paper's claims it tests: (1) gradients explode or vanish with depth and the surrogate's width
and height decide which; (2) normalising the input currents (BN; here also BNTT) makes deep
networks trainable; (3) residual connections keep deep networks trainable (their ResNet-50).
With ``--train-steps N`` each (depth, architecture, norm, reset) is also trained N SGD steps
(surrogate width and height ``--train-width`` / ``--train-height``, default the surrogate's own)
and tested on ``--subset`` digits: which settings train at all; and the same profile G_l(t) is
measured again on the same batch after the training (``training.after``), to see whether the
gradients that vanished or exploded at initialisation stay that way.
"""
import numpy as np
from tqdm import tqdm

from .. import models
from ..evaluate import evaluate, test_batches
from ..layers import LIF
from ..losses import cross_entropy
from ..optim import SGD
from ..surrogate import SURROGATES
from ..tasks import batch_rng, get_task
from . import common
from .surrogate_sweep import gradient_profile, set_surrogate

TASK = "mnist-resnet"        # its loader and Poisson image encoder


def build(depth, arch, norm, reset_grad, T, seed):
    """``arch``: "resnet" (the sum into the block's LIF), "sew" (spikes added after it) or "plain"."""
    return models.resnet(depth, T=T, norm=norm, detach_reset=reset_grad == "detached", plain=arch == "plain",
                         sew=arch == "sew", seed=seed)


def short_training(net, task, train_data, test_data, T, steps, batch_size, seed, lr=0.1):
    """N SGD steps (lr, momentum 0.9, wd 1e-4) on fixed batches, then the test accuracy."""
    opt = SGD(net.parameters(), lr, 0.9, 1e-4)
    loss = common.fixed_batch_steps(net, opt, task, *train_data, T, steps, batch_size, seed)[-1]
    if not np.isfinite(loss):
        return {"final_loss": float(loss), "test_accuracy": 0.0, "diverged": True}
    _, acc = evaluate(net, test_batches(task, *test_data, T, 200, seed))
    return {"final_loss": float(loss), "test_accuracy": acc, "diverged": False}


def trained_profile(net, x, y):
    """G_l(t) of a trained network on the profiling batch (as at initialisation)."""
    with np.errstate(all="ignore"):            # a diverged network's NaN gradients count as exploding
        logits = net.forward(x, train=True)
        _, dlogits = cross_entropy(logits, y)
        p = gradient_profile(net, dlogits)
    net.clear()
    ratio, regime = first_to_last(p["layer_norm"])
    return {"layer_norm": p["layer_norm"], "grad_norm": p["grad_norm"], "ratio": ratio, "regime": regime}


def first_to_last(layer_norm, low=1e-2, high=1e2):
    """(‖G_first‖/‖G_last‖, regime): "dead" when not even the last LIF layer gets a gradient
    (its neurons sit outside the surrogate's support), "exploding" on overflow or a ratio above
    ``high``, "vanishing" below ``low``, else "stable"."""
    first, last = float(layer_norm[0]), float(layer_norm[-1])
    if not (np.isfinite(first) and np.isfinite(last)):
        return float("inf"), "exploding"
    if last == 0:
        return float("nan"), "dead"
    ratio = first / last
    return ratio, "exploding" if ratio > high else "vanishing" if ratio < low else "stable"


def analyse(task, batch, depths, archs, norms, resets, surrogate, widths, heights, T, seed=0, train=None,
            progress=False):
    """Every (depth, arch, norm, reset): one forward pass on ``batch``, one backward per (w, h).

    Returns ``{"runs": [{"depth", "arch", "norm", "reset", "spike_rate", "profiles": [{"width",
    "height", "layer_norm" [L], "ratio", "gain_per_layer", "regime"}], "training"?}]}``.
    """
    x, y = batch
    runs = []
    cases = [(d, a, n, r) for d in depths for a in archs for n in norms for r in resets]
    for depth, arch, norm, reset in tqdm(cases, desc="networks", disable=not progress):
        net = build(depth, arch, norm, reset, T, seed)
        logits, spikes = net.outputs(x, LIF, train=True)
        _, dlogits = cross_entropy(logits, y)
        run = {"depth": depth, "arch": arch, "norm": norm, "reset": reset,
               "spike_rate": [float(s.mean()) for s in spikes.values()], "profiles": []}
        del spikes
        for w in widths:
            for h in heights:
                set_surrogate(net, surrogate, h, w)
                p = gradient_profile(net, dlogits)
                ratio, regime = first_to_last(p["layer_norm"])
                run["profiles"].append({"width": w, "height": h, "layer_norm": p["layer_norm"], "ratio": ratio,
                                        "gain_per_layer": p["gain_per_layer"], "regime": regime,
                                        "dead_fraction": p["dead_fraction"]})
        net.clear()
        if train is not None:
            fresh = build(depth, arch, norm, reset, T, seed)
            options = dict(train)
            width, height = options.pop("width"), options.pop("height")
            set_surrogate(fresh, surrogate, height, width)
            run["training"] = dict(short_training(fresh, task, T=T, seed=seed, **options), width=width, height=height)
            run["training"]["after"] = trained_profile(fresh, x, y)
        runs.append(run)
    return {"runs": runs, "T": T, "batch": len(y), "surrogate": surrogate}


def plot(result, path, path_grid, widths, heights, reference, title=""):
    """``path``: ‖∂L/∂I_l‖ against LIF layer index for every network, at the reference (w, h), one
    panel per reset. ``path_grid``: log10 first-to-last ratio over (w, h) at the largest depth,
    rows architectures, columns norms (first reset)."""
    plt = common.plt
    runs, resets = result["runs"], result["resets"]
    depths = sorted({r["depth"] for r in runs})
    colours = {n: f"C{k}" for k, n in enumerate(result["norms"])}
    styles = {"resnet": "-", "sew": "-.", "plain": "--"}
    fig, axes = plt.subplots(1, len(resets), figsize=(6.5 * len(resets), 4.6), squeeze=False)
    for ax, reset in zip(axes[0], resets):
        for r in (r for r in runs if r["reset"] == reset):
            prof = next(p for p in r["profiles"] if (p["width"], p["height"]) == reference)
            g = np.asarray(prof["layer_norm"], dtype=float)
            ax.semilogy(np.arange(1, len(g) + 1), np.where(g > 0, g, np.nan), styles[r["arch"]],
                        color=colours[r["norm"]], lw=0.8 + 1.2 * depths.index(r["depth"]) / max(len(depths) - 1, 1),
                        label=f"{r['arch']}-{r['depth']}, {r['norm']}")
        ax.set(xlabel="LIF layer (input side first)", ylabel="‖∂L/∂I‖ over batch, neurons, steps",
               title=f"reset gradient {reset}; surrogate w={reference[0]:g}, h={reference[1]:g}")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=6, ncol=3)
    fig.suptitle(title + "\n(line width: depth; style: architecture; colour: norm)")
    common.save_figure(fig, path)
    deepest, archs, norms = depths[-1], result["archs"], result["norms"]
    fig, axes = plt.subplots(len(archs), len(norms), figsize=(3.3 * len(norms), 2.9 * len(archs)), squeeze=False,
                             constrained_layout=True)
    for (i, arch), (j, norm) in ((a, n) for a in enumerate(archs) for n in enumerate(norms)):
        ax = axes[i, j]
        r = next(r for r in runs if (r["arch"], r["norm"], r["depth"], r["reset"]) == (arch, norm, deepest, resets[0]))
        g = np.full((len(heights), len(widths)), np.nan)
        for p in r["profiles"]:
            g[heights.index(p["height"]), widths.index(p["width"])] = np.log10(np.clip(p["ratio"], 1e-30, 1e30))
        im = ax.imshow(g, origin="lower", cmap="coolwarm", vmin=-6, vmax=6)
        for (a, b), v in np.ndenumerate(g):
            ax.text(b, a, "dead" if np.isnan(v) else "inf" if v >= 29 else f"{v:.1f}", ha="center", va="center",
                    fontsize=7)
        ax.set_xticks(range(len(widths)), [f"{w:g}" for w in widths])
        ax.set_yticks(range(len(heights)), [f"{h:g}" for h in heights])
        ax.set(xlabel="width w", ylabel="height h", title=f"{arch}-{deepest}, {norm}")
    fig.colorbar(im, ax=axes, shrink=0.6)
    fig.suptitle(f"log10 ‖∂L/∂I_first‖ / ‖∂L/∂I_last‖ at initialisation (reset {resets[0]}; 0 = no decay)")
    fig.savefig(path_grid, dpi=100)
    plt.close(fig)
    return path


def add_arguments(p):
    p.add_argument("--depths", default="8,14,20,32", help="ResNet depths 6n+2")
    p.add_argument("--archs", default="resnet,sew,plain", help="resnet (sum into the LIF), sew, plain")
    p.add_argument("--norms", default="none,bn,bntt")
    p.add_argument("--resets", default="detached,attached")
    p.add_argument("--surrogate", choices=sorted(SURROGATES), default="triangle")
    p.add_argument("--widths", default="0.5,1,2")
    p.add_argument("--heights", default="0.3,1,3")
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-steps", type=int, default=0, help="also train each network this many SGD steps")
    p.add_argument("--train-batch-size", type=int, default=16, help="the gradient batch and the training batch")
    p.add_argument("--train-width", type=float, help="the surrogate's width in the trainings (default: its own)")
    p.add_argument("--train-height", type=float, help="the surrogate's height in the trainings (default: its own)")


def run(args):
    task = get_task(TASK)
    depths = [int(d) for d in common.parse_list(args.depths, int, "--depths")]
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    norms = [n.strip() for n in args.norms.split(",") if n.strip()]
    resets = [r.strip() for r in args.resets.split(",") if r.strip()]
    for name, values, allowed in (("--archs", archs, ("resnet", "sew", "plain")), ("--norms", norms, models.NORMS),
                                  ("--resets", resets, ("detached", "attached"))):
        if not values or any(v not in allowed for v in values):
            raise ValueError(f"{name} must list values among {', '.join(allowed)}")
    for d in depths:
        if d < 8 or (d - 2) % 6:
            raise ValueError(f"--depths must be 6n + 2 ≥ 8, got {d}")
    widths = sorted(set(common.parse_list(args.widths, float, "--widths")))
    heights = sorted(set(common.parse_list(args.heights, float, "--heights")))
    if min(widths) <= 0 or min(heights) <= 0 or args.T < 1 or args.train_steps < 0:
        raise ValueError("--widths, --heights and --T must be positive, --train-steps non-negative")
    batch_size = common.positive_int("--train-batch-size", args.train_batch_size)
    images, labels = task.load(args.data_dir, True)
    if batch_size > len(images):
        raise ValueError(f"--train-batch-size {batch_size} is larger than the {len(images)} training samples")
    idx = batch_rng(args.seed, 0).permutation(len(images))[:batch_size]
    x = task.encode(images[idx], args.T, batch_rng(args.seed, 0, 0))
    train = None
    if args.train_steps:
        default = SURROGATES[args.surrogate]()
        train = {"train_data": (images, labels), "test_data": common.load_test(task, args.data_dir, args.subset or 500),
                 "steps": args.train_steps, "batch_size": batch_size,
                 "width": args.train_width or default.width, "height": args.train_height or default.height}
    result = analyse(task, (x, labels[idx]), depths, archs, norms, resets, args.surrogate, widths, heights, args.T,
                     args.seed, train, progress=True)
    result.update(depths=depths, archs=archs, norms=norms, resets=resets, widths=widths, heights=heights)
    default = SURROGATES[args.surrogate]()
    reference = min(((w, h) for w in widths for h in heights),
                    key=lambda wh: abs(np.log(wh[0] / default.width)) + abs(np.log(wh[1] / default.height)))
    out = common.out_dir(args.out or "runs/gradient-flow")
    plot(result, out / "gradient_flow.png", out / "gradient_flow_grid.png", widths, heights, reference,
         f"gradient flow through depth at initialisation (MNIST, T={args.T}, {args.surrogate} surrogate)")
    common.save_json(out / "gradient_flow.json", result)
    lines = []
    for r in result["runs"]:
        p = next(p for p in r["profiles"] if (p["width"], p["height"]) == reference)
        lines.append(f"{r['arch']:>6}-{r['depth']:<3} {r['norm']:>4} {r['reset']:>8}: first/last {p['ratio']:.3g} "
                     f"spike rate {np.mean(r['spike_rate']):.3f} "
                     f"({p['regime']})" + (f"; after {args.train_steps} steps " + (
                         "diverged" if r["training"]["diverged"] else f"{100 * r['training']['test_accuracy']:.1f} %")
                         + f", first/last then {r['training']['after']['ratio']:.3g} ({r['training']['after']['regime']})"
                         if "training" in r else ""))
    return "\n".join(lines + [str(out / "gradient_flow.png"), str(out / "gradient_flow_grid.png")])
