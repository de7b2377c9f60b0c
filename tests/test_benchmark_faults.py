"""clstm.benchmark's page-fault count per timed call: it must see a callable
that takes fresh pages from the OS each call, and not one that reuses its
memory (the count explains torch's history-dependent fwd+bwd times)."""
import mmap

import numpy as np
import pytest

from clstm import benchmark as bm

pytestmark = pytest.mark.skipif(bm.minor_faults() is None, reason="no getrusage page-fault count here")

PAGES = 2048   # 8 MB


def test_fresh_pages_are_counted():
    def fresh():   # an anonymous mapping: new pages every call, whatever malloc does
        m = mmap.mmap(-1, PAGES * 4096)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):   # 4 KB pages, as the count below assumes
            m.madvise(mmap.MADV_NOHUGEPAGE)
        a = np.frombuffer(m, np.float32)
        a[::1024] = 1.0   # touch every 4 KB page once
        del a
        m.close()
    faults = []
    bm.run_block(fresh, 1, 4, [], faults)
    assert len(faults) == 1
    assert 0.9 * PAGES <= faults[0] <= 1.5 * PAGES


def test_reused_memory_is_not_counted():
    buf = np.empty(PAGES * 1024, np.float32)
    buf[...] = 0

    def reuse():
        buf[::1024] += 1.0
    faults = []
    bm.run_block(reuse, 1, 4, [], faults)
    assert faults[0] < 0.05 * PAGES


def test_time_interleaved_reports_faults_beside_times():
    settings = bm.Settings(threads=[1], dtype=np.float32, budget_s=0.02, warmup_s=0.0, min_rounds=2,
                           max_rounds=2, fixed_rounds=2, cases=())
    buf = np.zeros(1024, np.float32)
    med, rounds, faults = bm.time_interleaved({"a": lambda: buf.sum()}, settings)
    assert rounds == 2 and set(med) == {"a"} and med["a"] > 0 and faults["a"] < 1
