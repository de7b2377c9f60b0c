"""Dense, Dropout and Embedding."""
import math

import numpy as np

from .. import utils
from .base import Layer, as_float_input


# ---- activations: forward(z) -> a, and backward(da, a) -> dz from the output a

def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


_ACTIVATIONS = {
    "linear": (lambda z: z, lambda da, a: da),
    "relu": (lambda z: np.maximum(z, 0), lambda da, a: da * (a > 0)),
    "tanh": (np.tanh, lambda da, a: da * (1 - a * a)),
    "sigmoid": (lambda z: 0.5 * (1 + np.tanh(0.5 * z)), lambda da, a: da * a * (1 - a)),
    "softmax": (_softmax, lambda da, a: a * (da - np.sum(da * a, axis=-1, keepdims=True))),
}


def _activation(name):
    key = "linear" if name is None else name
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of "
                         f"{sorted(_ACTIVATIONS)} or None")
    return key


def _called(layer, attr):
    if getattr(layer, attr, None) is None:
        raise RuntimeError(f"{layer.name}.backward needs a call(...) first")


def _checked_dy(layer, dy, shape):
    """dy as an array of the layer's dtype and of the output's shape."""
    dy = as_float_input(dy, f"{layer.name}.backward: dy", layer.dtype)
    if dy.shape != tuple(shape):
        raise ValueError(f"{layer.name}.backward: dy must have the output's shape "
                         f"{tuple(shape)}, got {dy.shape}")
    return dy


class Dense(Layer):
    """y = activation(x @ kernel + bias) over the last axis: (B, in) -> (B,
    units), and time-distributed on (B, T, in) -> (B, T, units).
    kernel (in, units), bias (units)."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        from ..._validate import positive_int
        self.units = positive_int(units, "units")
        self.activation = _activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape):
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"Dense needs inputs with a known feature axis, got shape "
                             f"(batch, {', '.join(map(str, input_shape))})")
        self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.add_weight("bias", (self.units,), self.bias_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, training=False, mask=None):
        x = as_float_input(x, self.name, self.dtype)
        F = self._weights["kernel"].shape[0]
        if x.ndim < 2 or x.shape[-1] != F:
            raise ValueError(f"{self.name} expects inputs of shape (batch, ..., {F}), "
                             f"got {x.shape}")
        z = x @ self._weights["kernel"]
        if self.use_bias:
            z += self._weights["bias"]
        a = _ACTIVATIONS[self.activation][0](z)
        self._cache = (x, a)
        return a

    def backward(self, dy):
        _called(self, "_cache")
        x, a = self._cache
        dy = _checked_dy(self, dy, a.shape)
        dz = _ACTIVATIONS[self.activation][1](dy, a)
        rows = math.prod(x.shape[:-1])      # not -1: ambiguous when a size is 0
        x2, dz2 = x.reshape(rows, x.shape[-1]), dz.reshape(rows, self.units)
        self.grads = {"kernel": x2.T @ dz2}
        if self.use_bias:
            self.grads["bias"] = dz2.sum(axis=0)
        return dz @ self._weights["kernel"].T

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, activation=self.activation, use_bias=self.use_bias,
                   kernel_initializer=self.kernel_initializer,
                   bias_initializer=self.bias_initializer)
        return cfg


class Dropout(Layer):
    """Zeroes a fraction `rate` of the inputs in training and scales the
    rest by 1 / (1 - rate); the identity in inference."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout rate must be a float in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self._mask = None

    def call(self, x, training=False, mask=None):
        x = as_float_input(x, self.name, self.dtype)
        self._mask = None
        self._shape = x.shape
        if not training or self.rate == 0:
            return x
        shape = x.shape
        if self.noise_shape is not None:
            ns = self.noise_shape
            shape = tuple(x.shape[i] if d is None else d for i, d in enumerate(ns))
            if len(ns) != x.ndim or any(d not in (1, n) for d, n in zip(shape, x.shape)):
                raise ValueError(f"{self.name}: noise_shape {ns} does not fit inputs of shape "
                                 f"{x.shape} (each entry None, 1 or the input's size)")
        keep = 1.0 - self.rate
        self._mask = ((utils.rng().random(shape) < keep) / keep).astype(self.dtype)
        return x * self._mask

    def backward(self, dy):
        _called(self, "_shape")
        dy = _checked_dy(self, dy, self._shape)
        self.grads = {}
        return dy if self._mask is None else dy * self._mask

    def get_config(self):
        cfg = super().get_config()
        cfg.update(rate=self.rate, noise_shape=None if self.noise_shape is None
                   else list(self.noise_shape))
        return cfg


class Embedding(Layer):
    """Integer indices (B, T) -> vectors (B, T, output_dim); embeddings
    (input_dim, output_dim).  mask_zero=True makes index 0 padding: the mask
    it passes on lets a following LSTM skip those steps."""

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False,
                 input_length=None, **kwargs):
        super().__init__(**kwargs)
        from ..._validate import positive_int
        self.input_dim = positive_int(input_dim, "input_dim")
        self.output_dim = positive_int(output_dim, "output_dim")
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = bool(mask_zero)
        if input_length is not None and self.input_shape_arg is None:
            self.input_shape_arg = (int(input_length),)

    def build(self, input_shape):
        self.add_weight("embeddings", (self.input_dim, self.output_dim),
                        self.embeddings_initializer)
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def accepts(self, input_shape):
        return len(input_shape) == len(self.input_shape)     # indices: any length

    def _indices(self, x):
        from ..._validate import asarray
        x = asarray(x, self.name)
        if x.dtype.kind == "f":
            if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
                raise ValueError(f"{self.name} expects integer indices, got non-integral floats")
        elif x.dtype.kind not in "iu":
            raise TypeError(f"{self.name} expects integer indices, got dtype {x.dtype}")
        # the range is checked before the cast to int64, which would wrap huge values
        if x.size and (x.min() < 0 or x.max() >= self.input_dim):
            bad = x.min() if x.min() < 0 else x.max()
            raise ValueError(f"{self.name}: index {bad} is out of range for "
                             f"input_dim={self.input_dim} (valid: 0..{self.input_dim - 1})")
        return x.astype(np.int64)

    def call(self, x, training=False, mask=None):
        idx = self._indices(x)
        self._idx = idx
        return self._weights["embeddings"][idx]

    def compute_mask(self, x, mask):
        return (np.asarray(x) != 0) if self.mask_zero else None

    def backward(self, dy):
        _called(self, "_idx")
        dy = _checked_dy(self, dy, self._idx.shape + (self.output_dim,))
        g = np.zeros_like(self._weights["embeddings"])
        np.add.at(g, self._idx.reshape(-1), np.asarray(dy, self.dtype).reshape(-1, self.output_dim))
        self.grads = {"embeddings": g}
        return None          # no gradient w.r.t. integer indices

    def get_config(self):
        cfg = super().get_config()
        cfg.update(input_dim=self.input_dim, output_dim=self.output_dim,
                   embeddings_initializer=self.embeddings_initializer, mask_zero=self.mask_zero)
        return cfg
