"""The default float type of new layers, as keras.backend.floatx /
set_floatx: 'float32' (Keras's default) or 'float64' (used by the tests to
check gradients by finite differences)."""
import numpy as np

_floatx = {"value": "float32"}


def floatx():
    return _floatx["value"]


def set_floatx(value):
    if value not in ("float32", "float64"):
        raise ValueError(f"floatx must be 'float32' or 'float64', got {value!r}")
    _floatx["value"] = value


def epsilon():
    return 1e-7


def dtype():
    return np.dtype(_floatx["value"])
