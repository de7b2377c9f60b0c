"""forward(train=True) takes the arrays backward() needs (gates, c_t, h_t)
from the previous training call where nothing holds them any more
(LSTM._train_array).  Reused arrays must never leak one call's values into
another: every result here equals a fresh LSTM's, bit for bit."""
import weakref

import numpy as np

import clstm


def _fresh(model):
    twin = clstm.LSTM(model.input_size, model.hidden_size, num_layers=model.num_layers,
                      bidirectional=model.bidirectional, dtype=model.dtype)
    twin.load_state_dict(model.state_dict())
    return twin


def _train_step(model, x, mask, dy):
    y, (hn, cn) = model.forward(x, train=True, mask=mask)
    dx, (dh0, dc0) = model.backward(dy)
    return [y, hn, cn, dx, dh0, dc0] + [g.copy() for g in model.grads.values()]


def test_reused_buffers_match_a_fresh_lstm_over_changing_shapes_and_masks():
    rng = np.random.default_rng(0)
    model = clstm.LSTM(5, 7, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    # the same shape again (reuse), another shape, a mask (h_t kept apart), back
    for T, B, masked in [(6, 3, False), (6, 3, False), (4, 5, True), (4, 5, True),
                         (6, 3, True), (6, 3, False)]:
        x = rng.standard_normal((T, B, 5))
        dy = rng.standard_normal((T, B, 14))
        mask = rng.random((T, B)) < 0.7 if masked else None
        got = _train_step(model, x, mask, dy)
        want = _train_step(_fresh(model), x, mask, dy)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_a_second_training_forward_supersedes_the_first():
    rng = np.random.default_rng(1)
    model = clstm.LSTM(3, 4, seed=0)
    x1, x2 = rng.standard_normal((2, 5, 2, 3)).astype(np.float32)
    dy = rng.standard_normal((5, 2, 4)).astype(np.float32)
    model.forward(x1, train=True)
    got = _train_step(model, x2, None, dy)
    want = _train_step(_fresh(model), x2, None, dy)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_the_gates_array_is_reused_once_backward_let_it_go():
    model = clstm.LSTM(3, 4, seed=0)
    x = np.ones((5, 2, 3), np.float32)
    model.forward(x, train=True)
    first = weakref.ref(model._train_pool["gates_l0"])   # (a reference would keep it)
    model.backward(np.ones((5, 2, 4), np.float32))
    model.forward(x, train=True)
    assert model._train_pool["gates_l0"] is first()
    held = model._cache["layers"][0]["gates"][0]   # someone keeps it: not reused
    model.forward(x, train=True)
    assert model._train_pool["gates_l0"] is not held
