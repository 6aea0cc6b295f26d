"""Where gradients vanish or explode: a sweep over the surrogate's shape (Ledinauskas et al. 2020).

The spike's forward pass is the same for every surrogate; only the backward pass changes.
With x = u/θ − 1 and f the surrogate (``surrogate.py``; height h, width w), BPTT through a
LIF layer gives, for the gradient with respect to its input current I_t,

    δu_t = g_t·f(x_t)/θ + λ·δu_{t+1}·∂v_t/∂u_t ,  ∂v_t/∂u_t = 1 (detached reset), 1 − f(x_t) (attached)
    g_t  = Wᵀ·δu_t of the layer above

so h scales the gradient once per layer (vanishing for small h, exploding for large h with
depth), w decides how many neurons pass any gradient at all (dead for a narrow triangle), and
with an attached reset |1 − f| > 1 compounds backward in time. For each (surrogate, w, h) at
initialisation (or at the checkpoint's weights) this measures, on one training batch,

    G_l(t) = ‖∂L/∂I_{l,t}‖ over batch and neurons       per LIF layer l and step t (overflow = ∞)
    gain   = (‖∂L/∂I_first‖ / ‖∂L/∂I_last‖)^(1/(L−1))    through depth, per layer:
                                                        < 1/2 vanishing, > 2 exploding
    with r = median_{t ≥ 3T/4} G_first(t), the gradient near the loss's last steps:
    time growth = max_t G_first(t) / r                  > 10³ exploding backward in time
    time ratio  = mean_{t < T/4} G_first(t) / r         < 10⁻³ vanishing toward early steps

and, with ``--train-steps N``, trains each setting N SGD steps and reports its test accuracy
(a setting "trains" when it beats twice the chance level without diverging).
"""
import numpy as np
from tqdm import tqdm

from .. import models
from ..evaluate import evaluate
from ..layers import LIF, Conv2d, Linear
from ..losses import cross_entropy
from ..optim import SGD
from ..surrogate import SURROGATES, get_surrogate
from ..tasks import batch_rng
from . import common


def set_surrogate(net, name, height, width, reset_grad=None):
    """Give every LIF layer the surrogate (name, h, w); optionally attach or detach the reset."""
    for layer in net.lif_layers():
        layer.surrogate = get_surrogate(name, height, width)
        if reset_grad is not None:
            layer.detach_reset = reset_grad == "detached"


