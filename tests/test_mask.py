"""Step masks (padding): a masked run equals running each sequence alone on
its real steps; padded outputs are 0; gradients through padding are 0."""
import numpy as np
import pytest

import clstm
from reference import finite_difference, ref_lstm, rel_err


def _lengths_mask(lengths, T, pre=False):
    t = np.arange(T)[:, None]
    L = np.asarray(lengths)[None, :]
    return (t >= T - L) if pre else (t < L)            # (T, B)


@pytest.mark.parametrize("pre", [False, True])
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 3e-5)])
def test_masked_batch_equals_each_sequence_alone(pre, bidir, train, dtype, tol):
    rng = np.random.default_rng(0)
    T, B, I, H, L = 9, 5, 3, 4, 2
    lengths = [9, 4, 1, 7, 0]
    lstm = clstm.LSTM(I, H, num_layers=L, bidirectional=bidir, dtype=dtype, seed=0)
    D = 2 if bidir else 1
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((L * D, B, H)), rng.standard_normal((L * D, B, H))
    mask = _lengths_mask(lengths, T, pre)
    y, (hn, cn) = lstm.forward(x, (h0, c0), mask=mask, train=train)
    p = lstm.state_dict()
    for b, n in enumerate(lengths):
        steps = np.flatnonzero(mask[:, b])
        yr, hr, cr = ref_lstm(x[steps, b:b + 1], p, L, bidir, h0[:, b:b + 1], c0[:, b:b + 1])
        np.testing.assert_allclose(y[steps, b], yr[:, 0], atol=tol)
        np.testing.assert_allclose(hn[:, b], hr[:, 0], atol=tol)
        np.testing.assert_allclose(cn[:, b], cr[:, 0], atol=tol)
        assert not y[~mask[:, b], b].any()                # padded outputs are 0


@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("pre", [False, True])
def test_masked_gradients_match_finite_differences(bidir, pre):
    rng = np.random.default_rng(1)
    T, B, I, H, L = 6, 3, 2, 3, 2
    lstm = clstm.LSTM(I, H, num_layers=L, bidirectional=bidir, dtype=np.float64, seed=1)
    for _, prm in lstm.named_parameters():
        prm[...] = rng.uniform(-0.8, 0.8, prm.shape)
    D = 2 if bidir else 1
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((L * D, B, H)), rng.standard_normal((L * D, B, H))
    mask = _lengths_mask([6, 2, 4], T, pre)
    mask[3, 0] = False                                    # a hole mid-sequence too
    ry = rng.standard_normal((T, B, D * H))
    rh, rc = rng.standard_normal(h0.shape), rng.standard_normal(c0.shape)

    def loss():
        y, (h, c) = lstm.forward(x, (h0, c0), mask=mask)
        return float(np.sum(y * ry) + np.sum(h * rh) + np.sum(c * rc))

    lstm.forward(x, (h0, c0), mask=mask, train=True)
    dx, (dh0, dc0) = lstm.backward(ry, (rh, rc))
    names = [n for n, _ in lstm.named_parameters()]
    fds = finite_difference(loss, [x, h0, c0] + lstm.parameters())
    for what, got, want in zip(["x", "h0", "c0"] + names,
                               [dx, dh0, dc0] + [lstm.grads[n] for n in names], fds):
        assert rel_err(got, want) < 1e-6, (what, rel_err(got, want))
    assert not dx[~mask].any()                            # no gradient into padding


def test_mask_layouts_and_errors():
    lstm = clstm.LSTM(2, 3, batch_first=True, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 5, 2))     # (B, T, I)
    mask_bt = np.arange(5)[None, :] < np.array([5, 3, 1, 0])[:, None]
    y, _ = lstm(x, mask=mask_bt)
    assert not y[1, 3:].any() and y[1, :3].all()
    y1, _ = lstm(x[1, :3])
    np.testing.assert_allclose(y[1, :3], y1, atol=1e-14)
    y_u, _ = lstm(x[1], mask=mask_bt[1])                      # unbatched (T,) mask
    np.testing.assert_allclose(y_u[:3], y1, atol=1e-14)
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 5\), got \(5, 4\)"):
        lstm(x, mask=mask_bt.T)
    with pytest.raises(TypeError, match="mask must be a boolean array"):
        lstm(x, mask=np.array([["a"] * 5] * 4))


def test_functional_mask_matches_class():
    lstm = clstm.LSTM(3, 4, dtype=np.float64, seed=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 2, 3))
    mask = _lengths_mask([3, 6], 6)
    y, (h, c) = lstm(x, mask=mask)
    p = lstm.state_dict()
    yf, (hf, cf) = clstm.lstm_forward(x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"],
                                      p["bias_hh_l0"], mask=mask)
    np.testing.assert_allclose(y, yf, atol=1e-14)
    np.testing.assert_allclose(h[0], hf, atol=1e-14)
    np.testing.assert_allclose(c[0], cf, atol=1e-14)
