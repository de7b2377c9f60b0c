"""clstm.keras.metrics: accumulation, masks, Keras's documented values, 'accuracy' resolution."""

import numpy as np
import pytest

from clstm.keras import losses, metrics

rng = np.random.default_rng(1)


def test_mean_weighted_and_keras_examples():
    m = metrics.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0
    m.reset_state()
    assert m.result() == 0.0
    m.update_state(2.0, sample_weight=3)  # batch loss 2.0 over 3 samples
    m.update_state(4.0, sample_weight=1)
    assert m.result() == pytest.approx(2.5)


@pytest.mark.parametrize("cls,ref", [
    (metrics.MeanSquaredError, lambda t, p: ((t - p) ** 2).mean()),
    (metrics.MeanAbsoluteError, lambda t, p: np.abs(t - p).mean())])
def test_regression_metrics_over_unequal_batches(cls, ref):
    yt, yp = rng.standard_normal((8, 3)), rng.standard_normal((8, 3))
    m = cls()
    m.update_state(yt[:3], yp[:3])
    m.update_state(yt[3:], yp[3:])
    assert isinstance(m.result(), float)
    assert m.result() == pytest.approx(ref(yt, yp), rel=1e-12)
    # not the mean of the two batch means
    assert m.result() != pytest.approx((ref(yt[:3], yp[:3]) + ref(yt[3:], yp[3:])) / 2, rel=1e-6)


def test_masked_sequence_metric():
    yt, yp = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 4, 2))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], bool)
    yp[~mask] = np.nan  # masked garbage is ignored
    m = metrics.MeanSquaredError()
    m.update_state(yt[:1], yp[:1], mask=mask[:1])
    m.update_state(yt[1:], yp[1:], mask=mask[1:])
    assert m.result() == pytest.approx(((yt - yp) ** 2).mean(-1)[mask].mean(), rel=1e-12)


def test_binary_accuracy():
    m = metrics.BinaryAccuracy()
    m.update_state(np.array([[1], [1], [0], [0]]), np.array([[0.98], [1], [0], [0.6]]))
    assert m.result() == 0.75  # Keras docstring value
    m.reset_state()
    m.update_state(np.array([1, 1, 0, 0]), np.array([[0.98], [1], [0], [0.6]]))  # (B,) labels
    assert m.result() == 0.75
    m.reset_state()
    m.update_state(np.array([[0], [0]]), np.array([[0.5], [0.2]]))  # threshold is strict
    assert m.result() == 1.0
    m = metrics.BinaryAccuracy(threshold=0.7)
    m.update_state(np.array([[1], [0]]), np.array([[0.6], [0.6]]))
    assert m.result() == 0.5
    with pytest.raises(ValueError, match="threshold"):
        metrics.BinaryAccuracy(threshold=1.0)


def test_categorical_and_sparse_accuracy_keras_examples():
    m = metrics.CategoricalAccuracy()
    m.update_state(np.array([[0, 0, 1], [0, 1, 0]]), np.array([[0.1, 0.9, 0.8], [0.05, 0.95, 0]]))
    assert m.result() == 0.5
    for labels in (np.array([[2], [1]]), np.array([2, 1]), np.array([2.0, 1.0])):
        m = metrics.SparseCategoricalAccuracy()
        m.update_state(labels, np.array([[0.1, 0.6, 0.3], [0.05, 0.95, 0]]))
        assert m.result() == 0.5


def test_accuracy_weights_batches_by_size():
    m = metrics.SparseCategoricalAccuracy()
    yp = np.eye(3)[[0, 1, 2]]
    m.update_state(np.array([0, 1, 0]), yp)        # 2 of 3
    m.update_state(np.array([1]), np.eye(3)[[1]])  # 1 of 1
    assert m.result() == 0.75


def test_masked_sequence_accuracy():
    yp = rng.random((2, 5, 4))
    labels = rng.integers(0, 4, (2, 5))
    labels[0, 1] = yp[0, 1].argmax()
    mask = np.zeros((2, 5), bool)
    mask[0, :3] = mask[1, :2] = True
    labels[~mask] = -1  # padding labels
    m = metrics.SparseCategoricalAccuracy()
    m.update_state(labels[:1], yp[:1], mask=mask[:1])
    m.update_state(labels[1:], yp[1:], mask=mask[1:])
    correct = (labels == yp.argmax(-1))[mask]
    assert m.result() == pytest.approx(correct.mean())
    onehot = np.eye(4)[np.where(mask, labels, 0)]
    c = metrics.CategoricalAccuracy()
    c.update_state(onehot, yp, mask=mask)
    assert c.result() == pytest.approx(correct.mean())


