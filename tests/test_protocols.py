"""The experiment scripts: experiments/hybrid_protocol.sh end to end at a tiny width on fake
CIFAR-10 files (the four stages write their records, and a second run resumes nothing and changes
nothing), and which run experiments/thesis_protocol.sh resumes or starts (a stand-in ``python``)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from test_data_formats import write_cifar
from test_train import _env

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SCRIPT = EXPERIMENTS / "hybrid_protocol.sh"
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
    assert conversion["test_images"] == 8 and conversion["percentile"] == 90      # the script's default
    assert {(c["reset"], c["input"]) for c in conversion["converted"]} == \
        {("hard", "poisson"), ("hard", "direct"), ("subtract", "poisson"), ("subtract", "direct")}
    hybrid = json.loads((out / "vgg9_hybrid_T10" / "metrics.json").read_text())
    assert hybrid["init_from"]["network"] == "ann" and hybrid["status"] == "completed"
    assert hybrid["init_from"]["conversion"]["percentile"] == 90
    assert hybrid["init_from"]["conversion"]["output_calibration"]["images"] == 32    # all of --limit-train 32
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


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("files,command", [
    ((), "--model lenet5 --dataset mnist"),               # nothing saved: a new run
    (("interrupted.h5",), "--resume {run} "),             # stopped mid-epoch 1: resumed, not restarted
    (("checkpoint.h5", "interrupted.h5"), "--resume {run} "),
    (("checkpoint.h5",), "--resume {run} "),
])
def test_thesis_protocol_resumes_a_run_folder_from_whichever_checkpoint_it_holds(tmp_path, files, command):
    run = tmp_path / "out" / "lenet5_mnist"
    run.mkdir(parents=True)
    for name in files:
        (run / name).write_bytes(b"")
    stand_in = tmp_path / "bin" / "python"                # records its arguments instead of training
    stand_in.parent.mkdir()
    stand_in.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    stand_in.chmod(0o755)
    env = {**_env(), "PATH": f"{stand_in.parent}:{_env().get('PATH', '')}", "DATA": str(tmp_path),
           "OUT": str(tmp_path / "out"), "ROWS": "mnist:lenet5"}
    proc = subprocess.run(["bash", str(EXPERIMENTS / "thesis_protocol.sh")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 1 and command.format(run=run) in calls[0], calls
