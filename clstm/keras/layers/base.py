"""The Layer base class of clstm.keras: batch-major arrays in and out,
forward (call) and backward side by side, weights in Keras's order.

Shapes given to and returned by build / compute_output_shape exclude the
batch dimension; arrays include it.  A layer computes in the float type
that clstm.keras.backend.floatx() named when it was created (float32 by
default)."""
import contextvars
import itertools
from collections import OrderedDict

import numpy as np

from ..._validate import asarray, is_ready
from .. import backend, initializers
_name_counters = {}
# While a model file loads: a check (layer, name, shape) run before each weight
# is allocated (clstm.keras.saving bounds the config by the file this way).
WEIGHT_GUARD = contextvars.ContextVar("clstm_keras_weight_guard", default=None)


def _unique_name(base):
    n = _name_counters.get(base, 0)
    _name_counters[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class Layer:
    """A layer: build(input_shape) creates weights, call(x, training, mask)
    computes the output and keeps what backward(dy) needs, backward returns
    dL/dx and fills self.grads (by weight name)."""

    def __init__(self, name=None, input_shape=None, input_dim=None, trainable=True,
                 batch_input_shape=None, batch_size=None, dtype=None):
        self.name = name or _unique_name(_snake(type(self).__name__))
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            batch_input_shape = _shape(batch_input_shape, "batch_input_shape")
            if not batch_input_shape:
                raise ValueError("batch_input_shape must be (batch_size, ...), got ()")
            batch_size, input_shape = batch_input_shape[0], batch_input_shape[1:]
        self.input_shape_arg = None if input_shape is None else _shape(input_shape, "input_shape")
        if batch_size is not None:
            from ..._validate import positive_int
            batch_size = positive_int(batch_size, "batch_size")
        self.batch_size = batch_size
        self.trainable = bool(trainable)
        try:
            self.dtype = backend.dtype() if dtype is None else np.dtype(dtype)
        except TypeError:
            raise TypeError(f"layers compute in float32 or float64, got dtype={dtype!r}") from None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"layers compute in float32 or float64, got dtype={dtype!r}")
        self.built = False
        self.input_shape = None
        self._weights = OrderedDict()
        self.grads = {}

    # ---- weights ------------------------------------------------------------

    def add_weight(self, name, shape, initializer):
        guard = WEIGHT_GUARD.get()
        if guard is not None:
            guard(self, name, tuple(shape))
        value = initializers.get(initializer)(tuple(shape))
        self._weights[name] = np.ascontiguousarray(value, dtype=self.dtype)
        return self._weights[name]

    @property
    def weights(self):
        """The live weight arrays, in Keras's order."""
        return list(self._weights.values())

    @property
    def weight_names(self):
        return list(self._weights)

    def get_weights(self):
        return [w.copy() for w in self._weights.values()]

    def set_weights(self, weights):
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(f"layer {self.name!r} expects {len(self._weights)} weight arrays, "
                             f"got {len(weights)}")
        checked = []
        for (name, cur), new in zip(self._weights.items(), weights):
            new = np.asarray(new)
            if new.shape != cur.shape:
                raise ValueError(f"weight {self.name}/{name} must have shape {cur.shape}, "
                                 f"got {new.shape}")
            if new.dtype.kind not in "fiu":
                raise TypeError(f"weight {self.name}/{name} must be numeric, got {new.dtype}")
            checked.append(new)
        for cur, new in zip(self._weights.values(), checked):
            cur[...] = new

    def count_params(self):
        return int(sum(w.size for w in self._weights.values()))

    def trainable_pairs(self):
        """(weight, gradient) pairs of the last backward, if trainable."""
        if not self.trainable:
            return []
        return [(w, self.grads[n]) for n, w in self._weights.items()]

    # ---- shape and config ----------------------------------------------------

    def build(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.built = True

    def accepts(self, input_shape):
        """Whether inputs of this shape fit the built weights: the same rank
        and the same feature size; other axes (timesteps) may differ."""
        return len(input_shape) == len(self.input_shape) and (
            not input_shape or input_shape[-1] == self.input_shape[-1])

    def ensure_built(self, input_shape):
        input_shape = tuple(input_shape)
        if not self.built:
            self.build(input_shape)
        elif not self.accepts(input_shape):
            raise ValueError(f"layer {self.name!r} was built for inputs of shape "
                             f"(batch, {', '.join(map(str, self.input_shape))}), "
                             f"got (batch, {', '.join(map(str, input_shape))})")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, x, mask):
        """The (B, T) step mask this layer passes on, given its input and the
        mask it received (default: passed through)."""
        return mask

    def get_config(self):
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": str(self.dtype)}
        if self.input_shape_arg is not None:
            cfg["input_shape"] = list(self.input_shape_arg)
        if self.batch_size is not None:
            cfg["batch_size"] = self.batch_size
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ---- computation -----------------------------------------------------------

    def __call__(self, x, training=False, mask=None):
        x = np.asarray(x)
        self.ensure_built(x.shape[1:])
        return self.call(x, training=training, mask=mask)

    def call(self, x, training=False, mask=None):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _shape(shape, what):
    """A shape without the batch axis: a tuple of ints >= 0 or None (any length)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{what} must be a tuple of ints (or None), got {shape!r}") from None
    for d in dims:
        if d is None:
            continue
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{what} must be a tuple of ints (or None), got {shape!r}")
        if d < 0:
            raise ValueError(f"{what} must have sizes >= 0, got {shape!r}")
    return tuple(None if d is None else int(d) for d in dims)


def as_float_input(x, name, dtype):
    """C-contiguous and aligned in the layer's dtype; integer and bool input is
    converted like Keras, complex and object refused."""
    if is_ready(x, dtype):
        return x
    x = asarray(x, name)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{name} expects numeric input, got dtype {x.dtype}")
    return np.require(x, dtype, ["C", "A"])


def batch_chunks(n, size):
    """Index ranges covering range(n) in chunks of `size`."""
    starts = itertools.count(0, size)
    return [(s, min(s + size, n)) for s in itertools.takewhile(lambda s: s < n, starts)]
