"""Memory: no growth over 100,000 forward+backward calls (measured in a
subprocess, resident set size before and after); requests for more memory
than can be had raise MemoryError (not a crash); sizes that overflow a
32-bit BLAS dimension are refused with a clear error."""
import json
import os
import subprocess
import tempfile
import sys

import numpy as np
import pytest

import clstm
from clstm.keras.layers import LSTM as KerasLSTM

SANITIZED = os.environ.get("CLSTM_SANITIZED") == "1"

# Children run away from the source tree: in a fresh clone its clstm/ has no
# compiled extension and would shadow the installed package.
CHILD_CWD = tempfile.gettempdir()


_LOOP = r"""
import json, os, sys, time
import numpy as np, clstm
from clstm.keras.layers import LSTM as KerasLSTM

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

rng = np.random.default_rng(0)
model = clstm.LSTM(4, 6, num_layers=2, bidirectional=True, seed=0)
x = rng.standard_normal((5, 3, 4)).astype(np.float32)
mask = rng.random((5, 3)) < 0.7
dy = np.ones((5, 3, 12), np.float32)
w = {k: v[:24] if k.startswith(("weight_ih", "bias")) else v for k, v in model.state_dict().items()}
w_ih = np.ascontiguousarray(w["weight_ih_l0"][:, :4])
w_hh = np.ascontiguousarray(w["weight_hh_l0"])
layer = KerasLSTM(6, return_sequences=True)
kx = np.ascontiguousarray(x.transpose(1, 0, 2))
layer(kx)
bad_h0 = np.zeros((1, 3, 6), np.float32)
uni = clstm.LSTM(4, 6, num_layers=2, seed=1)
sbuf = (np.zeros((2, 3, 6), np.float32), np.zeros((2, 3, 6), np.float32))

def step(i):
    k = i % 6
    if k == 5:                                # online steps: in place, then allocating
        uni.step(x[i % 5], sbuf, out=sbuf)
        uni.step(x[i % 5], sbuf)
        return
    if k == 0:
        model.forward(x, train=True, mask=mask)
        model.backward(dy)
    elif k == 1:
        y, _, cache = clstm.lstm_forward(x, w_ih, w_hh, train=True, reverse=True)
        clstm.lstm_backward(cache, y)
    elif k == 2:
        y = layer.call(kx, training=True)
        layer.backward(np.ones_like(y))
    elif k == 3:
        model.forward(x, train=True)
        model.backward(dy)
    else:
        model.forward(x, train=True)          # a refused call on the error path too
        try:
            model.forward(x, (bad_h0, None))
        except ValueError:
            pass
        model.forward(x, train=True)
        model.backward(dy)

n, warm = int(sys.argv[1]), int(sys.argv[2])
for i in range(warm):
    step(i)
r0, t0, samples = rss(), time.perf_counter(), []
for i in range(n):
    step(i)
    if i % (n // 10) == 0:
        samples.append(rss() - r0)
print(json.dumps({"calls": n, "warmup": warm, "rss_warm": r0, "growth": rss() - r0,
                  "samples": samples, "seconds": time.perf_counter() - t0}))
"""


@pytest.mark.skipif(SANITIZED, reason="ASan's quarantine holds freed memory: RSS is not flat")
def test_rss_flat_over_100k_forward_backward_calls():
    """100,000 iterations of forward+backward pairs (clstm.LSTM with and
    without a mask, the functional ops, the Keras layer, a refused call) and
    LSTM.step (in place and allocating), after 5,000 of
    warm-up: resident memory grows by less than 1 MB."""
    r = subprocess.run([sys.executable, "-c", _LOOP, "100000", "5000"], capture_output=True,
                       text=True, cwd=CHILD_CWD, timeout=300)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    print("\nmemory:", result)
    assert result["growth"] < 2**20, result


