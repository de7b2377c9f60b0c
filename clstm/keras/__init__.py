"""Keras-style models on clstm's LSTM engine.

    from clstm.keras import Sequential
    from clstm.keras.layers import LSTM, Dense
    model = Sequential()
    model.add(LSTM(50, input_shape=(timesteps, features)))
    model.add(Dense(1))
    model.compile(optimizer='adam', loss='mean_squared_error')
    model.fit(X_train, y_train, epochs=50, batch_size=32)

Batch-major arrays (B, T, F), float32, as Keras.  Weights use Keras's
layouts and order (get_weights / set_weights), so weights taken from a
Keras model load unchanged.  TensorFlow is never imported.
"""
from . import backend, callbacks, initializers, layers, losses, metrics, optimizers, utils
from .models import Sequential
from .saving import ModelFileError, load_model

__all__ = ["Sequential", "load_model", "ModelFileError", "backend", "layers", "losses", "metrics",
           "optimizers", "callbacks", "initializers", "utils"]
