"""The machinery of a training run beside the algorithm: signals, progress, running sums, and
the run folder of ``python -m minisnn.train`` (a lock, and the files a run writes).

Files (every write atomic, under a unique temporary name):

    metrics.json     config, versions, status ("running", "completed", "interrupted",
                     "failed: ..."), per-epoch metrics, spike rates; written at the start
    history.csv      one row per epoch (HISTORY_COLUMNS; finished_utc dates the epoch's end)
    curves.png       loss and accuracy curves
    checkpoint.h5    the last completed epoch          best.h5   the best validation accuracy
    interrupted.h5   the state at an interrupt, mid-epoch (removed once an epoch completes)
    .lock            held (fcntl) while a process writes the folder
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .fileio import atomic_write_text

RUN_FILES = ("metrics.json", "history.csv", "curves.png", "checkpoint.h5", "best.h5", "interrupted.h5")
#: The files a run resumes from, newest state first (interrupted.h5 exists only mid-epoch).
RESUMABLE = ("interrupted.h5", "checkpoint.h5")
HISTORY_COLUMNS = ("epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
                   "test_loss", "test_accuracy", "train_seconds", "epoch_seconds", "train_images_per_s",
                   "finished_utc")


#: Exit statuses of the ways a run stops early (the whole table: minisnn.train.EXIT_STATUS).
EXIT_BAD_INPUT, EXIT_NONFINITE, EXIT_DEAD, EXIT_OUTPUT = 2, 3, 4, 5


class Stop(Exception):
    """The run cannot go on: ``status`` is the exit status, the message says why."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def write_failure(exc, folder):
    """(status, message) of an error writing the run folder ``folder``; None for other errors."""
    if isinstance(exc, Stop):
        return exc.status, str(exc)
    if isinstance(exc, OSError):
        return EXIT_OUTPUT, f"cannot write the run folder {folder} ({exc.strerror or exc})"
    return None


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived (``signum``)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """SIGINT/SIGTERM raise :class:`Interrupted` at once, or, while ``deferring`` (training),
    at the next :meth:`check` between two batches, so that the state saved is consistent. A
    second signal while one is pending aborts at once."""

    def __init__(self):
        self.pending, self.deferring = None, False

    def install(self):
        """Handle SIGINT and SIGTERM; returns the previous handlers (for :meth:`restore`)."""
        return {signum: signal.signal(signum, self._handle) for signum in (signal.SIGINT, signal.SIGTERM)}

    def restore(self, previous):
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        self.pending, self.deferring = None, False

    def _handle(self, signum, frame):
        if self.deferring and self.pending is None:
            self.pending = signum
            return
        raise Interrupted(signum)

    def check(self):
        if self.pending is not None:
            raise Interrupted(self.pending)


SIGNALS = Signals()


def progress_bar(total, desc, quiet, done=0):
    """A tqdm bar counting images on stderr (None when ``quiet``): tqdm's rate is the one throughput.
    ``done``: images of the epoch already trained before a resume, shown but not counted in the rate."""
    if quiet:
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, leave=False, dynamic_ncols=True,
                initial=done, mininterval=0.5 if sys.stderr.isatty() else 30.0)


def device_error_text(exc):
    """A DeviceError's message for the command lines: its advice to use the CPU names the flag."""
    return str(exc).replace("device 'cpu'", "--device cpu")


def error_text(prog, message):
    """``prog: error: <first line>``, with the further lines of a multi-line message (where to
    put missing dataset files, say) indented below it."""
    first, *rest = str(message).splitlines() or [""]
    return "\n".join([f"{prog}: error: {first}", *(f"  {line}" for line in rest)])


def duration(seconds):
    """12m05s or 3h07m; "?" for None (not known yet)."""
    if seconds is None:
        return "?"
    seconds = int(seconds)
    if seconds < 1:
        return "under a second"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


