"""Keras-3-compatible streaming metrics, in NumPy.

A metric accumulates over batches with ``update_state(y_true, y_pred,
mask=None, sample_weight=None)`` and reports ``result()`` (a float) until
``reset_state()``.  ``y_pred`` is ``(B, C)`` or ``(B, T, C)``; ``mask`` is an
optional boolean array of shape ``y_pred.shape[:-1]`` whose False entries are
excluded.

Averaging follows Keras's ``MeanMetricWrapper``/``Mean``
(``keras/src/metrics/reduction_metrics.py``): the metric function gives one
value per entry (shape ``y_pred.shape[:-1]``); each sample contributes the mean
of its entries with weight 1 (or, with a mask, the masked sum and the masked
count), and ``result() = total / count`` over everything since the last reset,
so batches of different sizes average correctly.  Accumulators are float64.
"""

import numpy as np

from . import losses as _losses

__all__ = ["Metric", "Mean", "MeanMetricWrapper", "MeanSquaredError", "MeanAbsoluteError",
           "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
           "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "get"]


class Metric:
    """Base class: ``update_state``, ``result`` (float), ``reset_state``, ``name``."""

    _default_name = "metric"
    _needs_shape = False  # True: built before the output shape was known (see get)

    def __init__(self, name=None, dtype=None):
        self.name = self._default_name if name is None else str(name)
        self.dtype = dtype
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        """Update with one batch and return the running result."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} result={self.result():.6g}>"


class Mean(Metric):
    """Running (weighted) mean, as ``keras.metrics.Mean``.

    ``update_state(values, sample_weight=None)``: without weights each row of
    ``values`` (mean over its non-batch axes) counts 1 -- a scalar counts 1;
    with weights (a scalar, or an array matching the leading axes of
    ``values``), ``total += sum(values * w)`` and ``count += sum(w)`` (weights
    of more than one axis are averaged per sample, like the values).
    """

    _default_name = "mean"

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def result(self):
        return float(self.total / self.count) if self.count else 0.0

    def update_state(self, values, sample_weight=None):
        values = np.asarray(values, dtype=np.float64)
        if sample_weight is None:
            if values.ndim > 1:
                values = values.mean(axis=tuple(range(1, values.ndim)))
            self.total += float(values.sum())
            self.count += float(values.shape[0]) if values.ndim else 1.0
            return
        sw = np.asarray(sample_weight, dtype=np.float64)
        if values.ndim == sw.ndim + 1 and values.shape[-1] == 1:
            if sw.ndim == 1:
                sw = sw[:, None]
            else:
                values = values[..., 0]
        elif sw.ndim == values.ndim + 1 and sw.shape[-1] == 1:
            if values.ndim == 1:
                values = values[:, None]
            else:
                sw = sw[..., 0]
        w_ndim = sw.ndim
        if values.ndim > w_ndim:
            values = values.mean(axis=tuple(range(w_ndim, values.ndim)))
        try:
            sw = np.broadcast_to(sw, values.shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight shape {sw.shape} is not compatible "
                             f"with values shape {values.shape}") from None
        values = values * sw
        if w_ndim > 1:
            sw = sw.mean(axis=tuple(range(1, w_ndim)))
        if values.ndim > 1:
            values = values.mean(axis=tuple(range(1, values.ndim)))
        self.total += float(values.sum())
        self.count += float(sw.sum())


class MeanMetricWrapper(Mean):
    """Mean of ``fn(y_true, y_pred, **kwargs)`` -- per-entry values of shape
    ``y_pred.shape[:-1]`` -- over all (unmasked) samples seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._fn_kwargs = kwargs
        if name is None:
            name = getattr(fn, "__name__", None) or self._default_name
        super().__init__(name=name, dtype=dtype)

    def _values(self, y_true, y_pred, mask):
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    def update_state(self, y_true, y_pred, mask=None, sample_weight=None):
        values = np.asarray(self._values(y_true, y_pred, mask), dtype=np.float64)
        weight = None
        if sample_weight is not None:
            weight = _losses._entry_weights(self.name, sample_weight, values.shape) \
                if values.ndim else np.asarray(sample_weight, dtype=np.float64)
        if mask is not None:
            m = np.asarray(mask).astype(bool)
            if m.shape != values.shape:
                raise ValueError(f"{self.name}: mask shape {m.shape} does not match the "
                                 f"per-entry shape {values.shape} (y_pred.shape[:-1])")
            values = np.where(m, values, 0.0)
            weight = m.astype(np.float64) if weight is None else np.where(m, weight, 0.0)
        super().update_state(values, sample_weight=weight)

    def get_config(self):
        config = super().get_config()
        config.update(self._fn_kwargs)
        return config


class _LossValues(MeanMetricWrapper):
    """Mean of a :class:`~clstm.keras.losses.Loss`'s per-entry values (its
    ``call``; masked entries are never evaluated, e.g. sparse labels there are
    not checked)."""

    def __init__(self, loss, name=None, dtype=None):
        self._loss = loss
        super().__init__(loss.call, name=name or loss.name, dtype=dtype)

    def _values(self, y_true, y_pred, mask):
        return self._loss.call(y_true, y_pred, mask=mask)


class _LossMetric(_LossValues):
    """A metric class backed by a loss class (keyword arguments go to the loss)."""

    _loss_class = None

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(self._loss_class(**kwargs), name=name or self._default_name, dtype=dtype)
        self._fn_kwargs = kwargs  # for get_config


class MeanSquaredError(_LossMetric):
    """Mean of ``mean((y_true - y_pred)**2, axis=-1)``."""
    _default_name = "mean_squared_error"
    _loss_class = _losses.MeanSquaredError


class MeanAbsoluteError(_LossMetric):
    """Mean of ``mean(abs(y_true - y_pred), axis=-1)``."""
    _default_name = "mean_absolute_error"
    _loss_class = _losses.MeanAbsoluteError


class BinaryCrossentropy(_LossMetric):
    """Mean binary crossentropy (``from_logits``, ``label_smoothing`` as the loss)."""
    _default_name = "binary_crossentropy"
    _loss_class = _losses.BinaryCrossentropy


class CategoricalCrossentropy(_LossMetric):
    """Mean categorical crossentropy."""
    _default_name = "categorical_crossentropy"
    _loss_class = _losses.CategoricalCrossentropy


class SparseCategoricalCrossentropy(_LossMetric):
    """Mean sparse categorical crossentropy."""
    _default_name = "sparse_categorical_crossentropy"
    _loss_class = _losses.SparseCategoricalCrossentropy


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Per entry: the fraction of the last axis where ``(y_pred > threshold) == y_true``."""
    yp = np.asarray(y_pred, dtype=np.float64)
    yt, yp = _losses._standardize_elementwise("binary_accuracy", y_true, yp)
    return np.mean(yt == (yp > threshold).astype(yt.dtype), axis=-1)


def categorical_accuracy(y_true, y_pred):
    """Per entry: 1.0 where ``argmax(y_true) == argmax(y_pred)`` (one-hot targets)."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if yt.shape != yp.shape or yp.ndim == 0:
        raise ValueError(f"categorical_accuracy: y_true shape {yt.shape} must equal y_pred "
                         f"shape {yp.shape} (one-hot targets)")
    return (np.argmax(yt, axis=-1) == np.argmax(yp, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """Per entry: 1.0 where the integer label equals ``argmax(y_pred)``."""
    yp = np.asarray(y_pred)
    labels = _losses.SparseCategoricalCrossentropy()._standardize(y_true, yp)[0]
    return (labels == np.argmax(yp, axis=-1)).astype(np.float64)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``(y_pred > threshold)`` equals the binary label."""

    _default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        if not 0 < threshold < 1:
            raise ValueError("Invalid value for argument `threshold`. Expected a value in "
                             f"interval (0, 1). Received: threshold={threshold!r}")
        self.threshold = float(threshold)
        super().__init__(binary_accuracy, name=name or self._default_name, dtype=dtype,
                         threshold=self.threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often ``argmax(y_pred)`` matches the one-hot target's argmax."""

    _default_name = "categorical_accuracy"

    def __init__(self, name=None, dtype=None):
        super().__init__(categorical_accuracy, name=name or self._default_name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often ``argmax(y_pred)`` equals the integer label."""

    _default_name = "sparse_categorical_accuracy"

    def __init__(self, name=None, dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name or self._default_name,
                         dtype=dtype)


class _AutoAccuracy(MeanMetricWrapper):
    """'accuracy' whose kind is chosen on the first batch by Keras 3's rule
    (``trainers/compile_utils.is_binary_or_sparse_categorical``): binary if
    y_pred's last dim is 1, sparse if y_true has lower rank than y_pred or a
    last dim of 1 (with y_pred's > 1), else categorical."""

    def __init__(self, name="accuracy", needs_shape=True):
        self.resolved = None
        self._needs_shape = needs_shape
        super().__init__(None, name=name)

    def _values(self, y_true, y_pred, mask):
        if self._fn is None:
            yt, yp = np.asarray(y_true), np.asarray(y_pred)
            if yp.ndim and yp.shape[-1] == 1:
                self._fn, self.resolved = binary_accuracy, "binary"
                self._fn_kwargs = {"threshold": 0.5}
            elif yt.ndim < yp.ndim or (yt.ndim and yt.shape[-1] == 1 and yp.shape[-1] > 1):
                self._fn, self.resolved = sparse_categorical_accuracy, "sparse_categorical"
            else:
                self._fn, self.resolved = categorical_accuracy, "categorical"
        return self._fn(y_true, y_pred, **self._fn_kwargs)


_BY_NAME = {}
for _cls, _aliases in [
        (MeanSquaredError, ("mse", "MSE")), (MeanAbsoluteError, ("mae", "MAE")),
        (BinaryAccuracy, ()), (CategoricalAccuracy, ()), (SparseCategoricalAccuracy, ()),
        (BinaryCrossentropy, ()), (CategoricalCrossentropy, ()),
        (SparseCategoricalCrossentropy, ())]:
    for _key in (_cls.__name__, _cls._default_name) + _aliases:
        _BY_NAME[_key] = _cls
_LOWER = {k.lower(): v for k, v in _BY_NAME.items()}
_ALL_CLASSES = {c.__name__: c for c in set(_BY_NAME.values()) | {Mean}}


def _loss_kind(loss):
    if loss is None:
        return None
    try:
        loss = _losses.get(loss)
    except (TypeError, ValueError):
        return None
    for cls, kind in ((_losses.BinaryCrossentropy, "binary"),
                      (_losses.SparseCategoricalCrossentropy, "sparse"),
                      (_losses.CategoricalCrossentropy, "categorical")):
        if isinstance(loss, cls):
            return kind
    return None


def _accuracy(name, loss, output_shape):
    kind = _loss_kind(loss)
    last = output_shape[-1] if output_shape is not None and len(output_shape) else None
    if kind == "binary" or last == 1:
        return BinaryAccuracy(name=name)
    if kind == "sparse":
        return SparseCategoricalAccuracy(name=name)
    if kind == "categorical":
        return CategoricalAccuracy(name=name)
    return _AutoAccuracy(name=name, needs_shape=output_shape is None)


def get(identifier, loss=None, output_shape=None):
    """A :class:`Metric` from a Keras name or alias, a Metric instance (returned
    as is) or class, a config dict, a Loss instance, or a function
    ``fn(y_true, y_pred) -> per-entry values``.

    'accuracy' / 'acc' (any case) resolves as Keras: binary accuracy if ``loss``
    is binary crossentropy or ``output_shape[-1] == 1``; sparse categorical
    accuracy if ``loss`` is sparse categorical crossentropy; categorical
    accuracy if it is categorical crossentropy; otherwise the choice is made on
    the first batch from the shapes, with Keras 3's rule.  The metric keeps the
    identifier as its ``name`` (History shows 'accuracy'), as do other string
    identifiers ('mse' is reported as 'mse').
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _accuracy(identifier, loss, output_shape)
        cls = _BY_NAME.get(identifier) or _LOWER.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown metric {identifier!r}. Accepted names: "
                             f"{sorted(_BY_NAME) + ['accuracy', 'acc']}")
        return cls(name=identifier)
    if isinstance(identifier, dict):
        cls = _ALL_CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"Unknown metric config {identifier!r}. Accepted class names: "
                             f"{sorted(_ALL_CLASSES)}")
        return cls.from_config(identifier.get("config") or {})
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, _losses.Loss):
        return _LossValues(identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}. Accepted names: "
                     f"{sorted(_BY_NAME) + ['accuracy', 'acc']}, a Metric, a Loss or a function.")
