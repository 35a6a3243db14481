"""The documentation users read: the README's test command, citations, no private paths,
and an equation index that points at functions that exist."""
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
ALGORITHM = (ROOT / "docs" / "algorithm.md").read_text()


def test_readme_test_command_is_what_ci_runs():
    line = "MPLBACKEND=Agg python3 -m pytest -q"
    assert f"\n    {line}\n" in README
    assert line in (ROOT / ".ci" / "run").read_text()


def test_readme_cites_paper_and_thesis():
    for needed in ("Chankyu Lee", "Syed Shakib Sarwar", "Priyadarshini Panda", "Gopalakrishnan Srinivasan",
                   "Kaushik Roy", "https://doi.org/10.3389/fnins.2020.00119", "Training Spiking Neural Networks",
                   "--preset fast", "MINISNN_DATA", "docs/algorithm.md", "## Results", "## Speed", "## How to cite"):
        assert needed in README, needed
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


@pytest.mark.parametrize("path", ["README.md", "docs/algorithm.md", "docs/design.md", "docs/distributed.md",
                                  "docs/extending-datasets.md",
                                  "tutorials/README.md"])
def test_user_docs_have_no_private_paths_or_issue_numbers(path):
    text = (ROOT / path).read_text()
    assert "../shared" not in text and "/work/" not in text
    assert not re.search(r"\bissues? \d", text), re.search(r"\bissues? \d", text)


def _resolve(dotted):
    parts = dotted.split(".")
    if parts[0] != "minisnn":
        parts = ["minisnn"] + parts
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_equation_index_points_at_existing_functions():
    index = ALGORITHM[ALGORITHM.index("## Equation-to-code index"):]
    rows = [line.split("|")[3] for line in index.splitlines() if line.startswith("| 3.") or line.startswith("| 4.")]
    assert len(rows) >= 15
    modules = r"(?:minisnn\.)?(?:layers|ops|neurons|models|optim|network|loss|encoding)"
    names = [n for row in rows for n in re.findall(rf"`({modules}(?:\.[A-Za-z_0-9]+)+)`", row)]
    assert "minisnn.neurons.lif_derivative" in names
    for name in names:
        assert callable(_resolve(name)) or isinstance(_resolve(name), type), name
    for eq in [f"3.{i}" for i in range(1, 27)]:
        assert re.search(rf"\b{re.escape(eq)}\b", index) or any(
            int(a) <= int(eq[2:]) <= int(b) for a, b in re.findall(r"3\.(\d+)-3\.(\d+)", index)), eq
