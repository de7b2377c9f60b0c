"""clstm.LSTM forward against the NumPy float64 reference."""
import itertools

import numpy as np
import pytest

import clstm
from reference import ref_lstm

TOL = {np.float64: 1e-12, np.float32: 3e-5}


def _run(T, B, I, H, layers, bidir, batch_first, with_state, bias, dtype, seed=0):
    rng = np.random.default_rng(seed)
    lstm = clstm.LSTM(I, H, num_layers=layers, bidirectional=bidir, batch_first=batch_first,
                      bias=bias, dtype=dtype, seed=seed)
    D = 2 if bidir else 1
    x = rng.standard_normal((T, B, I))
    hx = None
    if with_state:
        hx = (rng.standard_normal((layers * D, B, H)), rng.standard_normal((layers * D, B, H)))
    xin = x.transpose(1, 0, 2) if batch_first else x
    y, (hn, cn) = lstm(xin.astype(dtype), hx)
    yr, hr, cr = ref_lstm(x, lstm.state_dict(), layers, bidir, *(hx or (None, None)))
    if batch_first:
        yr = yr.transpose(1, 0, 2)
    for got, want in ((y, yr), (hn, hr), (cn, cr)):
        assert got.dtype == dtype
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype])


@pytest.mark.parametrize("layers,bidir,batch_first,with_state,bias,dtype", list(itertools.product(
    [1, 2, 3], [False, True], [False, True], [False, True], [True, False],
    [np.float32, np.float64])))
def test_combinations(layers, bidir, batch_first, with_state, bias, dtype):
    _run(5, 3, 4, 6, layers, bidir, batch_first, with_state, bias, dtype)


@pytest.mark.parametrize("T,B,I,H", [(1, 1, 1, 1), (7, 1, 3, 5), (1, 4, 2, 3), (6, 2, 1, 4),
                                     (4, 3, 5, 1), (3, 2, 9, 257), (300, 2, 3, 8),
                                     (40, 70, 3, 16)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidir", [False, True])
def test_odd_sizes(T, B, I, H, dtype, bidir):
    _run(T, B, I, H, 2 if H < 100 else 1, bidir, False, True, True, dtype)


def test_inference_chunks_match_training_path():
    """Inference computes input projections in chunks of steps; training in
    one GEMM.  Both must give the same outputs for a T that spans chunks."""
    lstm = clstm.LSTM(7, 9, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    x = np.random.default_rng(3).standard_normal((1000, 1, 7))
    y1, (h1, c1) = lstm(x)
    y2, (h2, c2) = lstm.forward(x, train=True)
    np.testing.assert_allclose(y1, y2, atol=1e-13)
    np.testing.assert_allclose(c1, c2, atol=1e-13)
    yr, hr, cr = ref_lstm(x, lstm.state_dict(), 2, True)
    np.testing.assert_allclose(y1, yr, atol=1e-12)


def test_unbatched_input():
    lstm = clstm.LSTM(3, 4, num_layers=2, dtype=np.float64, seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 3))
    h0, c0 = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    y, (hn, cn) = lstm(x, (h0, c0))
    assert y.shape == (6, 4) and hn.shape == (2, 4) and cn.shape == (2, 4)
    yb, (hb, cb) = lstm(x[:, None, :], (h0[:, None], c0[:, None]))
    np.testing.assert_array_equal(y, yb[:, 0])
    np.testing.assert_array_equal(hn, hb[:, 0])


def test_default_init_is_torch_uniform():
    lstm = clstm.LSTM(10, 64, num_layers=2, seed=0)
    k = 1 / np.sqrt(64)
    for name, p in lstm.named_parameters():
        assert p.dtype == np.float32
        assert np.abs(p).max() <= k
        assert np.abs(p).max() > 0.9 * k, name   # spread over the whole interval
    assert [n for n, _ in lstm.named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
        "weight_ih_l1", "weight_hh_l1", "bias_ih_l1", "bias_hh_l1"]
    assert lstm.weight_ih_l1.shape == (256, 64)


def test_seed_repeatable_and_distinct():
    a, b, c = (clstm.LSTM(3, 5, seed=s) for s in (7, 7, 8))
    np.testing.assert_array_equal(a.weight_hh_l0, b.weight_hh_l0)
    assert not np.array_equal(a.weight_hh_l0, c.weight_hh_l0)


def test_output_dtype_follows_model():
    x64 = np.random.default_rng(0).standard_normal((4, 2, 3))
    y, (h, c) = clstm.LSTM(3, 4, dtype=np.float32)(x64)
    assert y.dtype == h.dtype == c.dtype == np.float32
    y, _ = clstm.LSTM(3, 4, dtype=np.float64)(x64.astype(np.float16))
    assert y.dtype == np.float64


def test_deterministic_repeat():
    lstm = clstm.LSTM(16, 32, num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 8, 16)).astype(np.float32)
    y1, _ = lstm(x)
    y2, _ = lstm(x)
    np.testing.assert_array_equal(y1, y2)


def test_threads_agree():
    """Above the OpenMP threshold the elementwise pass splits across threads."""
    lstm = clstm.LSTM(8, 300, seed=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((5, 64, 8))
    before = clstm.get_num_threads()
    try:
        clstm.set_num_threads(1)
        y1, _ = lstm(x)
        clstm.set_num_threads(2)
        y2, _ = lstm(x)
    finally:
        clstm.set_num_threads(before)
    np.testing.assert_allclose(y1, y2, atol=1e-12)
    yr, _, _ = ref_lstm(x, lstm.state_dict(), 1)
    np.testing.assert_allclose(y2, yr, atol=1e-12)
