"""Property-based tests of clstm.keras: the layers (LSTM, Bidirectional,
Dense, Embedding, Dropout) and Sequential's compile / fit / predict /
evaluate, over inputs of random rank, shape, dtype, layout and values, and
absurd arguments.  Each case gives the float64 reference's answer (or, for
fit, a finite history and predictions independent of the batch size) or a
Python exception of a fitting type naming what was expected and what came.
All calls into C go through the contract checker of test_fuzz_common."""
import contextlib
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clstm.keras import Sequential, optimizers, utils
from clstm.keras.layers import LSTM, Bidirectional, Dense, Dropout, Embedding
from reference import ref_direction
from test_fuzz_common import (BAD_DTYPES, LAYOUTS, assert_close, cast, core_contract,
                              examples, float_values, layout)
from test_fuzz_lstm import Defects

pytestmark = pytest.mark.usefixtures("core_contract")

NUMERIC_DTYPES = [np.float32, np.float64, np.float16, np.longdouble, np.int32, np.uint8, bool]
REFUSED_DTYPES = [np.complex64, np.complex128, object, "U3", "M8[s]"]


@st.composite
def keras_array(draw, shape, refused_chance=10, bound=None):
    """(passed value, np.asarray of it): numeric mostly (Keras converts ints and
    bools), sometimes complex / object / str / datetime."""
    values = draw(float_values(shape))
    if bound is not None:
        values = np.asarray(np.clip(values, -bound, bound))   # 0-d: clip gives a scalar
    refused = refused_chance is not None and draw(st.integers(0, refused_chance)) == 0
    dtypes = REFUSED_DTYPES if refused else NUMERIC_DTYPES
    dt = draw(st.sampled_from(dtypes))
    how = draw(st.sampled_from(LAYOUTS))
    if how == "list" and (np.dtype(dt).kind in "MmVO" or values.size == 0):
        how = "c"   # an empty array as a list is [], of another shape; objects list as floats
    given_ = layout(cast(values, dt), how)
    return given_, np.asarray(given_)


def ref_keras_lstm(layer, x, h0=None, c0=None, mask=None):
    """Keras LSTM semantics from the float64 reference: (out, h, c) as the
    layer returns them.  x (B, T, F) float64; mask (B, T) or None."""
    w = [np.asarray(a, np.float64) for a in layer.get_weights()]
    w_ih, w_hh = w[0].T, w[1].T
    b = w[2] if layer.use_bias else 0.0
    B, T, _ = x.shape
    H = layer.units
    h0 = np.zeros((B, H)) if h0 is None else h0
    c0 = np.zeros((B, H)) if c0 is None else c0
    y, hn, cn = np.zeros((T, B, H)), np.array(h0, np.float64), np.array(c0, np.float64)
    m = np.ones((B, T), bool) if mask is None else mask
    with np.errstate(all="ignore"):
        for j in range(B):
            steps = np.flatnonzero(m[j])
            if steps.size:
                yj, hn[j], cn[j] = ref_direction(x[j, steps][:, None], w_ih, w_hh, b,
                                                 h0[j:j + 1], c0[j:j + 1], layer.go_backwards)
                y[steps, j] = yj[:, 0]
    if layer.return_sequences:
        out = (y[::-1] if layer.go_backwards else y).transpose(1, 0, 2)
    else:
        out = hn
    return out, hn, cn


_LAYERS = {}


def _lstm_layer(units, F, rs, gb, bias, rstate, stateful, dtype):
    key = (units, F, rs, gb, bias, rstate, stateful, dtype)
    if key not in _LAYERS:
        utils.set_random_seed(len(_LAYERS))
        layer = LSTM(units, return_sequences=rs, go_backwards=gb, use_bias=bias,
                     return_state=rstate, stateful=stateful, dtype=dtype,
                     bias_initializer="random_uniform")
        layer(np.zeros((1, 1, F)))
        _LAYERS[key] = layer
    layer = _LAYERS[key]
    layer.reset_states()
    return layer


