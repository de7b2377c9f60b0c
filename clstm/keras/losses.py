"""Keras-3-compatible losses with exact gradients, in NumPy.

Shapes
------
``y_pred`` has shape ``(..., C)`` -- ``(B, C)`` for per-sample outputs or
``(B, T, C)`` for sequence outputs -- and a floating dtype.  A loss is first
computed per *entry* (shape ``y_pred.shape[:-1]``): the mean over the last axis
for the elementwise losses (MSE, MAE, binary crossentropy), the crossentropy
over the classes for the categorical ones.  The value is then reduced as Keras's
default ``"sum_over_batch_size"``: the mean over all entries, or, with a
``mask`` (boolean, shape ``y_pred.shape[:-1]``, e.g. ``(B, T)``), the sum over
unmasked entries divided by their number (0 when everything is masked).
Masked entries contribute neither value nor gradient, even if they hold NaN.

``Loss.value_and_grad(y_true, y_pred, mask=None, sample_weight=None)`` returns
``(float, dL/dy_pred)``; the gradient has ``y_pred``'s shape and dtype and the
math is done in that dtype (float32 stays float32).

Formulas follow Keras 3 (``keras/src/losses/losses.py`` and the backends'
``nn.py``): probabilities are clipped to ``[1e-7, 1 - 1e-7]``; categorical
crossentropy on probabilities first divides ``y_pred`` by its sum over the last
axis, then clips; ``from_logits=True`` uses exact log-sigmoid / log-softmax
(no clipping), as the TensorFlow, JAX and torch backends do.
"""

import math
import numbers

import numpy as np

__all__ = ["Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
           "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
           "categorical_crossentropy", "sparse_categorical_crossentropy",
           "mse", "MSE", "mae", "MAE", "get", "EPSILON"]

EPSILON = 1e-7  # keras.backend.epsilon()
_REDUCTIONS = ("sum_over_batch_size", "mean", "sum")


def _real_array(x, what):
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be numeric, got dtype {a.dtype}")
    return a


def _mean_last(a):
    """np.mean(a, axis=-1): for float32 and float64 the same numbers (the same
    sum, then one correctly rounded division) without np.mean's ~4 us of
    Python a call, a sizeable part of a small training step's loss."""
    if a.dtype.itemsize < 4 or a.shape[-1] == 0:
        return np.mean(a, axis=-1)
    return np.add.reduce(a, axis=-1) / a.dtype.type(a.shape[-1])


def _check_unit_float(name, value):
    if (not isinstance(value, numbers.Real) or isinstance(value, bool)
            or not 0.0 <= float(value) <= 1.0):
        raise ValueError(f"Argument `{name}` must be a float in [0, 1]. Received: {name}={value!r}")
    return float(value)


def _check_axis(axis):
    if axis != -1 or isinstance(axis, bool):
        raise ValueError(f"Only axis=-1 is supported. Received: axis={axis!r}")
    return -1


