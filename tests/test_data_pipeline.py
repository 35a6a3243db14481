"""Preprocessing, augmentation, BatchIterator, subset and validation split."""
import numpy as np
import pytest

import minisnn.data as data
from minisnn.backend import Backend
from test_data_formats import encode_nmnist


@pytest.fixture
def backend():
    return Backend("cpu", "float32")


def _images(n=23, c=3, h=8, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def test_to_float():
    x = np.array([[0, 128, 255]], np.uint8)
    f = data.to_float(x)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0
    assert abs(f[0, 1] - 128 / 255) < 1e-7


def test_channel_stats_and_standardize():
    train = _images(50)
    train[:, 1] //= 4                       # channels with different statistics
    mean, std = data.channel_stats(train)
    f = train.astype(np.float64) / 255
    np.testing.assert_allclose(mean, f.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, f.std(axis=(0, 2, 3)), rtol=1e-12)
    z = data.Standardize.from_train(train)(data.to_float(train))
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-5)
    # applied to another split with the TRAINING statistics
    test = _images(10, seed=1)
    np.testing.assert_allclose(data.standardize(data.to_float(test), mean, std),
                               (test / 255 - mean[:, None, None]) / std[:, None, None],
                               rtol=1e-5, atol=1e-5)


def test_random_crop_flip_matches_reference():
    x = _images(16, 2, 6, 5).astype(np.float32)
    out = data.random_crop_flip(x, Backend.host_rng(3, "augment", 0, 0), padding=2)
    rng = Backend.host_rng(3, "augment", 0, 0)
    ox, oy = rng.integers(0, 5, 16), rng.integers(0, 5, 16)
    flips = rng.random(16) < 0.5
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(16):
        ref = padded[i, :, oy[i]:oy[i] + 6, ox[i]:ox[i] + 5]
        np.testing.assert_array_equal(out[i], ref[:, :, ::-1] if flips[i] else ref)
    assert 0 < flips.sum() < 16 and out.shape == x.shape


def test_random_crop_flip_identity_and_flip():
    x = _images(4).astype(np.float32)
    np.testing.assert_array_equal(
        data.random_crop_flip(x, np.random.default_rng(0), padding=0, flip=False), x)
    out = data.random_crop_flip(x, np.random.default_rng(0), padding=0, flip=True)
    for i in range(4):
        assert (out[i] == x[i]).all() or (out[i] == x[i, :, :, ::-1]).all()


def test_batch_iterator_basic(backend):
    images, labels = _images(23), np.arange(23) % 10
    it = data.BatchIterator(images, labels, 5, backend, seed=1)
    assert len(it) == 5
    assert len(data.BatchIterator(images, labels, 5, backend, drop_last=True)) == 4
    batches = list(it.epoch(0))
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    x, y = batches[0]
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (5, 3, 8, 8)
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == sorted(labels.tolist())
    order = it.order(0)
    np.testing.assert_allclose(np.concatenate([b[0] for b in batches]),
                               images[order] / np.float32(255), rtol=1e-6)
    assert not np.array_equal(order, np.arange(23))
    assert not np.array_equal(it.order(1), order)
    # reproducible from (seed, epoch) alone: a fresh iterator gives the same epoch 7
    it2 = data.BatchIterator(images, labels, 5, backend, seed=1)
    for (a, b), (c, d) in zip(it.epoch(7), it2.epoch(7)):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    it3 = data.BatchIterator(images, labels, 5, backend, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in it3.epoch(4)]), labels)
    with pytest.raises(ValueError):
        data.BatchIterator(images, labels[:-1], 5, backend)


def test_batch_iterator_float64_backend():
    it = data.BatchIterator(_images(4), np.zeros(4), 4, Backend("cpu", "float64"))
    x, y = next(it.epoch(0))
    assert x.dtype == np.float64 and y.dtype == np.int64


def test_batch_iterator_standardize_and_augment(backend):
    images, labels = _images(12, h=32, w=32), np.arange(12) % 10
    std = data.Standardize.from_train(images)
    it = data.BatchIterator(images, labels, 4, backend, seed=5, transform=std, augment=True)
    e2 = [(x.copy(), y.copy()) for x, y in it.epoch(2)]
    again = list(data.BatchIterator(images, labels, 4, backend, seed=5, transform=std,
                                    augment=True).epoch(2))
    for (a, b), (c, d) in zip(e2, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    # the augmentation of batch b is that of host_rng(seed, "augment", epoch, b)
    idx = it.order(2)[4:8]
    ref = data.random_crop_flip(std(data.to_float(images[idx])),
                                Backend.host_rng(5, "augment", 2, 1))
    np.testing.assert_allclose(e2[1][0], ref, rtol=1e-6)
    plain = list(data.BatchIterator(images, labels, 4, backend, seed=5, transform=std).epoch(2))
    assert not np.allclose(plain[1][0], e2[1][0])
    np.testing.assert_allclose(plain[1][0], std(data.to_float(images[idx])), rtol=1e-6)


def test_batch_iterator_nmnist_recordings(backend):
    ev = data.formats.parse_nmnist(encode_nmnist([1, 1], [2, 3], [1, 0], [0, 5]))
    recs, labels = [ev, ev[:1], ev[1:]], np.array([3, 1, 4])
    it = data.BatchIterator(recs, labels, 2, backend, shuffle=False,
                            transform=data.EventFrames(T=2, binary=True))
    x, y = next(it.epoch(0))
    assert x.shape == (2, 2, 2, 34, 34) and y.tolist() == [3, 1]
    assert x[0, 0, 1, 2, 1] == 1 and x[0, 1, 0, 3, 1] == 1 and x[1].sum() == 1
    with pytest.raises(ValueError, match="transform"):
        data.BatchIterator(recs, labels, 2, backend)


def test_subset_and_train_val_split():
    images, labels = _images(100, 1, 2, 2), np.arange(100)
    x, y = data.subset(images, labels, 30, seed=2)
    assert len(y) == 30 and (np.diff(y) > 0).all()
    np.testing.assert_array_equal(x, images[y])
    np.testing.assert_array_equal(data.subset(images, labels, 30, seed=2)[1], y)
    assert not np.array_equal(data.subset(images, labels, 30, seed=3)[1], y)
    assert data.subset(images, labels, None)[0] is images
    assert len(data.subset(list(images), labels, 7)[0]) == 7
    tx, ty, vx, vy = data.train_val_split(images, labels, 0.1, seed=0)
    assert len(vy) == 10 and len(ty) == 90
    assert sorted(np.concatenate([ty, vy]).tolist()) == list(range(100))
    np.testing.assert_array_equal(vx, images[vy])
    np.testing.assert_array_equal(data.train_val_split(images, labels, 0.1, seed=0)[3], vy)
    assert not np.array_equal(data.train_val_split(images, labels, 0.1, seed=1)[3], vy)
    with pytest.raises(ValueError):
        data.train_val_split(images, labels, 1.0)


def test_datasets_info():
    assert data.DATASETS["cifar10"].input_shape == (3, 32, 32)
    assert data.DATASETS["svhn"].train_count == 73257
    assert data.DATASETS["nmnist"].input_shape == (2, 34, 34)
    assert all(i.num_classes == 10 for i in data.DATASETS.values())
    assert data.canonical_name("Fashion_MNIST") == "fashion-mnist"
