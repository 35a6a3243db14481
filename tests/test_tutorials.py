"""Run every tutorial top to bottom in fast mode; each asserts what it derives.

The tutorials find MNIST by minisnn's own rule ($MINISNN_DATA, else the default folder); the
tests point $MINISNN_DATA at the real files of $MINISNN_SHARED_DATA where they exist.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
USES_MNIST = ("02_encoding", "06_backprop", "08_train_lenet5", "09_sparsity")


def _run(path, **env):
    env = dict(os.environ, MINISNN_FAST="1", MPLBACKEND="Agg", **env)
    return subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_tutorials_found():
    assert len(TUTORIALS) >= 9, TUTORIALS


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path):
    data = shared_data_dir()
    result = _run(path, **({"MINISNN_DATA": str(data)} if (data / "mnist").is_dir() else {}))
    assert result.returncode == 0, (f"{path.name} failed (exit {result.returncode})\n"
                                    f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}")


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_header_and_data_rule(path):
    text = path.read_text()
    head = text[:text.index("\n# %%\n")]
    for needed in ("**You will learn**", "**You need**", "Training Spiking Neural Networks",
                   "https://doi.org/10.3389/fnins.2020.00119", f"jupytext --to notebook tutorials/{path.name}"):
        assert needed in head, f"{path.name}: header lacks {needed!r}"
    assert "MINISNN_SHARED_DATA" not in text and "shared/data" not in text and "../shared" not in text
    if path.stem in USES_MNIST:
        assert "MNIST NOT FOUND" in text and "root=" not in text


def test_tutorial_says_loudly_when_it_falls_back(tmp_path):
    result = _run(ROOT / "tutorials" / "02_encoding.py", MINISNN_DATA=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MNIST NOT FOUND" in result.stdout and f"(now {tmp_path}: put them in" in result.stdout
