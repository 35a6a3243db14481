"""``python -m minisnn.train`` under hostile conditions: bad flags, non-finite or silent networks,
crafted checkpoints, full disks, shared run folders, stale files. Each test reproduces one defect.

Most tests call ``minisnn.train.main`` in-process on a tiny synthetic MNIST (seconds each); the
ones about processes and locks run the command line in subprocesses.
"""
import errno
import json
import re
import shutil
import subprocess
import time

import h5py
import numpy as np
import pytest

from minisnn import checkpoint as C
from minisnn import train
from test_checkpoint import reseal
from test_train import TINY, _env, driver_cmd, error_line, finished_run, last_json, run_cli, synthetic_mnist

TRAIN = ["--limit-train", 48, "--limit-test", 16, "--lr", 0.02, *TINY]


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return synthetic_mnist(tmp_path_factory, 96, 32, seed=0)


def main(*args, callbacks=()):
    return train.main([str(a) for a in args], callbacks=callbacks)


def one_error(capsys):
    return one_error_in(capsys.readouterr().err)


@pytest.fixture(scope="module")
def finished(mnist, tmp_path_factory):
    """A finished 1-epoch run with a validation split: its folder."""
    return finished_run(tmp_path_factory, "finished", ["--data-dir", mnist, "--epochs", 1, "--val-split", 0.25, *TRAIN])


# ------------------------------------------------------------------------------------------
# flags
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,says", [
    ("--momentum", "nan", "finite"), ("--momentum", "inf", "finite"), ("--momentum", "1.5", "[0, 1)"),
    ("--encoding-scale", "nan", "finite"), ("--encoding-scale", "inf", "finite"), ("--lr", "inf", "finite"),
    ("--gamma", "-1", "> 0"), ("--gamma", "0", "> 0"), ("--milestones", "-5", ">= 0"),
    ("--width", "1e-9", "no channel"), ("--weight-decay", "nan", "finite"), ("--preset", "fast --model vgg9", "fast"),
    ("--seed", "-1", "0..2**63-1"), ("--seed", str(2 ** 70), "0..2**63-1"), ("--seed", str(2 ** 63), "0..2**63-1"),
])
def test_bad_flag_values_give_one_line_and_status_2(tmp_path, capsys, flag, value, says):
    out = tmp_path / "run"
    assert main(flag, *value.split(), "--out", out) == 2
    line = one_error(capsys)
    assert flag in line and says in line
    assert not out.exists()


def test_val_split_leaving_no_training_sample_is_refused(mnist, tmp_path, capsys):
    out = tmp_path / "run"
    assert main("--data-dir", mnist, "--val-split", 0.999, "--out", out, *TRAIN) == 2
    assert "leaves 0 for training" in one_error(capsys)
    assert not out.exists()


