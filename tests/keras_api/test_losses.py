"""clstm.keras.losses: values against direct NumPy formulas, gradients against
central finite differences, Keras spot checks."""

import numpy as np
import pytest

from clstm.keras import losses

EPS = 1e-7
rng = np.random.default_rng(0)


# ---- direct reference formulas (per entry, float64) ----------------------------------

def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def ref_entries(kind, yt, yp, from_logits=False):
    if kind == "mse":
        return ((yt - yp) ** 2).mean(-1)
    if kind == "mae":
        return np.abs(yt - yp).mean(-1)
    if kind == "bce":
        p = 1 / (1 + np.exp(-yp)) if from_logits else np.clip(yp, EPS, 1 - EPS)
        return -(yt * np.log(p) + (1 - yt) * np.log(1 - p)).mean(-1)
    if kind == "sparse":
        yt = np.eye(yp.shape[-1])[yt.astype(int)]
    p = _softmax(yp) if from_logits else np.clip(yp / yp.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -(yt * np.log(p)).sum(-1)


def ref_loss(kind, yt, yp, mask=None, from_logits=False):
    e = ref_entries(kind, yt, yp, from_logits)
    return e.mean() if mask is None else e[mask].mean()


def make(kind, from_logits=False):
    return {"mse": losses.MeanSquaredError, "mae": losses.MeanAbsoluteError}[kind]() \
        if kind in ("mse", "mae") else {
            "bce": losses.BinaryCrossentropy, "cce": losses.CategoricalCrossentropy,
            "sparse": losses.SparseCategoricalCrossentropy}[kind](from_logits=from_logits)


def data(kind, shape, from_logits=False):
    """(y_true, y_pred) with probabilities well inside (0, 1)."""
    c = shape[-1]
    if from_logits:
        yp = rng.standard_normal(shape) * 2
    elif kind in ("cce", "sparse"):
        yp = rng.uniform(0.05, 1.0, shape)
        yp /= yp.sum(-1, keepdims=True)
    else:
        yp = rng.uniform(0.05, 0.95, shape)
    if kind in ("mse", "mae"):
        yt = rng.standard_normal(shape)
        if kind == "mae":
            yp = yt + rng.choice([-1, 1], shape) * rng.uniform(0.1, 1, shape)  # |d| > 0
        else:
            yp = rng.standard_normal(shape)
    elif kind == "bce":
        yt = rng.integers(0, 2, shape).astype(float)
    else:
        labels = rng.integers(0, c, shape[:-1])
        yt = labels if kind == "sparse" else np.eye(c)[labels]
    return yt, yp


def fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


def check_grad(loss, yt, yp, mask=None, sample_weight=None, h=1e-6):
    value, grad = loss.value_and_grad(yt, yp, mask=mask, sample_weight=sample_weight)
    assert grad.shape == yp.shape and grad.dtype == yp.dtype
    fd = fd_grad(lambda p: loss(yt, p, mask=mask, sample_weight=sample_weight), yp, h)
    err = np.linalg.norm(grad - fd) / max(np.linalg.norm(fd), 1e-30)
    assert err < 1e-6, err
    return value, grad


KINDS = [("mse", False), ("mae", False), ("bce", False), ("bce", True),
         ("cce", False), ("cce", True), ("sparse", False), ("sparse", True)]
IDS = [f"{k}{'_logits' if lg else ''}" for k, lg in KINDS]


@pytest.mark.parametrize("kind,from_logits", KINDS, ids=IDS)
@pytest.mark.parametrize("shape", [(6, 3), (4, 5, 3)], ids=["2d", "3d"])
def test_value_and_gradient(kind, from_logits, shape):
    yt, yp = data(kind, shape, from_logits)
    loss = make(kind, from_logits)
    value, _ = check_grad(loss, yt, yp)
    assert isinstance(value, float)
    np.testing.assert_allclose(value, ref_loss(kind, yt, yp, None, from_logits), rtol=1e-12)
    np.testing.assert_allclose(loss.call(yt, yp), ref_entries(kind, yt, yp, from_logits),
                               rtol=1e-12)


@pytest.mark.parametrize("kind,from_logits", KINDS, ids=IDS)
def test_masked_3d_value_and_gradient(kind, from_logits):
    yt, yp = data(kind, (4, 5, 3), from_logits)
    mask = rng.random((4, 5)) < 0.6
    mask[0, 0], mask[1, 1] = True, False
    loss = make(kind, from_logits)
    value, grad = check_grad(loss, yt, yp, mask=mask)
    np.testing.assert_allclose(value, ref_loss(kind, yt, yp, mask, from_logits), rtol=1e-12)
    assert np.all(grad[~mask] == 0)
    # garbage under the mask changes nothing
    yp2 = yp.copy()
    yp2[~mask] = np.nan
    v2, g2 = loss.value_and_grad(yt, yp2, mask=mask)
    assert v2 == value and np.array_equal(g2, grad)


@pytest.mark.parametrize("kind,from_logits", KINDS, ids=IDS)
def test_all_masked_is_zero(kind, from_logits):
    yt, yp = data(kind, (2, 3, 4), from_logits)
    value, grad = make(kind, from_logits).value_and_grad(yt, yp, mask=np.zeros((2, 3), bool))
    assert value == 0.0 and not grad.any()


@pytest.mark.parametrize("kind,from_logits", [("mse", False), ("cce", True), ("sparse", False)])
def test_sample_weight_keras_semantics(kind, from_logits):
    yt, yp = data(kind, (4, 5, 3), from_logits)
    loss = make(kind, from_logits)
    e = ref_entries(kind, yt, yp, from_logits)
    sw = rng.uniform(0, 2, 4)
    mask = rng.random((4, 5)) < 0.7
    value, _ = check_grad(loss, yt, yp, sample_weight=sw)
    np.testing.assert_allclose(value, (e * sw[:, None]).sum() / e.size, rtol=1e-12)
    value, _ = check_grad(loss, yt, yp, mask=mask, sample_weight=sw)
    np.testing.assert_allclose(value, (e * sw[:, None] * mask).sum() / mask.sum(), rtol=1e-12)


def test_reduction_sum():
    yt, yp = data("mse", (3, 2))
    loss = losses.MeanSquaredError(reduction="sum")
    check_grad(loss, yt, yp)
    np.testing.assert_allclose(loss(yt, yp), ref_entries("mse", yt, yp).sum())
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="none")