@settings(max_examples=examples("keras_lstm_layer"))
@given(st.data())
def test_keras_lstm_layer_any_input(data):
    draw = data.draw
    H, F = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    cfg = dict(rs=draw(st.booleans()), gb=draw(st.booleans()), bias=draw(st.booleans()),
               rstate=draw(st.booleans()), stateful=draw(st.integers(0, 5)) == 0,
               dtype=draw(st.sampled_from(["float32", "float64"])))
    layer = _lstm_layer(H, F, **cfg)
    dt = layer.dtype
    d = Defects()
    B, T = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    Fx = F if draw(st.integers(0, 7)) else draw(st.integers(0, 4))
    shape = draw(st.sampled_from([(B, T, Fx)] * 6 + [(B, T), (B,), (), (B, T, Fx, 1)]))
    x, xa = draw(keras_array(shape))
    direct = draw(st.booleans())       # layer.call(...) rather than layer(...)
    if xa.ndim != 3 or xa.shape[2] != F:
        d.add(ValueError, "expects inputs of shape" if direct else "was built for inputs",
              str(F))
    if xa.dtype.kind not in "fiub":
        d.add(TypeError, "expects numeric input", f"got dtype {xa.dtype}")
    Bx, Tx = (xa.shape[0], xa.shape[1]) if xa.ndim >= 2 else (B, T)
    mask = None
    mkind = draw(st.sampled_from(["none", "none", "ok", "shape", "dtype"]))
    if mkind != "none":
        shp = (Bx, Tx) if mkind != "shape" else (Tx, Bx, 1)
        bits = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(shp) < 0.7
        mask = bits.astype(draw(st.sampled_from([bool, np.int8, np.float32]))
                           if mkind != "dtype" else draw(st.sampled_from([object, "U1"])))
        if mkind == "dtype":
            d.add(TypeError, "mask must be a boolean array", f"got dtype {mask.dtype}")
        elif mask.shape != (Bx, Tx):
            d.add(ValueError, f"mask must have shape {(Bx, Tx)}", f"got {mask.shape}")
    init = None
    ikind = draw(st.sampled_from(["none", "none", "ok", "shape", "one", "dtype"])) if direct \
        else "none"
    states = [None, None]
    if ikind != "none":
        shp = (Bx, H) if ikind != "shape" else (Bx + 1, H)
        init = [draw(keras_array(shp, refused_chance=0 if ikind == "dtype" else None,
                                 bound=1e4)) for _ in range(2)]
        states = [a for _, a in init]
        init = [g for g, _ in init]
        if ikind == "one":
            init = init[:1]
            d.add(ValueError, "initial_state must be [h, c]", "length 1")
        elif ikind == "dtype":
            d.add(TypeError, "expects numeric input", "got dtype")
        elif ikind == "shape":
            d.add(ValueError, f"initial state h must have shape {(Bx, H)}", f"got {(Bx + 1, H)}")
    training = draw(st.booleans())
    if direct:
        kw = {} if init is None else {"initial_state": init}
        run = lambda: layer.call(x, training=training, mask=mask, **kw)   # noqa: E731
    else:
        run = lambda: layer(x, training=training, mask=mask)              # noqa: E731
    if d:
        d.run(run)
        return
    out = run()
    xs = xa.astype(dt).astype(np.float64)
    h0, c0 = ((None, None) if init is None else
              (states[0].astype(dt).astype(np.float64), states[1].astype(dt).astype(np.float64)))
    m = None if mask is None else np.asarray(mask) != 0
    ref = ref_keras_lstm(layer, xs, h0, c0, m)
    outs = out if cfg["rstate"] else [out]
    assert len(outs) == (3 if cfg["rstate"] else 1)
    for got, want, name in zip(outs, ref, ("output", "h", "c")):
        assert got.dtype == dt, (name, got.dtype)
        assert_close(got, want, dt, name, scale=max(1, Tx))
    if cfg["stateful"] and Bx > 0 and Tx > 0:   # the next batch starts from the last state
        out2 = layer(x, mask=mask)
        out2 = out2[0] if cfg["rstate"] else out2
        ref2 = ref_keras_lstm(layer, xs, ref[1], ref[2], m)[0]
        assert_close(out2, ref2, dt, "stateful second batch", scale=max(1, Tx))
        return
    if not training:
        return
    # backward: wrong dy refused (C would read out of bounds), the right one checked
    good = np.ones(outs[0].shape)
    bad = np.ones(draw(st.sampled_from([outs[0].shape + (1,), outs[0].shape[::-1] + (2,),
                                        (outs[0].shape[0] + 1,) + outs[0].shape[1:]])))
    with pytest.raises(ValueError, match=r"backward: dy must have the output's shape"):
        layer.backward(bad)
    dx = layer.backward(good)
    assert dx.shape == xa.shape and dx.dtype == dt
    assert set(layer.grads) == set(layer.weight_names)
    with pytest.raises(RuntimeError, match="needs a call"):
        layer.backward(good)


