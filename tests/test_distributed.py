"""Data-parallel training over MPI (minisnn.distributed): the rows of a batch draw the random
numbers of the whole batch, and ``mpiexec -n 2 python -m minisnn.train`` trains as one process
does, writes one run folder, stops every rank together and leaves a checkpoint any number of
processes resumes. The 2-rank tests need mpi4py and an ``mpiexec`` (``pip install
'minisnn[mpi]'``) and run tiny synthetic MNIST runs of a few seconds each."""
import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from minisnn import Backend
from minisnn import checkpoint as C
from minisnn import distributed as D
from minisnn.models import build
from minisnn.testing import strict_backend
from test_train import DRIVER, TINY, _env, finished_run, last_json, run_cli, synthetic_mnist

ARGS = ["--epochs", 2, "--limit-train", 80, "--limit-test", 16, "--val-split", 0.2, "--dropout", 0.2,
        "--momentum", 0.9, "--lr", 0.003, "--seed", 3, "--threads", 1, *TINY]          # 4 batches per epoch


# ------------------------------------------------------------------------------------------
# One process: the random numbers of a slice of the batch
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", [Backend("cpu"), strict_backend()], ids=["pcg64-jump", "whole-batch-draw"])
def test_row_stream_gives_the_rows_of_the_whole_batch_draws(backend):
    total = 7
    for axis, shapes in ((1, [(3, total, 5), (4, total, 1)]), (0, [(total, 3, 3), (total, 1)])):   # odd sizes too
        whole = backend.rng(7, "train", axis)
        expected = [backend.to_host(whole.random(shape, dtype=np.float32)) for shape in shapes]
        for start, stop in [(0, 3), (3, 4), (4, 7), (0, 7)]:
            rows = D.rows_of(backend.rng(7, "train", axis), (start, total), axis)
            for shape, full in zip(shapes, expected):           # successive draws continue the stream
                part = shape[:axis] + (stop - start,) + shape[axis + 1:]
                got = backend.to_host(rows.random(part, dtype=np.float32))
                assert np.array_equal(got, np.take(full, range(start, stop), axis=axis)), (axis, start, shape)


@pytest.mark.parametrize("backend", [Backend("cpu", "float64"), strict_backend("float64")], ids=["numpy", "strict"])
def test_slices_of_a_batch_compute_the_whole_batch(backend):
    """Spikes and dropout masks of a sample do not depend on which slice of the batch it is in."""
    net = build("vgg9", (3, 32, 32), width=0.125, dropout=0.3, backend=backend)
    net.workers = 1
    x = backend.to_device(np.random.default_rng(0).standard_normal((7, 3, 32, 32)))
    key = (1, "train", 0, 5)
    whole = backend.to_host(net.forward(x, 13, train=True, rng_key=key))
    parts = [backend.to_host(net.forward(x[a:b], 13, train=True, rng_key=key, part=(a, 7))) for a, b in [(0, 3), (3, 4), (4, 7)]]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-12, atol=1e-12)


def test_connect_chooses_one_process_or_mpi(monkeypatch):
    for name in D.SIZE_VARIABLES + D.RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert isinstance(D.connect("none"), D.Solo) and isinstance(D.connect("auto"), D.Solo)
    assert D.launcher_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4 and D.launcher_rank({"PMI_RANK": "1"}) == 1
    monkeypatch.setitem(sys.modules, "mpi4py", None)                 # mpi4py not installed
    with pytest.raises(D.DistributedError, match=r"pip install 'minisnn\[mpi\]'"):
        D.connect("mpi")
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(D.DistributedError, match="2 separate runs"):
        D.connect("auto")
    assert isinstance(D.connect("none"), D.Solo)
    with pytest.raises(D.DistributedError, match="must be one of"):
        D.connect("tcp")


# ------------------------------------------------------------------------------------------
# Two ranks
# ------------------------------------------------------------------------------------------

MPIEXEC = D.find_mpiexec()
try:
    import mpi4py  # noqa: F401
    MPI4PY = None
except ImportError as exc:
    MPI4PY = str(exc)

two_ranks = pytest.mark.skipif(MPIEXEC is None or MPI4PY is not None,
                               reason=f"needs mpi4py and mpiexec (pip install 'minisnn[mpi]'): mpiexec "
                                      f"{MPIEXEC or 'not found'}, mpi4py {MPI4PY or 'found'}")


def mpi_cmd(args, hook=None, ranks=2):
    program = ["-m", "minisnn.train"] if hook is None else ["-c", DRIVER.format(hook=hook)]
    return [MPIEXEC, "-n", str(ranks), sys.executable, *program, *map(str, args)]


def run_mpi(args, cwd, hook=None, timeout=120):
    return subprocess.run(mpi_cmd(args, hook), cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return synthetic_mnist(tmp_path_factory, 96, 32, seed=1)


@pytest.fixture(scope="module")
def one_process(mnist, tmp_path_factory):
    return finished_run(tmp_path_factory, "one", ["--data-dir", mnist, *ARGS])


def assert_same_training(a, b, tolerance=1e-5):
    """Equal up to summation order: weights within ``tolerance`` of their largest magnitude, the
    same accuracies."""
    ca, cb = C.load(a / "checkpoint.h5"), C.load(b / "checkpoint.h5")
    assert ca.epoch == cb.epoch and ca.optimizer["steps"] == cb.optimizer["steps"]
    for key, wa in ca.weights.items():
        assert np.abs(wa - cb.weights[key]).max() <= tolerance * np.abs(wa).max(), key
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for ra, rb in zip(ma["epochs"], mb["epochs"], strict=True):
        for key in ("train_accuracy", "val_accuracy", "test_accuracy"):
            assert ra[key] == rb[key], key
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-5)


