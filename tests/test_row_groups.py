"""Split by batch rows, the threads take groups of rows from a shared counter
(two threads from either end, more from the front) and run each group
through the whole sequence.  Which thread runs a group, and how the rows
fall into register tiles, must not change a single bit: the outputs and
every gradient at 2 and 3 threads equal 1 thread's exactly, with masks,
in both directions, for a batch that is not a whole number of groups; at
fixed shapes and at generated ones (the "row_groups" budget of
test_fuzz_common.py)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import clstm
from test_fuzz_common import examples

# (T, B, I, H): B >= 8 per thread and a small W_hh, so the rows are split;
# 37 and 27 rows leave a last group larger than the others; (2, 16, 10, 60)
# has dX by dot products (T B < 4 I) at 9-11 inputs, where the route once
# depended on the thread count
SHAPES = [(7, 20, 3, 50), (6, 37, 2, 33), (5, 27, 40, 20), (9, 64, 1, 50), (2, 16, 10, 60)]


def _run(lstm, x, mask, dy, threads):
    old = clstm.get_num_threads()
    clstm.set_num_threads(threads)
    try:
        y_inf, (hn_inf, cn_inf) = lstm(x, mask=mask)
        y, (hn, cn) = lstm.forward(x, train=True, mask=mask)
        dx, (dh0, dc0) = lstm.backward(dy)
    finally:
        clstm.set_num_threads(old)
    outs = {"y (inference)": y_inf, "hn (inference)": hn_inf, "cn (inference)": cn_inf,
            "y": y, "hn": hn, "cn": cn, "dx": dx, "dh0": dh0, "dc0": dc0}
    outs.update({"grad " + k: v.copy() for k, v in lstm.grads.items()})
    return outs


def _assert_same_bits_on_any_thread(T, B, I, H, bidir, masked, dtype, data_seed, model_seed):
    rng = np.random.default_rng(data_seed)
    lstm = clstm.LSTM(I, H, bidirectional=bidir, dtype=dtype, seed=model_seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    mask = np.arange(T)[:, None] < rng.integers(1, T + 1, size=B)[None, :] if masked else None
    dy = rng.standard_normal((T, B, (2 if bidir else 1) * H)).astype(dtype)
    one = _run(lstm, x, mask, dy, 1)
    for threads in (2, 3):
        many = _run(lstm, x, mask, dy, threads)
        for name, want in one.items():
            np.testing.assert_array_equal(many[name], want,
                                          err_msg=f"{name} at {threads} threads")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_row_groups_give_the_same_bits_on_any_thread(shape, dtype, bidir, masked):
    T, B, I, H = shape
    _assert_same_bits_on_any_thread(T, B, I, H, bidir, masked, dtype, data_seed=B + H,
                                    model_seed=3)


@settings(max_examples=examples("row_groups"))
@given(T=st.integers(1, 6), B=st.integers(16, 70), I=st.integers(1, 40), H=st.integers(24, 90),
       bidir=st.booleans(), masked=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**32 - 1))
def test_fuzz_row_groups_any_thread_count(T, B, I, H, bidir, masked, dtype, seed):
    # shapes that start threads (8 B H^2 flops a step: CLSTM_THREAD_MIN_FLOPS)
    # and split the batch rows (and, at 3 threads with B < 24, the units):
    # every output and gradient bit-for-bit 1 thread's
    assume(8 * B * H * H >= 256 * 1024)
    _assert_same_bits_on_any_thread(T, B, I, H, bidir, masked, dtype, data_seed=seed,
                                    model_seed=seed % 1000)