def test_sample_weight():
    m = metrics.CategoricalAccuracy()
    m.update_state(np.array([[0, 0, 1], [0, 1, 0]]), np.array([[0.1, 0.9, 0.8], [0.05, 0.95, 0]]),
                   sample_weight=[0.7, 0.3])
    assert m.result() == pytest.approx(0.3)  # Keras docstring value


def test_crossentropy_metric_matches_loss():
    labels = rng.integers(0, 3, (5, 4))
    yp = rng.random((5, 4, 3)) + 0.1
    mask = rng.random((5, 4)) < 0.7
    m = metrics.get("sparse_categorical_crossentropy")
    m.update_state(labels, yp, mask=mask)
    assert m.result() == pytest.approx(
        losses.SparseCategoricalCrossentropy()(labels, yp, mask=mask), rel=1e-12)


# ---- get / 'accuracy' resolution --------------------------------------------------------

@pytest.mark.parametrize("ident,loss,shape,cls", [
    ("accuracy", "binary_crossentropy", (None, 3), metrics.BinaryAccuracy),
    ("accuracy", losses.BinaryCrossentropy(from_logits=True), None, metrics.BinaryAccuracy),
    ("acc", "mse", (None, 1), metrics.BinaryAccuracy),
    ("accuracy", "sparse_categorical_crossentropy", (None, 5), metrics.SparseCategoricalAccuracy),
    ("Accuracy", losses.SparseCategoricalCrossentropy(), None, metrics.SparseCategoricalAccuracy),
    ("accuracy", "categorical_crossentropy", (None, 5), metrics.CategoricalAccuracy),
    ("accuracy", "CategoricalCrossentropy", None, metrics.CategoricalAccuracy)])
def test_accuracy_resolution(ident, loss, shape, cls):
    m = metrics.get(ident, loss=loss, output_shape=shape)
    assert type(m) is cls and m.name == ident


@pytest.mark.parametrize("labels,pred,kind", [
    (np.array([0, 2]), np.eye(3)[[0, 1]], "sparse_categorical"),
    (np.array([[0], [2]]), np.eye(3)[[0, 1]], "sparse_categorical"),
    (np.eye(3)[[0, 2]], np.eye(3)[[0, 1]], "categorical"),
    (np.array([[1], [0]]), np.array([[0.9], [0.8]]), "binary")])
def test_accuracy_without_loss_uses_keras3_shape_rule(labels, pred, kind):
    m = metrics.get("accuracy", loss="mse")
    assert m.name == "accuracy" and m._needs_shape
    m.update_state(labels, pred)
    assert m.resolved == kind and m.result() == 0.5


@pytest.mark.parametrize("ident,cls", [
    ("mse", metrics.MeanSquaredError), ("MSE", metrics.MeanSquaredError),
    ("mean_absolute_error", metrics.MeanAbsoluteError), ("mae", metrics.MeanAbsoluteError),
    ("binary_accuracy", metrics.BinaryAccuracy),
    ("SparseCategoricalAccuracy", metrics.SparseCategoricalAccuracy),
    ("categorical_accuracy", metrics.CategoricalAccuracy),
    ("binary_crossentropy", metrics.BinaryCrossentropy)])
def test_get_by_name_keeps_the_name(ident, cls):
    m = metrics.get(ident)
    assert type(m) is cls and m.name == ident


def test_get_objects_callables_and_errors():
    m = metrics.MeanSquaredError()
    assert metrics.get(m) is m and m.name == "mean_squared_error"
    assert type(metrics.get(metrics.CategoricalAccuracy)) is metrics.CategoricalAccuracy
    cfg = metrics.BinaryAccuracy(threshold=0.3).get_config()
    again = metrics.get({"class_name": "BinaryAccuracy", "config": cfg})
    assert again.threshold == 0.3 and again.get_config() == cfg

    def max_error(y_true, y_pred):
        return np.abs(y_true - y_pred).max(-1)

    w = metrics.get(max_error)
    w.update_state(np.zeros((2, 2)), np.array([[1.0, 3.0], [2.0, 0.0]]))
    assert w.name == "max_error" and w.result() == 2.5
    lm = metrics.get(losses.MeanAbsoluteError())
    lm.update_state(np.zeros((2, 1)), np.array([[1.0], [3.0]]))
    assert lm.result() == 2.0
    for bad in ("f1_score", 3):
        with pytest.raises(ValueError, match="accuracy"):
            metrics.get(bad)
