"""Finding dataset files on disk and verifying them (downloads: :mod:`minisnn.data.downloads`)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from .errors import DatasetCorruptError, DatasetError, DatasetNotFoundError
from .formats import IDX_MAX_BYTES, _read_bytes, decompress_if_gzip
from .registry import (DATASETS, REMOTE, SYSTEM_LOCATIONS, builtin_data_root, canonical_name,
                       check_split, default_data_root)


# ---------------------------------------------------------------------------------------
# Locating files
# ---------------------------------------------------------------------------------------
def _candidates(name, root):
    base = default_data_root() if root is None else Path(root).expanduser()
    cands = [base] + [base / n for n in DATASETS[name].folders]
    if root is None:
        cands += list(SYSTEM_LOCATIONS.get(name, ()))
    return cands


def locate(name, split, root=None):
    """Folder holding ``split`` of dataset ``name`` (for CIFAR-10 the batches folder, for
    N-MNIST the ``Train``/``Test`` folder), or None when it is not on disk."""
    name = canonical_name(name)
    split = check_split(name, split)
    for cand in _candidates(name, root):
        found = DATASETS[name].layout.find(cand, split)
        if found is not None:
            return found
    return None


def target_dir(name, root=None) -> Path:
    """Where :func:`download` puts ``name``: ``<default root>/<name>`` when root is None;
    otherwise ``root/<name>`` if that folder exists, else ``root`` itself."""
    name = canonical_name(name)
    folders = DATASETS[name].folders
    if root is None:
        return default_data_root() / folders[0]
    root = Path(root).expanduser()
    for sub in folders:
        if (root / sub).is_dir():
            return root / sub
    return DATASETS[name].layout.download_folder(root)


def _looked_in(name, root):
    """The candidate folders, short: ``base (and sub/, sub/)`` plus system locations."""
    base = default_data_root() if root is None else Path(root).expanduser()
    others = SYSTEM_LOCATIONS.get(name, ()) if root is None else ()
    text = f"{base}/ (and {', '.join(n + '/' for n in DATASETS[name].folders)})"
    return ", ".join([text] + [f"{o}/" for o in others])


def missing_message(name, splits, root=None, reason=""):
    """What is missing (every file of the train and test splits, plus any other split asked
    for), where minisnn looked, and the three ways to provide the files."""
    splits = [s for s in dict.fromkeys(("train", "test", *splits)) if s in DATASETS[name].splits]
    missing = [s for s in splits if locate(name, s, root) is None]
    files = [f for s in missing for f in DATASETS[name].layout.files(s)]
    sources = []
    for r in REMOTE.get(name, ()):
        if set(r.splits) & set(missing):
            src = DATASETS[name].homepage if r.extract else r.urls[0].rsplit("/", 1)[0] + "/"
            if src not in sources:
                sources.append(src)
    env = os.environ.get("MINISNN_DATA")
    sub = DATASETS[name].folders[0]
    lines = [reason] if reason else []
    lines += [
        f"{DATASETS[name].title} not found ({' and '.join(missing)} split{'s' if len(missing) > 1 else ''}); "
        f"looked in {_looked_in(name, root)}.",
        f"Put {', '.join(files)} (from {', '.join(sources)}) into one of:",
        "  - a folder you name: root=DIR in Python, --data-dir DIR on the command line",
        f"  - the folder named by $MINISNN_DATA, or its {sub}/ subfolder "
        + (f"(now {env}: put them in {Path(env).expanduser() / sub}/)" if env else "(not set)"),
        f"  - {builtin_data_root() / sub}/ (the default without either)",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------------------
def file_md5(path, chunk=1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def check_file(path, md5=None, content_sha256=None):
    """Raise :class:`DatasetCorruptError` unless ``path`` matches ``md5`` (the file as
    distributed) or ``content_sha256`` (sha256 of its decompressed content). Returns which
    one matched ("md5", "content-sha256" or "unchecked")."""
    path = Path(path)
    if md5 is None and content_sha256 is None:
        return "unchecked"
    try:
        got_md5 = file_md5(path) if md5 is not None else None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read file ({exc})") from exc
    if md5 is not None and got_md5 == md5.lower():
        return "md5"
    got_sha = None
    if content_sha256 is not None:
        try:
            content = decompress_if_gzip(_read_bytes(path, IDX_MAX_BYTES), path)
        except DatasetCorruptError:
            content = None
        if content is not None:
            got_sha = hashlib.sha256(content).hexdigest()
            if got_sha == content_sha256.lower():
                return "content-sha256"
    parts = []
    if md5 is not None:
        parts.append(f"md5 {got_md5}, expected {md5}")
    if content_sha256 is not None:
        parts.append(f"decompressed sha256 {got_sha or '(not decompressible)'}, expected "
                     f"{content_sha256}")
    raise DatasetCorruptError(f"{path}: checksum mismatch ({'; '.join(parts)}); "
                              f"delete it and download it again")


def _published_idx_files():
    """{md5 or decompressed sha256: (dataset, file name)} of every published file of the datasets
    whose layout is ``identified`` (MNIST, Fashion-MNIST)."""
    known = {}
    for name in [name for name, info in DATASETS.items() if info.layout.identified]:
        for r in REMOTE.get(name, ()):
            known[r.md5] = known[r.content_sha256] = (name, r.filename)
    return known


def check_identity(name, path):
    """Refuse an IDX file that is another published file: MNIST's files given as
    Fashion-MNIST (same file names), or a test file in place of a training file.

    The file's md5 is compared with every published one, and when it matches none (a
    recompressed or decompressed copy) the sha256 of its decompressed content. Files that
    match no published file (your own IDX files, subsets) are read as they are.
    """
    path = Path(path)
    expected = (name, path.name if path.name.endswith(".gz") else path.name + ".gz")
    known = _published_idx_files()
    found = known.get(file_md5(path))
    if found is None:
        try:
            found = known.get(hashlib.sha256(decompress_if_gzip(_read_bytes(path, IDX_MAX_BYTES), path)).hexdigest())
        except DatasetCorruptError:
            return
    if found is not None and found != expected:
        raise DatasetCorruptError(
            f"{path}: this is {DATASETS[found[0]].title}'s {found[1]} (its checksum is the "
            f"published one), not {DATASETS[name].title}'s {expected[1]}; point the data folder "
            f"at the {DATASETS[name].title} files")


def _requested_splits(name, split):
    if split is None:
        return ("train", "test")
    if isinstance(split, str):
        return (check_split(name, split),)
    return tuple(check_split(name, s) for s in split)


# ---------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------
def verify(name, root=None, split=None) -> dict:
    """Full check of dataset ``name`` on disk; returns {file or folder: how it was checked}.

    Every distribution file still on disk is checked against its published checksum (for the
    ``.gz`` files the md5 or the sha256 of the decompressed content; archives when kept), and
    MNIST-style files against the other datasets' (so one dataset's files cannot pass as
    another's). Then the content: the exact label histogram of each full split where the
    registry knows it (MNIST, Fashion-MNIST, CIFAR-10), N-MNIST's recording count and sizes.
    Raises :class:`DatasetError` on the first problem.
    """
    name = canonical_name(name)
    info = DATASETS[name]
    report = {}
    for s in _requested_splits(name, split):
        folder = locate(name, s, root)
        if folder is None:
            raise DatasetNotFoundError(missing_message(name, [s], root))
        for remote in REMOTE.get(name, ()):
            if s not in remote.splits:
                continue
            path = (folder.parent / remote.filename if remote.extract
                    else info.layout.local_file(folder, remote.filename))
            if path is None or not path.is_file():
                continue                            # an unpacked archive that was not kept
            if info.layout.identified:
                check_identity(name, path)
            report[str(path)] = check_file(path, remote.md5, remote.content_sha256)
        labels = info.layout.labels(folder, s, info.num_classes)
        if labels is not None and s in info.label_histograms:
            _check_histogram(info, s, labels, folder)
            report[f"{folder} ({s})"] = "counts and label histogram"
        content = info.layout.check_content(info, folder, s)
        if content is not None:
            report[f"{folder} ({s})"] = content
    return report


def _check_histogram(info, split, labels, folder):
    want = info.label_histograms[split]
    got = tuple(int(v) for v in np.bincount(labels, minlength=info.num_classes))
    if got != want:
        raise DatasetCorruptError(f"{folder}: {info.name} {split} label histogram {got} differs "
                                  f"from the real one {want}; download it again")