@two_ranks
def test_two_ranks_train_as_one_process_and_rank_0_alone_writes(mnist, one_process, tmp_path):
    out = tmp_path / "run"
    proc = run_mpi(["--data-dir", mnist, "--out", out, *ARGS], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_same_training(one_process, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in one_process.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]          # no other rank wrote anything
    assert sum(line.startswith("{") for line in proc.stdout.splitlines()) == 1 and last_json(proc.stdout)["status"] == "completed"
    assert json.loads((out / "metrics.json").read_text())["distributed"]["ranks"] == 2


@two_ranks
def test_sigint_to_mpiexec_saves_one_checkpoint_that_one_process_resumes(mnist, one_process, tmp_path):
    out = tmp_path / "run"
    hook = ("def hook(net, epoch, batch):\n    if os.environ.get('PMI_RANK') == '0':\n"
            "        print('step', file=sys.__stdout__, flush=True)\n    time.sleep(0.3)")
    proc = subprocess.Popen(mpi_cmd(["--data-dir", mnist, "--out", out, *ARGS], hook), cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proc.stdout.readline().strip() != "step":
            assert proc.poll() is None, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    saved = out / "interrupted.h5"
    assert stderr.count(f"--resume {saved}") == 1 and "Traceback" not in stderr
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
    resumed = run_cli(["--resume", saved, "--quiet"], tmp_path)                  # one process goes on
    assert resumed.returncode == 0, resumed.stderr
    assert_same_training(one_process, out)


@two_ranks
@pytest.mark.parametrize("case,status,message", [
    ("bad flag", 2, "--lr must be > 0"),
    ("nan", 3, "NaN or infinite"),
    ("dataset on rank 1", 2, "rank 1: no dataset here"),
    ("bug on rank 1", 1, "boom"),
])
def test_a_failure_stops_every_rank_with_the_status_of_one_process(mnist, tmp_path, case, status, message):
    args = ["--data-dir", mnist, "--out", tmp_path / "run", *ARGS]
    hook = "def hook(net, epoch, batch):\n    pass"
    if case == "bad flag":
        args += ["--lr", -1]
    elif case == "nan":
        args += ["--lr", 1e12]
    elif case == "dataset on rank 1":
        hook = ("from minisnn.data import DatasetError\nimport minisnn.data.pipeline as P\nload = P.load_run_data\n"
                "def refuse(*a, **k):\n    raise DatasetError('no dataset here')\n"
                "if os.environ.get('PMI_RANK') == '1':\n    P.load_run_data = refuse\n" + hook)
    else:
        hook = "def hook(net, epoch, batch):\n    if os.environ.get('PMI_RANK') == '1':\n        raise RuntimeError('boom')"
    proc = run_mpi(args, tmp_path, hook=hook, timeout=60)
    assert proc.returncode == status, proc.stderr
    assert message in proc.stderr
    if case != "bug on rank 1":
        assert proc.stderr.count("minisnn.train: error:") == 1, proc.stderr


def test_a_rank_takes_its_rows_of_images_and_of_event_frames():
    cluster = object.__new__(D.MPICluster)
    cluster.rank, cluster.size = 1, 2
    images, frames, labels = np.zeros((5, 1, 2, 2)), np.zeros((3, 5, 2, 2, 2)), np.arange(5)
    x, y = cluster.local(images, labels, frames=False)
    assert x.shape[0] == 3 and y.tolist() == [2, 3, 4] and cluster.part(5) == (2, 5)
    x, y = cluster.local(frames, labels, frames=True)
    assert x.shape == (3, 3, 2, 2, 2) and y.tolist() == [2, 3, 4]


@two_ranks
def test_two_ranks_under_cupy_rules_train_as_one_process(mnist, one_process, tmp_path):
    """MINISNN_STRICT_XP=1: the ranks' arrays behave as CuPy's, so the GPU path of the row streams
    (the whole batch's draws) and of the gradient sum (through the host) runs here."""
    out = tmp_path / "run"
    proc = subprocess.run(mpi_cmd(["--data-dir", mnist, "--out", out, *ARGS]), cwd=tmp_path,
                          env=_env(MINISNN_STRICT_XP=1), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_same_training(one_process, out)


def _gpus():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:       # no CuPy, no driver
        return 0


@two_ranks
@pytest.mark.gpu
@pytest.mark.skipif(_gpus() < 1, reason="needs CuPy and a CUDA device")
@pytest.mark.parametrize("device,gradient_sum", [("gpu", "nccl"), ("gpu:0", "mpi")], ids=["own-gpus", "one-gpu"])
def test_two_ranks_on_gpus_train_as_one_gpu(mnist, tmp_path, device, gradient_sum):
    """``--device gpu``: each rank on its own GPU, gradients summed with NCCL (needs 2 GPUs);
    ``gpu:0``: both ranks on one GPU, summed through the host."""
    if device == "gpu" and _gpus() < 2:
        pytest.skip("needs 2 GPUs")
    args = ["--data-dir", mnist, *ARGS, "--device", device]
    one = run_cli([*args, "--out", tmp_path / "one"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = run_mpi([*args, "--out", tmp_path / "two"], tmp_path)
    assert two.returncode == 0, two.stderr
    assert_same_training(tmp_path / "one", tmp_path / "two")
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["distributed"]["gradient_sum"] == gradient_sum
