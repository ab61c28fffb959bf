"""The notebooks run top to bottom against the installed package (outputs are not stored)."""

import json

import matplotlib
import pytest

from conftest import REPO

matplotlib.use("Agg")


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb")))
def test_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = json.loads((REPO / "notebooks" / name).read_text())
    namespace: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            exec(compile(src, f"{name}:{cell['id']}", "exec"), namespace)