_OOM = r"""
import resource, sys, numpy as np, clstm

def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
clstm.set_num_threads(1)    # 2 BLAS threads on a loaded 2-core box stall per step
model = clstm.LSTM(16, 64, seed=0)
x = np.random.default_rng(0).standard_normal((4, 8, 16)).astype(np.float32)
y0 = model(x)[0]
limit = vm() + 768 * 2**20            # the address space this process may still use
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
hit = None
for T in [2**k for k in range(2, 20)]:  # gates (T, 512, 256) float32: up to 256 GB
    try:
        xb = np.zeros((T, 512, 16), np.float32)
        y, _ = model.forward(xb, train=True)
        model.backward(y)
    except MemoryError as e:
        hit = (T, str(e)[:80])
        break
assert hit is not None, "no MemoryError up to T = 2**21"
assert np.array_equal(model(x)[0], y0)   # the process is fine after it
print("MemoryError at T =", hit[0], "-", hit[1])
"""


@pytest.mark.skipif(SANITIZED, reason="ASan reserves terabytes of address space")
def test_out_of_memory_is_a_memory_error():
    """Under an address-space limit, ever longer training sequences end in
    MemoryError (from NumPy or the core's workspace), never in a crash, and
    the model still computes correctly afterwards."""
    r = subprocess.run([sys.executable, "-c", _OOM], capture_output=True, text=True,
                       cwd=CHILD_CWD, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MemoryError at T =" in r.stdout


def test_absurd_sizes_raise_memory_error():
    """Parameters of 2**52 elements and more cannot be allocated: MemoryError
    (the first parameter allocated is the impossible one: nothing big is
    allocated before)."""
    with pytest.raises(MemoryError):
        clstm.LSTM(2**30, 2**20)
    with pytest.raises(MemoryError):
        clstm.LSTM(2**31 - 1, 2**27, dtype=np.float64)
    with pytest.raises(MemoryError):
        clstm.lstm_forward(np.zeros((1, 1, 2**20), np.float32),
                           np.broadcast_to(np.float32(0), (2**22, 2**20)),
                           np.broadcast_to(np.float32(0), (2**22, 2**20)))


@pytest.mark.parametrize("make,match", [
    (lambda: clstm.LSTM(3, 2**29), r"4\*hidden_size = 2147483648 exceeds the BLAS limit"),
    (lambda: clstm.LSTM(2**31, 2), r"input_size must be <= 2147483647, got 2147483648"),
    (lambda: clstm.LSTM(3, 2, num_layers=2**31), r"num_layers must be <= 2147483647"),
    (lambda: KerasLSTM(2**29)(np.zeros((1, 1, 1))), r"4\*hidden_size = 2147483648 exceeds"),
    (lambda: KerasLSTM(2**31), r"units must be <= 2147483647"),
    (lambda: clstm.lstm_forward(np.broadcast_to(np.float32(0), (2**16, 2**16, 1)),
                                np.zeros((4, 1)), np.zeros((4, 1))),
     r"T\*B = 4294967296 exceeds the BLAS limit"),
    (lambda: KerasLSTM(2)(np.broadcast_to(np.float32(0), (2**16, 2**16, 1))),
     r"T\*B = 4294967296 exceeds the BLAS limit"),
])
def test_sizes_overflowing_32_bit_blas_dimensions_are_refused(make, match):
    """Element counts are 64-bit in Python and C; a GEMM dimension that does
    not fit a 32-bit BLAS int is refused before anything is allocated."""
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.skipif(SANITIZED, reason="needs 8-16 GB lazy (untouched) allocations")
def test_step_refuses_batches_overflowing_blas_ints():
    """Found by the fuzz: step() checked no BLAS limit and the core takes the
    batch as a C int, so B = 2**32 + 1 computed row 0 only and returned the
    other rows as zeros, and B = 2**31 asked for an 18 EB workspace.  Now both
    the checked path and the in-place fast path refuse B > 2**31 - 1 before
    allocating anything (the arrays below are zero pages never touched)."""
    model = clstm.LSTM(1, 1, seed=0)
    for B in (2**31, 2**32 + 1):
        x = np.zeros((B, 1), np.float32)
        with pytest.raises(ValueError, match=rf"x has a batch of B = {B} rows, which "
                                             r"exceeds the BLAS limit of 2147483647"):
            model.step(x)
    # the fast path (state and out given as tuples of fitting arrays)
    h = np.zeros((1, B, 1), np.float32)
    c = np.zeros((1, B, 1), np.float32)
    with pytest.raises(ValueError, match=r"B = 4294967297 rows, which exceeds the BLAS limit"):
        model.step(x, (h, c), out=(h, c))
