"""A new dataset from user code (docs/extending-datasets.md): the page's scripts and commands,
run as written, register a folder of .npy files, train on it from the command line and evaluate
it; the registry's checks; and no package module but the registry and the layouts branching on
a dataset's name or kind."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minisnn.data import DATASETS, DatasetInfo, Layout, register, static_preset
from minisnn.data.registry import REMOTE

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "docs" / "extending-datasets.md").read_text()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", PAGE, flags=re.S)


def test_the_worked_example_runs_as_written(tmp_path):
    """Every script of the page is written to a folder outside the package and every command
    run there: the dataset trains, --eval-only reproduces the run's test accuracy, and
    minisnn.load and analyze read the checkpoint."""
    for code in _blocks("python"):
        name = re.match(r"# (\w+\.py)\n", code).group(1)
        (tmp_path / name).write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINISNN_DATA": str(tmp_path / "no-data-root"), "MPLBACKEND": "Agg"}
    outputs = []
    commands = [line for block in _blocks("bash") for line in block.splitlines() if line.strip()]
    for line in commands + ["python evaluate_shapes.py"]:
        argv = shlex.split(line)
        assert argv[0] == "python", line
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    metrics = json.loads((tmp_path / "runs" / "shapes" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["config"]["dataset"] == "shapes"
    assert metrics["config"]["timesteps"] == 10                     # the dataset's preset
    accuracy = metrics["epochs"][-1]["test_accuracy"]
    assert accuracy > 0.75, "two epochs learn to tell horizontal from vertical bars"
    evaluated = json.loads(outputs[2].strip().splitlines()[-1])
    assert evaluated["test_accuracy"] == accuracy                   # --eval-only: the same draws
    assert "shapes: test accuracy" in outputs[3]
    report = json.loads((tmp_path / "runs" / "shapes" / "analysis" / "analysis.json").read_text())
    assert report["dataset"] == "shapes" and report["samples"] == 32 and report["sops"] > 0


# -- the registry's checks -------------------------------------------------------------------

class _Half(Layout):
    def files(self, split):
        return [f"{split}.npy"]


@pytest.fixture
def registered():
    """Names registered by a test, removed afterwards."""
    names = []
    yield names
    for name in names:
        DATASETS.pop(name, None)
        REMOTE.pop(name, None)


def _info(**changes):
    values = dict(name="tiny", title="Tiny", input_shape=(1, 8, 8), num_classes=2, train_count=4, test_count=2,
                  layout=_Half(), folders=("tiny",), homepage="", aliases=("tiny-set",))
    return DatasetInfo(**{**values, **changes})


def test_a_layout_names_the_method_it_lacks(registered, tmp_path):
    from minisnn.data import DatasetError, load
    registered.append(register(_info()).name)
    with pytest.raises(NotImplementedError, match=r"_Half\.find is not implemented"):
        load("tiny-set", "train", tmp_path)
    with pytest.raises(NotImplementedError, match=r"_Half\.read"):
        _Half().read(tmp_path, "train", 2)
    assert _Half().labels(tmp_path, "train", 2) is None             # defaults: nothing more to check
    with pytest.raises(DatasetError, match="unknown dataset 'tiny2'"):
        load("tiny2", "train", tmp_path)


def test_a_registered_dataset_is_a_choice_of_the_command_line(registered):
    from minisnn.config import KNOBS, resolve
    from minisnn.train import build_parser
    registered.append(register(_info(preset=static_preset(timesteps=7, augment="crop"))).name)
    assert "tiny" in KNOBS["dataset"].choices
    assert build_parser().parse_args(["--dataset", "tiny"]).dataset == "tiny"
    config = resolve({"dataset": "tiny-set"})
    assert config["dataset"] == "tiny" and config["timesteps"] == 7 and config["augment"] == "crop"


@pytest.mark.parametrize("changes, message", [
    (dict(name="Tiny"), "lower case"),
    (dict(layout=object()), "Layout subclass"),
    (dict(input_shape=(8, 8)), r"\(C, H, W\)"),
    (dict(kind="video"), "kind must be one of image, events"),
    (dict(kind="events"), r"events: input_shape \(2, H, W\)"),
    (dict(classes=("a", "b", "c")), "one name per class"),
    (dict(preset={"timesteps": 5}), "preset lacks encoding_scale"),
    (dict(aliases=("fmnist",)), "aliases fmnist name other datasets"),
    (dict(name="mnist", aliases=()), "registered already"),
])
def test_register_refuses_a_description_that_cannot_work(changes, message):
    with pytest.raises(ValueError, match=message):
        register(_info(**changes))
    assert "tiny" not in DATASETS


def test_no_module_branches_on_a_dataset_name_or_kind():
    """Adding a dataset touches the registry alone: no other package module compares with a
    dataset's name or reads its ``kind``. (models.py's table of each model's thesis dataset
    names datasets as data, and is the one exception.)"""
    names = "|".join(re.escape(n) for n in DATASETS if n != "tiny")
    branch = re.compile(rf"""(==|!=|\bin)\s*\(?\s*["']({names}|events|image)["']|["']({names}|events)["']\s*(==|!=)"""
                        rf"""|\.kind\s*(==|!=|in\b)|COLOUR_DATASETS""")
    found = []
    for path in sorted((ROOT / "minisnn").rglob("*.py")):
        if path.relative_to(ROOT).as_posix() in ("minisnn/data/registry.py", "minisnn/data/layouts.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if branch.search(line) and "dtype.kind" not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
    assert np.all([isinstance(info.layout, Layout) for info in DATASETS.values()])
