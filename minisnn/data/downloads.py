"""Downloading datasets safely.

Downloads go to a hidden temporary file in the destination folder, are fsync'ed, checked
against the known checksums and only then renamed (``os.replace``) to their final name, so
an interrupted or corrupt download never leaves a file that looks complete. Archives
(CIFAR-10 tarball, N-MNIST zips) are unpacked into a temporary folder with every member
checked (no absolute paths, no ``..``, no links or devices, a cap on the total size) and then
moved into place.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ..fileio import fsync_dir
from .errors import DatasetCorruptError, DatasetError, DatasetNotFoundError, DownloadError
from .registry import DATASETS, REMOTE, RemoteFile, canonical_name
from .storage import _requested_splits, check_file, locate, missing_message, target_dir

DEFAULT_TIMEOUT = 60.0
_USER_AGENT = "minisnn/0.1 (+https://pypi.org/project/minisnn)"


# ---------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------
def _download_to_temp(url, folder, filename, progress, timeout):
    from tqdm.auto import tqdm

    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                got = 0
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=filename, disable=not progress, leave=False) as bar:
                    while True:
                        chunk = resp.read(1 << 20)
                        if not chunk:
                            break
                        fh.write(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
                if total is not None and got != total:
                    raise DownloadError(f"connection closed after {got} of {total} bytes")
                if got == 0:
                    raise DownloadError("empty response")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return Path(tmp)


def fetch(remote: RemoteFile, folder, progress=True, mirrors=None, timeout=DEFAULT_TIMEOUT):
    """Download ``remote`` into ``folder`` trying each address in turn; verify; rename.

    ``mirrors`` (list of base URLs, the file name is appended) replaces the built-in
    addresses. Returns the final path; raises :class:`DownloadError` when every address
    failed, leaving no file under the final name.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / remote.filename
    urls = ([m.rstrip("/") + "/" + remote.filename for m in mirrors] if mirrors is not None
            else list(remote.urls))
    errors = []
    for url in urls:
        try:
            tmp = _download_to_temp(url, folder, remote.filename, progress, timeout)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # URLError, HTTPError, IncompleteRead, timeouts, ...
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        try:
            check_file(tmp, remote.md5, remote.content_sha256)
        except DatasetError as exc:
            tmp.unlink(missing_ok=True)
            errors.append(f"{url}: {exc}")
            continue
        os.replace(tmp, final)
        fsync_dir(folder)
        return final
    raise DownloadError(
        f"could not download {remote.filename} into {folder}/ from any address:\n  "
        + "\n  ".join(errors or ["(no addresses)"]))


def _check_member(name, dest):
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DatasetCorruptError(f"archive member {name!r} escapes the destination folder")
    base = Path(dest).resolve()
    full = (base / p).resolve()
    if os.path.commonpath([str(base), str(full)]) != str(base):
        raise DatasetCorruptError(f"archive member {name!r} escapes the destination folder")


def _check_totals(archive, sizes, max_bytes, max_members):
    """Refuse an archive whose members, by their declared sizes, unpack to too much."""
    count, total = len(sizes), sum(sizes)
    if count > max_members or total > max_bytes:
        raise DatasetCorruptError(
            f"{archive}: {count} members declaring {total} bytes in all, more than the "
            f"{max_members} members and {max_bytes} bytes a dataset archive may unpack to "
            "(a corrupt or hostile file); delete it and download it again")


def safe_extract(archive, dest, max_bytes=2 << 30, max_members=200_000):
    """Unpack a .tar(.gz) or .zip into ``dest`` refusing path traversal, links, devices, and
    archives whose members declare more than ``max_bytes`` in all or number more than
    ``max_members`` (checked before anything is written)."""
    archive, dest = Path(archive), Path(dest)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_totals(archive, [i.file_size for i in infos], max_bytes, max_members)
                for info in infos:
                    _check_member(info.filename, dest)
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode == 0o120000:
                        raise DatasetCorruptError(f"{archive}: member {info.filename!r} is a link")
                for info in infos:
                    zf.extract(info, dest)
        else:
            with tarfile.open(archive, "r:*") as tf:
                members = tf.getmembers()
                _check_totals(archive, [m.size for m in members], max_bytes, max_members)
                for m in members:
                    _check_member(m.name, dest)
                    if not (m.isfile() or m.isdir()):
                        raise DatasetCorruptError(
                            f"{archive}: member {m.name!r} is a link or special file")
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, members=members, filter="data")
                else:  # pragma: no cover - old Python
                    tf.extractall(dest, members=members)
    except DatasetError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DatasetCorruptError(f"{archive}: cannot unpack ({exc}); delete it and download "
                                  "it again") from exc


