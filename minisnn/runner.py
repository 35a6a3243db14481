"""Where the chunks of a forward pass run: inline, or on CPU worker threads.

On the CPU the batch is split across threads: each worker runs every layer on its slice of the
samples (``rows``) with single-threaded BLAS. NumPy releases the GIL inside its loops, so the
element-wise neuron updates, which NumPy runs on one core, use every core too. Letting OpenBLAS
spawn threads of its own instead oversubscribes the cores, and its threads keep spinning after
each call, stealing the cores from the workers. On the GPU everything runs inline.

    with Runner(workers=4) as runner:
        with runner.compute():
            for spikes in chunks:
                runner.submit(network.forward_chunk, spikes)   # returns at once
            runner.wait()

``submit`` first waits for the previous chunk, so the caller prepares the next chunk (draws the
input spikes) while the workers still run the previous one. A decision that must hold for the
whole batch (the path of an event-driven layer) meets in :meth:`Runner.batch_sum`: each worker
gives its slice's count and waits for the others' to get the total.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor

from .backend import blas_threads

ALL = slice(None)
THREAD_PREFIX = "minisnn"


class Runner:
    """Runs ``function(spikes[:, rows], rows)`` for slices of the batch, ``workers`` threads at most."""

    def __init__(self, workers=1, device="cpu"):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers if device == "cpu" else 1
        self.device = device
        self._executor = None
        self._running = []
        self._tally = None

    def splits(self, batch):
        """Row slices of the batch, one per worker, at least 2 samples each: for a single row
        NumPy computes a matrix product as a matrix-vector product, which rounds differently,
        and the result would depend on the number of workers."""
        count = max(1, min(self.workers, batch // 2))
        bounds = [batch * i // count for i in range(count + 1)]
        return [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]

    def compute(self):
        """The context the work runs in: BLAS limited to one thread per call on the CPU."""
        return blas_threads(1) if self.device == "cpu" else contextlib.nullcontext()

    def submit(self, function, spikes):
        """Start ``function`` on the chunk ``spikes`` (T_chunk, B, ...), after the previous one ended."""
        self.wait()
        splits = self.splits(spikes.shape[1])
        if len(splits) == 1:
            function(spikes, ALL)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix=THREAD_PREFIX)
        self._tally = _Tally(len(splits))        # one job per thread, all at once: they can meet
        self._running = [self._executor.submit(self._tally.run, function, spikes[:, rows], rows)
                         for rows in splits]

    def batch_sum(self, counts):
        """The element-wise sum of the tuple ``counts`` over the workers of the running chunk,
        each of which must call it the same number of times (outside a split chunk: ``counts``)."""
        tally = self._tally
        return counts if tally is None else tally.sum(counts)

    def wait(self):
        """Wait for the submitted work; re-raise the first error it met (not a worker's
        ``BrokenBarrierError``, which only says that another worker failed)."""
        running, self._running = self._running, []
        errors = [job.exception() for job in running]
        self._tally = None
        errors = sorted((e for e in errors if e is not None), key=lambda e: isinstance(e, threading.BrokenBarrierError))
        if errors:
            raise errors[0]

    def close(self):
        """Stop the worker threads (a later ``submit`` starts new ones)."""
        self._running = []
        if self._executor is not None:
            # the last reference to a network can go away in one of its own workers (a chunk still
            # running when Ctrl-C unwound the caller): a thread cannot wait for itself to end
            in_worker = threading.current_thread().name.startswith(THREAD_PREFIX)
            self._executor.shutdown(wait=not in_worker)
            self._executor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Tally:
    """Where the workers of one chunk meet: the i-th :meth:`sum` call of every worker adds to the
    i-th total, and returns it once all have added theirs."""

    def __init__(self, parties):
        self._barrier = threading.Barrier(parties)
        self._lock = threading.Lock()
        self._calls = threading.local()
        self._totals = []

    def run(self, function, *args):
        self._calls.count = 0
        try:
            return function(*args)
        except BaseException:
            self._barrier.abort()         # the others stop waiting for this worker
            raise

    def sum(self, counts):
        index = self._calls.count
        self._calls.count += 1
        with self._lock:
            if index == len(self._totals):
                self._totals.append(tuple(counts))
            else:
                self._totals[index] = tuple(a + b for a, b in zip(self._totals[index], counts))
        self._barrier.wait()
        return self._totals[index]
