"""BNTT against no normalisation, standard BN and LayerNorm (paper Tables 1, 4, 5 in spirit).

The same model, data and budget are trained once per normalisation with
``minisnn.training.train`` (one subfolder of ``--out`` each; an interrupted comparison
resumes, a finished run is reused), then every checkpoint is evaluated on the same test
samples. Per sample and summed over the T steps (``activity.py``):

    spike rate = Σ_l Σ_t spikes_{l,t} / (Σ_l n_l · T)
    synops     = Σ_{synaptic layers with binary input} Σ_t Σ_i c_t(i)·f(i) / N
    MACs       = the same over layers whose input is not binary (sMNIST's analogue pixels)

    none  Linear -> LIF
    bn    Linear -> BN (one γ, β and statistics shared by all steps, on the input currents) -> LIF
    ln    Linear -> LayerNorm (per sample and step, over the features) -> LIF
    bntt  Linear -> BNTT (γ_t and statistics per step) -> LIF
"""
import json
from pathlib import Path

import numpy as np

from .. import training
from ..models import NORMS
from ..plots import read_jsonl
from . import common
from .spikes import from_checkpoint


def train_config(dataset, norm, run_dir, args):
    """The ``TrainConfig`` of one normalisation's run: the comparison's options, this norm."""
    return training.TrainConfig(dataset=dataset, norm=norm, out=str(run_dir), checkpoint_every=args.checkpoint_every,
                                seed=args.seed, epochs=args.epochs, subset=args.subset, lr=args.lr, T=args.T,
                                leak=args.leak, data_dir=args.data_dir, batch_size=args.train_batch_size,
                                command=f"python -m minisnn.analyze compare-norm {dataset} (norm {norm})")


def train_one(dataset, norm, run_dir, args):
    """Train (or resume, or reuse) one normalisation.

    Parameters
    ----------
    dataset : str
    norm : str
    run_dir : Path
        This norm's subfolder of ``--out``.
    args : argparse.Namespace
        The comparison's options.

    Returns
    -------
    (dict or None, str or None)
        The run's summary.json content, or None and the divergence message.

    Raises
    ------
    ValueError
        ``run_dir`` holds a finished run with other settings.
    KeyboardInterrupt
        Training was stopped by a signal (its checkpoint is saved; rerun to resume).
    """
    config = train_config(dataset, norm, run_dir, args)
    _, recipe = config.resolve()
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        if not training.recipe_changes(summary.get("config", {}), json.loads(json.dumps(recipe))):
            return summary, None
        raise ValueError(f"{run_dir} holds a run with other settings; choose another --out")
    if (run_dir / "checkpoint.npz").is_file():
        config.resume = "auto"
    try:
        return training.train(config), None
    except training.TrainingDiverged as e:
        return None, str(e)


def analyse(dataset, norms, out, args):
    rows, curves = [], {}
    for norm in norms:
        run_dir = out / norm
        summary, diverged = train_one(dataset, norm, run_dir, args)
        curves[norm] = {"epochs": read_jsonl(run_dir / "metrics.jsonl"), "steps": read_jsonl(run_dir / "steps.jsonl")}
        row = {"norm": norm, "run": str(run_dir), "diverged": diverged}
        if summary is not None:
            act = from_checkpoint(run_dir / "checkpoint.npz", args.data_dir, args.subset, args.batch_size,
                                  args.bn_stats)
            row.update(test_accuracy=act["accuracy"], best_epoch_accuracy=summary["best_test_accuracy"],
                       spike_rate=act["spike_rate"], spikes=act["spikes"], synops=act["synops"], macs=act["macs"],
                       synops_from_spikes=act["synops_from_spikes"],
                       layer_rates=[layer["rate"] for layer in act["layers"]], samples=act["samples"],
                       train_time_s=summary["wall_time_s"], config=summary["config"])
        rows.append(row)
    return {"dataset": dataset, "norms": rows, "curves": curves}