def gradient_profile(net, dlogits):
    """Backward of ``dlogits`` after a training-mode forward, measured layer by layer.

    Parameters
    ----------
    net : Sequential
        Its last forward pass (train mode) is still saved; it can be backpropagated again
        (each call observes one ``net.backward``).
    dlogits : ndarray
        ∂L/∂z ``[B, classes]``.

    Returns
    -------
    dict
        ``grad_norm`` G ``[L, T]`` (first LIF layer first; overflow as inf), ``layer_norm``,
        ``weight_grad_norm``, ``dead_fraction`` (share of exactly-zero ∂L/∂I per layer),
        ``gain_per_layer``, ``time_growth``, ``time_ratio``, ``regime`` {"depth", "time"}.
    """
    norms, dead, wgrad = [], [], []

    def measure(i, layer, _, dx):     # backward order: last layer first
        if isinstance(layer, LIF):
            flat = dx.reshape(dx.shape[0], -1).astype(np.float64)
            norms.append(np.sqrt((flat ** 2).sum(axis=1)))
            dead.append(float((flat == 0).mean()))
        if isinstance(layer, (Linear, Conv2d)):
            wgrad.append(float(np.linalg.norm(layer.weight.grad)))

    net.zero_grad()
    net.backward(dlogits, observe=measure)
    net.zero_grad()
    norms, dead, wgrad = norms[::-1], dead[::-1], wgrad[::-1]
    G = np.stack(norms)                                   # [L, T], first layer first
    G = np.where(np.isnan(G), np.inf, G)                  # an overflowed gradient counts as infinite
    T = G.shape[1]
    q = max(1, T // 4)
    total = np.sqrt((G ** 2).sum(axis=1))
    gain = _ratio(total[0], total[-1]) ** (1.0 / (len(total) - 1)) if len(total) > 1 else 1.0
    late = np.median(G[0, -q:])
    growth, early = _ratio(G[0].max(), late), _ratio(G[0, :q].mean(), late)
    return {"grad_norm": G, "layer_norm": total, "weight_grad_norm": wgrad, "dead_fraction": dead,
            "gain_per_layer": gain, "time_growth": growth, "time_ratio": early,
            "regime": {"depth": _label(gain, gain, 0.5, 2.0), "time": _label(early, growth, 1e-3, 1e3)}}


def _ratio(a, b):
    """a / b, infinite when either overflowed or b vanished under a positive a."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return np.inf
    if b == 0:
        return np.inf if a > 0 else 1.0
    return float(a / b)


def _label(small, large, low, high):
    """exploding when ``large`` overflowed or exceeds ``high``, else vanishing when ``small`` < ``low``."""
    if not np.isfinite(large) or large > high:
        return "exploding"
    return "vanishing" if small < low else "stable"


def short_training(spec, name, h, w, reset_grad, config, task, train_data, test_data, steps, batch_size,
                   eval_batch, meta, bn_stats="running"):
    """Train a fresh network with surrogate (name, h, w) for ``steps`` SGD steps.

    Batches of ``batch_size`` training images follow one fixed permutation (wrapping around);
    SGD takes the checkpoint's lr, momentum and weight decay.

    Returns
    -------
    dict
        ``initial_loss``, ``final_loss`` (mean of the last fifth of the steps),
        ``test_accuracy``, ``diverged``, ``trains`` (not diverged and above twice chance).
    """
    net = models.build(spec)
    set_surrogate(net, name, h, w, reset_grad)
    opt = SGD(net.parameters(), config.get("lr", 0.1), config.get("momentum", 0.9), config.get("weight_decay", 0))
    losses = common.fixed_batch_steps(net, opt, task, *train_data, config["T"], steps, batch_size,
                                      config.get("seed", 0))
    diverged = not np.isfinite(losses[-1])
    acc = 0.0
    if not diverged:
        _, acc = evaluate(net, common.batches(task, *test_data, meta, eval_batch), bn_stats=bn_stats or "running")
    k = max(1, len(losses) // 5)
    classes = net.layers[-1].out_features
    return {"initial_loss": losses[0], "final_loss": float(np.mean(losses[-k:])), "test_accuracy": acc,
            "diverged": diverged, "trains": bool(not diverged and acc > 2.0 / classes)}


def analyse(net, meta, task, batch, surrogates, widths, heights, reset_grad=None, train=None, progress=False):
    """One forward pass on ``batch``; one backward per (surrogate, width, height).

    Parameters
    ----------
    net, meta, task
        The network to measure (at initialisation or trained) and its checkpoint's meta, task.
    batch : (ndarray, ndarray)
        Encoded training input ``[T, B, ...]`` and labels.
    surrogates : list of str
    widths, heights : list of float
    reset_grad : {None, "detached", "attached"}
        None keeps each LIF layer's setting.
    train : dict, optional
        Keyword arguments of ``short_training`` (without the surrogate): train each setting.
    progress : bool

    Returns
    -------
    dict
        ``settings`` [{"surrogate", "width", "height", **gradient_profile, "training"?}],
        ``spike_rate_at_start`` per LIF layer, ``T``, ``batch``.
    """
    x, y = batch
    logits, spikes = net.outputs(x, LIF, train=True)
    _, dlogits = cross_entropy(logits, y)
    rates = [float(s.mean()) for s in spikes.values()]
    del spikes
    settings = [(s, w, h) for s in surrogates for w in widths for h in heights]
    rows = []
    for name, w, h in tqdm(settings, desc="surrogates", disable=not progress):
        set_surrogate(net, name, h, w, reset_grad)
        row = {"surrogate": name, "width": w, "height": h, **gradient_profile(net, dlogits)}
        if train is not None:
            row["training"] = short_training(net.spec, name, h, w, reset_grad, **train, meta=meta)
        rows.append(row)
    net.clear()
    return {"spike_rate_at_start": rates, "settings": rows, "T": x.shape[0], "batch": len(y)}


def _grid(result, surrogate, key, widths, heights):
    grid = np.full((len(heights), len(widths)), np.nan)
    for r in result["settings"]:
        if r["surrogate"] == surrogate:
            value = r[key] if not key.startswith("training.") else r.get("training", {}).get(key[9:])
            grid[heights.index(r["height"]), widths.index(r["width"])] = value
    return grid


def plot(result, path, path_time, widths, heights, title=""):
    plt = common.plt
    names = sorted({r["surrogate"] for r in result["settings"]}, key=list(SURROGATES).index)
    panels = [("gain_per_layer", "log10 gain per layer", True), ("time_growth", "log10 time growth", True)]
    if any("training" in r for r in result["settings"]):
        panels.append(("training.test_accuracy", "test accuracy after training (%)", False))
    fig, axes = plt.subplots(len(names), len(panels), figsize=(3.9 * len(panels), 3.2 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, (key, label, log) in enumerate(panels):
            g = _grid(result, name, key, widths, heights)
            g = np.log10(np.clip(g, 1e-30, 1e30)) if log else 100 * g
            ax = axes[i, j]
            im = ax.imshow(g, origin="lower", cmap="coolwarm" if log else "viridis",
                           vmin=-3 if log else 0, vmax=3 if log else 100)
            for (a, b), v in np.ndenumerate(g):
                text = "nan" if np.isnan(v) else "inf" if v >= 29 else f"{v:.1f}" if log else f"{v:.0f}"
                ax.text(b, a, text, ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(widths)), [f"{w:g}" for w in widths])
            ax.set_yticks(range(len(heights)), [f"{h:g}" for h in heights])
            ax.set(xlabel="width w", ylabel="height h", title=f"{name}: {label}")
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title)
    common.save_figure(fig, path)
    n_layers = len(result["settings"][0]["grad_norm"])
    fig, axes = plt.subplots(len(names), n_layers, figsize=(4 * n_layers, 2.8 * len(names)), squeeze=False)
    styles = ["-", "--", ":", "-.", (0, (1, 3)), (0, (5, 1))]
    T = result["T"]
    stride = -(-T // 200)                 # at most ~200 points a line: the maximum of each window
    t_axis = np.arange(0, T, stride)
    for i, name in enumerate(names):
        for r in (r for r in result["settings"] if r["surrogate"] == name):
            for j, G in enumerate(r["grad_norm"]):
                G = np.asarray(G, dtype=float)
                G = np.pad(G, (0, -len(G) % stride), constant_values=0).reshape(-1, stride).max(axis=1)
                axes[i, j].semilogy(t_axis, np.where(G > 0, G, np.nan), color=f"C{heights.index(r['height'])}",
                                    ls=styles[widths.index(r["width"]) % len(styles)], lw=1,
                                    label=f"h={r['height']:g}, w={r['width']:g}")
        for j in range(n_layers):
            axes[i, j].set(xlabel="time step t", ylabel="‖∂L/∂I_t‖", title=f"{name}: LIF layer {j + 1}")
            axes[i, j].grid(alpha=0.3)
        axes[i, -1].legend(fontsize=6, ncol=2)
    fig.suptitle(title + "\n‖∂L/∂I_t‖ per time step (colour: height, style: width)")
    common.save_figure(fig, path_time)


def add_arguments(p):
    p.add_argument("--surrogates", default=",".join(SURROGATES), help="comma-separated: " + ", ".join(SURROGATES))
    p.add_argument("--widths", default="0.1,0.3,1,3")
    p.add_argument("--heights", default="0.1,0.3,1,3")
    p.add_argument("--weights", choices=("init", "checkpoint"), default="init",
                   help="measure at initialisation (default) or at the checkpoint's trained weights")
    p.add_argument("--reset-grad", choices=("checkpoint", "detached", "attached"), default="checkpoint",
                   help="the reset's gradient path (default: as the checkpoint was trained)")
    p.add_argument("--norm", choices=("checkpoint",) + models.NORMS, default="checkpoint",
                   help="with --weights init: rebuild the model with this normalisation instead")
    p.add_argument("--train-steps", type=int, default=0, help="also train each setting this many SGD steps")
    p.add_argument("--train-batch-size", type=int, help="batch size of the gradient batch and of training "
                   "(default: the checkpoint's)")


def run(args):
    net, meta, task = common.load(args.checkpoint)
    config = meta["config"]
    names = [s.strip() for s in args.surrogates.split(",") if s.strip()]
    if not names or any(n not in SURROGATES for n in names):
        raise ValueError(f"--surrogates must be among {', '.join(SURROGATES)}, got {args.surrogates!r}")
    widths = sorted(set(common.parse_list(args.widths, float, "--widths")))
    heights = sorted(set(common.parse_list(args.heights, float, "--heights")))
    if min(widths) <= 0 or min(heights) <= 0:
        raise ValueError("--widths and --heights must be positive")
    if args.train_steps < 0:
        raise ValueError("--train-steps must be non-negative")
    batch_size = common.positive_int("--train-batch-size", args.train_batch_size or config.get("batch_size", 32))
    spec = dict(meta["spec"])
    if args.norm != "checkpoint":
        if args.weights != "init":
            raise ValueError("--norm other than 'checkpoint' needs --weights init")
        spec["norm"] = args.norm
    if args.weights == "init":
        net = models.build(spec)
    reset_grad = None if args.reset_grad == "checkpoint" else args.reset_grad
    images, labels = task.load(args.data_dir, True)
    if args.subset:
        images, labels = images[:args.subset], labels[:args.subset]
    if batch_size > len(images):
        raise ValueError(f"--train-batch-size {batch_size} is larger than the {len(images)} training samples")
    idx = batch_rng(config.get("seed", 0), 0).permutation(len(images))[:batch_size]
    x = task.encode(images[idx], config["T"], batch_rng(config.get("seed", 0), 0, 0))
    train = None
    if args.train_steps:
        train = {"config": config, "task": task, "train_data": (images, labels), "steps": args.train_steps,
                 "test_data": common.load_test(task, args.data_dir, args.subset or 1000),
                 "batch_size": batch_size, "bn_stats": args.bn_stats,
                 "eval_batch": args.batch_size or (batch_size if args.bn_stats == "batch" else 200)}
    result = analyse(net, meta, task, (x, labels[idx]), names, widths, heights, reset_grad, train, progress=True)
    result.update(checkpoint=str(args.checkpoint), weights=args.weights, reset_grad=args.reset_grad,
                  norm=spec.get("norm"), train_steps=args.train_steps)
    out = common.out_dir(args.out, args.checkpoint)
    plot(result, out / "surrogate_sweep.png", out / "surrogate_sweep_time.png", widths, heights,
         f"{task.name}: surrogate sweep at {'initialisation' if args.weights == 'init' else 'trained weights'} "
         f"(norm {spec.get('norm')}, reset gradient {args.reset_grad})")
    common.save_json(out / "surrogate_sweep.json", result)
    lines = [f"{r['surrogate']:>12} w={r['width']:<5g} h={r['height']:<5g} gain/layer {r['gain_per_layer']:.3g} "
             f"({r['regime']['depth']}), time growth {r['time_growth']:.3g} ({r['regime']['time']})"
             + (f"; after {args.train_steps} steps {100 * r['training']['test_accuracy']:.1f} %"
                f"{' (diverged)' if r['training']['diverged'] else ''}" if "training" in r else "")
             for r in result["settings"]]
    return "\n".join(lines + [str(out / "surrogate_sweep.png")])