# ---- clipping -------------------------------------------------------------------------

def test_bce_clipped_region_is_flat_and_interior_exact():
    yt = np.array([[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]])
    yp = np.array([[1.0, 0.0, 0.0, 1.0, 0.3, 0.7]])  # first four clipped, last two interior
    loss = losses.BinaryCrossentropy()
    value, grad = loss.value_and_grad(yt, yp)
    hi = -np.log(EPS)
    expected = (2 * -np.log(1 - EPS) + 2 * hi - np.log(0.3) - np.log(0.3)) / 6
    np.testing.assert_allclose(value, expected, rtol=1e-9)  # 1 - (1 - 1e-7) != 1e-7 exactly
    assert np.all(grad[0, :4] == 0)
    fd = fd_grad(lambda p: loss(yt, p), yp, h=1e-9)[0, :4]
    assert np.all(np.abs(fd) < 1e-6)
    inner = fd_grad(lambda p: loss(yt, np.concatenate([yp[:, :4], p], 1)), yp[:, 4:])
    np.testing.assert_allclose(grad[:, 4:], inner, rtol=1e-7)


def test_cce_renormalises_then_clips():
    loss = losses.CategoricalCrossentropy()
    yt = np.array([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(loss(yt, np.array([[2.0, 6.0, 2.0]])),
                               loss(yt, np.array([[0.2, 0.6, 0.2]])), rtol=1e-14)
    check_grad(loss, yt, np.array([[2.0, 6.0, 2.0]]))
    # true class at probability 0: clipped to 1e-7, the row's gradient is zero
    value, grad = loss.value_and_grad(yt, np.array([[0.5, 0.0, 0.5]]))
    np.testing.assert_allclose(value, -np.log(EPS), rtol=1e-12)
    assert not grad.any()
    # a zero-probability non-target class does not break the gradient
    check_grad(loss, np.array([[1.0, 0.0, 0.0]]), np.array([[0.5, 0.0, 0.5]]), h=1e-9)


def test_logits_are_stable_at_extremes():
    value, grad = losses.BinaryCrossentropy(from_logits=True).value_and_grad(
        np.array([[0.0], [1.0]]), np.array([[1000.0], [-1000.0]]))
    np.testing.assert_allclose(value, 1000.0)
    np.testing.assert_allclose(grad, [[0.5], [-0.5]])
    value, grad = losses.CategoricalCrossentropy(from_logits=True).value_and_grad(
        np.array([[1.0, 0.0]]), np.array([[-1000.0, 1000.0]]))
    np.testing.assert_allclose(value, 2000.0)
    np.testing.assert_allclose(grad, [[-1.0, 1.0]])


# ---- Keras spot checks (outputs documented in Keras's docstrings) ---------------------

def test_keras_documented_values():
    bce = losses.binary_crossentropy(np.array([[0, 1], [0, 0]]), np.array([[0.6, 0.4], [0.4, 0.6]]))
    np.testing.assert_allclose(bce, [0.916, 0.714], atol=1e-3)
    cce_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    cce = losses.categorical_crossentropy(np.array([[0, 1, 0], [0, 0, 1]]), cce_pred)
    np.testing.assert_allclose(cce, [0.0513, 2.303], atol=1e-3)
    np.testing.assert_allclose(losses.sparse_categorical_crossentropy(np.array([1, 2]), cce_pred),
                               [0.0513, 2.303], atol=1e-3)
    np.testing.assert_allclose(losses.get("categorical_crossentropy")(
        np.array([[0, 1, 0], [0, 0, 1]]), cce_pred), (0.0513 + 2.3026) / 2, atol=1e-3)
    a = np.eye(3)
    b = np.array([[.9, .05, .05], [.05, .89, .06], [.05, .01, .94]])
    np.testing.assert_allclose(losses.categorical_crossentropy(a, b),
                               [0.10536, 0.11653, 0.06188], atol=1e-5)
    np.testing.assert_allclose(losses.categorical_crossentropy(a, a), 0, atol=1e-5)


def test_perfect_bce_is_clipped_not_zero():
    yt = np.array([[1.0], [0.0]])
    v64 = losses.BinaryCrossentropy()(yt, np.array([[1.0], [0.0]]))
    np.testing.assert_allclose(v64, -np.log(1 - 1e-7), rtol=1e-9)  # 1.00000005e-07
    v32, g32 = losses.BinaryCrossentropy().value_and_grad(yt, np.array([[1.0], [0.0]], np.float32))
    # float32: 1 - 1e-7 rounds to 0.99999988, so Keras (float32) reports ~1.19e-07
    np.testing.assert_allclose(v32, 1.1920929e-07, rtol=1e-3)
    assert g32.dtype == np.float32 and not g32.any()


def test_float32_in_float32_out():
    yt, yp = data("cce", (3, 4))
    v, g = losses.CategoricalCrossentropy().value_and_grad(yt, yp.astype(np.float32))
    assert g.dtype == np.float32 and isinstance(v, float)
    np.testing.assert_allclose(v, ref_loss("cce", yt, yp), rtol=1e-5)


# ---- shapes and labels --------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["mse", "mae", "bce"])
def test_rank_1_targets_against_single_output(kind):
    yt, yp = data(kind, (5, 1))
    loss = make(kind)
    v, g = loss.value_and_grad(yt[:, 0], yp)
    assert (v, g.tolist()) == (loss(yt, yp), loss.value_and_grad(yt, yp)[1].tolist())
    v1, g1 = loss.value_and_grad(yt[:, 0], yp[:, 0])  # (B,) against (B,)
    np.testing.assert_allclose(v1, v)
    assert g1.shape == (5,)


def test_sequence_targets_without_trailing_axis():
    yt, yp = data("mse", (2, 4, 1))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], bool)
    loss = losses.MeanSquaredError()
    np.testing.assert_allclose(loss(yt[..., 0], yp, mask=mask), ref_loss("mse", yt, yp, mask))
    check_grad(loss, yt[..., 0], yp, mask=mask)


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3)])
@pytest.mark.parametrize("variant", ["plain", "trailing1", "float"])
def test_sparse_label_shapes(shape, variant):
    labels, yp = data("sparse", shape)
    expected = ref_loss("sparse", labels, yp)
    lab = {"plain": labels, "trailing1": labels[..., None],
           "float": labels.astype(np.float32)}[variant]
    loss = losses.SparseCategoricalCrossentropy()
    np.testing.assert_allclose(loss(lab, yp), expected, rtol=1e-12)
    check_grad(loss, lab, yp)


