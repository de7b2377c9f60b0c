"""Weight initialisers by Keras name, drawing from clstm.keras.utils.rng().

Each takes a shape and returns a float64 array (the layer casts it)."""
import numpy as np

from .utils import rng


def _fans(shape):
    if len(shape) < 2:
        return shape[0], shape[0]
    return shape[0], shape[1]   # (in, out): Keras kernels are (fan_in, fan_out)


def glorot_uniform(shape):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng().uniform(-limit, limit, shape)


def glorot_normal(shape):
    fan_in, fan_out = _fans(shape)
    return _truncated_normal(shape, np.sqrt(2.0 / (fan_in + fan_out)))


def he_uniform(shape):
    limit = np.sqrt(6.0 / _fans(shape)[0])
    return rng().uniform(-limit, limit, shape)


def he_normal(shape):
    return _truncated_normal(shape, np.sqrt(2.0 / _fans(shape)[0]))


def lecun_uniform(shape):
    limit = np.sqrt(3.0 / _fans(shape)[0])
    return rng().uniform(-limit, limit, shape)


def orthogonal(shape):
    """Rows (or columns, whichever are fewer) orthonormal, as Keras's
    Orthogonal(gain=1) on a 2-D shape."""
    rows, cols = shape
    a = rng().standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))          # a uniform draw over orthogonal matrices
    return q.T if rows < cols else q


def random_uniform(shape):
    return rng().uniform(-0.05, 0.05, shape)


def random_normal(shape):
    return rng().normal(0.0, 0.05, shape)


def zeros(shape):
    return np.zeros(shape)


def ones(shape):
    return np.ones(shape)


def _truncated_normal(shape, stddev):
    # Keras draws from a normal truncated at 2 sigma, rescaled to keep stddev
    scale = stddev / 0.87962566103423978
    out = rng().standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng().standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * scale


_BY_NAME = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal,
                                     lecun_uniform, orthogonal, random_uniform, random_normal,
                                     zeros, ones)}
_ALIASES = {"uniform": "random_uniform", "normal": "random_normal"}


def get(identifier):
    """An initialiser by Keras name (e.g. 'glorot_uniform', 'orthogonal')."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str):
        name = _ALIASES.get(identifier.lower(), identifier.lower())
        if name in _BY_NAME:
            return _BY_NAME[name]
    raise ValueError(f"unknown initializer {identifier!r}; expected one of {sorted(_BY_NAME)}")