def test_help_lists_resume_flags_and_every_exit_status(capsys):
    assert main("--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    allowed = text.split("with --resume only these flags may be given: ")[1].split(";")[0]
    for flag in ("--epochs", "--device", "--data-dir", "--test-every", "--limit-test", "--threads",
                 "--eval-batch-size", "--execution", "--out"):
        assert flag in allowed, flag
    assert "--lr" not in allowed and "--timesteps" not in allowed
    for code in train.EXIT_STATUS:
        assert f" {code} " in text, code


# ------------------------------------------------------------------------------------------
# silent wrong results
# ------------------------------------------------------------------------------------------

def test_an_overflowing_test_loss_stops_the_run_and_keeps_the_last_checkpoint(mnist, tmp_path, capsys, monkeypatch):
    from minisnn import epochs
    real = epochs.evaluate

    def overflowing(net, iterator, config, split, epoch, *args, **kwargs):
        result = real(net, iterator, config, split, epoch, *args, **kwargs)
        return {**result, "loss": float("inf")} if epoch == 1 else result

    monkeypatch.setattr(epochs, "evaluate", overflowing)
    out = tmp_path / "run"
    assert main("--data-dir", mnist, "--epochs", 2, "--out", out, *TRAIN) == 3
    line = one_error(capsys)
    assert "the test loss became inf after epoch 2" in line and "lower --lr" in line
    assert C.load(out / "checkpoint.h5").epoch == 1
    assert json.loads((out / "metrics.json").read_text())["status"].startswith("failed")


def test_nan_weights_after_an_update_stop_the_run_and_are_never_saved(mnist, tmp_path, capsys):
    def poison(net, epoch, batch):
        net.parameters()["conv1.weight"][0, 0, 0, 0] = np.inf

    out = tmp_path / "run"
    assert main("--data-dir", mnist, "--epochs", 1, "--out", out, *TRAIN, callbacks=[poison]) == 3
    line = one_error(capsys)
    assert "conv1.weight became NaN or infinite in epoch 1, batch 2" in line and "no checkpoint" in line
    assert not (out / "checkpoint.h5").exists()
    assert json.loads((out / "metrics.json").read_text())["status"].startswith("failed")


def test_huge_lr_never_exits_0_nor_saves_non_finite_weights(mnist, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["--data-dir", mnist, "--epochs", 2, "--out", out, *TRAIN, "--lr", 100], tmp_path)
    assert proc.returncode in (3, 4), proc.stdout + proc.stderr
    if (out / "checkpoint.h5").exists():
        C.load(out / "checkpoint.h5")                 # refuses non-finite arrays


def test_save_refuses_non_finite_arrays(tmp_path):
    ck = C.Checkpoint(epoch=1, weights={"a.weight": np.array([1.0, np.nan], np.float32)},
                      optimizer={"type": "sgd", "lr": 0.1, "steps": 1, "buffers": {}},
                      scheduler={"base_lr": 0.1, "milestones": [], "gamma": 0.2, "epoch": 1}, config={}, rng={})
    with pytest.raises(C.NonFiniteError, match="a.weight"):
        C.save(tmp_path / "c.h5", ck)
    assert list(tmp_path.iterdir()) == []


def test_dead_network_stops_with_status_4_and_keeps_the_last_good_checkpoint(mnist, tmp_path, capsys):
    def silence(net, epoch, batch):                   # from epoch 2 on, no spike reaches the output
        net.parameters()["fc1.weight"][...] = 0

    out = tmp_path / "run"
    assert main("--data-dir", mnist, "--epochs", 3, "--out", out, *TRAIN,
                callbacks=[lambda net, e, b: e == 0 and b == 2 and silence(net, e, b),
                           lambda net, e, b: e > 0 and silence(net, e, b)]) == 4
    assert "no spike reached the output layer during epoch 2 though spikes did before" in one_error(capsys)
    assert C.load(out / "checkpoint.h5").epoch == 1


@pytest.mark.parametrize("silencing", [("--encoding-scale", 1e-9), ("--timesteps", 1, "--dropout", 0.99)])
def test_network_silent_from_the_start_stops_as_dead_after_one_epoch(mnist, tmp_path, capsys, silencing):
    out = tmp_path / "run"
    assert main("--data-dir", mnist, "--epochs", 3, "--out", out, *TRAIN, *silencing) == 4
    line = one_error(capsys)
    assert "no spike reached the output layer during epoch 1" in line and "raise --timesteps" in line
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"].startswith("failed") and not (out / "checkpoint.h5").exists()


@pytest.mark.parametrize("mode", ["--resume", "--eval-only"])
def test_checkpoint_with_an_inf_weight_is_refused(finished, tmp_path, capsys, mode):
    bad = tmp_path / "bad.h5"
    shutil.copy(finished / "checkpoint.h5", bad)
    with h5py.File(bad, "r+") as h5:
        w = h5["weights/fc1.weight"]
        value = w[()]
        value[0, 0] = np.inf
        w[...] = value
    reseal(bad)
    assert main(mode, bad, "--epochs", 2, "--out", tmp_path / "out") == 2
    assert "fc1.weight holds NaN or infinite values" in one_error(capsys)


# ------------------------------------------------------------------------------------------
# progress and messages
# ------------------------------------------------------------------------------------------

def test_epoch_line_has_no_validation_without_a_split_and_one_throughput(mnist, tmp_path, capsys):
    assert main("--data-dir", mnist, "--epochs", 1, "--out", tmp_path / "run", *TRAIN) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("epoch 1/1"))
    assert "val" not in line and line.count("img/s") == 1 and "run left" in line
    assert "the run should take about" in out


