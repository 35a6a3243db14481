"""File-system helpers shared by checkpoints, run outputs and dataset downloads."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_dir(folder):
    """fsync a directory so that a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_pattern(name):
    """Glob of the temporary files :func:`atomic_path` makes for a file called ``name``."""
    return f".{name}.*.tmp"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a unique temporary path beside ``path``; when the block ends without error, its
    bytes are fsync'ed and it replaces ``path`` atomically (os.replace, then the folder is
    fsync'ed). A process killed at any moment leaves the old file or the new one, never a part;
    on error the temporary file is removed. Concurrent writers never share a temporary name."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)        # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_file(path, data):
    """Write ``data`` (bytes) to the new file ``path``: the one place where a run's files
    (checkpoints, metrics, history, figures) meet the disk, so a full disk raises one plain
    OSError here and nowhere else."""
    with open(path, "wb") as handle:
        handle.write(data)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        write_file(tmp, data)


def atomic_write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))
