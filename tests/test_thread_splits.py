"""The core splits a call's work between threads by hidden units (barrier per
step) or by batch rows (no barrier); shapes here are large enough to start
threads, which the finite-difference tests' small shapes never do.

Forward: against the float64 NumPy reference.  Backward: 2 threads against 1
thread (whose gradients the finite-difference tests check), in float64, to
1e-12: a split that drops or double-counts a block shows at once."""
import numpy as np
import pytest

import clstm
from reference import ref_lstm

# (T, B, I, H): by batch rows (B >= 16, small W_hh) and by units (B small,
# large W_hh); x_t fused into the step's tile (I <= 32 or B >= 8) or through
# a separate input projection (I > 32 and B < 8); a batch of one (backward's
# dh by dot products on the unpacked W_hh); a backward product big enough
# (>= 4 MFLOP a step) that its unit blocks are handed out step by step
SHAPES = {"batch rows": (7, 20, 3, 50), "units": (6, 2, 5, 200),
          "units, partial block": (5, 3, 4, 211), "batch rows, odd B": (6, 37, 2, 33),
          "units, projection": (5, 3, 40, 200), "batch rows, fused I > 32": (5, 20, 40, 50),
          "units, batch of one": (5, 1, 6, 203), "units, dynamic backward": (4, 8, 6, 301)}


def _run(shape, threads, bidir, masked, seed=0):
    T, B, I, H = shape
    rng = np.random.default_rng(seed)
    lstm = clstm.LSTM(I, H, bidirectional=bidir, dtype=np.float64, seed=seed)
    for _, p in lstm.named_parameters():
        p[...] = rng.uniform(-0.5, 0.5, p.shape)
    D = 2 if bidir else 1
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((D, B, H))
    c0 = rng.standard_normal((D, B, H))
    dy = rng.standard_normal((T, B, D * H))
    mask = None
    if masked:
        lengths = rng.integers(1, T + 1, size=B)
        mask = np.arange(T)[:, None] < lengths[None, :]
    old = clstm.get_num_threads()
    clstm.set_num_threads(threads)
    try:
        y, (hn, cn) = lstm.forward(x, (h0, c0), train=True, mask=mask)
        dx, (dh0, dc0) = lstm.backward(dy, (hn * 0.5, cn * 0.25))
    finally:
        clstm.set_num_threads(old)
    grads = {k: v.copy() for k, v in lstm.grads.items()}
    return lstm, x, h0, c0, mask, (y, hn, cn), (dx, dh0, dc0), grads


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_two_threads_match_reference_and_one_thread(name, bidir, masked):
    lstm, x, h0, c0, mask, out2, din2, g2 = _run(SHAPES[name], 2, bidir, masked)
    if not masked:
        yr, hr, cr = ref_lstm(x, lstm.state_dict(), 1, bidir, h0, c0)
        for got, want in zip(out2, (yr, hr, cr)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    _, _, _, _, _, out1, din1, g1 = _run(SHAPES[name], 1, bidir, masked)
    for a, b in zip(out2 + din2, out1 + din1):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert g1.keys() == g2.keys()
    for k in g1:
        np.testing.assert_allclose(g2[k], g1[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_inference_matches_training_forward_on_both_splits():
    for shape in SHAPES.values():
        T, B, I, H = shape
        lstm = clstm.LSTM(I, H, num_layers=2, dtype=np.float32, seed=1)
        x = np.random.default_rng(1).standard_normal((T, B, I)).astype(np.float32)
        y1, (h1, c1) = lstm(x)
        y2, (h2, c2) = lstm.forward(x, train=True)
        np.testing.assert_allclose(y1, y2, rtol=0, atol=1e-6)
        yr, hr, cr = ref_lstm(x.astype(np.float64), lstm.state_dict(), 2)
        np.testing.assert_allclose(y1, yr, rtol=0, atol=2e-5)
