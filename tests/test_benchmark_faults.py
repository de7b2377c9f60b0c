"""clstm.benchmark's page-fault count per timed call: it must see a callable
that takes fresh pages from the OS each call, and not one that reuses its
memory (the count explains torch's history-dependent fwd+bwd times)."""
import mmap
import subprocess
import sys

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


# A 48 MB block, over glibc's largest default mmap threshold (32 MB), malloc'd,
# written and freed twice after a first time, as a C library's per-call
# temporaries are (numpy's own large arrays ask for huge pages, which would
# hide the count): the faults per cycle, in a fresh process.
MALLOC_CYCLES = r"""
import ctypes
import sys
from clstm import benchmark as bm
if sys.argv[1] == "steady":
    assert bm.steady_malloc() is not None
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
def cycle():
    p = libc.malloc(48 << 20)
    ctypes.memset(p, 1, 48 << 20)
    libc.free(p)
cycle()
f0 = bm.minor_faults()
cycle()
cycle()
print((bm.minor_faults() - f0) / 2)
"""
BLOCK_PAGES = 48 << 8


def malloc_cycle_faults(mode, cwd):
    """cwd outside the source tree: the child imports the installed clstm, as the test does."""
    run = subprocess.run([sys.executable, "-c", MALLOC_CYCLES, mode], capture_output=True,
                         text=True, timeout=120, cwd=cwd)
    assert run.returncode == 0, run.stderr
    return float(run.stdout.split()[-1])


@pytest.mark.skipif(not bm.glibc(), reason="glibc's mallopt only")
def test_steady_malloc_reuses_large_blocks(tmp_path):
    steady = malloc_cycle_faults("steady", tmp_path)
    assert steady < 0.05 * BLOCK_PAGES
    try:   # transparent huge pages on every mapping would hide the default's faults
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            thp_always = "[always]" in f.read()
    except OSError:
        thp_always = False
    if not thp_always:   # the cost the setting removes: each cycle maps the block afresh
        assert malloc_cycle_faults("default", tmp_path) > 0.5 * BLOCK_PAGES


def test_malloc_setting_lines():
    assert "--malloc default" in bm.malloc_setting("default")
    assert "malloc:" in bm.malloc_setting("default")
