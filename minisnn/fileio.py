"""File-system helpers shared by checkpoints and dataset downloads."""
from __future__ import annotations

import os


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
