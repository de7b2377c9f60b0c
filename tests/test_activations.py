"""Accuracy of the core's vectorized sigmoid and tanh against exact values
(long double / float64 references), and their behaviour at the edges."""
import numpy as np
import pytest

from clstm.activations import sigmoid, tanh


def _grid(dtype):
    rng = np.random.default_rng(0)
    dense = np.linspace(-30, 30, 200001)
    tiny = np.concatenate([np.logspace(-40, 0, 4001), -np.logspace(-40, 0, 4001)])
    wide = rng.uniform(-90, 90, 100000)
    x = np.concatenate([dense, tiny, wide, [0.0, -0.0]]).astype(dtype)
    return x[np.abs(x) < 80]   # beyond, sigmoid's exact value is subnormal


def _ulps(got, exact, dtype):
    exact_d = exact.astype(dtype)
    spacing = np.spacing(np.abs(exact_d).astype(dtype)).astype(np.longdouble)
    return np.abs(got.astype(np.longdouble) - exact) / spacing


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_within_three_ulp(dtype):
    x = _grid(dtype)
    xl = x.astype(np.longdouble)
    exact_sig = 1 / (1 + np.exp(-xl))
    exact_tanh = np.tanh(xl)
    assert _ulps(sigmoid(x), exact_sig, dtype).max() <= 3
    assert _ulps(tanh(x), exact_tanh, dtype).max() <= 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edges(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 1e-30] * 5, dtype)
    s, t = sigmoid(x), tanh(x)
    assert s.dtype == t.dtype == dtype
    assert np.isnan(s[0::8]).all() and np.isnan(t[0::8]).all()
    np.testing.assert_array_equal(s[1::8], 1)
    assert (s[2::8] < 1e-37).all() and (s[2::8] >= 0).all()
    np.testing.assert_array_equal(t[1::8], 1)
    np.testing.assert_array_equal(t[2::8], -1)
    np.testing.assert_array_equal(t[4::8], -1)
    np.testing.assert_array_equal(s[5::8], 0.5)
    assert np.signbit(t[6::8]).all() and (t[6::8] == 0).all()
    np.testing.assert_array_equal(t[7::8], dtype(1e-30))


def test_refuses_non_float():
    with pytest.raises(TypeError, match="floating-point"):
        tanh(np.arange(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [12, 1])
@pytest.mark.parametrize("hidden", [64, 50])
def test_gate_kernels_within_three_ulp(dtype, batch, hidden):
    # The LSTM's own activations are the tile kernels' vector code, not the
    # functions above: W_ih = identity (I = 4H), W_hh = 0, no bias, so each
    # gate's pre-activation is exactly an input value, and the training
    # forward keeps the activated gates (i, f, o sigmoid; g tanh).  batch 12
    # takes x into the step's tile, batch 1 a separate input projection;
    # hidden 50 ends in a compact block (2 units, all four gates in one
    # vector) at every width but SSE2's float64.
    import clstm
    H = hidden
    x = _grid(dtype)
    T = -(-x.size // (batch * 4 * H))
    x = np.resize(x, T * batch * 4 * H).reshape(T, batch, 4 * H)   # repeats to fill
    lstm = clstm.LSTM(4 * H, H, bias=False, dtype=dtype)
    sd = lstm.state_dict()
    sd["weight_ih_l0"] = np.eye(4 * H, dtype=dtype)
    sd["weight_hh_l0"] = np.zeros((4 * H, H), dtype)
    lstm.load_state_dict(sd)
    lstm.forward(x, train=True)
    gates = lstm._cache["layers"][0]["gates"][0]
    xl = x.astype(np.longdouble)
    sig = np.ones(4 * H, bool)
    sig[2 * H:3 * H] = False
    exact_sig = 1 / (1 + np.exp(-xl[..., sig]))
    exact_tanh = np.tanh(xl[..., ~sig])
    keep = exact_sig > np.finfo(dtype).tiny   # sigmoid returns 0 below the normal range
    assert _ulps(gates[..., sig][keep], exact_sig[keep], dtype).max() <= 3
    assert _ulps(gates[..., ~sig], exact_tanh, dtype).max() <= 3
