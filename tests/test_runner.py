"""The CPU worker threads (minisnn.runner) and what they must not change: the results."""
import gc
import threading
import time

import numpy as np
import pytest

from minisnn import ann, models
from minisnn.backend import Backend
from minisnn.encoding import FrameInput
from minisnn.loss import mse_loss
from minisnn.runner import Runner

SHAPES = {"lenet5": (1, 16, 16), "vgg7": (3, 32, 32), "vgg9": (3, 16, 16), "resnet7": (3, 16, 16),
          "resnet9": (3, 16, 16), "resnet11": (3, 16, 16)}


def _pass(net, x, labels, T=None):
    out = net.forward(x, T, train=True, rng_key=(3, 1))
    grad_input = net.backward(mse_loss(out, labels)[1])
    return out, grad_input, {k: v.copy() for k, v in net.gradients().items()}, net.spike_rates()


def _same(a, b):
    out_a, grad_a, params_a, rates_a = a
    out_b, grad_b, params_b, rates_b = b
    assert np.array_equal(out_a, out_b)
    assert np.array_equal(grad_a, grad_b)
    assert rates_a == rates_b
    for key in params_a:
        assert np.array_equal(params_a[key], params_b[key]), key


@pytest.mark.parametrize("name", models.MODELS)
def test_every_model_gives_the_same_bits_with_1_and_3_workers(name):
    """Each worker runs every layer on its slice of the batch: a layer that updated the whole
    batch's state instead of its ``rows`` would give other outputs or gradients here."""
    shape = SHAPES[name]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (7,) + shape).astype(np.float32)           # 7 samples: slices 2, 2, 3
    labels = rng.integers(0, 10, 7)
    results = []
    for workers in (1, 3):
        net = models.build(name, shape, width=0.125, backend=Backend("cpu", "float32"), seed=1, time_chunk=4)
        net.workers = workers
        results.append(_pass(net, x, labels, T=9))
        net.close()
    _same(*results)


def test_event_frames_and_the_ann_give_the_same_bits_with_1_and_3_workers():
    rng = np.random.default_rng(1)
    frames = (rng.random((6, 5, 2, 12, 12)) < 0.3).astype(np.float64)
    images = rng.random((5, 1, 12, 12))
    labels = rng.integers(0, 10, 5)
    for build, x, T in ((lambda: models.build("resnet7", (2, 12, 12), width=0.125, seed=2, encoder=FrameInput(),
                                              backend=Backend("cpu", "float64")), frames, None),
                        (lambda: ann.build("lenet5", (1, 12, 12), width=0.2, backend=Backend("cpu", "float64")),
                         images, 1)):
        results = []
        for workers in (1, 3):
            net = build()
            net.workers = workers
            results.append(_pass(net, x, labels, T))
        _same(*results)


def test_runner_splits_the_batch_and_runs_every_slice():
    runner = Runner(workers=3)
    assert runner.splits(7) == [slice(0, 2), slice(2, 4), slice(4, 7)]
    assert runner.splits(5) == [slice(0, 2), slice(2, 5)]                 # 2 samples or more each
    assert runner.splits(1) == [slice(0, 1)]
    assert Runner(workers=3, device="gpu").splits(7) == [slice(0, 7)]     # inline on the GPU
    seen, lock = [], threading.Lock()

    def work(spikes, rows):
        with lock:
            seen.append((rows.start, rows.stop, spikes.shape[1], threading.current_thread()))

    with runner:
        runner.submit(work, np.zeros((4, 7)))
        runner.wait()
    assert sorted(s[:3] for s in seen) == [(0, 2, 2), (2, 4, 2), (4, 7, 3)]
    assert all(s[3].name.startswith("minisnn") for s in seen)
    # This runner's own threads (another test's network may still hold a pool of its own).
    assert not [s[3] for s in seen if s[3].is_alive()], "closed on exit"
    seen.clear()
    runner.submit(work, np.zeros((4, 3)))                                 # 3 samples: inline
    assert seen == [(None, None, 3, threading.current_thread())]
    with pytest.raises(ValueError, match="at least 1"):
        Runner(workers=0)


def test_a_worker_error_reaches_the_caller():
    def fail(spikes, rows):
        raise RuntimeError(f"bad rows {rows}")

    with Runner(workers=2) as runner:
        runner.submit(fail, np.zeros((1, 4)))
        with pytest.raises(RuntimeError, match="bad rows"):
            runner.wait()


def _minisnn_threads():
    return {t for t in threading.enumerate() if t.name.startswith("minisnn")}


def test_the_network_closes_its_workers():
    x = np.random.default_rng(0).random((4, 1, 16, 16)).astype(np.float32)
    net = models.build("lenet5", (1, 16, 16), width=0.1)
    net.workers = 2
    others = _minisnn_threads()             # pools of earlier tests' networks not yet collected

    def own_threads():
        return {t for t in _minisnn_threads() - others if t.is_alive()}

    net.forward(x, 3)
    assert own_threads()
    net.close()
    assert not own_threads()
    net.forward(x, 3)                       # works again after close: the threads restart
    assert own_threads()
    del net
    # A pool thread drops its reference to the finished job (and so to the network) just after
    # the job reports done: collect until it has, then the finalizer must have stopped the threads.
    for _ in range(100):
        gc.collect()
        if not own_threads():
            break
        time.sleep(0.02)
    assert not own_threads(), "a collected network stops its threads"
