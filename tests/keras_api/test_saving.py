"""model.save / load_model: identical predictions after a round trip, the
compile settings restored, and damaged or foreign files refused with a
clear error that leaves everything as it was."""
import os
import zipfile

import numpy as np
import pytest

from clstm.keras import ModelFileError, Sequential, load_model, optimizers
from clstm.keras.layers import LSTM, Bidirectional, Dense, Dropout, Embedding


def _model():
    m = Sequential([Embedding(12, 5, mask_zero=True, input_shape=(7,)),
                    Bidirectional(LSTM(6, return_sequences=True), merge_mode="sum"),
                    Dropout(0.1), LSTM(4, go_backwards=True), Dense(3, activation="softmax")])
    m.compile(optimizer=optimizers.RMSprop(learning_rate=0.003), loss="categorical_crossentropy",
              metrics=["accuracy"])
    return m


def _data():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 12, (10, 7))
    x[3, 4:] = 0
    y = np.eye(3)[rng.integers(0, 3, 10)]
    return x, y


def test_round_trip_identical_predictions_and_training(tmp_path):
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.clstm"
    model.save(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert type(loaded.optimizer).__name__ == "RMSprop"
    assert loaded.optimizer.get_config()["learning_rate"] == pytest.approx(0.003)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    loaded.fit(x, y, epochs=1, verbose=0)                   # compiled: trains on
    assert not os.path.exists(str(path) + ".tmp")


def test_save_weights_and_load_weights(tmp_path):
    a, b = _model(), _model()
    x, _ = _data()
    a.save_weights(tmp_path / "w.npz")
    b.load_weights(tmp_path / "w.npz")
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ModelFileError, match="clstm.keras.weights"):
        b.load_weights(_saved(tmp_path, a))                 # a model file is not a weights file


def _saved(tmp_path, model=None):
    path = tmp_path / "m.clstm"
    (model or _model()).save(path)
    return path


def test_truncated_file_refused(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        bad = tmp_path / f"cut{cut}.clstm"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            load_model(bad)


def test_corrupted_weights_refused(tmp_path):
    path = _saved(tmp_path)
    # rewrite one weight with other values but a valid zip: only the checksum can tell
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["w0"] = arrays["w0"] + 1
    bad = tmp_path / "tampered.clstm"
    with open(bad, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(bad)
    # flip bytes inside the archive: the zip CRC or the checksum catches it
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 8] = bytes(b ^ 0xFF for b in data[mid:mid + 8])
    flipped = tmp_path / "flipped.clstm"
    flipped.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        load_model(flipped)


def test_foreign_files_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a clstm model file"):
        load_model(text)
    npz = tmp_path / "other.npz"
    np.savez(npz, a=np.zeros(3))
    with pytest.raises(ModelFileError, match="no __clstm__ header"):
        load_model(npz)
    keras_like = tmp_path / "model.keras"
    with zipfile.ZipFile(keras_like, "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(ModelFileError):
        load_model(keras_like)
    pickled = tmp_path / "pickle.npz"
    np.savez(pickled, __clstm__=np.array([{"format": "x"}], dtype=object))
    with pytest.raises(ModelFileError):
        load_model(pickled)                                 # never unpickles
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.clstm")


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    path = _saved(tmp_path)
    before = path.read_bytes()
    model = _model()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.clstm"]   # no temp file left


def test_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built"):
        Sequential([LSTM(3)]).save(tmp_path / "x.clstm")