@pytest.mark.parametrize("bad", [3, -1, 7])
def test_sparse_label_out_of_range(bad):
    labels = np.array([0, 1, bad, 2])
    yp = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=rf"label {bad}\b.*\[0, 3\)"):
        losses.SparseCategoricalCrossentropy()(labels, yp)


def test_sparse_non_integer_label_and_masked_bad_label():
    yp = np.full((1, 2, 3), 1 / 3)
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match="1.5"):
        loss(np.array([[0.0, 1.5]]), yp)
    padded = np.array([[2, -1]])  # padding label under the mask is not checked
    np.testing.assert_allclose(loss(padded, yp, mask=np.array([[True, False]])), np.log(3))


def test_sparse_ignore_class():
    labels, yp = data("sparse", (3, 4, 3))
    labels[0, :2] = 255
    loss = losses.SparseCategoricalCrossentropy(ignore_class=255)
    keep = labels != 255
    np.testing.assert_allclose(loss(labels, yp), ref_loss("sparse", np.where(keep, labels, 0),
                                                          yp, keep), rtol=1e-12)
    assert loss.call(labels, yp)[0, 0] == 0


@pytest.mark.parametrize("kind,yt_shape,yp_shape", [
    ("mse", (4, 2), (4, 3)), ("bce", (4, 3, 2), (4, 3)), ("mae", (4,), (4, 2)),
    ("cce", (4, 2), (4, 3)), ("cce", (4,), (4, 3)), ("sparse", (4, 2), (4, 3)),
    ("sparse", (5,), (4, 3))])
