"""Each clstm.keras layer: outputs against NumPy, gradients against central
finite differences in float64."""
import numpy as np
import pytest

from clstm.keras.layers import LSTM, Bidirectional, Dense, Dropout, Embedding
from reference import finite_difference, ref_direction, rel_err


def _check_grads(layer, x, mask=None, dstate=False):
    """Loss sum(out * R); compares backward's dx and weight grads with FD."""
    rng = np.random.default_rng(0)
    out = layer(x, training=True, mask=mask)
    outs = out if isinstance(out, list) else [out]
    rs = [rng.standard_normal(o.shape) for o in outs]
    if isinstance(out, list):
        dx = layer.backward(rs[0], (rs[1], rs[2]))
    else:
        dx = layer.backward(rs[0])

    def loss():
        o = layer.call(x, training=False, mask=mask)
        o = o if isinstance(o, list) else [o]
        return float(sum(np.sum(a * r) for a, r in zip(o, rs)))

    wrt = ([x] if dx is not None else []) + layer.weights
    fds = finite_difference(loss, wrt)
    got = ([dx] if dx is not None else []) + [layer.grads[n] for n in layer.weight_names]
    for name, g, f in zip((["x"] if dx is not None else []) + layer.weight_names, got, fds):
        assert g.shape == f.shape, name
        assert rel_err(g, f) < 1e-6, (name, rel_err(g, f))


def _lstm_reference(layer, x, go_backwards=False, h0=None, c0=None):
    """Keras LSTM via the NumPy reference: kernel^T is PyTorch's weight_ih."""
    w = dict(zip(layer.weight_names, layer.weights))
    B = x.shape[0]
    H = layer.units
    h0 = np.zeros((B, H)) if h0 is None else h0
    c0 = np.zeros((B, H)) if c0 is None else c0
    return ref_direction(x.transpose(1, 0, 2), w["kernel"].T, w["recurrent_kernel"].T,
                         w.get("bias", 0.0), h0, c0, go_backwards)


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
def test_lstm_matches_reference_and_gradients(float64, return_sequences, go_backwards, use_bias):
    x = np.random.default_rng(1).standard_normal((3, 5, 4))
    layer = LSTM(6, return_sequences=return_sequences, go_backwards=go_backwards,
                 use_bias=use_bias)
    out = layer(x)
    y, h, c = _lstm_reference(layer, x, go_backwards)
    if return_sequences:
        y = y[::-1] if go_backwards else y           # Keras returns the reversed sequence
        np.testing.assert_allclose(out, y.transpose(1, 0, 2), atol=1e-12)
    else:
        np.testing.assert_allclose(out, h, atol=1e-12)
    _check_grads(layer, x)


def test_lstm_return_state_and_initial_state(float64):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 3))
    h0, c0 = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    layer = LSTM(5, return_sequences=True, return_state=True)
    layer.ensure_built(x.shape[1:])
    out, h, c = layer.call(x, initial_state=[h0, c0])
    y, hr, cr = _lstm_reference(layer, x, h0=h0, c0=c0)
    np.testing.assert_allclose(h, hr, atol=1e-12)
    np.testing.assert_allclose(c, cr, atol=1e-12)
    _check_grads(LSTM(5, return_state=True), x)


def test_lstm_keras_initialisation():
    layer = LSTM(8)
    layer.ensure_built((10, 3))
    k, rk, b = layer.weights
    assert k.shape == (3, 32) and rk.shape == (8, 32) and b.shape == (32,)
    assert k.dtype == np.float32
    np.testing.assert_array_equal(b[8:16], 1)                   # unit_forget_bias
    np.testing.assert_array_equal(np.delete(b, np.s_[8:16]), 0)
    np.testing.assert_allclose(rk @ rk.T, np.eye(8), atol=1e-5)  # orthogonal rows
    assert np.abs(k).max() <= np.sqrt(6 / (3 + 32))             # glorot_uniform
    assert layer.count_params() == 4 * 8 * (3 + 8 + 1)


def test_lstm_stateful_carries_state_between_calls(float64):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 3))
    whole = LSTM(4, return_sequences=True)
    y_whole = whole(x)
    parts = LSTM(4, return_sequences=True, stateful=True)
    parts.ensure_built((4, 3))
    parts.set_weights(whole.get_weights())
    y1, y2 = parts(x[:, :4]), parts(x[:, 4:])
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y_whole, atol=1e-12)
    parts.reset_states()
    np.testing.assert_allclose(parts(x[:, :4]), y_whole[:, :4], atol=1e-12)
    with pytest.raises(ValueError, match="batch size 2, got a batch of 3"):
        parts(np.zeros((3, 4, 3)))


