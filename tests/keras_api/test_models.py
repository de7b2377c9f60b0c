"""Sequential: the seed snippet, training that learns, masking end to end,
callbacks, summary, weights in Keras's layout."""
import io
import re

import numpy as np
import pytest

from clstm.keras import Sequential, callbacks, optimizers, utils
from clstm.keras.layers import LSTM, Bidirectional, Dense, Dropout, Embedding
from reference import finite_difference, rel_err


def _series_task(n=256, T=20, seed=0):
    """Next value of noisy sine waves: learnable, not trivial."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(T + 1)
    s = np.sin(0.3 * t[None, :] + phase[:, None]) + 0.05 * rng.standard_normal((n, T + 1))
    return s[:, :T, None].astype(np.float32), s[:, T:].astype(np.float32)


def test_seed_snippet_runs_unchanged():
    X_train, y_train = _series_task(128)
    X_test, y_test = _series_task(32, seed=1)
    timesteps, features = X_train.shape[1], X_train.shape[2]
    model = Sequential()
    model.add(LSTM(50, input_shape=(timesteps, features)))   # 50 LSTM units
    model.add(Dense(1))
    model.compile(optimizer='adam', loss='mean_squared_error')
    model.fit(X_train, y_train, epochs=2, batch_size=32, verbose=0)
    pred = model.predict(X_test)
    assert pred.shape == (32, 1) and pred.dtype == np.float32
    assert np.isfinite(model.evaluate(X_test, y_test, verbose=0))


def test_training_reaches_low_loss():
    utils.set_random_seed(0)
    x, y = _series_task(512)
    model = Sequential([LSTM(32, input_shape=(20, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    hist = model.fit(x, y, epochs=15, batch_size=32, verbose=0, validation_split=0.2)
    assert hist.history["loss"][-1] < 0.1 * hist.history["loss"][0]
    assert hist.history["val_loss"][-1] < 0.02
    assert set(hist.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert len(hist.history["loss"]) == 15


def test_classification_with_embedding_masking_and_bidirectional():
    """Class = whether token 3 occurs in a variable-length, zero-padded sequence."""
    utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    n, T = 600, 12
    lengths = rng.integers(2, T + 1, n)
    x = rng.integers(4, 10, (n, T))
    y = (rng.random(n) < 0.5).astype(np.int64)
    for i in range(n):
        if y[i]:
            x[i, rng.integers(0, lengths[i])] = 3
        x[i, lengths[i]:] = 0
    model = Sequential([Embedding(10, 8, mask_zero=True, input_shape=(T,)),
                        Bidirectional(LSTM(16)), Dense(2, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    hist = model.fit(x, y, epochs=12, batch_size=32, verbose=0)
    assert hist.history["accuracy"][-1] > 0.95


def test_masking_gives_each_sequence_alone():
    model = Sequential([Embedding(20, 4, mask_zero=True), LSTM(5, return_sequences=True),
                        LSTM(3)])
    x = np.array([[5, 6, 7, 0, 0], [8, 9, 1, 2, 3]])
    out = model.predict(x)
    alone = model.predict(np.array([[5, 6, 7]]))
    np.testing.assert_allclose(out[0], alone[0], atol=1e-6)


def test_model_gradients_match_finite_differences(float64):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 6, 3))
    y = rng.standard_normal((4, 2))
    model = Sequential([LSTM(4, return_sequences=True, input_shape=(6, 3)), Dropout(0.0),
                        Bidirectional(LSTM(3)), Dense(2, activation="tanh")])
    model.compile(optimizer="sgd", loss="mse")
    out, _ = model._forward(x, training=True)
    value, dy = model.loss.value_and_grad(y, out)
    model._backward(dy)
    grads = model._gradients()

    def loss():
        return float(model.loss(y, model._forward(x, training=False)[0]))

    for g, f in zip(grads, finite_difference(loss, model._variables())):
        assert rel_err(g, f) < 1e-6


def test_get_set_weights_in_keras_order_and_layout():
    model = Sequential([LSTM(5, input_shape=(7, 3)), Dense(2)])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(3, 20), (5, 20), (20,), (5, 2), (2,)]
    new = [np.full(s, 0.01 * (i + 1), np.float32) for i, s in enumerate(shapes)]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="has 5 weight arrays, got 4"):
        model.set_weights(new[:4])
    with pytest.raises(ValueError, match=r"must have shape \(3, 20\), got \(20, 3\)"):
        model.set_weights([new[0].T] + new[1:])


def test_summary_like_keras():
    model = Sequential([LSTM(50, input_shape=(60, 1)), Dense(1)])
    buf = io.StringIO()
    model.summary(print_fn=lambda s: buf.write(s + "\n"))
    text = buf.getvalue()
    assert re.search(r"lstm\S* \(LSTM\)\s+\(None, 50\)\s+10,400", text)
    assert re.search(r"dense\S* \(Dense\)\s+\(None, 1\)\s+51", text)
    assert "Total params: 10,451" in text


def test_early_stopping_restores_best_weights():
    x, y = _series_task(128)
    model = Sequential([LSTM(8, input_shape=(20, 1)), Dense(1)])
    model.compile(optimizer=optimizers.SGD(learning_rate=5.0), loss="mse")  # diverges
    es = callbacks.EarlyStopping(monitor="loss", patience=1, restore_best_weights=True)
    seen = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["loss"], self.model.get_weights()))

    hist = model.fit(x, y, epochs=30, batch_size=16, verbose=0, callbacks=[Snap(), es])
    assert len(hist.history["loss"]) < 30
    best = min(range(len(seen)), key=lambda i: seen[i][0])
    for a, b in zip(model.get_weights(), seen[best][1]):
        np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_training(capsys):
    x, y = _series_task(64)
    y[5] = np.nan
    model = Sequential([LSTM(4, input_shape=(20, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(x, y, epochs=5, batch_size=64, verbose=0, shuffle=False)
    assert len(hist.history["loss"]) == 1
    assert "invalid loss" in capsys.readouterr().err


def test_verbose_progress_line(capsys):
    x, y = _series_task(64)
    model = Sequential([LSTM(4, input_shape=(20, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=1, validation_data=(x[:8], y[:8]))
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert re.search(r"4/4 \[=+\] - \d+(ms|us)/step - loss: \d\.\d{4} - mae: \d\.\d{4} - "
                     r"val_loss: \d\.\d{4} - val_mae: \d\.\d{4}", out)


def test_set_random_seed_makes_runs_repeatable():
    x, y = _series_task(64)

    def run():
        utils.set_random_seed(42)
        model = Sequential([LSTM(6, input_shape=(20, 1), dropout=0.2), Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return model.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]

    assert run() == run()


def test_stateful_truncated_bptt():
    """A long sequence fed in chunks with stateful=True, shuffle=False."""
    utils.set_random_seed(3)
    x, y = _series_task(32, T=40)
    model = Sequential([LSTM(8, stateful=True, batch_input_shape=(8, 10, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    for chunk in range(4):
        model.fit(x[:8, chunk * 10:(chunk + 1) * 10], y[:8], epochs=1, batch_size=8,
                  shuffle=False, verbose=0)
    assert model.layers[0].states is not None
    model.reset_states()
    assert model.layers[0].states is None


def test_errors_are_clear():
    model = Sequential([LSTM(4, input_shape=(5, 2)), Dense(1)])
    with pytest.raises(RuntimeError, match="must be compiled"):
        model.fit(np.zeros((4, 5, 2)), np.zeros((4, 1)))
    model.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="different numbers of samples: 4 and 3"):
        model.fit(np.zeros((4, 5, 2)), np.zeros((3, 1)), verbose=0)
    with pytest.raises(ValueError, match=r"expects inputs of shape \(None, 5, 2\), "
                                         r"got \(None, 5, 3\)"):
        model.predict(np.zeros((4, 5, 3)))
    with pytest.raises(TypeError, match="numeric array"):
        model.predict(np.array([["a"]]))
    with pytest.raises(ValueError, match="return_state=True"):
        Sequential([LSTM(3, return_state=True)])
    with pytest.raises(TypeError, match="clstm.keras layer"):
        Sequential().add("lstm")


def test_model_checkpoint_and_initial_epoch(tmp_path):
    from clstm.keras import load_model
    x, y = _series_task(64)
    model = Sequential([LSTM(4, input_shape=(20, 1)), Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}.clstm"), monitor="loss")
    hist = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0, callbacks=[ckpt])
    assert hist.epoch == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-02.clstm", "m-03.clstm"]
    np.testing.assert_array_equal(load_model(tmp_path / "m-03.clstm").predict(x),
                                  model.predict(x))
    best = callbacks.ModelCheckpoint(str(tmp_path / "best.clstm"), monitor="loss",
                                     save_best_only=True, save_weights_only=True)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[best])
    assert (tmp_path / "best.clstm").exists()


def test_early_stopping_min_delta_needs_a_real_improvement():
    es = callbacks.EarlyStopping(monitor="loss", min_delta=0.1, patience=1)

    class Model:
        stop_training = False

    es.set_model(Model())
    es.on_train_begin()
    for epoch, loss in enumerate([1.0, 0.95, 0.93]):     # better, but by less than 0.1
        es.on_epoch_end(epoch, {"loss": loss})
    assert es.model.stop_training and es.best == 1.0
    es = callbacks.EarlyStopping(monitor="acc", min_delta=0.1, patience=1)
    es.set_model(Model())
    es.on_train_begin()
    for epoch, acc in enumerate([0.5, 0.7, 0.85]):       # better by more than 0.1 each time
        es.on_epoch_end(epoch, {"acc": acc})
    assert not es.model.stop_training and es.best == 0.85
