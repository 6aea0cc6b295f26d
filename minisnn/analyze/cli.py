"""``python -m minisnn.analyze SUBCOMMAND CHECKPOINT [--out DIR]``: the paper's analyses.

Each subcommand writes ``NAME.png`` and ``NAME.json`` into ``--out`` (default: ``analysis/``
beside the checkpoint) and prints its main numbers. See docs/analyses.md.
"""
import argparse
import sys

from ..checkpoint import CheckpointError
from ..data import DataError
from ..layers.norm import EVAL_STATS
from ..tasks import TASKS
from ..training import UsageError
from . import compare_norm, early_exit, gamma, gradient_flow, robustness, spikes, surrogate_sweep

SUBCOMMANDS = {
    "early-exit": (early_exit, "mean BNTT γ_t per layer, exit step for a threshold, accuracy against exit step"),
    "spikes": (spikes, "spikes per layer per time step and spike rate per layer"),
    "gamma": (gamma, "histograms of BNTT γ per time step"),
    "robustness": (robustness, "accuracy under Gaussian noise and FGSM"),
    "compare-norm": (compare_norm, "train none / bn / ln / bntt with one budget and compare them"),
    "surrogate-sweep": (surrogate_sweep, "gradient norms through layers and time for surrogate widths and heights"),
    "gradient-flow": (gradient_flow, "gradients through depth: spiking ResNets and plain twins, norms, resets, surrogates"),
}


class Parser(argparse.ArgumentParser):
    """Usage mistakes end in one line on stderr, not a usage dump."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def build_parser():
    p = Parser(prog="python -m minisnn.analyze", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)
    sub.required = True
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=module.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == "compare-norm":
            sp.add_argument("dataset", help=f"one of: {', '.join(sorted(TASKS))}")
        elif name != "gradient-flow":        # it builds its own networks (at initialisation)
            sp.add_argument("checkpoint", help="checkpoint.npz written by python -m minisnn.train")
        sp.add_argument("--out", help="output folder (default: analysis/ beside the checkpoint)")
        # every subcommand takes the data options (gamma ignores them)
        sp.add_argument("--data-dir", help="folder with the dataset files")
        sp.add_argument("--subset", type=int, help="use the first N test samples (training: N samples)")
        sp.add_argument("--batch-size", type=int, help="evaluation batch size (default 200; with --bn-stats "
                        "batch, the training batch size)")
        sp.add_argument("--bn-stats", choices=EVAL_STATS,
                        help="BNTT/BN in evaluation: running averages (the paper's protocol), calibrated "
                             "statistics (precise BN), or each test batch's own (default: as in training)")
        module.add_arguments(sp)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")       # figures go to files; importing minisnn.analyze leaves the backend alone
    module = SUBCOMMANDS[args.command][0]
    try:
        if (args.batch_size is not None and args.batch_size < 1) or (args.subset is not None and args.subset < 1):
            raise ValueError("--batch-size and --subset must be at least 1")
        if args.command == "compare-norm":
            from ..tasks import get_task
            get_task(args.dataset)
        message = module.run(args)
    except (CheckpointError, DataError, ValueError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(message)
    return 0
