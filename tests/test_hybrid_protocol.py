"""experiments/hybrid_protocol.sh end to end at a tiny width on fake CIFAR-10 files: the four
stages write their records, and a second run resumes nothing and changes nothing."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from test_data_formats import write_cifar
from test_train import _env

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "hybrid_protocol.sh"
SETTINGS = {"MODELS": "vgg9", "ANN_EPOCHS": "1", "ANN_MILESTONES": "", "HYBRID_EPOCHS": "1",
            "HYBRID_MILESTONES": "", "HYBRID_T": "10", "CONVERT_STEPS": "10", "SWEEP_STEPS": "5,10",
            "LIMIT": "8", "TRAIN_EXTRA": "--width 0.125 --limit-train 32 --limit-test 8 --threads 1"}


def _protocol(tmp_path):
    env = {**_env(), **SETTINGS, "DATA": str(tmp_path), "OUT": str(tmp_path / "out")}
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_four_stages_write_their_records_and_a_rerun_changes_nothing(tmp_path):
    write_cifar(tmp_path / "cifar10", n_per_batch=8)
    proc = _protocol(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    conversion = json.loads((out / "vgg9_conversion.json").read_text())
    assert conversion["test_images"] == 8
    assert {(c["reset"], c["input"]) for c in conversion["converted"]} == \
        {("hard", "poisson"), ("hard", "direct"), ("subtract", "poisson"), ("subtract", "direct")}
    hybrid = json.loads((out / "vgg9_hybrid_T10" / "metrics.json").read_text())
    assert hybrid["init_from"]["network"] == "ann" and hybrid["status"] == "completed"
    assert (hybrid["config"]["reset"], hybrid["config"]["input"], hybrid["config"]["timesteps"]) == ("subtract", "direct", 10)
    analysis = json.loads((out / "vgg9_hybrid_T10" / "analysis" / "analysis.json").read_text())
    assert [s["T"] for s in analysis["sweep"]] == [5, 10] and analysis["input"] == "analog"

    files = sorted(p for p in out.rglob("*") if p.is_file())
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    again = _protocol(tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("nothing to train") == 2 and again.stdout.count("done already") == 2
    assert sorted(p for p in out.rglob("*") if p.is_file()) == files
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == before[p] for p in files)
