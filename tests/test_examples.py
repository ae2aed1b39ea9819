"""The notebooks in examples/ run end to end in a fresh kernel (nbclient + ipykernel, the test extra)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def _need(module: str):
    if os.environ.get("CI") == "true":  # under CI nothing may be skipped: a missing package fails here
        return __import__(module)
    return pytest.importorskip(module, reason=f"{module} is in the test extra: pip install -e '.[test]'")


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, f"no notebook in {EXAMPLES}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_end_to_end(path: Path, tmp_path: Path) -> None:
    nbformat = _need("nbformat")
    nbclient = _need("nbclient")
    _need("ipykernel")
    src = Path(__file__).resolve().parents[1] / "src"
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{src}{os.pathsep}{env_path}" if env_path else str(src)  # the kernel's rnnlens
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "nats/char" in text and "order 6" in text and "matched context lengths" in text