# ---- Dense, Embedding, Dropout, Bidirectional ------------------------------------------

def _np_act(name, z):
    z = np.asarray(z, np.float64)
    with np.errstate(all="ignore"):
        if name == "linear":
            return z
        if name == "relu":
            return np.maximum(z, 0)
        if name == "tanh":
            return np.tanh(z)
        if name == "sigmoid":
            return 0.5 * (1 + np.tanh(0.5 * z))
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


@settings(max_examples=examples("keras_other_layers"))
@given(st.sampled_from(["dense", "dense", "embedding", "embedding", "dropout", "bidirectional"]),
       st.data())
def test_keras_other_layers_any_input(kind, data):
    draw = data.draw
    utils.set_random_seed(draw(st.integers(0, 1000)))
    d = Defects()
    if kind == "dense":
        F, U = draw(st.integers(0, 3)), draw(st.integers(1, 3))
        act = draw(st.sampled_from(["linear", "relu", "tanh", "sigmoid", "softmax"]))
        layer = Dense(U, activation=act, dtype=draw(st.sampled_from(["float32", "float64"])))
        layer(np.zeros((1, F)))
        shape = draw(st.sampled_from([(2, F), (3, 2, F), (0, F), (2, F + 1), (2,), ()]))
        x, xa = draw(keras_array(shape, bound=1e4))
        if xa.ndim != 2 or xa.shape[-1] != F:     # built for (batch, F): the same rank
            d.add(ValueError, "was built for inputs", str(F))
        if xa.dtype.kind not in "fiub":
            d.add(TypeError, "expects numeric input", f"got dtype {xa.dtype}")
        if d:
            d.run(lambda: layer(x))
            return
        y = layer(x)
        k, b = (np.asarray(w, np.float64) for w in layer.get_weights())
        with np.errstate(all="ignore"):
            z = (xa.astype(layer.dtype).astype(np.float64) @ k + b).astype(layer.dtype)
        want = _np_act(act, z)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
        dx = layer.backward(np.ones(y.shape))      # F = 0 crashed here (reshape(-1, 0))
        assert dx.shape == xa.shape and layer.grads["kernel"].shape == k.shape
        with pytest.raises(ValueError, match="dy must have the output's shape"):
            layer.backward(np.ones(y.shape + (1,)))
    elif kind == "embedding":
        V, E = draw(st.integers(1, 6)), draw(st.integers(1, 3))
        layer = Embedding(V, E, mask_zero=draw(st.booleans()))
        layer(np.zeros((1, 2), int))
        shape = (draw(st.integers(0, 3)), 2)
        raw = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(-2, V + 2, shape)
        dt = draw(st.sampled_from([np.int64, np.int8, np.uint64, np.float64, np.float32, bool,
                                   np.complex64, object]))
        with np.errstate(all="ignore"):
            xa = raw.astype(dt) if dt not in (np.uint64,) else np.where(raw < 0, 2**64 - 1,
                                                                        raw).astype(dt)
        if draw(st.integers(0, 4)) == 0 and xa.size and np.dtype(dt).kind == "f":
            xa.flat[0] = draw(st.sampled_from([np.nan, np.inf, 0.5, 1e300]))
        x = layout(xa, draw(st.sampled_from(["c", "fortran", "negative", "list"])))
        xa = np.asarray(x)
        if xa.ndim != 2:                    # an empty array as a list is [], shape (0,)
            d.add(ValueError, "was built for inputs of shape (batch, 2)", f"{xa.shape[1:]}"[:-2])
        if xa.dtype.kind == "f" and (not np.isfinite(xa).all() or (xa != np.round(xa)).any()):
            d.add(ValueError, "expects integer indices", "non-integral")
        elif xa.dtype.kind not in "iuf":
            d.add(TypeError, "expects integer indices", f"got dtype {xa.dtype}")
        elif xa.size and (xa.min() < 0 or xa.max() >= V):
            bad = xa.min() if xa.min() < 0 else xa.max()
            d.add(ValueError, f"index {bad} is out of range", f"input_dim={V}")
        if d:
            d.run(lambda: layer(x))
            return
        y = layer(x)
        np.testing.assert_array_equal(y, layer.get_weights()[0][xa.astype(np.int64)])
        assert layer.backward(np.ones(y.shape)) is None
        g = layer.grads["embeddings"]
        np.testing.assert_array_equal(g.sum(axis=1), np.bincount(
            xa.astype(np.int64).ravel(), minlength=V) * E)
    elif kind == "dropout":
        rate = draw(st.sampled_from([0.0, 0.3, 0.9]))
        shape = draw(st.sampled_from([(2, 3), (2, 3, 4), (0, 3)]))
        ns = draw(st.sampled_from([None, "ok", "bad"]))
        noise = None if ns is None else ((1,) + shape[1:] if ns == "ok" else shape + (1,))
        layer = Dropout(rate, noise_shape=noise)
        x, xa = draw(keras_array(shape, bound=1e4))
        if xa.dtype.kind not in "fiub":
            d.add(TypeError, "expects numeric input", f"got dtype {xa.dtype}")
        elif ns == "bad" and rate > 0:
            d.add(ValueError, f"noise_shape {noise} does not fit", str(shape))
        if d:
            d.run(lambda: layer(x, training=True))
            return
        xf = xa.astype(layer.dtype)
        np.testing.assert_array_equal(layer(x), xf)                    # inference: identity
        y = layer(x, training=True)
        kept = y != 0
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(y[kept], (xf / np.float32(1 - rate))[kept], rtol=1e-6)
        assert layer.backward(np.ones(y.shape)).shape == y.shape
    else:
        H, F = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        merge = draw(st.sampled_from(["concat", "sum", "mul", "ave", "max"]))
        if merge == "max":
            with pytest.raises(ValueError, match="merge_mode must be one of .* got 'max'"):
                Bidirectional(LSTM(H), merge_mode=merge)
            return
        rs = draw(st.booleans())
        layer = Bidirectional(LSTM(H, return_sequences=rs), merge_mode=merge)
        B, T = draw(st.integers(0, 3)), draw(st.integers(0, 4))
        layer(np.zeros((1, 1, F)))
        x, xa = draw(keras_array((B, T, F), bound=1e4))
        if xa.dtype.kind not in "fiub":
            d.run_ = None
            with pytest.raises(TypeError, match="expects numeric input"):
                layer(x)
            return
        y = layer(x, training=True)
        xs = xa.astype(np.float32).astype(np.float64)
        yf = ref_keras_lstm(layer.forward_layer, xs)[0]
        yb = ref_keras_lstm(layer.backward_layer, xs)[0]
        if rs:
            yb = yb[:, ::-1]
        want = {"concat": lambda: np.concatenate([yf, yb], -1), "sum": lambda: yf + yb,
                "mul": lambda: yf * yb, "ave": lambda: (yf + yb) / 2}[merge]()
        assert_close(y, want, np.float32, "bidirectional", scale=max(1, T))
        with pytest.raises(ValueError, match="dy must have the output's shape"):
            layer.backward(np.ones(y.shape + (1,)))
        assert layer.backward(np.ones(y.shape)).shape == xa.shape