def test_the_time_estimate_of_a_resumed_run_covers_what_is_left(finished, mnist, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    assert main("--resume", out / "checkpoint.h5", "--data-dir", mnist, "--epochs", 2, "--quiet") == 0
    printed = capsys.readouterr().out
    assert "the rest of the run should take about" in printed and "; the run should take" not in printed


def test_the_time_estimate_leaves_out_the_slow_first_batch(mnist, tmp_path, capsys):
    def slow_start(net, epoch, batch):
        if epoch == 0 and batch == 0:
            time.sleep(1.0)                                     # stands for allocations and thread start-up

    args = ["--data-dir", mnist, "--epochs", 1, "--out", tmp_path / "run", *TRAIN, "--batch-size", 8]
    assert main(*args, callbacks=[slow_start]) == 0                                   # 6 batches of 8
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("timing:"))
    first, steady = re.fullmatch(r"timing: ([\d.]+)s for the first 8 images, then ([\d.]+) images/s; "
                                 r"the run should take about .+ plus evaluation", line).groups()
    assert float(first) >= 1.0
    assert float(steady) > 40.0      # 5 batches of 8 with the first one in could not pass 40 images/s


def test_analyze_and_eval_only_agree_on_the_same_subset(finished, mnist, tmp_path, capsys):
    from minisnn import analyze
    assert main("--eval-only", finished / "checkpoint.h5", "--limit-test", 20, "--out", tmp_path / "eval") == 0
    evaluated = json.loads(capsys.readouterr().out.splitlines()[-1])["test_accuracy"]
    assert analyze.main([str(finished / "checkpoint.h5"), "--limit", "20", "--data-dir", str(mnist), "--quiet",
                         "--no-plots", "--out", str(tmp_path / "analysis")]) == 0
    analysed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert analysed["samples"] == 20 and analysed["accuracy"] == evaluated


def test_resuming_a_finished_run_says_so(finished, capsys):
    assert main("--resume", finished / "checkpoint.h5", "--quiet") == 0
    assert "nothing to train" in capsys.readouterr().out


def test_eval_only_uses_the_whole_test_set_unless_told(finished, mnist, tmp_path, capsys):
    assert main("--eval-only", finished / "checkpoint.h5", "--data-dir", mnist, "--out", tmp_path / "ev", "--quiet") == 0
    out = capsys.readouterr().out
    assert "whole test set" in out and last_json(out)["test_accuracy"] is not None
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["test_samples"] == 32


# ------------------------------------------------------------------------------------------
# run folders: locks, finished runs, disks, stale files
# ------------------------------------------------------------------------------------------

