import importlib.util
import os

import numpy as np
import pytest

from clstm.keras import backend, utils

# Real Keras 3 (optional) compares against clstm.keras; without TensorFlow it
# can run on the torch backend.  Must be set before keras is first imported.
if importlib.util.find_spec("tensorflow") is None and importlib.util.find_spec("torch"):
    os.environ.setdefault("KERAS_BACKEND", "torch")

@pytest.fixture
def float64():
    """New layers compute in float64 (for finite-difference checks)."""
    backend.set_floatx("float64")
    yield
    backend.set_floatx("float32")


@pytest.fixture(autouse=True)
def _seeded():
    utils.set_random_seed(1234)
    yield
