"""Backpropagation through time against central finite differences (float64)
and float32 gradients against float64 ones."""
import itertools

import numpy as np
import pytest

import clstm
from reference import finite_difference, rel_err


def _problem(layers, bidir, batch_first, bias, T=4, B=2, I=3, H=3, dropout=0.0,
             dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    lstm = clstm.LSTM(I, H, num_layers=layers, bidirectional=bidir, batch_first=batch_first,
                      bias=bias, dropout=dropout, dtype=dtype, seed=seed)
    for name, p in lstm.named_parameters():  # larger weights: gradients not all tiny
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    D = 2 if bidir else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    h0 = rng.standard_normal((layers * D, B, H))
    c0 = rng.standard_normal((layers * D, B, H))
    ry = rng.standard_normal((B, T, D * H) if batch_first else (T, B, D * H))
    rh = rng.standard_normal(h0.shape)
    rc = rng.standard_normal(c0.shape)
    return lstm, x, h0, c0, ry, rh, rc


def _loss_fn(lstm, x, h0, c0, ry, rh, rc, train, mask_seed=None):
    def loss():
        if mask_seed is not None:  # same dropout masks on every call
            lstm._rng = np.random.default_rng(mask_seed)
        y, (h, c) = lstm.forward(x, (h0, c0), train=train)
        return float(np.sum(y * ry) + np.sum(h * rh) + np.sum(c * rc))
    return loss


def _check_against_finite_differences(lstm, x, h0, c0, ry, rh, rc):
    """Every gradient of one forward(train) + backward against central
    finite differences of the same loss."""
    lstm.forward(x, (h0, c0), train=True)
    dx, (dh0, dc0) = lstm.backward(ry, (rh, rc))
    loss = _loss_fn(lstm, x, h0, c0, ry, rh, rc, train=False)
    names = [n for n, _ in lstm.named_parameters()]
    fds = finite_difference(loss, [x, h0, c0] + lstm.parameters())
    for what, got, want in zip(["x", "h0", "c0"] + names, [dx, dh0, dc0] +
                               [lstm.grads[n] for n in names], fds):
        assert got.shape == want.shape, what
        assert rel_err(got, want) < 1e-6, (what, rel_err(got, want))


@pytest.mark.parametrize("layers,bidir,batch_first,bias", list(itertools.product(
    [1, 2], [False, True], [False, True], [True, False])))
def test_all_gradients_match_finite_differences(layers, bidir, batch_first, bias):
    _check_against_finite_differences(*_problem(layers, bidir, batch_first, bias))


@pytest.mark.parametrize("H", [3, 9])
@pytest.mark.parametrize("bidir", [False, True])
def test_batch_of_one_gradients_match_finite_differences(H, bidir):
    # B = 1 takes the backward's dot-product path for dh = dG W_hh (4H = 12
    # and 36: a whole vector and a tail in float64)
    _check_against_finite_differences(*_problem(1, bidir, False, True, T=5, B=1, I=2, H=H))


def test_three_layers_long_sequence():
    lstm, x, h0, c0, ry, rh, rc = _problem(3, True, False, True, T=12, B=1, I=2, H=2)
    lstm.forward(x, (h0, c0), train=True)
    dx, (dh0, dc0) = lstm.backward(ry, (rh, rc))
    loss = _loss_fn(lstm, x, h0, c0, ry, rh, rc, train=False)
    fx, fh, fc, fw = finite_difference(loss, [x, h0, c0, lstm.weight_hh_l0_reverse])
    assert rel_err(dx, fx) < 1e-6 and rel_err(dh0, fh) < 1e-6 and rel_err(dc0, fc) < 1e-6
    assert rel_err(lstm.grads["weight_hh_l0_reverse"], fw) < 1e-6


def test_dropout_gradients_use_the_forward_masks():
    lstm, x, h0, c0, ry, rh, rc = _problem(3, True, False, True, dropout=0.4)
    lstm._rng = np.random.default_rng(11)
    lstm.forward(x, (h0, c0), train=True)
    dx, (dh0, dc0) = lstm.backward(ry, (rh, rc))
    loss = _loss_fn(lstm, x, h0, c0, ry, rh, rc, train=True, mask_seed=11)
    fds = finite_difference(loss, [x, h0, c0, lstm.weight_ih_l1, lstm.weight_ih_l0])
    got = [dx, dh0, dc0, lstm.grads["weight_ih_l1"], lstm.grads["weight_ih_l0"]]
    for g, f in zip(got, fds):
        assert rel_err(g, f) < 1e-6


def test_dropout_masks_scale_and_rate():
    lstm = clstm.LSTM(4, 64, num_layers=2, dropout=0.3, dtype=np.float64, seed=0)
    x = np.random.default_rng(0).standard_normal((50, 20, 4))
    y_eval, _ = lstm(x)
    y_train, _ = lstm.forward(x, train=True)
    mask = lstm._cache["layers"][0]["dropout"]
    kept = mask != 0
    assert abs(1 - kept.mean() - 0.3) < 0.01
    np.testing.assert_allclose(mask[kept], 1 / 0.7)
    assert not np.allclose(y_eval, y_train)     # dropout changed layer 2's input
    y_again, _ = lstm(x)                        # inference never drops
    np.testing.assert_array_equal(y_eval, y_again)


@pytest.mark.parametrize("bidir", [False, True])
def test_float32_gradients_match_float64(bidir):
    lstm64, x, h0, c0, ry, rh, rc = _problem(2, bidir, False, True, T=20, B=4, I=5, H=16)
    lstm32 = clstm.LSTM(5, 16, num_layers=2, bidirectional=bidir, dtype=np.float32)
    lstm32.load_state_dict(lstm64.state_dict())
    out = []
    for m in (lstm64, lstm32):
        m.forward(x, (h0, c0), train=True)
        dx, (dh0, dc0) = m.backward(ry, (rh, rc))
        out.append([dx, dh0, dc0] + [m.grads[n] for n, _ in m.named_parameters()])
    for g64, g32 in zip(*out):
        assert g64.dtype == np.float64 and g32.dtype == np.float32
        assert rel_err(g32, g64) < 1e-4


def test_backward_defaults_and_shapes():
    lstm = clstm.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    x = np.random.default_rng(0).standard_normal((5, 7, 3)).astype(np.float32)
    y, (h, c) = lstm.forward(x, train=True)
    dx, (dh0, dc0) = lstm.backward(np.ones_like(y))      # no state gradients: zeros
    assert dx.shape == x.shape and dh0.shape == h.shape and dc0.shape == c.shape
    assert list(lstm.grads) == [n for n, _ in lstm.named_parameters()]
    for n, p in lstm.named_parameters():
        assert lstm.grads[n].shape == p.shape and lstm.grads[n].dtype == np.float32


def test_backward_only_once_per_forward():
    lstm = clstm.LSTM(2, 3, seed=0)
    x = np.zeros((4, 1, 2), np.float32)
    with pytest.raises(RuntimeError, match="forward"):
        lstm.backward(np.zeros((4, 1, 3)))
    y, _ = lstm.forward(x, train=True)
    lstm.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="forward"):
        lstm.backward(np.ones_like(y))
    lstm(x)                                  # inference does not arm backward
    with pytest.raises(RuntimeError):
        lstm.backward(np.ones_like(y))


