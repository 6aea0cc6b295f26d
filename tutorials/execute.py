"""Execute tutorial notebooks in place, outputs included: ``python tutorials/execute.py [--fast] [NB ...]``.

Without arguments every ``NN_*.ipynb`` of this folder runs. ``--fast`` sets MINISNN_FAST=1 and
writes the executed copies to a temporary folder instead (the committed notebooks carry the
outputs of a full run). Each notebook runs with this folder as its working directory.
"""
import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path, fast=False, timeout=1800):
    """Run one notebook; return (executed notebook, seconds)."""
    nb = nbformat.read(path, as_version=4)
    os.environ["MINISNN_FAST"] = "1" if fast else "0"
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}})
    started = time.time()
    client.execute()
    return nb, time.time() - started


def children_cpu_s():
    """CPU seconds (user + system) used so far by finished child processes: the kernels."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("notebooks", nargs="*", type=Path)
    p.add_argument("--fast", action="store_true", help="MINISNN_FAST=1; do not overwrite the notebooks")
    args = p.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    out = Path(tempfile.mkdtemp(prefix="tutorials-")) if args.fast else None
    for path in paths:
        cpu = children_cpu_s()
        nb, seconds = execute(path, fast=args.fast)
        target = out / path.name if out else path
        nbformat.write(nb, target)
        print(f"{path.name}: {seconds:.1f} s wall, {children_cpu_s() - cpu:.1f} s CPU -> {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
