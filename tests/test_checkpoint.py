"""minisnn.checkpoint: round trip, atomic replacement, and a clear error for every bad file."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from minisnn import checkpoint as C

REPO = Path(__file__).resolve().parents[1]


def _ckpt(epoch=3, seed=0, size=(20, 1, 5, 5)):
    rng = np.random.default_rng(seed)
    weights = {"conv1.weight": rng.standard_normal(size).astype(np.float32),
               "output.weight": rng.standard_normal((10, 7)).astype(np.float32)}
    buffers = {"m": {k: v * 0.5 for k, v in weights.items()}, "v": {k: v * v for k, v in weights.items()}}
    return C.Checkpoint(
        epoch=epoch, weights=weights,
        optimizer={"type": "adam", "lr": 0.001, "steps": 17, "hyper": {"weight_decay": 0.0}, "buffers": buffers},
        scheduler={"base_lr": 0.005, "milestones": [70, 100, 125], "gamma": 0.2, "epoch": epoch},
        config={"model": "lenet5", "dataset": "mnist", "lr": 0.005, "milestones": [70, 100, 125]},
        rng={"seed": 7, "next_epoch": epoch}, history=[{"epoch": 1, "test_accuracy": 0.5}],
        extra={"best": {"epoch": None}})


def test_round_trip_is_exact(tmp_path):
    ck = _ckpt()
    path = C.save(tmp_path / "c.h5", ck)
    back = C.load(path)
    assert back.epoch == 3 and back.config == ck.config and back.rng == ck.rng
    assert back.history == ck.history and back.extra == ck.extra
    assert set(back.weights) == set(ck.weights)
    for k, v in ck.weights.items():
        assert back.weights[k].dtype == v.dtype and np.array_equal(back.weights[k], v)
    for b in ("m", "v"):
        for k, v in ck.optimizer["buffers"][b].items():
            assert np.array_equal(back.optimizer["buffers"][b][k], v)
    assert back.optimizer["steps"] == 17 and back.optimizer["type"] == "adam"
    assert back.scheduler == ck.scheduler
    with h5py.File(path, "r") as h5:
        assert h5.attrs["format"] == C.FORMAT and int(h5.attrs["format_version"]) == C.FORMAT_VERSION
    # no temporary files left behind, usual permissions
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]
    assert os.stat(path).st_mode & 0o044


def test_file_holds_the_arrays_without_padding(tmp_path):
    ck = _ckpt(size=(128, 128, 3, 3))                       # a VGG kernel, 576 KiB in float32
    path = C.save(tmp_path / "c.h5", ck)
    arrays = 3 * sum(v.nbytes for v in ck.weights.values())  # weights, m, v
    assert os.path.getsize(path) < arrays + 64 * 1024       # HDF5's own chunks made it 1.8x
    with h5py.File(path, "r") as h5:
        assert h5["weights/conv1.weight"].fletcher32


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.h5"
    C.save(path, _ckpt(epoch=1))
    before = path.read_bytes()

    def boom(h5, ckpt):
        h5.create_group("weights")
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(C, "_write", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        C.save(path, _ckpt(epoch=2))
    assert path.read_bytes() == before
    assert C.load(path).epoch == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.h5"]


def test_missing_file(tmp_path):
    with pytest.raises(C.CheckpointError, match="not found"):
        C.load(tmp_path / "nope.h5")


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(C.CheckpointError, match="not a regular file"):
        C.load(tmp_path)


def test_random_bytes(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(C.CheckpointError, match="not an HDF5 file"):
        C.load(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.h5"
    path.write_bytes(b"")
    with pytest.raises(C.CheckpointError, match="not an HDF5 file"):
        C.load(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated(tmp_path, fraction):
    full = C.save(tmp_path / "full.h5", _ckpt(size=(50, 20, 5, 5))).read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(full[: int(len(full) * fraction)])
    with pytest.raises(C.CheckpointError, match="truncated or corrupt"):
        C.load(path)


def test_hdf5_without_marker(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("weights", data=np.zeros(3))
    with pytest.raises(C.CheckpointError, match="not a minisnn checkpoint"):
        C.load(path)


def reseal(path, sign=True):
    """Make a checkpoint edited with h5py consistent again (its attribute digest, ``sign``, and its
    header checksum): a file whose only fault is the content the edit put there."""
    if sign:
        with h5py.File(path, "r+") as h5:
            h5.attrs["digest"] = C._digest(h5)
    body = Path(path).read_bytes()[C._HEADER_SIZE:]
    Path(path).write_bytes(C._header(body) + body)
    return path


def test_an_edited_file_is_refused_before_hdf5_reads_it(tmp_path):
    path = C.save(tmp_path / "c.h5", _ckpt())
    with h5py.File(path, "r+") as h5:
        h5.attrs["epoch"] = 2
        h5.attrs["digest"] = C._digest(h5)
    with pytest.raises(C.CheckpointError, match="does not match the sha256 in its header"):
        C.load(path)


def test_wrong_marker_and_version(tmp_path):
    path = C.save(tmp_path / "c.h5", _ckpt())
    with h5py.File(path, "r+") as h5:
        h5.attrs["format"] = "keras"
    reseal(path)
    with pytest.raises(C.CheckpointError, match="format marker 'keras'"):
        C.load(path)
    path = C.save(tmp_path / "d.h5", _ckpt())
    with h5py.File(path, "r+") as h5:
        h5.attrs["format_version"] = 99
    reseal(path)
    with pytest.raises(C.CheckpointError, match="version 99"):
        C.load(path)


def test_missing_group(tmp_path):
    path = C.save(tmp_path / "c.h5", _ckpt())
    with h5py.File(path, "r+") as h5:
        del h5["optimizer"]
    reseal(path, sign=False)
    with pytest.raises(C.CheckpointError, match="/optimizer"):
        C.load(path)


def test_sigkill_during_saves_never_leaves_an_unreadable_file(tmp_path):
    """A writer saving in a loop is killed with SIGKILL at several moments; the file always loads."""
    target = tmp_path / "checkpoint.h5"
    script = textwrap.dedent(f"""
        import sys, numpy as np
        sys.path.insert(0, {str(REPO)!r})
        from minisnn import checkpoint as C
        rng = np.random.default_rng(0)
        i = 0
        while True:
            i += 1
            w = {{"a.weight": rng.standard_normal((400, 500)).astype(np.float32), "b.weight": np.full(3, i, np.float32)}}
            C.save({str(target)!r}, C.Checkpoint(epoch=i, weights=w,
                   optimizer={{"type": "sgd", "lr": 0.1, "steps": i, "buffers": {{"momentum": w}}}},
                   scheduler={{"base_lr": 0.1, "milestones": [1], "gamma": 0.2, "epoch": i}},
                   config={{}}, rng={{"seed": 0}}))
            print(i, flush=True)
    """)
    epochs = []
    for delay in (0.05, 0.13, 0.21, 0.37):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()                 # one complete save happened
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        ck = C.load(target)                    # never raises
        assert ck.weights["b.weight"][0] == ck.epoch
        epochs.append(ck.epoch)
    assert max(epochs) >= 1