@dataclass
class Meter:
    """Running sums of one pass (kept in a mid-epoch checkpoint to resume it exactly)."""

    loss: float = 0.0          # summed over samples
    correct: int = 0
    seen: int = 0
    batches: int = 0
    rates: dict = field(default_factory=dict)    # per layer: spike rate summed over samples
    seconds: float = 0.0

    def add(self, loss, correct, n, rates):
        self.loss, self.correct, self.seen, self.batches = self.loss + loss, self.correct + correct, self.seen + n, self.batches + 1
        for k, v in rates.items():
            self.rates[k] = self.rates.get(k, 0.0) + v * n

    def result(self):
        n = max(self.seen, 1)
        return {"loss": self.loss / n, "accuracy": self.correct / n, "samples": self.seen,
                "spike_rates": {k: v / n for k, v in self.rates.items()} if self.seen else {}}


class RunFolderError(RuntimeError):
    """The run folder is in use, or holds a run that would be overwritten."""


class RunFolder:
    """A run folder, locked for this process from :meth:`open` until the process ends."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = None
        self._created = False

    def __truediv__(self, name):
        return self.path / name

    def resumable(self):
        """The file to resume this folder's run from (:data:`RESUMABLE`), or None."""
        return next((self.path / name for name in RESUMABLE if (self.path / name).exists()), None)

    def holds_run(self):
        return (self.path / "metrics.json").exists() or self.resumable() is not None

    def open(self, *, fresh=False, overwrite=False):
        """Create and lock the folder and remove temporary files that killed runs left. ``fresh``
        (a new run): refuse a folder holding a run unless ``overwrite``, which deletes its files."""
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.path / ".lock", "a+")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunFolderError(f"run folder {self.path} is in use by another training run; "
                                     "wait for it or choose another --out") from None
        for name in RUN_FILES:
            for orphan in self.path.glob(f".{name}.*"):
                if orphan.name.endswith((".tmp", ".tmp.png")):
                    with contextlib.suppress(OSError):
                        orphan.unlink()
        if fresh and self.holds_run():
            if not overwrite:
                last = self.resumable()
                resume = f"continue it with --resume {last}, " if last else ""
                raise RunFolderError(f"run folder {self.path} already holds a run; {resume}choose another --out, "
                                     "or pass --overwrite")
            for name in RUN_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (self.path / name).unlink()
        return self

    def discard(self):
        """Remove the folder again if :meth:`open` created it and nothing but the lock is in it."""
        if self._created and [p.name for p in self.path.iterdir()] == [".lock"]:
            self._lock.close()
            (self.path / ".lock").unlink()
            self.path.rmdir()

    def write(self, metrics, plot=True):
        """metrics.json, history.csv and (``plot``) curves.png of the run so far."""
        # epochs reloaded from a checkpoint come back with sorted keys: one order for every row
        rows = [{**{k: row[k] for k in HISTORY_COLUMNS if k in row}, **row} for row in metrics.get("epochs", [])]
        atomic_write_text(self.path / "metrics.json", json.dumps({**metrics, "epochs": rows}, indent=2, default=_jsonable))
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(HISTORY_COLUMNS)
        for row in metrics["epochs"]:
            writer.writerow(["" if row.get(k) is None else row.get(k) for k in HISTORY_COLUMNS])
        atomic_write_text(self.path / "history.csv", buf.getvalue())
        if plot and metrics["epochs"]:
            from .plotting import plot_curves
            try:
                plot_curves(metrics["epochs"], self.path / "curves.png",
                            title=f"{metrics['config']['model']} on {metrics['config']['dataset']}")
            except OSError:           # disk full, read-only: as for any other file of the run
                raise
            except Exception as exc:  # a figure must not end a training run
                print(f"warning: could not draw curves.png ({exc})", file=sys.stderr)


def versions(device):
    """Versions of Python and the libraries a run used (kept in metrics.json); ``device`` is
    :attr:`Backend.device <minisnn.backend.Backend.device>`, "cpu" or "gpu"."""
    import h5py
    from . import __version__

    out = {"python": platform.python_version(), "numpy": np.__version__, "minisnn": __version__,
           "h5py": h5py.__version__, "platform": platform.platform()}
    if device == "gpu" or "cupy" in sys.modules:
        with contextlib.suppress(Exception):
            import cupy
            out["cupy"] = cupy.__version__
    return out


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