def table(result):
    """The comparison as a Markdown table."""
    lines = ["| norm | test accuracy | spike rate | spikes / sample | synops / sample | of which from spikes "
             "| MACs / sample | train time |", "|---|---|---|---|---|---|---|---|"]
    for r in result["norms"]:
        if r["diverged"]:
            lines.append(f"| {r['norm']} | diverged | | | | | | |")
            continue
        lines.append(f"| {r['norm']} | {100 * r['test_accuracy']:.2f} % | {100 * r['spike_rate']:.2f} % | "
                     f"{r['spikes']:.0f} | {r['synops']:.3g} | {r['synops_from_spikes']:.3g} | {r['macs']:.3g} | "
                     f"{r['train_time_s']:.0f} s |")
    return "\n".join(lines) + "\n"


def plot(result, path, title=""):
    """Training loss and test accuracy against epochs; spike rate per layer."""
    plt = common.plt
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.8))
    ok = [r for r in result["norms"] if not r["diverged"]]
    for k, r in enumerate(result["norms"]):
        curve = result["curves"][r["norm"]]
        if curve["steps"]:
            a.plot([s["epoch"] for s in curve["steps"]], [s["train_loss"] for s in curve["steps"]], color=f"C{k}",
                   label=r["norm"] + (" (diverged)" if r["diverged"] else ""))
        if curve["epochs"] and len(curve["epochs"]) > 1:
            b.plot([e["epoch"] for e in curve["epochs"]], [100 * e["test_acc"] for e in curve["epochs"]], "o-",
                   color=f"C{k}", label=r["norm"])
        elif curve["epochs"]:                                  # one epoch: a bar per norm
            acc = 100 * curve["epochs"][-1]["test_acc"]
            b.bar(k, acc, color=f"C{k}", label=r["norm"])
            b.text(k, acc, f"{acc:.2f}", ha="center", va="bottom", fontsize=8)
    width = 0.8 / max(len(ok), 1)
    for k, r in enumerate(ok):
        rates = 100 * np.asarray(r["layer_rates"])
        c.bar(np.arange(len(rates)) + k * width - 0.4 + width / 2, rates, width,
              color=f"C{result['norms'].index(r)}", label=f"{r['norm']} ({100 * r['spike_rate']:.1f} %)")
    if ok:
        n_layers = max(len(r["layer_rates"]) for r in ok)
        c.set_xticks(range(n_layers), [f"LIF {j + 1}" for j in range(n_layers)])
    a.set(xlabel="epoch", ylabel="cross-entropy (running mean)", title="training loss")
    if all(len(c["epochs"]) <= 1 for c in result["curves"].values()):
        accs = [100 * c["epochs"][-1]["test_acc"] for c in result["curves"].values() if c["epochs"]]
        b.set_xticks(range(len(result["norms"])), [r["norm"] for r in result["norms"]])
        b.set(xlabel="after the one epoch", ylim=(min(accs, default=0) - 5, min(100, max(accs, default=100) + 2)))
    else:
        b.set(xlabel="epoch")
    b.set(ylabel="test accuracy (%)", title="test accuracy")
    top = max((100 * max(r["layer_rates"]) for r in ok), default=1)
    c.set(ylabel="spikes per neuron per step (%)", title="spike rate per layer", ylim=(0, 1.4 * top or 1))
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return common.save_figure(fig, path)


def add_arguments(p):
    p.add_argument("--norms", default=",".join(NORMS[::-1]), help="comma-separated, from: " + ", ".join(NORMS))
    p.add_argument("--epochs", type=int, help="training epochs (default: the task's)")
    p.add_argument("--lr", type=float)
    p.add_argument("--T", type=int)
    p.add_argument("--leak", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-batch-size", type=int, help="training batch size (default: the task's)")
    p.add_argument("--checkpoint-every", type=int, default=10, help="training-loss points every N steps")


def run(args):
    norms = [n.strip() for n in args.norms.split(",") if n.strip()]
    bad = [n for n in norms if n not in NORMS]
    if bad or not norms or len(set(norms)) != len(norms):
        raise ValueError(f"--norms must list distinct norms among {', '.join(NORMS)}, got {args.norms!r}")
    out = common.out_dir(args.out or f"runs/compare-norm-{args.dataset}")
    result = analyse(args.dataset, norms, Path(out), args)
    md = table(result)
    (out / "compare_norm.md").write_text(md)
    plot(result, out / "compare_norm.png", f"{args.dataset}: normalisation compared (same model and budget)")
    common.save_json(out / "compare_norm.json", result)
    return md + f"{out / 'compare_norm.png'}"
