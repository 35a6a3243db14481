"""Exceptions raised by :mod:`minisnn.data`.

Every problem with a dataset file (missing, truncated, corrupt, wrong checksum, wrong
structure) surfaces as a :class:`DatasetError` whose message names the file, the problem and,
where there is one, the fix. Lower-level errors (zlib, pickle, scipy, numpy) are chained with
``raise DatasetError(...) from exc`` and never escape bare.
"""
from __future__ import annotations


class DatasetError(RuntimeError):
    """A dataset cannot be found, downloaded, verified or parsed."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset's files are not on disk (and were not, or could not be, downloaded)."""


class DatasetCorruptError(DatasetError, ValueError):
    """A dataset file exists but its content is wrong (format, size, checksum, labels)."""


class DownloadError(DatasetError):
    """Every address of a file failed to download or to verify."""