def test_lstm_masked_gradients(float64):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 6, 2))
    mask = np.arange(6)[None, :] < np.array([6, 2, 4])[:, None]
    for rs in (False, True):
        _check_grads(LSTM(3, return_sequences=rs), x, mask=mask)
        _check_grads(LSTM(3, return_sequences=rs, go_backwards=True), x, mask=mask)


def test_lstm_dropout_gradient_uses_the_forward_mask(float64):
    layer = LSTM(3, dropout=0.5)
    x = np.random.default_rng(5).standard_normal((4, 5, 6))
    layer(x)                                        # build
    out = layer(x, training=True)
    r = np.ones_like(out)
    dx = layer.backward(r)
    assert (dx == 0).any(axis=1).any()              # dropped features get no gradient
    dropped = (dx == 0).all(axis=1)                 # (B, F): a feature dropped for all steps
    assert 0.2 < dropped.mean() < 0.8


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional(float64, merge_mode, return_sequences):
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    layer = Bidirectional(LSTM(4, return_sequences=return_sequences), merge_mode=merge_mode)
    out = layer(x)
    f, b = layer.forward_layer, layer.backward_layer
    yf, hf, _ = _lstm_reference(f, x)
    yb, hb, _ = _lstm_reference(b, x, go_backwards=True)
    if return_sequences:
        yf, yb = yf.transpose(1, 0, 2), yb.transpose(1, 0, 2)   # time-aligned
    else:
        yf, yb = hf, hb
    want = {"concat": np.concatenate([yf, yb], -1), "sum": yf + yb, "mul": yf * yb,
            "ave": (yf + yb) / 2}[merge_mode]
    np.testing.assert_allclose(out, want, atol=1e-12)
    assert len(layer.weights) == 6
    _check_grads(layer, x)


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax", "linear"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_dense(float64, activation, ndim):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 5) if ndim == 3 else (4, 5))
    layer = Dense(6, activation=activation)
    out = layer(x)
    z = x @ layer.weights[0] + layer.weights[1]
    want = {None: z, "linear": z, "relu": np.maximum(z, 0), "tanh": np.tanh(z),
            "sigmoid": 1 / (1 + np.exp(-z)),
            "softmax": np.exp(z) / np.exp(z).sum(-1, keepdims=True)}[activation]
    np.testing.assert_allclose(out, want, atol=1e-12)
    _check_grads(layer, x)


def test_embedding(float64):
    layer = Embedding(10, 4, mask_zero=True)
    idx = np.array([[1, 2, 0], [9, 0, 0]])
    out = layer(idx)
    np.testing.assert_array_equal(out, layer.weights[0][idx])
    np.testing.assert_array_equal(layer.compute_mask(idx, None), idx != 0)
    layer(idx, training=True)
    r = np.random.default_rng(8).standard_normal(out.shape)
    assert layer.backward(r) is None
    want = np.zeros((10, 4))
    for (b, t), i in np.ndenumerate(idx):
        want[i] += r[b, t]
    np.testing.assert_allclose(layer.grads["embeddings"], want)
    with pytest.raises(ValueError, match="index 10 is out of range for input_dim=10"):
        layer(np.array([[10]]))
    with pytest.raises(ValueError, match="index -1"):
        layer(np.array([[-1]]))
    with pytest.raises(TypeError, match="integer indices"):
        layer(np.array([["a"]]))


def test_dropout_layer():
    layer = Dropout(0.25)
    x = np.ones((200, 50), np.float32)
    np.testing.assert_array_equal(layer(x), x)                  # inference: identity
    y = layer(x, training=True)
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(y[y != 0], 1 / 0.75)
    dx = layer.backward(np.ones_like(y))
    np.testing.assert_array_equal(dx, y)
    with pytest.raises(ValueError, match=r"rate must be a float in \[0, 1\)"):
        Dropout(1.5)


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="units must be >= 1"):
        LSTM(0)
    with pytest.raises(ValueError, match="recurrent_dropout"):
        LSTM(3, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match="activation='tanh'"):
        LSTM(3, activation="relu")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Dense(3, activation="swish")
    with pytest.raises(ValueError, match=r"expects inputs of shape \(batch, timesteps, features\)"):
        LSTM(3)(np.zeros((2, 3)))
    layer = LSTM(3)
    layer(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="was built for inputs of shape"):
        layer(np.zeros((2, 4, 6)))
    with pytest.raises(TypeError, match="Bidirectional wraps an LSTM"):
        Bidirectional(Dense(3))