def _sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softmax_parts(x):
    """(log_softmax(x), softmax(x)) over the last axis, stably."""
    z = x - np.max(x, axis=-1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    return logp, np.exp(logp)


class Loss:
    """Base class.  Subclasses implement ``_standardize`` (shape checks) and
    ``_entries`` (per-entry values and their gradients); ``value_and_grad`` adds
    masking, sample weights and the reduction.

    A custom loss may instead override ``value_and_grad`` directly; it must
    return ``(float, ndarray shaped like y_pred)``.
    """

    _default_name = "loss"

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`. Expected one of "
                             f"{_REDUCTIONS}. Received: reduction={reduction!r}")
        self.reduction = reduction
        self.name = self._default_name if name is None else str(name)
        if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
            raise ValueError(f"`dtype` must be a floating dtype. Received: dtype={dtype!r}")
        self.dtype = None if dtype is None else np.dtype(dtype).name

    # -- to implement -------------------------------------------------------------------

    def _standardize(self, y_true, y_pred):
        """Return ``(y_true, y_pred)`` with compatible shapes (may reshape)."""
        return _standardize_elementwise(self.name, y_true, y_pred)

    def _entries(self, y_true, y_pred, valid, need_grad=True):
        """Per-entry loss (shape ``y_pred.shape[:-1]``) and d(entry)/d(y_pred)
        (shape ``y_pred.shape``, or None when ``need_grad`` is False).  ``valid``
        is None or the boolean mask of entries that count."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _entries() or value_and_grad()")

    def _extra_mask(self, y_true, mask):
        return mask

    # -- public -------------------------------------------------------------------------

    def _prepare(self, y_true, y_pred):
        yp = _real_array(y_pred, "y_pred")
        if yp.ndim == 0:
            raise ValueError(f"{self.name}: y_pred must have at least 1 dimension, got a scalar")
        if self.dtype is not None:
            cdtype = np.dtype(self.dtype)
        else:
            cdtype = yp.dtype if yp.dtype.kind == "f" else np.dtype(np.float64)
        yt, ypc = self._standardize(y_true, yp.astype(cdtype, copy=False))
        return yp, yt, ypc

    def call(self, y_true, y_pred, mask=None):
        """Per-entry losses, shape ``y_pred.shape[:-1]`` (no reduction), as Keras's
        ``Loss.call``; masked (and ignored) entries are 0."""
        yp, yt, ypc = self._prepare(y_true, y_pred)
        valid = self._extra_mask(yt, self._mask(mask, ypc.shape[:-1], yp.shape))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values, _ = self._entries(yt, ypc, valid, need_grad=False)
        return values if valid is None else np.where(valid, values, 0).astype(values.dtype)

    def _mask(self, mask, entry_shape, pred_shape):
        if mask is None:
            return None
        m = np.asarray(mask)
        if m.shape != entry_shape:
            raise ValueError(f"{self.name}: mask shape {m.shape} does not match "
                             f"y_pred.shape[:-1] = {entry_shape} (y_pred shape {pred_shape})")
        return m.astype(bool)

    def value_and_grad(self, y_true, y_pred, mask=None, sample_weight=None):
        """``(loss: float, dloss/dy_pred: ndarray with y_pred's shape and dtype)``.

        mask: optional array of shape ``y_pred.shape[:-1]``; nonzero = counts.
        sample_weight: optional weights, a scalar or of shape ``(B,)`` or
        ``y_pred.shape[:-1]`` (Keras semantics: weighted sum / number of entries,
        or / number of unmasked entries when masked).
        """
        yp, yt, ypc = self._prepare(y_true, y_pred)
        out_dtype = yp.dtype if yp.dtype.kind == "f" else ypc.dtype
        entry_shape = ypc.shape[:-1]
        m = self._extra_mask(yt, self._mask(mask, entry_shape, yp.shape))
        weighted = m is not None or sample_weight is not None   # else every entry weighs 1
        if weighted:
            w = np.ones(entry_shape) if sample_weight is None else \
                _entry_weights(self.name, sample_weight, entry_shape)
            if m is not None:
                w = np.where(m, w, 0.0)
        if self.reduction == "sum":
            denom = 1.0
        else:
            denom = float(np.sum(m)) if m is not None else float(math.prod(entry_shape))
        if denom == 0:
            return 0.0, np.zeros(yp.shape, dtype=out_dtype)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            values, dval = self._entries(yt, ypc, m)
        if not weighted:   # no weighting arrays: the same numbers, fewer passes
            loss = float(np.sum(values, dtype=np.float64) / denom)
            grad = dval * ypc.dtype.type(1.0 / denom)
        else:
            coef = w / denom
            keep = coef != 0
            loss = float(np.sum(np.where(keep, values * coef, 0.0), dtype=np.float64))
            grad = np.where(keep[..., None], dval * coef.astype(ypc.dtype)[..., None], 0)
        return loss, grad.reshape(yp.shape).astype(out_dtype, copy=False)

    def __call__(self, y_true, y_pred, mask=None, sample_weight=None):
        """The reduced loss value (float)."""
        return self.value_and_grad(y_true, y_pred, mask=mask, sample_weight=sample_weight)[0]

    def get_config(self):
        config = {"name": self.name, "reduction": self.reduction}
        config.update(self._own_config())
        return config

    def _own_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


def _entry_weights(name, sample_weight, entry_shape):
    sw = _real_array(sample_weight, "sample_weight").astype(np.float64)
    if sw.ndim == len(entry_shape) + 1 and sw.shape[-1] == 1:
        sw = sw[..., 0]
    if sw.shape != entry_shape[:sw.ndim]:
        raise ValueError(f"{name}: sample_weight shape {sw.shape} is not compatible with the "
                         f"per-entry loss shape {entry_shape}")
    sw = sw.reshape(sw.shape + (1,) * (len(entry_shape) - sw.ndim))
    return np.broadcast_to(sw, entry_shape)


def _standardize_elementwise(name, y_true, y_pred):
    """Keras's squeeze/expand for elementwise losses: y_pred ``(N,)`` is treated
    as ``(N, 1)``; y_true may lack (or add) a trailing axis of size 1."""
    yt = _real_array(y_true, "y_true")
    yp = y_pred[:, None] if y_pred.ndim == 1 else y_pred
    if yt.shape == yp.shape:
        pass
    elif yp.shape[-1] == 1 and yt.shape == yp.shape[:-1]:
        yt = yt[..., None]
    elif yt.ndim == yp.ndim + 1 and yt.shape[-1] == 1 and yt.shape[:-1] == yp.shape:
        yt = yt[..., 0]
    else:
        raise ValueError(f"{name}: y_true shape {yt.shape} is incompatible with y_pred shape "
                         f"{y_pred.shape}")
    return yt.astype(yp.dtype, copy=False), yp


class MeanSquaredError(Loss):
    """``mean((y_true - y_pred)**2, axis=-1)`` per entry."""

    _default_name = "mean_squared_error"

    def _entries(self, yt, yp, valid, need_grad=True):
        d = yp - yt
        values = _mean_last(d * d)
        return values, (d * yp.dtype.type(2.0 / yp.shape[-1]) if need_grad else None)


class MeanAbsoluteError(Loss):
    """``mean(abs(y_true - y_pred), axis=-1)`` per entry (gradient sign(d)/C, 0 at d=0)."""

    _default_name = "mean_absolute_error"

    def _entries(self, yt, yp, valid, need_grad=True):
        d = yp - yt
        values = _mean_last(np.abs(d))
        return values, (np.sign(d) * yp.dtype.type(1.0 / yp.shape[-1]) if need_grad else None)


class _SmoothedCrossentropy(Loss):
    """The constructor and config that binary and categorical crossentropy
    share: from_logits, label_smoothing, axis."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_unit_float("label_smoothing", label_smoothing)
        self.axis = _check_axis(axis)

    def _own_config(self):
        return {"from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


class BinaryCrossentropy(_SmoothedCrossentropy):
    """Mean over the last axis of ``-(t log p + (1-t) log(1-p))``.

    Probabilities are clipped to ``[1e-7, 1-1e-7]`` (zero gradient where clipped);
    with ``from_logits`` the exact ``max(x,0) - x t + log(1 + exp(-|x|))`` is used.
    ``label_smoothing`` s maps t to ``t (1 - s) + s / 2``.
    """

    _default_name = "binary_crossentropy"


    def _entries(self, yt, yp, valid, need_grad=True):
        dt = yp.dtype.type
        t = yt
        if self.label_smoothing:
            t = t * dt(1 - self.label_smoothing) + dt(0.5 * self.label_smoothing)
        if self.from_logits:
            el = np.maximum(yp, 0) - yp * t + np.log1p(np.exp(-np.abs(yp)))
            g = (_sigmoid(yp) - t) if need_grad else None
        else:
            eps, hi = dt(EPSILON), dt(1) - dt(EPSILON)
            q = np.clip(yp, eps, hi)
            el = -(t * np.log(q) + (1 - t) * np.log(1 - q))
            g = None
            if need_grad:
                g = np.where((yp >= eps) & (yp <= hi), (1 - t) / (1 - q) - t / q, 0)
        values = _mean_last(el)
        return values, (g * dt(1.0 / yp.shape[-1]) if need_grad else None)


def _categorical(loss, t, yp, need_grad):
    """Crossentropy of targets t (same shape as yp) against yp over the last axis."""
    dt = yp.dtype.type
    if loss.from_logits:
        logp, p = _softmax_parts(yp)
        values = -np.sum(t * logp, axis=-1)
        g = p * np.sum(t, axis=-1, keepdims=True) - t if need_grad else None
        return values, g
    s = np.sum(yp, axis=-1, keepdims=True)
    p = yp / s
    eps, hi = dt(EPSILON), dt(1) - dt(EPSILON)
    q = np.clip(p, eps, hi)
    values = -np.sum(t * np.log(q), axis=-1)
    if not need_grad:
        return values, None
    gp = np.where((p >= eps) & (p <= hi), -t / q, 0)
    return values, (gp - np.sum(gp * p, axis=-1, keepdims=True)) / s


class CategoricalCrossentropy(_SmoothedCrossentropy):
    """``-sum(t * log p, axis=-1)`` with one-hot (or soft) targets ``t`` of
    y_pred's shape.  On probabilities, ``p = clip(y_pred / sum(y_pred), 1e-7,
    1-1e-7)``; with ``from_logits``, ``log p = log_softmax(y_pred)``.
    ``label_smoothing`` s maps t to ``t (1 - s) + s / C``.
    """

    _default_name = "categorical_crossentropy"


    def _standardize(self, y_true, y_pred):
        yt = _real_array(y_true, "y_true")
        if yt.shape != y_pred.shape:
            raise ValueError(f"{self.name}: y_true shape {yt.shape} must equal y_pred shape "
                             f"{y_pred.shape} (one-hot targets; use "
                             "sparse_categorical_crossentropy for integer labels)")
        return yt.astype(y_pred.dtype, copy=False), y_pred

    def _entries(self, yt, yp, valid, need_grad=True):
        t = yt
        if self.label_smoothing:
            dt = yp.dtype.type
            t = t * dt(1 - self.label_smoothing) + dt(self.label_smoothing / yp.shape[-1])
        return _categorical(self, t, yp, need_grad)


class SparseCategoricalCrossentropy(Loss):
    """Categorical crossentropy with integer labels of shape ``y_pred.shape[:-1]``
    (or that plus a trailing 1), each in ``[0, C)``.  Probabilities are
    renormalised then clipped, as in ``CategoricalCrossentropy``.  Labels equal
    to ``ignore_class`` are excluded like masked entries; labels of masked
    entries are not checked.
    """

    _default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, ignore_class=None, axis=-1,
                 reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.axis = _check_axis(axis)

    def _own_config(self):
        return {"from_logits": self.from_logits, "ignore_class": self.ignore_class}

    def _standardize(self, y_true, y_pred):
        labels = _real_array(y_true, "y_true")
        lead = y_pred.shape[:-1]
        if labels.shape == lead + (1,):
            labels = labels[..., 0]
        if labels.shape != lead:
            raise ValueError(f"{self.name}: labels shape {labels.shape} is incompatible with "
                             f"y_pred shape {y_pred.shape}; expected {lead} or {lead + (1,)}")
        return labels, y_pred

    def _extra_mask(self, labels, mask):
        if self.ignore_class is None:
            return mask
        keep = labels != self.ignore_class
        return keep if mask is None else (mask & keep)

    def _entries(self, labels, yp, valid, need_grad=True):
        n_classes = yp.shape[-1]
        check = labels if valid is None else labels[valid]
        bad = check[(check < 0) | (check >= n_classes) | (check != np.floor(check))] \
            if check.dtype.kind == "f" else check[(check < 0) | (check >= n_classes)]
        if bad.size:
            raise ValueError(f"{self.name}: label {bad.flat[0].item()!r} is out of range: labels must "
                             f"be integers in [0, {n_classes}) for C={n_classes} classes")
        idx = np.where(valid, labels, 0) if valid is not None else labels
        idx = idx.astype(np.int64)
        t = (idx[..., None] == np.arange(n_classes)).astype(yp.dtype)
        return _categorical(self, t, yp, need_grad)


def mean_squared_error(y_true, y_pred):
    """Per-entry MSE, shape ``y_pred.shape[:-1]``."""
    return MeanSquaredError().call(y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    """Per-entry MAE, shape ``y_pred.shape[:-1]``."""
    return MeanAbsoluteError().call(y_true, y_pred)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-entry binary crossentropy (mean over the last axis)."""
    return BinaryCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Per-entry categorical crossentropy, shape ``y_pred.shape[:-1]``."""
    return CategoricalCrossentropy(from_logits, label_smoothing, axis).call(y_true, y_pred)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """Per-entry sparse categorical crossentropy, shape ``y_pred.shape[:-1]``."""
    return SparseCategoricalCrossentropy(from_logits, ignore_class, axis).call(y_true, y_pred)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_BY_NAME = {}
for _cls, _fn, _aliases in [
        (MeanSquaredError, mean_squared_error, ("mse", "MSE")),
        (MeanAbsoluteError, mean_absolute_error, ("mae", "MAE")),
        (BinaryCrossentropy, binary_crossentropy, ("bce", "BCE")),
        (CategoricalCrossentropy, categorical_crossentropy, ()),
        (SparseCategoricalCrossentropy, sparse_categorical_crossentropy, ())]:
    for _key in (_cls.__name__, _fn.__name__) + _aliases:
        _BY_NAME[_key] = _cls
_BY_FUNCTION = {fn: _BY_NAME[fn.__name__] for fn in (
    mean_squared_error, mean_absolute_error, binary_crossentropy, categorical_crossentropy,
    sparse_categorical_crossentropy)}
_LOWER = {k.lower(): v for k, v in _BY_NAME.items()}


def _lookup(name):
    cls = _BY_NAME.get(name) or _LOWER.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown loss {name!r}. Accepted names: {sorted(_BY_NAME)}")
    return cls


def get(identifier):
    """A :class:`Loss` instance from a Keras name or alias ('mse', 'mae', 'bce',
    'binary_crossentropy', 'CategoricalCrossentropy', ...), a Loss instance or
    subclass, one of this module's loss functions, or a
    ``{"class_name": ..., "config": {...}}`` dict.  ``None`` gives ``None``.

    Plain callables are rejected (TypeError): training needs the gradient, so a
    custom loss must subclass :class:`Loss` and implement ``value_and_grad``.
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        if "class_name" not in identifier:
            raise ValueError(f"A loss config must have a 'class_name' key. Received: {identifier!r}")
        return _lookup(identifier["class_name"]).from_config(identifier.get("config") or {})
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if callable(identifier):
        try:
            if identifier in _BY_FUNCTION:
                return _BY_FUNCTION[identifier]()
        except TypeError:  # unhashable callable
            pass
        raise TypeError(
            f"Custom loss {getattr(identifier, '__name__', identifier)!r} is a plain callable: "
            "clstm needs the gradient of the loss, so custom losses must subclass "
            "clstm.keras.losses.Loss and implement value_and_grad(y_true, y_pred, mask=None) "
            "returning (float loss, dloss/dy_pred with y_pred's shape).")
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}. Accepted names: "
                     f"{sorted(_BY_NAME)}, a Loss instance or a config dict.")
