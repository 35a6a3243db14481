"""Reading a dataset file safely: regular files only, a size cap before reading, gzip
inflated in steps with a cap on its output. Shared by the per-format readers."""
from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

from ..errors import DatasetCorruptError, DatasetError, DatasetNotFoundError

IDX_MAX_BYTES = 16 + 60000 * 28 * 28      # the largest IDX file of MNIST / Fashion-MNIST: gzip's default cap
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_STEP = 1 << 20
_REDOWNLOAD = "delete it and download it again"


def _check_regular(path, st):
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: not a regular file (a folder, pipe or device?); point "
                           "minisnn at the dataset's files")


def _read_bytes(path, max_bytes: int | None = None) -> bytes:
    """The content of the regular file ``path``, refusing anything else before reading (a
    FIFO would block forever) and files larger than ``max_bytes``."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    try:
        st = os.fstat(fd)
        _check_regular(path, st)
        if max_bytes is not None and st.st_size > max_bytes:
            raise DatasetCorruptError(
                f"{path}: {st.st_size} bytes, more than the {max_bytes} this format allows; "
                f"is this the right file? {_REDOWNLOAD}")
        with open(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    finally:
        os.close(fd)


def decompress_if_gzip(raw: bytes, path, max_bytes: int | None = None) -> bytes:
    """Return the decompressed content of gzip data, or ``raw`` itself when not gzipped.

    The decision is made on the content (gzip magic), not the name: some browsers silently
    decompress ``.gz`` downloads but keep the name. Decompression streams in 1 MiB steps and
    stops as soon as the output passes ``max_bytes`` (default: the largest IDX file of MNIST
    and Fashion-MNIST), so a small "gzip bomb" never inflates in memory.
    """
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    limit = IDX_MAX_BYTES if max_bytes is None else int(max_bytes)
    out, rest = bytearray(), memoryview(raw)
    try:
        while rest:   # a gzip file may hold several members, one after the other
            if bytes(rest[:2]) != _GZIP_MAGIC:
                raise ValueError("trailing data after the gzip stream")
            inflater = zlib.decompressobj(wbits=31)
            while not inflater.eof:
                chunk = inflater.decompress(rest, _GZIP_STEP)
                if not chunk and len(inflater.unconsumed_tail) == len(rest):
                    raise EOFError("the compressed stream ends early")
                rest = memoryview(inflater.unconsumed_tail)
                out += chunk
                if len(out) > limit:
                    raise DatasetCorruptError(
                        f"{path}: gzip data inflates to more than {limit} bytes, more than this "
                        f"format allows (a corrupt or hostile file); {_REDOWNLOAD}")
            rest = memoryview(inflater.unused_data)
    except (EOFError, zlib.error, ValueError) as exc:
        raise DatasetCorruptError(
            f"{path}: corrupt or truncated gzip data ({exc}); {_REDOWNLOAD}") from exc
    return bytes(out)
