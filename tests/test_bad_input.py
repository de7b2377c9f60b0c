"""Bad input gets a clear Python exception naming what was expected and what
came; odd-but-valid input (views, empty, NaN) gets the right answer."""
import numpy as np
import pytest

import clstm
from reference import ref_lstm


@pytest.fixture
def lstm():
    return clstm.LSTM(4, 5, num_layers=2, bidirectional=True, dtype=np.float64, seed=0)


def test_wrong_rank(lstm):
    with pytest.raises(ValueError, match=r"x must be 3-D \(T, B, 4\).*got shape \(4,\)"):
        lstm(np.zeros(4))
    with pytest.raises(ValueError, match=r"got shape \(1, 2, 3, 4\)"):
        lstm(np.zeros((1, 2, 3, 4)))


def test_wrong_feature_size(lstm):
    with pytest.raises(ValueError, match="x has 7 features, this LSTM was built for input_size=4"):
        lstm(np.zeros((3, 2, 7)))


def test_wrong_state_shapes(lstm):
    x = np.zeros((3, 2, 4))
    with pytest.raises(ValueError, match=r"h0 must have shape \(4, 2, 5\), got \(2, 2, 5\)"):
        lstm(x, (np.zeros((2, 2, 5)), np.zeros((4, 2, 5))))
    with pytest.raises(ValueError, match=r"c0 must have shape \(4, 2, 5\), got \(4, 3, 5\)"):
        lstm(x, (np.zeros((4, 2, 5)), np.zeros((4, 3, 5))))
    with pytest.raises(TypeError, match=r"tuple \(h0, c0\)"):
        lstm(x, np.zeros((4, 2, 5)))


@pytest.mark.parametrize("bad", [np.zeros((3, 2, 4), np.int64), np.zeros((3, 2, 4), bool),
                                 np.zeros((3, 2, 4), np.complex128),
                                 np.zeros((3, 2, 4), object), [[[1, 2, 3, 4]]]])
def test_non_float_input_refused(lstm, bad):
    with pytest.raises(TypeError, match="x must be a floating-point array, got dtype"):
        lstm(bad)


def test_non_float_state_refused(lstm):
    with pytest.raises(TypeError, match="h0 must be a floating-point array, got dtype int64"):
        lstm(np.zeros((3, 2, 4)), (np.zeros((4, 2, 5), np.int64), np.zeros((4, 2, 5))))


def test_views_work_by_copy(lstm):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((12, 6, 9))
    views = [base[::2, ::3, :4],                        # strided
             base[::-1, :, 2:6],                        # negative stride
             np.asfortranarray(base[:, :, :4]),         # Fortran order
             base[:, :, :4].transpose(0, 1, 2).copy()[:, ::-1]]
    for v in views:
        y, (h, c) = lstm(v)
        yr, hr, cr = ref_lstm(np.array(v), lstm.state_dict(), 2, True)
        np.testing.assert_allclose(y, yr, atol=1e-12)
    ro = base[:, :, :4].copy()
    ro.flags.writeable = False
    y, _ = lstm(ro)
    assert y.shape == (12, 6, 10)


def test_empty_sequence(lstm):
    rng = np.random.default_rng(0)
    h0, c0 = rng.standard_normal((4, 2, 5)), rng.standard_normal((4, 2, 5))
    y, (h, c) = lstm(np.zeros((0, 2, 4)), (h0, c0))
    assert y.shape == (0, 2, 10)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, c0)
    y, (h, c) = lstm.forward(np.zeros((0, 2, 4)), train=True)
    dx, (dh0, dc0) = lstm.backward(np.zeros((0, 2, 10)))
    assert dx.shape == (0, 2, 4) and not dh0.any()
    assert all(not g.any() for g in lstm.grads.values())


def test_empty_batch(lstm):
    y, (h, c) = lstm(np.zeros((3, 0, 4)))
    assert y.shape == (3, 0, 10) and h.shape == (4, 0, 5)
    y, _ = lstm.forward(np.zeros((3, 0, 4)), train=True)
    dx, _ = lstm.backward(y)
    assert dx.shape == (3, 0, 4)
    assert all(not g.any() for g in lstm.grads.values())


def test_nan_propagates_without_crash(lstm):
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    x[2, 1, 0] = np.nan
    one_way = clstm.LSTM(4, 5, dtype=np.float64, seed=0)
    y, (h, c) = one_way(x)
    assert not np.isnan(y[:2]).any()            # before the NaN step: clean
    assert np.isnan(y[2:, 1]).all()             # from it on, in that sequence: NaN
    assert not np.isnan(y[:, [0, 2]]).any()     # other sequences untouched
    y, (h, c) = lstm(x)                         # bidirectional: the whole sequence
    assert np.isnan(y[:, 1]).all() and not np.isnan(y[:, [0, 2]]).any()
    for v in (1e30, -1e30, 1e300):              # huge: gates saturate, outputs finite
        y2, _ = lstm(np.full((3, 1, 4), v))
        assert np.isfinite(y2).all() and np.abs(y2).max() <= 1
    for v in (np.inf, -np.inf):                 # inf - inf in the gate sums: as IEEE says
        xi = np.full((3, 1, 4), v)
        y2, _ = lstm(xi)
        with np.errstate(invalid="ignore"):
            yr, _, _ = ref_lstm(xi, lstm.state_dict(), 2, True)
        np.testing.assert_allclose(y2, yr, atol=1e-12)   # NaN where the reference has NaN


def test_backward_bad_dy(lstm):
    y, _ = lstm.forward(np.zeros((3, 2, 4)), train=True)
    with pytest.raises(ValueError, match=r"dy must have the shape of y, \(3, 2, 10\), got \(3, 2, 5\)"):
        lstm.backward(np.zeros((3, 2, 5)))
    with pytest.raises(TypeError, match="dy must be a floating-point array"):
        lstm.backward(np.zeros((3, 2, 10), int))
    with pytest.raises(ValueError, match=r"dh_n must have shape \(4, 2, 5\)"):
        lstm.backward(np.zeros((3, 2, 10)), (np.zeros((1, 2, 5)), None))


@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(input_size=0, hidden_size=3), ValueError, "input_size must be >= 1, got 0"),
    (dict(input_size=3, hidden_size=-2), ValueError, "hidden_size must be >= 1, got -2"),
    (dict(input_size=3.5, hidden_size=2), TypeError, "input_size must be an int, got float"),
    (dict(input_size=True, hidden_size=2), TypeError, "input_size must be an int, got bool"),
    (dict(input_size=3, hidden_size=2, num_layers=0), ValueError, "num_layers must be >= 1"),
    (dict(input_size=3, hidden_size=2, dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (dict(input_size=3, hidden_size=2, dropout="x"), TypeError, "dropout must be a float"),
    (dict(input_size=3, hidden_size=2, dtype=np.int32), TypeError,
     "dtype must be float32 or float64, got int32"),
    (dict(input_size=3, hidden_size=2, dtype=np.float16), TypeError, "got float16"),
    (dict(input_size=3, hidden_size=2**30), ValueError, "exceeds the BLAS limit"),
])
def test_bad_constructor_arguments(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        clstm.LSTM(**kwargs)


def test_numpy_ints_accepted():
    lstm = clstm.LSTM(np.int64(3), np.int32(4), num_layers=np.int8(2))
    assert lstm.hidden_size == 4 and type(lstm.hidden_size) is int


def test_set_num_threads_validates():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        clstm.set_num_threads(0)
    with pytest.raises(TypeError, match="n must be an int"):
        clstm.set_num_threads(1.5)