def test_shape_mismatch_names_both_shapes(kind, yt_shape, yp_shape):
    with pytest.raises(ValueError) as info:
        make(kind)(np.zeros(yt_shape), np.full(yp_shape, 0.5))
    assert str(yt_shape) in str(info.value) and str(yp_shape) in str(info.value)


def test_mask_shape_mismatch():
    with pytest.raises(ValueError, match=r"mask shape \(2, 4\).*\(2, 3\)"):
        losses.MeanSquaredError()(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)),
                                  mask=np.ones((2, 4), bool))


# ---- get / config -----------------------------------------------------------------------

@pytest.mark.parametrize("ident,cls", [
    ("mse", losses.MeanSquaredError), ("MSE", losses.MeanSquaredError),
    ("mean_squared_error", losses.MeanSquaredError), ("mae", losses.MeanAbsoluteError),
    ("MeanAbsoluteError", losses.MeanAbsoluteError), ("bce", losses.BinaryCrossentropy),
    ("binary_crossentropy", losses.BinaryCrossentropy),
    ("categorical_crossentropy", losses.CategoricalCrossentropy),
    ("SparseCategoricalCrossentropy", losses.SparseCategoricalCrossentropy),
    (losses.sparse_categorical_crossentropy, losses.SparseCategoricalCrossentropy),
    (losses.BinaryCrossentropy, losses.BinaryCrossentropy)])
def test_get(ident, cls):
    assert type(losses.get(ident)) is cls


def test_get_instance_config_and_names():
    inst = losses.CategoricalCrossentropy(from_logits=True)
    assert losses.get(inst) is inst
    got = losses.get({"class_name": "CategoricalCrossentropy", "config": inst.get_config()})
    assert got.from_logits and got.get_config() == inst.get_config()
    assert losses.get(None) is None
    assert [losses.get(n).name for n in ("mse", "mae", "bce", "categorical_crossentropy",
                                         "sparse_categorical_crossentropy")] == [
        "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
        "categorical_crossentropy", "sparse_categorical_crossentropy"]


def test_get_rejects_plain_callables_and_unknown_names():
    with pytest.raises(TypeError, match="value_and_grad"):
        losses.get(lambda y_true, y_pred: (y_true - y_pred) ** 2)
    with pytest.raises(ValueError, match="mean_squared_error"):
        losses.get("huber")


def test_matches_keras_if_installed():
    keras = pytest.importorskip("keras", minversion="3.0")  # not tests/keras
    pairs = [(losses.MeanSquaredError(), keras.losses.MeanSquaredError(), "mse", False),
             (losses.MeanAbsoluteError(), keras.losses.MeanAbsoluteError(), "mae", False),
             (losses.BinaryCrossentropy(), keras.losses.BinaryCrossentropy(), "bce", False),
             (losses.BinaryCrossentropy(from_logits=True),
              keras.losses.BinaryCrossentropy(from_logits=True), "bce", True),
             (losses.CategoricalCrossentropy(), keras.losses.CategoricalCrossentropy(),
              "cce", False),
             (losses.CategoricalCrossentropy(from_logits=True),
              keras.losses.CategoricalCrossentropy(from_logits=True), "cce", True),
             (losses.SparseCategoricalCrossentropy(),
              keras.losses.SparseCategoricalCrossentropy(), "sparse", False)]
    for ours, theirs, kind, logits in pairs:
        yt, yp = data(kind, (6, 3), logits)
        yp = yp.astype(np.float32)
        expected = float(keras.ops.convert_to_numpy(theirs(yt, yp)))
        np.testing.assert_allclose(ours(yt, yp), expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5,), (32, 1), (7, 3), (4, 6, 33)])
def test_mean_over_last_axis_is_numpys_bit_for_bit(dtype, shape):
    # losses._mean_last stands in for np.mean(a, axis=-1) in the per-entry
    # losses: the same numbers, not merely close ones
    a = (np.random.default_rng(len(shape)).standard_normal(shape) * 7).astype(dtype)
    got, want = losses._mean_last(a), np.mean(a, axis=-1)
    assert np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_array_equal(got, want)