# ---- Sequential: compile / fit / predict / evaluate ------------------------------------

BATCH_SIZES = [None, 1, 2, 3, 32, np.int64(4), 0, -1, 2.5, "8", True, 2**40]
EPOCHS = [1, 2, 0, np.int32(1), -1, 1.5, "2", None]


def _arg_defect(d, value, name, minimum, default_ok=False):
    if value is None and default_ok:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        d.add(TypeError, f"{name} must be an int", type(value).__name__)
    elif value < minimum:
        d.add(ValueError, f"{name} must be >= {minimum}", f"got {value}")
    elif value > 2**31 - 1:
        d.add(ValueError, f"{name} must be <= {2**31 - 1}", f"got {value}")


@settings(max_examples=examples("keras_model"))
@given(st.data())
def test_keras_model_fit_predict_any_arguments(data):
    draw = data.draw
    utils.set_random_seed(draw(st.integers(0, 1000)))
    arch = draw(st.sampled_from(["lstm", "stacked", "embedding", "bidirectional"]))
    T, F, H, K = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3)), \
        draw(st.integers(1, 3))
    if arch == "lstm":
        layers = [LSTM(H, input_shape=(T, F)), Dense(K)]
    elif arch == "stacked":
        layers = [LSTM(H, return_sequences=True, input_shape=(T, F)), Dropout(0.2),
                  LSTM(H, go_backwards=True), Dense(K)]
    elif arch == "embedding":
        layers = [Embedding(6, F, mask_zero=True, input_shape=(T,)), LSTM(H), Dense(K)]
    else:
        layers = [Bidirectional(LSTM(H, return_sequences=True), input_shape=(T, F)),
                  LSTM(H), Dense(K)]
    model = Sequential(layers)
    opt = draw(st.sampled_from([
        lambda: optimizers.SGD(0.01, clipnorm=1.0), lambda: optimizers.Adam(0.01),
        lambda: optimizers.RMSprop(0.01, clipvalue=0.5), lambda: "adagrad"]))()
    model.compile(optimizer=opt, loss=draw(st.sampled_from(["mse", "mae"])))
    N = draw(st.integers(0, 7))
    d = Defects()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if arch == "embedding":
        xa = rng.integers(0, 6, (N, T))
        x = xa
    else:
        x, xa = draw(keras_array((N, T, F), refused_chance=15, bound=1e3))
    ya = rng.standard_normal((N, K)) if draw(st.integers(0, 7)) else \
        rng.standard_normal(draw(st.sampled_from([(N + 1, K), (N, K + 1), (N,)])))
    if arch != "embedding" and xa.dtype.kind not in "fiub":
        d.add(TypeError, "x must be a numeric array", f"got dtype {xa.dtype}")
    if len(ya) != N:
        d.add(ValueError, "different numbers of samples", f"{N} and {len(ya)}")
    bs, epochs = draw(st.sampled_from(BATCH_SIZES)), draw(st.sampled_from(EPOCHS))
    # Keras reads y (N,) as (N, 1): a mismatch only where K > 1
    y_mismatch = len(ya) == N and ya.shape != (N, K) and not (K == 1 and ya.shape == (N,))
    _arg_defect(d, bs, "batch_size", 1, default_ok=True)
    _arg_defect(d, epochs, "epochs", 0)
    vkind = draw(st.sampled_from(["none", "none", "split", "data", "bad_split", "bad_data"]))
    kw = {}
    if vkind == "split":
        kw["validation_split"] = 0.5
    elif vkind == "bad_split":
        kw["validation_split"] = draw(st.sampled_from([1.5, -0.2, "0.1"]))
        if isinstance(kw["validation_split"], str):
            d.add(TypeError, "validation_split must be a float", "'0.1'")
        else:
            d.add(ValueError, "validation_split must be in (0, 1)", str(kw["validation_split"]))
    elif vkind == "data":
        kw["validation_data"] = (x, ya)
    elif vkind == "bad_data":
        # x alone as an array: a list x of two samples would read as (x_val, y_val)
        kw["validation_data"] = draw(st.sampled_from([(x,), (x, ya, ya), xa]))
        d.add(ValueError, "validation_data must be a tuple (x_val, y_val)", "got")
    split_n = int(N * 0.5) if vkind == "split" else N
    if y_mismatch and epochs != 0 and split_n > 0:   # found when the loss is first computed
        d.add(ValueError, "y_true shape", "is incompatible with y_pred shape")
    if not d and split_n == 0:
        d.add(ValueError, "no training samples")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        if d:
            d.run(lambda: model.fit(x, ya, batch_size=bs, epochs=epochs, verbose=0, **kw))
            return
        hist = model.fit(x, ya, batch_size=bs, epochs=epochs, verbose=0, **kw)
    if y_mismatch:                       # epochs=0: nothing computed, nothing to check
        assert hist.history == {}
        return
    losses = hist.history.get("loss", [])
    finite_data = np.isfinite(xa.astype(np.float32)).all()
    if "invalid loss" in err.getvalue():       # TerminateOnNaN stopped it: said so
        assert not np.isfinite(losses[-1]) and len(losses) <= epochs
    else:
        assert len(losses) == epochs
        if finite_data:
            assert np.isfinite(losses).all(), losses
    if vkind in ("split", "data") and epochs:
        assert len(hist.history["val_loss"]) == len(losses)
    # predictions do not depend on the batch size they are computed in
    p_all = model.predict(x, batch_size=max(N, 1))
    assert p_all.shape == (N, K) and p_all.dtype == np.float32
    for b in (1, 2, 5):
        np.testing.assert_allclose(model.predict(x, batch_size=b), p_all, rtol=1e-5, atol=1e-6)
    with pytest.raises((TypeError, ValueError), match="batch_size must be"):
        model.predict(x, batch_size=draw(st.sampled_from([0, -3, 1.5, "2"])))
    if N:
        ev = model.evaluate(x, ya, verbose=0, batch_size=3)
        yk = ya.reshape(N, K)   # y (N,) with K = 1 is read as (N, 1)
        want = float(np.mean(np.abs(p_all - yk) ** (2 if model.loss.name.endswith("squared_error")
                                                       else 1)))
        if np.isfinite(want):
            assert ev == pytest.approx(want, rel=1e-4, abs=1e-6)