def test_a_finished_run_is_not_overwritten_without_overwrite(finished, mnist, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = (out / "checkpoint.h5").read_bytes()
    assert main("--data-dir", mnist, "--epochs", 1, "--out", out, *TRAIN) == 2
    assert "already holds a run" in one_error(capsys) and (out / "checkpoint.h5").read_bytes() == before
    assert main("--data-dir", mnist, "--epochs", 1, "--out", out, "--overwrite", *TRAIN) == 0
    assert not (out / "best.h5").exists()            # the old run's files are gone


def test_two_runs_cannot_share_a_folder(mnist, tmp_path):
    out = tmp_path / "run"
    hold = "def hook(net, epoch, batch):\n    print('training', flush=True); time.sleep(3600)"
    first = subprocess.Popen(driver_cmd(hold, ["--data-dir", mnist, "--epochs", 1, "--out", out, *TRAIN]),
                             cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        while first.stdout.readline().strip() != "training":
            assert first.poll() is None
        second = run_cli(["--data-dir", mnist, "--epochs", 1, "--out", out, *TRAIN], tmp_path)
        assert second.returncode == 2 and "in use by another training run" in error_line(second)
    finally:
        first.kill()
        first.wait()
        first.stdout.close()


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_disk_full_gives_one_line_and_status_5(finished, mnist, tmp_path, capsys, monkeypatch, err):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    before = (out / "checkpoint.h5").read_bytes()

    def full(path, ckpt):
        raise OSError(err, "simulated", str(path))

    monkeypatch.setattr(C, "save", full)
    assert main("--resume", out / "checkpoint.h5", "--epochs", 2, "--quiet") == 5
    line = one_error(capsys)
    assert str(out) in line and "last good checkpoint" in line
    assert (out / "checkpoint.h5").read_bytes() == before
    assert json.loads((out / "metrics.json").read_text())["status"].startswith("failed")


class FullDisk:
    """The one write layer of a run (``minisnn.fileio.write_file``) on a disk that fills up at
    write number ``full_at``: from then on a write fails (ENOSPC) unless the files in ``folder``
    plus it fit in what was free then. ``full_at=None`` counts the writes."""

    def __init__(self, folder, full_at=None):
        from minisnn import fileio
        self.folder, self.full_at, self.real = folder, full_at, fileio.write_file
        self.writes, self.quota, self.refused = 0, None, []

    def used(self):
        return sum(f.stat().st_size for f in self.folder.iterdir() if f.is_file())

    def __call__(self, path, data):
        self.writes += 1
        if self.writes == self.full_at:
            self.quota = self.used() + len(data) - 1
        full = self.quota is not None and self.used() + len(data) > self.quota
        self.refused.append(full)
        if full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        self.real(path, data)


def test_a_disk_filling_up_at_any_write_ends_the_run_cleanly(mnist, tmp_path, capsys, monkeypatch):
    """Exit 5 and one line, whichever write meets the full disk; the last good checkpoint loads,
    no temporary file is left, metrics.json says "failed" whenever the disk left room for it."""
    from minisnn import fileio

    args = ("--data-dir", mnist, "--epochs", 2, "--val-split", 0.25, *TRAIN)
    counter = FullDisk(tmp_path / "count")
    monkeypatch.setattr(fileio, "write_file", counter)
    assert main(*args, "--out", counter.folder) == 0
    capsys.readouterr()
    assert counter.writes >= 10                       # metrics, history, 2 x (best, checkpoint, metrics, history, curves)
    for full_at in range(1, counter.writes + 1):
        out = tmp_path / f"full{full_at}"
        disk = FullDisk(out, full_at)
        monkeypatch.setattr(fileio, "write_file", disk)
        assert main(*args, "--out", out) == 5, full_at
        err = capsys.readouterr().err
        assert "Traceback" not in err and "No space left on device" in one_error_in(err), (full_at, err)
        assert not [f.name for f in out.iterdir() if f.name.endswith(".tmp")], full_at
        if (out / "checkpoint.h5").exists():
            assert C.load(out / "checkpoint.h5").epoch >= 1
        if (out / "metrics.json").exists():
            status = json.loads((out / "metrics.json").read_text())["status"]
            assert status.startswith("failed") or disk.refused[-1], (full_at, status)


def one_error_in(err):
    lines = [line for line in err.splitlines() if line.startswith("minisnn.train: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_resume_repairs_a_stale_best_and_removes_orphaned_temporary_files(finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    assert C.run_state(C.load(out / "checkpoint.h5"))[0]["epoch"] == 1
    (out / "best.h5").unlink()                        # killed between checkpoint.h5 and best.h5
    orphan = out / ".checkpoint.h5.k1ll3d.tmp"
    orphan.write_bytes(b"\0" * 1000)
    assert main("--resume", out / "checkpoint.h5", "--epochs", 2, "--quiet") == 0
    assert "repaired" in capsys.readouterr().out
    assert not orphan.exists()
    best = json.loads((out / "metrics.json").read_text())["best"]["epoch"]
    assert C.load(out / "best.h5").epoch == best


# ------------------------------------------------------------------------------------------
# checkpoints: nothing read is trusted
# ------------------------------------------------------------------------------------------

def _edit(src, dst, fn):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as h5:
        fn(h5)
    return reseal(dst)                                # consistent file: only the content is wrong


def _config(h5, **change):
    config = json.loads(h5.attrs["config"])
    for key, value in change.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    h5.attrs["config"] = json.dumps(config)


def _weights(h5, dtype):
    value = h5["weights/fc1.weight"][()]
    del h5["weights/fc1.weight"]
    h5["weights"].create_dataset("fc1.weight", data=value.astype(dtype), fletcher32=True)


@pytest.mark.parametrize("edit,says", [
    (lambda h5: _config(h5, timesteps=None), "lacks timesteps"),
    (lambda h5: _config(h5, timesteps=2.5), "--timesteps must be an integer"),
    (lambda h5: _config(h5, lr=-0.1), "--lr must be > 0"),
    (lambda h5: h5.attrs.modify("epoch", -5), "epoch = -5"),
    (lambda h5: h5["scheduler"].attrs.modify("base_lr", -0.02), "base_lr"),
    (lambda h5: _weights(h5, np.int32), "dtype int32"),
    (lambda h5: _weights(h5, np.complex64), "dtype complex64"),
    (lambda h5: h5["weights"].create_dataset("huge", shape=(10 ** 11,), dtype=np.float32), "more than the"),
])
def test_crafted_checkpoints_are_refused(finished, tmp_path, capsys, edit, says):
    bad = _edit(finished / "checkpoint.h5", tmp_path / "bad.h5", edit)
    assert main("--resume", bad, "--epochs", 3, "--out", tmp_path / "out") == 2
    assert says in one_error(capsys)
    assert not (tmp_path / "out").exists()


def test_checkpoints_of_older_versions_take_the_old_defaults(finished, mnist, tmp_path):
    """Checkpoints written before loss_reduction, preset and execution existed resume exactly."""
    old = _edit(finished / "checkpoint.h5", tmp_path / "old.h5",
                lambda h5: _config(h5, loss_reduction=None, preset=None, execution=None))
    mode, config, _ = train.resolve_run({"resume": str(old)})
    assert (config["loss_reduction"], config["preset"], config["execution"]) == ("sum", "thesis", "auto")


def test_flipped_bytes_are_detected_or_harmless(finished, tmp_path):
    """Random single-byte changes either make load() refuse the file or change nothing it returns."""
    src = finished / "checkpoint.h5"
    good, raw = C.load(src), bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    silent = 0
    for i, position in enumerate(rng.integers(0, len(raw), 200)):
        flipped = bytearray(raw)
        flipped[position] ^= 1 << int(rng.integers(0, 8))
        path = tmp_path / f"flip{i}.h5"               # a new file each time: HDF5 caches open files by inode
        path.write_bytes(bytes(flipped))
        try:
            ck = C.load(path)
        except C.CheckpointError:
            continue
        same = (ck.config == good.config and ck.epoch == good.epoch and ck.scheduler == good.scheduler
                and ck.history == good.history and ck.extra == good.extra and ck.optimizer["lr"] == good.optimizer["lr"]
                and ck.weights.keys() == good.weights.keys()
                and all(np.array_equal(ck.weights[k], good.weights[k]) for k in good.weights))
        silent += not same
    assert silent == 0


def test_fletcher32_catches_a_changed_weight(finished, tmp_path):
    path = tmp_path / "c.h5"
    shutil.copy(finished / "checkpoint.h5", path)
    with h5py.File(path, "r") as h5:
        offset = h5["weights/fc1.weight"].id.get_chunk_info(0).byte_offset
    raw = bytearray(path.read_bytes())
    raw[offset + 10] ^= 0x40
    path.write_bytes(bytes(raw))
    reseal(path, sign=False)                          # past the header's sha256: fletcher32 must see it
    with pytest.raises(C.CheckpointError, match="corrupt"):
        C.load(path)


# ------------------------------------------------------------------------------------------
# presets, execution
# ------------------------------------------------------------------------------------------

def test_preset_fast_resolves_to_its_table_and_flags_override_it():
    from minisnn.config import FAST_PRESET, resolve
    c = resolve({"preset": "fast", "dataset": "fashion-mnist"})
    assert {k: c[k] for k in FAST_PRESET} == {"epochs": 20, "batch_size": 64, "loss_reduction": "mean", "lr": 0.0768,
                                              "momentum": 0.9, "weight_decay": 5e-4 / 64, "milestones": [10, 15],
                                              "gamma": 0.2}
    assert c["preset"] == "fast" and c["timesteps"] == 50
    c = resolve({"preset": "fast", "lr": 0.05, "epochs": 3})
    assert (c["lr"], c["epochs"], c["momentum"]) == (0.05, 3, 0.9)
    assert resolve({})["preset"] == "thesis" and resolve({})["epochs"] == 150


def test_execution_may_change_on_resume_and_reaches_the_network(finished, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(train, "fit", lambda net, *a, **k: seen.append(net.execution))
    assert main("--resume", finished / "checkpoint.h5", "--epochs", 2, "--execution", "dense",
                "--out", tmp_path / "r", "--quiet") == 0
    assert seen == ["dense"]


def test_main_gives_back_the_signal_handlers_it_found():
    import signal
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    assert main("--help") == 0 and main("--gamma", "0") == 2
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_run_shorter_than_a_second_is_not_announced_as_0m00s():
    from minisnn.runs import duration
    assert duration(0.4) == "under a second" and duration(65) == "1m05s" and duration(None) == "?"


def test_a_loaded_network_finds_the_data_its_run_read(finished, mnist, tmp_path, monkeypatch):
    import minisnn
    monkeypatch.setenv("MINISNN_DATA", str(tmp_path / "elsewhere"))      # the default root holds nothing
    model = minisnn.load(finished / "checkpoint.h5")
    images, labels = model.load_data("test")
    assert len(labels) == 32 and model.accuracy(images[:8], labels[:8]) >= 0
