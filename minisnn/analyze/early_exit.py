"""Temporal early exit from BNTT's learned γ_t (Kim & Panda 2021, Figs. 4 and 7).

BNTT gives every time step its own scale γ_t. Where the mean γ_t of every layer has fallen
low, later steps barely move the membranes, so inference can stop there:

    ḡ_l(t) = mean_c γ_{l,t,c}                                    mean γ of layer l at step t
    t_exit(θ) = min { t ∈ 1..T : ḡ_l(s) < θ for every layer l and every step s ≥ t }

(steps are counted from 0, so t_exit is the number of steps fed; t_exit = T when the last step
is above θ). t_exit never grows when θ grows. Evaluation at t_exit feeds only the first t_exit
steps; BNTT uses its first t_exit statistics and γ's, and the readout averages what it saw:

    z = (1/t_exit)·Σ_{t < t_exit} W·o_t

Every layer is causal in evaluation (LIF scans forward, BNTT/BN use fixed statistics, LN
works per sample and step), so z also equals the running readout of one full run at step
t_exit: one pass gives the accuracy at every t ("prefix accuracy"), and the truncated runs
check it.
"""
import numpy as np
from tqdm import tqdm

from ..layers import Readout
from . import common


def mean_gamma(net):
    """ḡ_l(t) = mean_c γ_{l,t,c} for every BNTT layer.

    Parameters
    ----------
    net : Sequential
        A network with BNTT layers.

    Returns
    -------
    ndarray
        float64 ``[L, T]``, BNTT layers in network order.

    Raises
    ------
    ValueError
        When the network has no BNTT layer.
    """
    layers = common.bntt_layers(net)
    if not layers:
        raise ValueError("early exit needs BNTT layers (γ_t per time step); this network has none")
    return np.stack([layer.gamma.data.astype(np.float64).mean(axis=1) for _, layer in layers])


def exit_step(gbar, threshold):
    """t_exit(θ) = min{t ∈ 1..T : max_{l, s ≥ t} ḡ_l(s) < θ}, T when no such t < T exists.

    Parameters
    ----------
    gbar : array_like
        Mean γ ``[L, T]`` (or ``[T]`` for one layer).
    threshold : float
        θ.

    Returns
    -------
    int
        The number of steps to feed, in 1..T; never larger for a larger θ.
    """
    gbar = np.atleast_2d(np.asarray(gbar, dtype=np.float64))
    T = gbar.shape[1]
    suffix_max = np.maximum.accumulate(gbar.max(axis=0)[::-1])[::-1]   # m_t = max_{s ≥ t} ḡ(s)
    below = np.nonzero(suffix_max[1:] < threshold)[0]
    return int(below[0] + 1) if below.size else T


def default_thresholds(gbar, n=10):
    """Up to ``n`` thresholds whose exit steps spread over 1..T: just above m_t = max_{l, s ≥ t} ḡ_l(s)
    at evenly spaced t (so that t_exit ≤ t), duplicates removed."""
    gbar = np.atleast_2d(np.asarray(gbar, dtype=np.float64))
    T = gbar.shape[1]
    suffix_max = np.maximum.accumulate(gbar.max(axis=0)[::-1])[::-1]
    targets = np.unique(np.round(np.linspace(1, T - 1, n)).astype(int)) if T > 1 else np.array([0])
    values = [float(v) for v in suffix_max[targets] * (1 + 1e-9) + 1e-12]
    values.append(float(suffix_max[-1]) * (1 - 1e-9) - 1e-12)      # below every ḡ: no early exit (T)
    return sorted(set(values))


def prefix_accuracy(net, batches, progress=False, total=None):
    """Accuracy when stopping after t = 1..T steps, from one full run per batch:

        z_t = W·(1/t)·Σ_{s < t} o_s   (o the spikes entering the readout)

    Parameters
    ----------
    net : Sequential
        Ends in a ``Readout``; run in evaluation mode.
    batches : iterable of (x ``[T, B, ...]``, labels ``[B]``)
    progress : bool
        Show a tqdm bar.
    total : int, optional
        Number of batches, for the bar.

    Returns
    -------
    ndarray
        ``[T]``: entry t − 1 is the accuracy of stopping after t steps.
    """
    readout = net.layers[-1]
    if not isinstance(readout, Readout):
        raise ValueError("early exit needs a network ending in a Readout layer")
    correct, seen = None, 0
    for x, y in tqdm(batches, total=total, desc="full run", disable=not progress, leave=False):
        last = len(net.layers) - 2              # what the readout reads: the last LIF's spikes
        x = net.outputs(x, lambda i, _: i == last)[1][last]
        o = x.reshape(x.shape[0], x.shape[1], -1).astype(np.float64)
        running = np.cumsum(o, axis=0) / np.arange(1, o.shape[0] + 1)[:, None, None]
        z = running @ readout.weight.data.T.astype(np.float64)                 # [T, B, K]
        hits = (z.argmax(axis=2) == y[None, :]).sum(axis=1)
        correct = hits if correct is None else correct + hits
        seen += len(y)
        net.clear()
    return correct / seen


