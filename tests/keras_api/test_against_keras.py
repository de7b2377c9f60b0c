"""The same models in real Keras 3 (when installed; on the torch backend
here) and in clstm.keras: weights carried over by get_weights/set_weights
give the same predictions, and the same training steps give the same
weights.  Skipped without Keras."""
import numpy as np
import pytest

import clstm.keras as ck
from clstm.keras import layers as cl

keras = pytest.importorskip("keras", minversion="3.0")


def _pair(build):
    """build(layers_module) -> list of layers; returns (keras model, clstm model)."""
    km = keras.Sequential(build(keras.layers))
    cm = ck.Sequential(build(cl))
    return km, cm


def _first(L, shape, layer):
    """Keras 3 wants an Input; clstm takes input_shape on the first layer."""
    if L is keras.layers:
        return [L.Input(shape=shape), layer]
    layer.input_shape_arg = tuple(shape)
    return [layer]


CASES = {
    "lstm-dense": (lambda L: _first(L, (12, 3), L.LSTM(7)) + [L.Dense(2)], "float"),
    "seq-backwards": (lambda L: _first(L, (12, 3), L.LSTM(5, return_sequences=True,
                                                          go_backwards=True)) +
                      [L.LSTM(4), L.Dense(1, activation="sigmoid")], "float"),
    "bidirectional": (lambda L: _first(L, (12, 3), L.Bidirectional(
        L.LSTM(6, return_sequences=True))) + [L.Dense(3, activation="softmax")], "float"),
    "masked": (lambda L: _first(L, (12,), L.Embedding(20, 6, mask_zero=True)) +
               [L.Bidirectional(L.LSTM(5, return_sequences=True), merge_mode="sum"),
                L.LSTM(4), L.Dense(2, activation="softmax")], "int"),
}


def _x(kind, n=9):
    rng = np.random.default_rng(0)
    if kind == "int":
        x = rng.integers(1, 20, (n, 12))
        for i, length in enumerate(rng.integers(3, 13, n)):
            x[i, length:] = 0
        return x
    return rng.standard_normal((n, 12, 3)).astype(np.float32)


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_weights_same_predictions(case):
    build, kind = CASES[case]
    km, cm = _pair(build)
    x = _x(kind)
    kw = km.get_weights()
    assert [w.shape for w in kw] == [w.shape for w in cm.get_weights()]
    cm.set_weights(kw)
    np.testing.assert_allclose(cm.predict(x), km.predict(x, verbose=0), atol=2e-5)


@pytest.mark.parametrize("case,loss", [("lstm-dense", "mse"),
                                       ("masked", "sparse_categorical_crossentropy")])
def test_same_training_steps_same_weights(case, loss):
    build, kind = CASES[case]
    km, cm = _pair(build)
    cm.set_weights(km.get_weights())
    x = _x(kind, n=16)
    rng = np.random.default_rng(1)
    y = rng.standard_normal((16, 2)).astype(np.float32) if loss == "mse" else \
        rng.integers(0, 2, 16)
    km.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss=loss)
    cm.compile(optimizer=ck.optimizers.SGD(0.1, momentum=0.5), loss=loss)
    hk = km.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history["loss"]
    hc = cm.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(hc, hk, rtol=1e-4)
    for a, b in zip(cm.get_weights(), km.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
