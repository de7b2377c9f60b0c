"""clstm.lstm_forward / lstm_backward: one layer, one direction, explicit weights."""
import numpy as np
import pytest

import clstm
from reference import finite_difference, ref_direction, rel_err


def _weights(I, H, rng, scale=0.7):
    return (rng.uniform(-scale, scale, (4 * H, I)), rng.uniform(-scale, scale, (4 * H, H)),
            rng.uniform(-scale, scale, 4 * H), rng.uniform(-scale, scale, 4 * H))


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_forward_matches_reference(reverse, dtype, tol):
    rng = np.random.default_rng(0)
    w_ih, w_hh, b_ih, b_hh = _weights(5, 7, rng)
    x = rng.standard_normal((9, 3, 5))
    h0, c0 = rng.standard_normal((3, 7)), rng.standard_normal((3, 7))
    y, (h, c) = clstm.lstm_forward(x, w_ih.astype(dtype), w_hh, b_ih, b_hh, h0, c0,
                                   reverse=reverse)
    yr, hr, cr = ref_direction(x, w_ih, w_hh, b_ih + b_hh, h0, c0, reverse)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, yr, atol=tol)
    np.testing.assert_allclose(h, hr, atol=tol)
    np.testing.assert_allclose(c, cr, atol=tol)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_bias,with_state", [(True, True), (False, False), (True, False)])
def test_backward_matches_finite_differences(reverse, with_bias, with_state):
    rng = np.random.default_rng(1)
    w_ih, w_hh, b_ih, b_hh = _weights(3, 4, rng)
    if not with_bias:
        b_ih = b_hh = None
    x = rng.standard_normal((5, 2, 3))
    h0 = rng.standard_normal((2, 4)) if with_state else None
    c0 = rng.standard_normal((2, 4)) if with_state else None
    ry, rh, rc = rng.standard_normal((5, 2, 4)), rng.standard_normal((2, 4)), \
        rng.standard_normal((2, 4))

    def loss():
        y, (h, c) = clstm.lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse=reverse)
        return float(np.sum(y * ry) + np.sum(h * rh) + np.sum(c * rc))

    _, _, cache = clstm.lstm_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, reverse=reverse,
                                     train=True)
    dx, (dh0, dc0), grads = clstm.lstm_backward(cache, ry, rh, rc)
    wrt = [x, w_ih, w_hh] + ([b_ih] if with_bias else []) + ([h0, c0] if with_state else [])
    fds = finite_difference(loss, wrt)
    got = [dx, grads["weight_ih"], grads["weight_hh"]] + \
        ([grads["bias_ih"]] if with_bias else []) + ([dh0, dc0] if with_state else [])
    for g, f in zip(got, fds):
        assert rel_err(g, f) < 1e-6
    if with_bias:
        np.testing.assert_array_equal(grads["bias_ih"], grads["bias_hh"])
    else:
        assert set(grads) == {"weight_ih", "weight_hh"}


def test_matches_the_layer_class():
    lstm = clstm.LSTM(4, 6, bidirectional=True, dtype=np.float64, seed=2)
    x = np.random.default_rng(2).standard_normal((8, 3, 4))
    y, _ = lstm(x)
    p = lstm.state_dict()
    yf, _ = clstm.lstm_forward(x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"],
                               p["bias_hh_l0"])
    yr, _ = clstm.lstm_forward(x, p["weight_ih_l0_reverse"], p["weight_hh_l0_reverse"],
                               p["bias_ih_l0_reverse"], p["bias_hh_l0_reverse"], reverse=True)
    np.testing.assert_allclose(y, np.concatenate([yf, yr], axis=2), atol=1e-14)


def test_empty_sequence_and_batch():
    rng = np.random.default_rng(0)
    w_ih, w_hh, b_ih, b_hh = _weights(3, 4, rng)
    h0 = rng.standard_normal((2, 4))
    y, (h, c), cache = clstm.lstm_forward(np.zeros((0, 2, 3)), w_ih, w_hh, h0=h0, train=True)
    assert y.shape == (0, 2, 4)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, 0)
    dx, (dh0, dc0), grads = clstm.lstm_backward(cache, np.zeros((0, 2, 4)), dh_n=h0)
    np.testing.assert_array_equal(dh0, h0)
    assert dx.shape == (0, 2, 3) and not grads["weight_hh"].any()
    y, (h, c) = clstm.lstm_forward(np.zeros((5, 0, 3)), w_ih, w_hh)
    assert y.shape == (5, 0, 4) and h.shape == (0, 4)


def test_bad_arguments():
    rng = np.random.default_rng(0)
    w_ih, w_hh, b_ih, b_hh = _weights(3, 4, rng)
    x = rng.standard_normal((5, 2, 3))
    with pytest.raises(ValueError, match=r"weight_hh must have shape \(16, 4\)"):
        clstm.lstm_forward(x, w_ih, w_hh[:, :3])
    with pytest.raises(ValueError, match="4\\*hidden_size"):
        clstm.lstm_forward(x, w_ih[:15], w_hh)
    with pytest.raises(ValueError, match="x has 2 features"):
        clstm.lstm_forward(x[..., :2], w_ih, w_hh)
    with pytest.raises(ValueError, match="both bias"):
        clstm.lstm_forward(x, w_ih, w_hh, b_ih)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\)"):
        clstm.lstm_forward(x, w_ih, w_hh, h0=np.zeros((3, 4)))
    with pytest.raises(TypeError, match="weight_ih must be a floating-point"):
        clstm.lstm_forward(x, w_ih.astype(int), w_hh)
    _, _, cache = clstm.lstm_forward(x, w_ih, w_hh, train=True)
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 2, 4\)"):
        clstm.lstm_backward(cache, np.zeros((5, 2, 3)))
    clstm.lstm_backward(cache, np.zeros((5, 2, 4)))
    with pytest.raises(RuntimeError, match="already used"):
        clstm.lstm_backward(cache, np.zeros((5, 2, 4)))
    with pytest.raises(TypeError, match="LSTMCache"):
        clstm.lstm_backward({"x": x}, np.zeros((5, 2, 4)))
