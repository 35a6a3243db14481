"""Checkpoint files that are damaged, edited or incomplete: refused quickly, never trusted.

HDF5 itself can loop forever or crash on a damaged byte of its metadata, so a version-2 file is
checked against the sha256 in its header before HDF5 parses it, and a version-1 file (written
before the header existed) is parsed first in a child process with a time limit.
"""
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from minisnn import checkpoint as C
from minisnn import checkpoint_read
from test_checkpoint import _ckpt, reseal

REPO = Path(__file__).resolve().parents[1]
LEGACY = REPO / "experiments" / "results" / "lenet5-mnist-fast" / "checkpoint.h5"   # a version-1 file


def _metadata_offsets(path):
    """Byte offsets of the HDF5 superblock and of the object header of every group and dataset."""
    with h5py.File(path, "r") as h5:
        base = h5.id.get_create_plist().get_userblock()
        offsets = set(range(base, base + 128))                                       # the superblock
        def visit(name, obj):
            offsets.update(range(h5py.h5o.get_info(obj.id).addr, h5py.h5o.get_info(obj.id).addr + 256))
        visit("/", h5)
        h5.visititems(visit)
    return sorted(o for o in offsets if o < path.stat().st_size)


def _flipped(raw, position, bit):
    copy = bytearray(raw)
    copy[position] ^= 1 << bit
    return bytes(copy)


def _corpus(path, exhaustive):
    """(position, bit) pairs over the header, superblock and object headers: every bit of every
    byte (``exhaustive``), else one bit of every fourth byte, a different bit from byte to byte."""
    raw = path.read_bytes()
    positions = sorted(set(range(C._HEADER_SIZE)) | set(_metadata_offsets(path)))
    if not exhaustive:
        return raw, [(p, i % 8) for i, p in enumerate(positions[::4])]
    return raw, [(p, b) for p in positions for b in range(8)]


def _refuses_all(raw, pairs, tmp_path):
    target = tmp_path / "flipped.h5"
    for position, bit in pairs:
        target.write_bytes(_flipped(raw, position, bit))
        with pytest.raises(C.CheckpointError, match=str(target)):
            C.load(target)


@pytest.mark.parametrize("exhaustive", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_every_flipped_metadata_byte_is_refused_before_hdf5_reads_it(tmp_path, exhaustive):
    path = C.save(tmp_path / "c.h5", _ckpt())
    raw, pairs = _corpus(path, exhaustive)
    assert len(pairs) > (20000 if exhaustive else 700)
    _refuses_all(raw, pairs, tmp_path)


def test_a_flipped_bit_anywhere_in_the_arrays_is_refused(tmp_path):
    path = C.save(tmp_path / "c.h5", _ckpt())
    raw = path.read_bytes()
    rng = np.random.default_rng(0)
    _refuses_all(raw, [(int(p), int(rng.integers(8))) for p in rng.integers(0, len(raw), 300)], tmp_path)


def test_legacy_files_are_parsed_within_a_time_limit(tmp_path, monkeypatch):
    """A version-1 file still loads; a parse that does not end in time is refused with the file's name."""
    assert C.load(LEGACY).format_version == 1
    monkeypatch.setattr(checkpoint_read, "_LEGACY_SECONDS", 0.0)            # no child can start in 0 s
    with pytest.raises(C.CheckpointError, match=f"{LEGACY}: HDF5 did not finish reading the file"):
        C.load(LEGACY)


def test_flipped_bits_in_a_legacy_file_are_refused_or_harmless(tmp_path):
    raw = LEGACY.read_bytes()
    good = C.load(LEGACY)
    target = tmp_path / "flipped.h5"
    offsets = _metadata_offsets(LEGACY)
    for position in offsets[:: max(1, len(offsets) // 3)]:
        target.write_bytes(_flipped(raw, position, 0))
        try:
            ck = C.load(target)
        except C.CheckpointError as exc:
            assert str(target) in str(exc)
            continue
        assert ck.config == good.config and all(np.array_equal(ck.weights[k], good.weights[k]) for k in good.weights)


# ------------------------------------------------------------------------------------------
# nothing the checks rely on may be missing
# ------------------------------------------------------------------------------------------

def test_a_checkpoint_without_its_digest_attribute_is_refused(tmp_path):
    path = C.save(tmp_path / "c.h5", _ckpt())
    with h5py.File(path, "r+") as h5:
        del h5.attrs["digest"]
        h5.attrs["epoch"] = 2                       # an edit the digest would have caught
        h5["scheduler"].attrs["epoch"] = 2
    reseal(path, sign=False)
    with pytest.raises(C.CheckpointError, match="lacks the 'digest' attribute"):
        C.load(path)


def test_a_weight_without_its_fletcher32_filter_is_refused(tmp_path):
    path = C.save(tmp_path / "c.h5", _ckpt())
    with h5py.File(path, "r+") as h5:
        value = h5["weights/conv1.weight"][()]
        del h5["weights/conv1.weight"]
        h5["weights/conv1.weight"] = value * 2
    reseal(path)
    with pytest.raises(C.CheckpointError, match="weights/conv1.weight is stored without its fletcher32"):
        C.load(path)


@pytest.mark.parametrize("kind,buffer", [("sgd", "momentum"), ("adam", "m"), ("adam", "v")])
def test_a_checkpoint_missing_optimiser_state_is_refused(tmp_path, kind, buffer):
    ck = _ckpt()
    if kind == "sgd":
        ck.optimizer.update(type="sgd", hyper={"weight_decay": 0.0, "momentum": 0.9},
                            buffers={"momentum": {k: v * 0.1 for k, v in ck.weights.items()}})
    del ck.optimizer["buffers"][buffer]["output.weight"]
    with pytest.raises(C.CheckpointError, match=f"lacks {buffer}/output.weight"):
        C.load(C.save(tmp_path / "c.h5", ck))


def test_optimiser_state_is_not_needed_before_the_first_step_nor_without_momentum(tmp_path):
    ck = _ckpt()
    ck.optimizer.update(steps=0, buffers={})
    C.load(C.save(tmp_path / "a.h5", ck))
    ck.optimizer.update(type="sgd", steps=5, hyper={"momentum": 0.0})
    C.load(C.save(tmp_path / "b.h5", ck))


def test_the_header_leaves_the_file_readable_by_hdf5_tools(tmp_path):
    path = C.save(tmp_path / "c.h5", _ckpt())
    assert path.read_bytes().startswith(b"minisnn-checkpoint sha256 ")
    with h5py.File(path, "r") as h5:
        assert h5.attrs["format_version"] == C.FORMAT_VERSION and "weights/conv1.weight" in h5
    shutil.copy(path, tmp_path / "copy.h5")
    assert C.load(tmp_path / "copy.h5").epoch == 3