def _find_dir(base, name, depth=3):
    base = Path(base)
    if (base / name).is_dir():
        return base / name
    if depth == 0:
        return None
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and p.name != "__MACOSX"):
        found = _find_dir(sub, name, depth - 1)
        if found is not None:
            return found
    return None


def _extract_into(archive, folder, wanted_dir):
    """Unpack ``archive`` and move its ``wanted_dir`` folder to ``folder/wanted_dir``."""
    tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{wanted_dir}.", suffix=".extract"))
    try:
        safe_extract(archive, tmp)
        src = _find_dir(tmp, wanted_dir)
        if src is None:
            raise DatasetCorruptError(f"{archive}: contains no folder {wanted_dir}/")
        dst = Path(folder) / wanted_dir
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(src, dst)
        fsync_dir(folder)
        return dst
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def download(name, root=None, progress=True, mirrors=None, split=None,
             timeout=DEFAULT_TIMEOUT, keep_archive=False) -> Path:
    """Download (and for archives, unpack) dataset ``name`` into its data folder.

    ``split``: None (train and test), one split or a list (SVHN ``extra`` only on request).
    Files already present and passing their checksum are kept. ``mirrors``: list of base URLs
    replacing the built-in addresses (used by the tests). Returns the dataset folder.
    """
    name = canonical_name(name)
    splits = _requested_splits(name, split)
    folder = target_dir(name, root)
    created = next((p for p in reversed((folder, *folder.parents)) if not p.exists()), None)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        _download_into(name, splits, folder, progress, mirrors, timeout, keep_archive)
    except BaseException:
        _remove_empty(folder, created)
        raise
    return folder


def _remove_empty(folder, top):
    """Remove ``folder`` and its parents up to ``top`` (folders a failed download created),
    as long as they are empty."""
    if top is None:
        return
    for p in (folder, *folder.parents):
        try:
            p.rmdir()
        except OSError:
            return
        if p == top:
            return


def _download_into(name, splits, folder, progress, mirrors, timeout, keep_archive):
    layout = DATASETS[name].layout
    for remote in REMOTE.get(name, ()):
        if not set(remote.splits) & set(splits):
            continue
        if remote.extract:
            if all(layout.find(folder, s) is not None for s in remote.splits):
                continue
            archive = folder / remote.filename
            if archive.is_file():
                try:
                    check_file(archive, remote.md5, remote.content_sha256)
                except DatasetCorruptError:
                    archive.unlink()
            if not archive.is_file():
                archive = fetch(remote, folder, progress, mirrors, timeout)
            _extract_into(archive, folder, layout.archive_dir(remote.splits[0]))
            if not keep_archive:
                archive.unlink(missing_ok=True)
        else:
            existing = layout.local_file(folder, remote.filename)
            if existing is not None:
                try:
                    check_file(existing, remote.md5, remote.content_sha256)
                    continue
                except DatasetCorruptError:
                    existing.unlink()
            fetch(remote, folder, progress, mirrors, timeout)


_download_dataset = download


def ensure_available(name, root=None, download: bool = False, split=None, progress=True,
                     mirrors=None) -> Path:
    """Make sure ``split`` (default: train and test) of ``name`` is on disk; return the
    folder holding the first requested split. With ``download=False`` a missing dataset
    raises :class:`DatasetNotFoundError` saying which files to put where."""
    name = canonical_name(name)
    splits = _requested_splits(name, split)
    found = [locate(name, s, root) for s in splits]
    if all(f is not None for f in found):
        return found[0]
    if not download:
        raise DatasetNotFoundError(missing_message(name, splits, root))
    try:
        _download_dataset(name, root, progress=progress, mirrors=mirrors, split=splits)
    except DownloadError as exc:
        raise DownloadError(missing_message(name, splits, root, _short(exc))) from exc
    found = [locate(name, s, root) for s in splits]
    if any(f is None for f in found):
        raise DatasetNotFoundError(missing_message(
            name, splits, root, "The download finished but files are still missing."))
    return found[0]


def _short(exc):
    """First line of a download error and its last address's reason, e.g.
    ``could not download x.gz into /d/ (last error: URLError: ...)``."""
    lines = str(exc).splitlines()
    head = lines[0].rstrip(":").replace(" from any address", "")
    if len(lines) > 1:
        head += f" (last error: {lines[-1].strip().split(': ', 1)[-1]})"
    return head + "."


