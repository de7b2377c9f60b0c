"""The core's vectorized sigmoid and tanh, on NumPy arrays.

They are what the gate kernels compute: within 3 ulp of the exact value
over the real line (tests/test_activations.py measures it), NaN in gives
NaN out, +-inf and huge inputs saturate.  Where sigmoid's true value is
below the smallest normal number (~1.2e-38 float32, ~2.2e-308 float64) it
returns 0 rather than the subnormal (so sigmoid(-inf) is exactly 0).
Input that is not a regular float array (a ragged list, integers, complex)
is refused with an exception naming x.
"""
import numpy as np

from . import _core
from ._validate import as_real, asarray


def _apply(x, tanh):
    x = asarray(x, "x")       # a ragged list: ValueError naming x
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    x = as_real(x, "x", dtype)
    y = np.empty_like(x)
    _core.activation(x, y, tanh)
    return y


def sigmoid(x):
    """1 / (1 + exp(-x)) elementwise; float32 unless x is float64."""
    return _apply(x, False)


def tanh(x):
    """tanh(x) elementwise; float32 unless x is float64."""
    return _apply(x, True)
