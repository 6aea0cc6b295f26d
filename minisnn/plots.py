"""Figures written by the command-line tools (matplotlib, no display needed).

Built on ``matplotlib.figure.Figure``, not pyplot: importing this module (as ``minisnn.training``
does) leaves the caller's matplotlib backend alone, so a notebook keeps showing its figures.
"""
import json
from pathlib import Path

from matplotlib.figure import Figure


def read_jsonl(path):
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_learning_curve(metrics_path, steps_path, out_path, title=""):
    """Loss (running training loss and per-epoch test loss) and accuracy against epochs."""
    epochs, steps = read_jsonl(metrics_path), read_jsonl(steps_path)
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    if steps:
        ax_loss.plot([s["epoch"] for s in steps], [s["train_loss"] for s in steps], lw=1, label="train (running)")
    if epochs:
        e = [r["epoch"] for r in epochs]
        ax_loss.plot(e, [r["test_loss"] for r in epochs], "o-", label="test")
        ax_acc.plot(e, [100 * r["train_acc"] for r in epochs], "o-", label="train")
        n_full = max(r.get("test_samples", 0) for r in epochs)
        full = [r for r in epochs if r.get("test_samples", n_full) == n_full]
        part = [r for r in epochs if r not in full]
        ax_acc.plot(e, [100 * r["test_acc"] for r in epochs], "-", color="C1")
        ax_acc.plot([r["epoch"] for r in full], [100 * r["test_acc"] for r in full], "o", color="C1",
                    label="test" + (f" ({n_full} samples)" if part else ""))
        if part:   # --eval-samples: a fixed subset between full evaluations
            ax_acc.plot([r["epoch"] for r in part], [100 * r["test_acc"] for r in part], "o", color="C1", mfc="none",
                        label=f"test, first {part[0]['test_samples']} samples")
        best = max(full, key=lambda r: r["test_acc"])
        ax_acc.annotate(f"{100 * best['test_acc']:.2f} %", (best["epoch"], 100 * best["test_acc"]),
                        textcoords="offset points", xytext=(0, 8), ha="center")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