def test_gradient_descent_reduces_loss():
    """A few steps of plain SGD with these gradients fit a small target."""
    rng = np.random.default_rng(0)
    lstm = clstm.LSTM(2, 8, dtype=np.float64, seed=0)
    x = rng.standard_normal((10, 16, 2))
    target = np.tanh(np.cumsum(x[..., :1], axis=0) * 0.3)
    losses = []
    for _ in range(60):
        y, _ = lstm.forward(x, train=True)
        err = y[..., :1] - target
        losses.append(float(np.mean(err ** 2)))
        dy = np.zeros_like(y)
        dy[..., :1] = 2 * err / err.size
        lstm.backward(dy)
        for n, p in lstm.named_parameters():
            p -= 0.5 * lstm.grads[n]
    assert losses[-1] < 0.3 * losses[0]


def _two_backwards(keep, I=6, H=5):
    """Two backward passes of different data; `keep` picks what of the first
    pass's gradients the caller holds on to.  Returns the LSTM, the first
    pass's gradients as held and as copied at once, and the second's."""
    lstm = clstm.LSTM(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    rng = np.random.default_rng(3)
    x1, x2 = rng.standard_normal((2, 4, 3, I))
    y, _ = lstm.forward(x1, train=True)
    lstm.backward(np.ones_like(y))
    first_copy = {k: v.copy() for k, v in lstm.grads.items()}
    held = keep(lstm.grads)
    y, _ = lstm.forward(x2, train=True)
    lstm.backward(np.ones_like(y))
    return lstm, held, first_copy, dict(lstm.grads)


# (I, H): the weight gradients under _alloc.MIN_BYTES (numpy's own arrays),
# and over it (64-byte aligned views into a byte buffer, where numpy points
# every view of the array)
@pytest.mark.parametrize("I, H", [(6, 5), (30, 40)])
@pytest.mark.parametrize("keep", ["nothing", "the dict", "one array", "a view"])
def test_gradient_arrays_are_reused_only_when_nobody_holds_them(keep, I, H):
    # backward reuses the last call's gradient arrays (new pages fault on
    # first write) unless the caller still refers to them
    held_of = {"nothing": lambda g: None, "the dict": lambda g: g,
               "one array": lambda g: g["weight_hh_l1_reverse"],
               "a view": lambda g: g["weight_ih_l0"][1:3]}[keep]
    ids = {}
    lstm, held, first, second = _two_backwards(
        lambda g: (ids.update({k: id(v.base if v.base is not None else v) for k, v in g.items()}),
                   held_of(g))[1], I, H)
    # the second pass's gradients are right whatever was reused
    fresh = clstm.LSTM(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    rng = np.random.default_rng(3)
    _, x2 = rng.standard_normal((2, 4, 3, I))
    y, _ = fresh.forward(x2, train=True)
    fresh.backward(np.ones_like(y))
    for k, v in fresh.grads.items():
        np.testing.assert_array_equal(second[k], v, err_msg=k)
    if keep == "the dict":
        for k, v in held.items():
            np.testing.assert_array_equal(v, first[k], err_msg=k)
    elif keep == "one array":
        np.testing.assert_array_equal(held, first["weight_hh_l1_reverse"])
    elif keep == "a view":
        np.testing.assert_array_equal(held, first["weight_ih_l0"][1:3])
    if keep == "nothing":   # every weight gradient's array came back
        for k in ("weight_ih_l0", "weight_hh_l1_reverse", "bias_ih_l1"):
            v = second[k]
            assert id(v.base if v.base is not None else v) == ids[k], k