# ---- numerics of training: NaN stops fit, clipnorm bounds exploding gradients ------------

def test_fit_stops_with_a_clear_message_when_the_loss_becomes_nan():
    utils.set_random_seed(0)
    model = Sequential([LSTM(3, input_shape=(4, 2)), Dense(1)])
    model.compile(optimizer=optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).standard_normal((16, 4, 2)).astype(np.float32)
    y = np.zeros((16, 1), np.float32)
    y[9] = np.nan                                # reached in the second batch of 8
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        hist = model.fit(x, y, epochs=5, batch_size=8, shuffle=False, verbose=0)
    assert "Batch 1: invalid loss (nan), terminating training" in err.getvalue()
    assert len(hist.history["loss"]) == 1 and model.stop_training


def test_clipnorm_keeps_exploding_gradients_finite():
    """Targets of 1e15 make the MSE gradients ~1e15 (finite in float32); with
    clipnorm=1 every update has norm <= lr per weight tensor and the weights
    stay finite; without clipping they blow up."""
    utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((8, 5, 3)).astype(np.float32)
    y = np.full((8, 2), 1e15, np.float32)
    for clip in (1.0, None):
        model = Sequential([LSTM(4, input_shape=(5, 3)), Dense(2)])
        model.compile(optimizer=optimizers.SGD(0.01, clipnorm=clip), loss="mse")
        before = [w.copy() for w in model.get_weights()]
        model.train_on_batch(x, y)
        after = model.get_weights()
        steps = [np.linalg.norm((a - b).astype(np.float64)) for a, b in zip(after, before)]
        if clip:
            assert all(np.isfinite(w).all() for w in after)
            assert max(steps) <= 0.01 * clip * (1 + 1e-5), steps
        else:
            assert max(steps) > 1e10                  # what the clipping prevented