def truncated_accuracy(net, batches, steps, progress=False, total=None):
    """Accuracy of the network fed only the first ``steps`` time steps of each input.

    Parameters
    ----------
    net : Sequential
        Run in evaluation mode on ``x[:steps]``.
    batches : iterable of (x ``[T, B, ...]``, labels ``[B]``)
    steps : int
        Steps fed, 1..T.
    progress, total
        As ``prefix_accuracy``.

    Returns
    -------
    float
    """
    correct = seen = 0
    for x, y in tqdm(batches, total=total, desc=f"exit at t={steps}", disable=not progress, leave=False):
        logits = net.forward(np.ascontiguousarray(x[:steps]), train=False)
        correct += int((logits.argmax(axis=1) == y).sum())
        seen += len(y)
        net.clear()
    return correct / seen


def analyse(net, meta, task, images, labels, batch_size, thresholds=None, threshold=None, tolerance=0.01,
            progress=False):
    """Mean γ, prefix accuracy, and a real truncated evaluation at each threshold's exit step.

    The reported exit is at ``threshold`` if given, else at the lowest exit step among the
    sweep whose accuracy is within ``tolerance`` of the full-length accuracy. For comparison,
    ``earliest_step_within_tolerance`` is the first t whose prefix accuracy is within ``tolerance``
    (what a rule knowing the test accuracy could reach).

    Parameters
    ----------
    net, meta, task
        As ``common.load`` returns them.
    images, labels : ndarray
        Normalised test images and their labels.
    batch_size : int
    thresholds : list of float, optional
        θ's to sweep (default ``default_thresholds``).
    threshold : float, optional
        θ to report (added to the sweep).
    tolerance : float
        Accuracy drop allowed when choosing θ.
    progress : bool

    Returns
    -------
    dict
        ``mean_gamma``, ``prefix_accuracy``, ``sweep`` (threshold, exit_step, accuracy,
        prefix_accuracy), the chosen ``threshold``, ``exit_step``, ``accuracy_at_exit``,
        ``accuracy_lost``, ``earliest_step_within_tolerance`` and more.
    """
    gbar = mean_gamma(net)
    T = gbar.shape[1]
    total = common.n_batches(len(images), batch_size)
    prefix = prefix_accuracy(net, common.batches(task, images, labels, meta, batch_size), progress, total)
    full = float(prefix[-1])
    thresholds = sorted(thresholds) if thresholds else default_thresholds(gbar)
    if threshold is not None and threshold not in thresholds:
        thresholds = sorted(thresholds + [threshold])
    sweep, measured = [], {T: full}
    for th in tqdm(thresholds, desc="thresholds", disable=not progress):
        t = exit_step(gbar, th)
        if t not in measured:
            measured[t] = truncated_accuracy(net, common.batches(task, images, labels, meta, batch_size), t,
                                             progress, total)
        sweep.append({"threshold": th, "exit_step": t, "accuracy": measured[t],
                      "prefix_accuracy": float(prefix[t - 1])})
    if threshold is not None:
        chosen = next(s for s in sweep if s["threshold"] == threshold)
    else:
        ok = [s for s in sweep if s["accuracy"] >= full - tolerance] or \
            [max(sweep, key=lambda s: (s["accuracy"], -s["exit_step"]))]
        chosen = min(ok, key=lambda s: (s["exit_step"], -s["threshold"]))
    earliest = int(np.nonzero(prefix >= full - tolerance)[0][0] + 1)   # what an oracle rule could reach
    return {"T": T, "samples": len(images), "bntt_layers": [i for i, _ in common.bntt_layers(net)],
            "mean_gamma": gbar, "accuracy_full": full, "threshold": chosen["threshold"],
            "chosen_by": "--threshold" if threshold is not None else f"accuracy within {tolerance:g} of full",
            "exit_step": chosen["exit_step"], "accuracy_at_exit": chosen["accuracy"],
            "accuracy_lost": full - chosen["accuracy"], "steps_saved": 1 - chosen["exit_step"] / T,
            "sweep": sweep, "prefix_accuracy": prefix, "tolerance": tolerance,
            "earliest_step_within_tolerance": earliest,
            "max_prefix_mismatch": max(abs(s["accuracy"] - s["prefix_accuracy"]) for s in sweep)}


