"""clstm.keras.optimizers against update rules written out from the Keras 3 formulas."""

import warnings

import numpy as np
import pytest

from clstm.keras import optimizers

SHAPES = [(3, 4), (5,)]


def _problem(dtype, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return w0, grads


def _run(opt, w0, grads):
    ws = [w.copy() for w in w0]
    for gs in grads:
        opt.apply(gs, ws)
    return ws


def _tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)


# ---- reference updates, written from the Keras docstrings / papers, in float64 ----------

def ref_sgd(w0, grads, lr, momentum=0.0, nesterov=False):
    out = []
    for k, w in enumerate(w0):
        w, vel = w.astype(np.float64), np.zeros(w.shape)
        for gs in grads:
            g = gs[k].astype(np.float64)
            if momentum == 0:
                w = w - lr * g
            else:
                vel = momentum * vel - lr * g
                w = w + (momentum * vel - lr * g if nesterov else vel)
        out.append(w)
    return out


def ref_adam(w0, grads, lr, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    out = []
    for k, w in enumerate(w0):
        w = w.astype(np.float64)
        m, v, vmax = np.zeros(w.shape), np.zeros(w.shape), np.zeros(w.shape)
        for t, gs in enumerate(grads, start=1):
            g = gs[k].astype(np.float64)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g ** 2
            vmax = np.maximum(vmax, v)
            lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            w = w - lr_t * m / (np.sqrt(vmax if amsgrad else v) + eps)
        out.append(w)
    return out


def ref_rmsprop(w0, grads, lr, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    out = []
    for k, w in enumerate(w0):
        w = w.astype(np.float64)
        ms, mg, buf = np.zeros(w.shape), np.zeros(w.shape), np.zeros(w.shape)
        for gs in grads:
            g = gs[k].astype(np.float64)
            ms = rho * ms + (1 - rho) * g ** 2
            mg = rho * mg + (1 - rho) * g
            var = ms - mg ** 2 if centered else ms
            step = lr * g / np.sqrt(var + eps)
            if momentum > 0:
                buf = momentum * buf + step
                step = buf
            w = w - step
        out.append(w)
    return out


def ref_adagrad(w0, grads, lr, init=0.1, eps=1e-7):
    out = []
    for k, w in enumerate(w0):
        w, acc = w.astype(np.float64), np.full(w.shape, init)
        for gs in grads:
            g = gs[k].astype(np.float64)
            acc = acc + g ** 2
            w = w - lr * g / np.sqrt(acc + eps)
        out.append(w)
    return out


CASES = [
    ("sgd", lambda: optimizers.SGD(0.1), lambda w, g: ref_sgd(w, g, 0.1)),
    ("sgd_momentum", lambda: optimizers.SGD(0.05, momentum=0.9),
     lambda w, g: ref_sgd(w, g, 0.05, 0.9)),
    ("sgd_nesterov", lambda: optimizers.SGD(0.05, momentum=0.8, nesterov=True),
     lambda w, g: ref_sgd(w, g, 0.05, 0.8, True)),
    ("adam", lambda: optimizers.Adam(0.01), lambda w, g: ref_adam(w, g, 0.01)),
    ("adam_amsgrad", lambda: optimizers.Adam(0.02, beta_1=0.8, beta_2=0.99, amsgrad=True),
     lambda w, g: ref_adam(w, g, 0.02, 0.8, 0.99, amsgrad=True)),
    ("rmsprop", lambda: optimizers.RMSprop(0.01), lambda w, g: ref_rmsprop(w, g, 0.01)),
    ("rmsprop_momentum", lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5),
     lambda w, g: ref_rmsprop(w, g, 0.01, 0.8, 0.5)),
    ("rmsprop_centered", lambda: optimizers.RMSprop(0.01, centered=True),
     lambda w, g: ref_rmsprop(w, g, 0.01, centered=True)),
    ("rmsprop_centered_momentum",
     lambda: optimizers.RMSprop(0.01, momentum=0.9, centered=True, epsilon=1e-5),
     lambda w, g: ref_rmsprop(w, g, 0.01, 0.9, 0.9, 1e-5, True)),
    ("adagrad", lambda: optimizers.Adagrad(0.1), lambda w, g: ref_adagrad(w, g, 0.1)),
    ("adagrad_init", lambda: optimizers.Adagrad(0.1, initial_accumulator_value=0.5),
     lambda w, g: ref_adagrad(w, g, 0.1, 0.5)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_updates_match_keras_formula(name, make, ref, dtype):
    w0, grads = _problem(dtype, steps=7)
    opt = make()
    ws = _run(opt, w0, grads)
    for w, r in zip(ws, ref(w0, grads)):
        assert w.dtype == dtype
        np.testing.assert_allclose(w, r, **_tol(dtype))
    assert opt.iterations == 7
    assert all(a.dtype == dtype for k, a in opt.get_state().items() if k != "iterations")


def test_reference_differs_between_variants():
    # guards against the variants silently collapsing to the same rule
    w0, grads = _problem(np.float64)
    a = _run(optimizers.SGD(0.05, momentum=0.9), w0, grads)
    b = _run(optimizers.SGD(0.05, momentum=0.9, nesterov=True), w0, grads)
    c = _run(optimizers.RMSprop(0.01, centered=True), w0, grads)
    d = _run(optimizers.RMSprop(0.01), w0, grads)
    assert not np.allclose(a[0], b[0]) and not np.allclose(c[0], d[0])


def test_defaults_are_keras():
    assert optimizers.SGD().get_config()["learning_rate"] == 0.01
    cfg = optimizers.Adam().get_config()
    assert (cfg["learning_rate"], cfg["beta_1"], cfg["beta_2"], cfg["epsilon"], cfg["amsgrad"]) \
        == (0.001, 0.9, 0.999, 1e-7, False)
    cfg = optimizers.RMSprop().get_config()
    assert (cfg["learning_rate"], cfg["rho"], cfg["momentum"], cfg["epsilon"], cfg["centered"]) \
        == (0.001, 0.9, 0.0, 1e-7, False)
    cfg = optimizers.Adagrad().get_config()
    assert (cfg["learning_rate"], cfg["initial_accumulator_value"], cfg["epsilon"]) \
        == (0.001, 0.1, 1e-7)
    assert [optimizers.get(n).name for n in ("sgd", "adam", "rmsprop", "adagrad")] \
        == ["SGD", "adam", "rmsprop", "adagrad"]


def test_in_place_on_noncontiguous_views():
    base = np.zeros((4, 6))
    view = base[:, ::2]
    g = np.ones((4, 3))
    optimizers.Adam(0.1).apply([g], [view])
    assert np.all(base[:, ::2] < 0) and np.all(base[:, 1::2] == 0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_one_pass_kernel_matches_numpy_expressions(dtype):
    # Contiguous arrays take the core's one-pass Adam (src_c/optim.c);
    # strided views of the same values, the NumPy expressions: the same
    # steps either way, to rounding.
    w0, grads = _problem(dtype, steps=7)
    fused = _run(optimizers.Adam(0.01), w0, grads)
    views = [np.zeros(w.shape + (2,), dtype)[..., 0] for w in w0]
    for v, w in zip(views, w0):
        v[...] = w
    assert not any(v.flags.c_contiguous for v in views)
    opt = optimizers.Adam(0.01)
    for gs in grads:
        opt.apply(gs, views)
    tol = dict(rtol=1e-12) if dtype == np.float64 else dict(rtol=2e-6, atol=1e-7)
    for a, b in zip(fused, views):
        np.testing.assert_allclose(a, b, **tol)


def test_apply_gradients_pairs_and_reuse_of_variables():
    w0, grads = _problem(np.float64)
    a = _run(optimizers.Adam(0.01), w0, grads)
    opt, ws = optimizers.Adam(0.01), [w.copy() for w in w0]
    opt.apply_gradients(zip(grads[0], ws))
    for gs in grads[1:]:
        opt.apply(gs)  # variables remembered from the first call
    for x, y in zip(a, ws):
        np.testing.assert_array_equal(x, y)


def test_learning_rate_settable_and_used():
    w = np.zeros(3)
    opt = optimizers.SGD(0.1)
    opt.learning_rate = 0.5
    opt.apply([np.ones(3)], [w])
    np.testing.assert_allclose(w, -0.5)
    assert opt.get_config()["learning_rate"] == 0.5
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0


def test_float64_gradient_for_float32_variable():
    w = np.ones(3, dtype=np.float32)
    optimizers.Adam(0.1).apply([np.ones(3, dtype=np.float64)], [w])
    assert w.dtype == np.float32 and np.all(w < 1)


def test_weight_decay():
    w = np.array([1.0, -2.0])
    optimizers.SGD(0.1, weight_decay=0.5).apply([np.array([1.0, 1.0])], [w])
    np.testing.assert_allclose(w, [1 - 0.05 - 0.1, -2 + 0.1 - 0.1])


# ---- clipping -----------------------------------------------------------------------

def _clipped(opt, grads):
    ws = [np.zeros(np.shape(g)) for g in grads]
    opt.apply([np.array(g, dtype=float) for g in grads], ws)
    return [-w for w in ws]  # SGD with lr=1: the update is minus the clipped gradient


def test_clipnorm_clips_each_gradient_by_its_own_norm():
    out = _clipped(optimizers.SGD(1.0, clipnorm=1.0), [[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    np.testing.assert_allclose(out[0], [0.6, 0.8])
    np.testing.assert_allclose(out[1], [0.3, 0.4])
    np.testing.assert_array_equal(out[2], [0.0, 0.0])


def test_global_clipnorm_clips_by_the_global_norm():
    out = _clipped(optimizers.SGD(1.0, global_clipnorm=1.0), [[3.0, 4.0], [0.0, 12.0]])
    np.testing.assert_allclose(out[0], [3 / 13, 4 / 13])
    np.testing.assert_allclose(out[1], [0.0, 12 / 13])
    small = _clipped(optimizers.SGD(1.0, global_clipnorm=10.0), [[0.3, 0.4], [0.0, 0.0]])
    np.testing.assert_allclose(small[0], [0.3, 0.4])


def test_clipvalue_clips_elementwise():
    out = _clipped(optimizers.SGD(1.0, clipvalue=0.5), [[3.0, -4.0, 0.2]])
    np.testing.assert_allclose(out[0], [0.5, -0.5, 0.2])


def test_clipping_happens_before_the_update_rule():
    w0, grads = _problem(np.float64)
    clipped = [[g * min(1.0, 0.5 / np.linalg.norm(g)) for g in gs] for gs in grads]
    a = _run(optimizers.Adam(0.01, clipnorm=0.5), w0, grads)
    for x, y in zip(a, ref_adam(w0, clipped, 0.01)):
        np.testing.assert_allclose(x, y, rtol=1e-10)


@pytest.mark.parametrize("kw", [dict(clipnorm=1.0, global_clipnorm=1.0),
                                dict(clipnorm=1.0, clipvalue=1.0),
                                dict(clipvalue=1.0, global_clipnorm=1.0)])
def test_only_one_clipping_argument(kw):
    with pytest.raises(ValueError, match="Only one of"):
        optimizers.Adam(**kw)


# ---- errors, NaN ------------------------------------------------------------------------

def test_gradient_shape_mismatch_names_both_shapes():
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)"):
        opt.apply([np.zeros((4, 3))], [np.zeros((3, 4))])
    with pytest.raises(ValueError, match="same length"):
        opt.apply([np.zeros(3)], [np.zeros(3), np.zeros(3)])
    with pytest.raises(TypeError, match="floating"):
        opt.apply([np.zeros(3)], [np.zeros(3, dtype=np.int64)])


def test_variable_set_must_not_change_shape():
    opt = optimizers.Adam()
    opt.apply([np.ones(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match="built"):
        opt.apply([np.ones(4)], [np.zeros(4)])
    with pytest.raises(ValueError, match="1 variables"):
        opt.apply([np.ones(3), np.ones(3)], [np.zeros(3), np.zeros(3)])


def test_nan_gradients_propagate():
    w = np.zeros(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizers.Adam(0.1).apply([np.array([np.nan, 1.0, 1.0])], [w])
    assert np.isnan(w[0]) and np.all(np.isfinite(w[1:]))
    w = np.zeros(2)
    optimizers.SGD(0.1, global_clipnorm=1.0).apply([np.array([np.nan, 1.0])], [w])
    assert np.all(np.isnan(w))  # as Keras: a non-finite global norm poisons every gradient


BAD_ARGS = [
    (optimizers.Adam, dict(learning_rate=-0.1), "learning_rate=-0.1"),
    (optimizers.Adam, dict(learning_rate=float("nan")), "learning_rate"),
    (optimizers.Adam, dict(learning_rate="0.1"), "learning_rate"),
    (optimizers.Adam, dict(beta_1=1.0), "beta_1=1.0"),
    (optimizers.Adam, dict(beta_2=-0.5), "beta_2=-0.5"),
    (optimizers.Adam, dict(epsilon=-1e-7), "epsilon"),
    (optimizers.Adam, dict(amsgrad="yes"), "amsgrad"),
    (optimizers.SGD, dict(momentum=1.5), r"\[0, 1\].*momentum=1.5"),
    (optimizers.SGD, dict(nesterov=1), "nesterov"),
    (optimizers.RMSprop, dict(rho=1.0), "rho"),
    (optimizers.RMSprop, dict(momentum=-0.1), "momentum"),
    (optimizers.Adagrad, dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (optimizers.SGD, dict(clipnorm=-1.0), "clipnorm"),
    (optimizers.SGD, dict(foo=1), "not recognized"),
    (optimizers.SGD, dict(use_ema=True), "use_ema"),
]


@pytest.mark.parametrize("cls,kw,pattern", BAD_ARGS)
def test_bad_constructor_arguments(cls, kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        cls(**kw)


# ---- state ----------------------------------------------------------------------------

STATE_CASES = [lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
               lambda: optimizers.Adam(0.01, amsgrad=True),
               lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
               lambda: optimizers.Adagrad(0.1),
               lambda: optimizers.SGD(0.1)]


@pytest.mark.parametrize("make", STATE_CASES)
@pytest.mark.parametrize("fresh", [True, False])
def test_state_round_trip_continues_identically(make, fresh):
    w0, grads = _problem(np.float32, steps=6)
    a = make()
    wa = _run(a, w0, grads[:3])
    state = a.get_state()
    b = optimizers.get({"class_name": type(a).__name__, "config": a.get_config()})
    if not fresh:  # b already built with other history
        _run(b, w0, grads[3:5])
    b.set_state(state)
    for k in state:  # get_state returned copies
        state[k][...] = 0
    wb = [w.copy() for w in wa]
    for gs in grads[3:]:
        a.apply(gs, wa)
        b.apply(gs, wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)
    assert a.iterations == b.iterations == 6


def test_state_names_are_deterministic():
    opt = optimizers.Adam()
    _run(opt, *_problem(np.float64, steps=1))
    assert list(opt.get_state()) == ["iterations", "0/momentum", "0/velocity",
                                     "1/momentum", "1/velocity"]
    assert opt.get_state()["iterations"] == 1


def test_set_state_rejects_mismatches():
    w0, grads = _problem(np.float64, steps=2)
    src = optimizers.Adam(amsgrad=True)
    _run(src, w0, grads)
    state = src.get_state()
    with pytest.raises(ValueError, match="velocity_hat"):
        optimizers.Adam().set_state(state)
    built = optimizers.Adam(amsgrad=True)
    _run(built, w0, grads)
    bad = dict(state, **{"0/momentum": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"'0/momentum'.*\(2, 2\).*\(3, 4\)"):
        built.set_state(bad)
    with pytest.raises(ValueError, match="iterations"):
        built.set_state({k: v for k, v in state.items() if k != "iterations"})
    one = {k: v for k, v in state.items() if not k.startswith("1/")}
    with pytest.raises(ValueError, match="1 variables"):
        built.set_state(one)
    fresh = optimizers.Adam(amsgrad=True)
    fresh.set_state(one)  # unbuilt: accepted, checked at apply
    with pytest.raises(ValueError, match="built for 1 variables"):
        fresh.apply(grads[0], [w.copy() for w in w0])


# ---- get / config -----------------------------------------------------------------------

def test_get_by_name_object_class_and_config():
    for name, cls in [("sgd", optimizers.SGD), ("ADAM", optimizers.Adam),
                      ("RMSprop", optimizers.RMSprop), ("adagrad", optimizers.Adagrad)]:
        assert type(optimizers.get(name)) is cls
    opt = optimizers.Adam(0.3)
    assert optimizers.get(opt) is opt
    assert type(optimizers.get(optimizers.RMSprop)) is optimizers.RMSprop
    got = optimizers.get({"class_name": "Adam", "config": {"learning_rate": 0.01, "amsgrad": True}})
    assert got.learning_rate == 0.01 and got.amsgrad
    keras_style = optimizers.serialize(optimizers.SGD(0.2, momentum=0.5, clipvalue=1.0))
    assert keras_style["class_name"] == "SGD" and keras_style["module"] == "keras.optimizers"
    again = optimizers.get(keras_style)
    assert again.get_config() == keras_style["config"]


@pytest.mark.parametrize("make", STATE_CASES)
def test_config_round_trip(make):
    opt = make()
    cfg = opt.get_config()
    assert cfg["name"] == opt.name
    assert type(opt).from_config(cfg).get_config() == cfg


@pytest.mark.parametrize("bad", ["adamw", 42, None, {"config": {}}])
def test_get_rejects_unknown(bad):
    with pytest.raises(ValueError, match="adagrad"):
        optimizers.get(bad)


def test_matches_keras_if_installed():
    keras = pytest.importorskip("keras", minversion="3.0")  # not tests/keras
    configs = [("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
               ("Adam", dict(learning_rate=0.01, amsgrad=True)),
               ("RMSprop", dict(learning_rate=0.01, momentum=0.5, centered=True)),
               ("Adagrad", dict(learning_rate=0.1)),
               ("Adam", dict(learning_rate=0.01, global_clipnorm=1.0))]
    for name, kw in configs:
        w0, grads = _problem(np.float32, steps=5)
        ours = getattr(optimizers, name)(**kw)
        theirs = getattr(keras.optimizers, name)(**kw)
        ws = [w.copy() for w in w0]
        kv = [keras.Variable(w.copy()) for w in w0]
        for gs in grads:
            ours.apply(gs, ws)
            theirs.apply([keras.ops.convert_to_tensor(g) for g in gs], kv)
        for w, v in zip(ws, kv):
            np.testing.assert_allclose(w, keras.ops.convert_to_numpy(v), rtol=1e-5, atol=1e-6)
