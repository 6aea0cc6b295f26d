"""Every tutorial notebook runs from top to bottom in fast mode (MINISNN_FAST=1).

Each notebook is executed with nbclient (installed with the "test" extra, through nbmake) in a
fresh Python kernel whose working directory is ``tutorials/``, so ``from helpers import ...``
and the relative data paths resolve as they do for a reader. The committed notebooks keep the
outputs of a full run; this test executes a copy in memory and writes nothing back.
"""
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT_S = 300        # a safety net per cell; fast mode takes seconds per notebook


def test_the_ten_tutorials_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 11)], [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tutorial_runs_in_fast_mode(path, monkeypatch):
    monkeypatch.setenv("MINISNN_FAST", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(TUTORIALS)}})
    started = time.time()
    client.execute()
    elapsed = time.time() - started
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    print(f"{path.name}: {elapsed:.1f} s in fast mode")