def plot(result, path, title=""):
    """Left: ḡ_l(t) per layer with θ and t_exit (Fig. 4). Right: accuracy against exit step (Fig. 7)."""
    plt = common.plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    gbar = np.asarray(result["mean_gamma"])
    t = np.arange(gbar.shape[1])
    for k, g in enumerate(gbar):
        a.plot(t, g, label=f"BNTT layer {k + 1}")
    a.axhline(result["threshold"], color="k", ls=":", lw=1, label=f"θ = {result['threshold']:.3g}")
    a.axvline(result["exit_step"] - 0.5, color="r", ls="--", lw=1, label=f"exit after {result['exit_step']} steps")
    a.set(xlabel="time step t", ylabel="mean γ_t", title="BNTT γ through time")
    a.legend(fontsize=8)
    prefix = 100 * np.asarray(result["prefix_accuracy"])
    b.plot(np.arange(1, len(prefix) + 1), prefix, color="0.6", lw=1, label="stop after t steps")
    steps = [s["exit_step"] for s in result["sweep"]]
    b.plot(steps, [100 * s["accuracy"] for s in result["sweep"]], "o", label="γ-threshold exit (measured)")
    b.plot([result["exit_step"]], [100 * result["accuracy_at_exit"]], "r*", ms=12,
           label=f"θ={result['threshold']:.3g}: {100 * result['accuracy_at_exit']:.2f} %")
    b.axvline(result["earliest_step_within_tolerance"], color="0.4", ls=":", lw=1,
              label=f"first t within {100 * result['tolerance']:g} point(s) of T")
    b.set(xlabel="exit step", ylabel="test accuracy (%)", title="accuracy against exit step",
          ylim=(max(0, min(prefix[len(prefix) // 2:].min(), min(100 * s["accuracy"] for s in result["sweep"])) - 5),
                101))
    b.legend(fontsize=8, loc="lower right")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return common.save_figure(fig, path)


def add_arguments(p):
    p.add_argument("--threshold", type=float, help="γ threshold θ to report (default: the lowest exit step whose "
                   "accuracy is within --tolerance of the full-length accuracy)")
    p.add_argument("--thresholds", help="comma-separated thresholds to sweep (default: up to 10 spread over "
                   "the γ curve, and one below it: no exit)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="accuracy drop allowed when choosing θ (0.01 = 1 point)")


def run(args):
    net, meta, task = common.load(args.checkpoint)
    thresholds = common.parse_list(args.thresholds, float, "--thresholds") if args.thresholds else None
    if args.tolerance < 0:
        raise ValueError("--tolerance must be non-negative")
    mean_gamma(net)    # fail early, before loading data, when there is no BNTT
    batch_size, bn_stats = common.eval_mode(net, meta, args.bn_stats, args.batch_size)
    images, labels = common.load_test(task, args.data_dir, args.subset)
    result = analyse(net, meta, task, images, labels, batch_size, thresholds, args.threshold,
                     args.tolerance, progress=True)
    result.update(checkpoint=str(args.checkpoint), bn_stats=bn_stats, batch_size=batch_size)
    out = common.out_dir(args.out, args.checkpoint)
    plot(result, out / "early_exit.png", f"{task.name}: early exit from BNTT γ ({len(images)} test samples)")
    common.save_json(out / "early_exit.json", result)
    return (f"exit after {result['exit_step']} of {result['T']} steps (θ = {result['threshold']:.4g}): accuracy "
            f"{100 * result['accuracy_at_exit']:.2f} % vs {100 * result['accuracy_full']:.2f} % at T "
            f"({100 * result['accuracy_lost']:.2f} points lost); stopping after "
            f"{result['earliest_step_within_tolerance']} steps would lose at most {100 * args.tolerance:g} point(s); "
            f"{out / 'early_exit.png'}")
