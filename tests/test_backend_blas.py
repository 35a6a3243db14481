"""blas_threads: BLAS limited inside, restored after, and safe from several threads; and
keep_freed_memory: large arrays freed and allocated again cost no page faults."""
import platform
import subprocess
import sys
import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from minisnn.backend import blas_threads


def blas_counts():
    return {i["filepath"]: i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


@pytest.fixture
def before():
    """BLAS thread counts at the start (the test needs a BLAS running >= 2 threads)."""
    counts = blas_counts()
    if not counts or min(counts.values()) < 2:
        pytest.skip(f"needs a BLAS that threadpoolctl can limit, running >= 2 threads: {counts}")
    return counts


def test_limits_and_restores(before):
    with blas_threads(1):
        assert set(blas_counts().values()) == {1}
        with blas_threads(1):
            assert set(blas_counts().values()) == {1}
        assert set(blas_counts().values()) == {1}
    assert blas_counts() == before


@pytest.mark.parametrize("first", ["main", "thread"])
def test_overlapping_callers_never_restore_under_each_other(before, first):
    """One caller enters, a second enters, the first leaves (the second must still see 1),
    the second leaves (the count is back). Saving and restoring per caller left the second
    caller unlimited and the process at 1 thread for good."""
    entered, second_in, first_out = (threading.Event() for _ in range(3))
    seen = []

    def first_caller():
        with blas_threads(1):
            entered.set()
            second_in.wait(5)
        first_out.set()

    def second_caller():
        entered.wait(5)
        with blas_threads(1):
            second_in.set()
            first_out.wait(5)
            seen.append(set(blas_counts().values()))

    other = threading.Thread(target=second_caller if first == "main" else first_caller)
    other.start()
    (first_caller if first == "main" else second_caller)()
    other.join(10)
    assert seen == [{1}]
    assert blas_counts() == before


def test_many_threads_with_matmuls(before):
    x = np.random.default_rng(0).random((64, 64))
    expected = x @ x
    errors = []

    def work():
        try:
            for _ in range(200):
                with blas_threads(1):
                    if not np.allclose(x @ x, expected):
                        errors.append("wrong product")
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert blas_counts() == before


KEEP_FREED = """
import resource, sys
import numpy as np
from minisnn.backend import keep_freed_memory
kept = sys.argv[1] == "1" and keep_freed_memory()
for _ in range(2):                               # the first round may take the memory from the kernel
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        np.ones(64 << 20, np.uint8)          # 64 MB (above the 32 MB glibc may learn to keep), freed at once
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(kept, faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="keeps freed memory through glibc's malloc")
def test_freed_memory_is_reused_without_page_faults():
    """Without it every 64 MB array is a fresh mapping the kernel zeroes page by page when touched."""
    runs = {flag: subprocess.run([sys.executable, "-c", KEEP_FREED, flag], capture_output=True, text=True,
                                 check=True).stdout.split() for flag in ("0", "1")}
    assert runs["1"][0] == "True" and int(runs["1"][1]) < 10, runs
    assert int(runs["0"][1]) > 100, runs        # the test can tell (320 faults with 2 MB pages, 160,000 with 4 kB)
