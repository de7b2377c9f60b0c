"""Property-based tests of clstm.LSTM: any input either gives the reference's
answer or a Python exception of a fitting type whose message names what was
expected and what came.

Every case draws a model configuration and an input of random rank, shape
(0 and 1 included), dtype, memory layout (Fortran, permuted, strided,
negative steps, unaligned, broadcast, read-only, nested lists) and values
(NaN, +-inf, +-1e30, subnormals), with or without (h0, c0) and a step mask,
each possibly of the wrong shape or dtype.  An oracle lists the defects of
the case; the call must raise an exception matching one of them, or, when
there are none, match the float64 NumPy reference.  All calls into C go
through the contract checker of test_fuzz_common."""
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import clstm
from test_fuzz_common import (BAD_DTYPES, FLOAT_DTYPES, LAYOUTS, assert_close, cast,
                              core_contract, examples, float_values, layout, ref_masked)

pytestmark = pytest.mark.usefixtures("core_contract")

_MODELS = {}


def _model(I, H, L, bidir, bias, batch_first, dtype):
    key = (I, H, L, bidir, bias, batch_first, np.dtype(dtype).name)
    if key not in _MODELS:
        _MODELS[key] = clstm.LSTM(I, H, num_layers=L, bidirectional=bidir, bias=bias,
                                  batch_first=batch_first, dtype=dtype, seed=len(_MODELS))
    return _MODELS[key]


configs = st.fixed_dictionaries({
    "I": st.integers(1, 4), "H": st.integers(1, 4), "L": st.integers(1, 2),
    "bidir": st.booleans(), "bias": st.booleans(), "batch_first": st.booleans(),
    "dtype": st.sampled_from([np.float32, np.float64])})


class Defects:
    """What is wrong with a case: (exception type, message fragments) each."""

    def __init__(self):
        self.items = []

    def add(self, exc, *fragments):
        self.items.append((exc, fragments))

    def __bool__(self):
        return bool(self.items)

    def check(self, err):
        for exc, fragments in self.items:
            if isinstance(err, exc) and all(f in str(err) for f in fragments):
                return
        raise AssertionError(f"raised {type(err).__name__}: {err}\nexpected one of "
                             f"{[(e.__name__, f) for e, f in self.items]}") from err

    def run(self, fn):
        """fn() must raise one of the defects; returns None."""
        try:
            fn()
        except AssertionError:
            raise
        except Exception as err:      # noqa: BLE001 - the point is to classify it
            self.check(err)
            return
        raise AssertionError(f"no exception; expected one of "
                             f"{[(e.__name__, f) for e, f in self.items]}")


X_LAYOUTS = LAYOUTS


@st.composite
def arrays(draw, shape, bad_dtype_chance=8, specials=True, layouts=LAYOUTS, bound=None):
    """(what the user passes, np.asarray of it); bound: clip magnitudes (NaN stays)."""
    values = draw(float_values(shape, specials=specials))
    if bound is not None:
        values = np.clip(values, -bound, bound)
    if bad_dtype_chance is not None and draw(st.integers(0, bad_dtype_chance)) == 0:
        dtype = draw(st.sampled_from(BAD_DTYPES))
    else:
        dtype = draw(st.sampled_from(FLOAT_DTYPES))
    a = cast(values, dtype)
    how = draw(st.sampled_from(layouts))
    if how == "list" and np.dtype(dtype).kind in "MmV":
        how = "c"
    given_ = layout(a, how)
    return given_, np.asarray(given_)


@st.composite
def cases(draw, train=False):
    cfg = draw(configs)
    I, H, L, D = cfg["I"], cfg["H"], cfg["L"], 2 if cfg["bidir"] else 1
    defects = Defects()
    rank = draw(st.sampled_from([3, 3, 3, 3, 3, 2, 2, 1, 0, 4]))
    T, B = draw(st.integers(0, 4)), draw(st.integers(0, 3))
    F = I if draw(st.integers(0, 7)) else draw(st.integers(0, 6))
    shape = {3: (B, T, F) if cfg["batch_first"] else (T, B, F), 2: (T, F), 1: (F,), 0: (),
             4: (T, B, F, 1)}[rank]
    x, xa = draw(arrays(shape, layouts=X_LAYOUTS))
    if xa.dtype.kind != "f":
        defects.add(TypeError, "x must be a floating-point array", f"got dtype {xa.dtype}")
    if xa.ndim not in (2, 3):
        defects.add(ValueError, "x must be 3-D", f"got shape {xa.shape}")
    elif xa.shape[-1] != I:
        defects.add(ValueError, f"x has {xa.shape[-1]} features", f"input_size={I}")
    batched = xa.ndim == 3
    if xa.ndim in (2, 3):
        T = xa.shape[1] if batched and cfg["batch_first"] else xa.shape[0]
        B = (xa.shape[0] if cfg["batch_first"] else xa.shape[1]) if batched else 1

    # (h0, c0)
    sshape = (L * D, B, H) if batched else (L * D, H)
    hx_kind = draw(st.sampled_from(["none", "tuple", "tuple", "list", "bare", "triple"]))
    hx, states = None, [None, None]
    if hx_kind in ("tuple", "list", "triple"):
        for k, name in enumerate(("h0", "c0")):
            choice = draw(st.sampled_from(["ok", "ok", "ok", "none", "shape", "dtype"]))
            if choice == "none":
                continue
            shp = sshape
            if choice == "shape":
                shp = draw(st.sampled_from([sshape[1:], sshape + (1,), (sshape[0] + 1,) + sshape[1:],
                                            sshape[:-1] + (H + 1,)]))
            # c0 stays within +-1e4 (NaN allowed); a forget gate saturated at -inf
            # times c0 = inf is test_sigmoid_of_minus_inf_is_zero's case
            s, sa = draw(arrays(shp, bad_dtype_chance=0 if choice == "dtype" else None,
                                bound=1e4 if name == "c0" else None))
            if sa.dtype.kind != "f":
                defects.add(TypeError, f"{name} must be a floating-point array",
                            f"got dtype {sa.dtype}")
            elif sa.shape != sshape:
                defects.add(ValueError, f"{name} must have shape {sshape}", f"got {sa.shape}")
            states[k] = (s, sa)
        parts = [None if s is None else s[0] for s in states]
        hx = {"tuple": tuple(parts), "list": list(parts), "triple": tuple(parts) + (None,)}[hx_kind]
        if hx_kind == "triple":
            defects.add(TypeError, "the state must be a tuple (h0, c0)", "got tuple")
    elif hx_kind == "bare":
        hx = np.zeros(sshape)
        defects.add(TypeError, "the state must be a tuple (h0, c0)", "got ndarray")

    # step mask
    mshape = ((B, T) if cfg["batch_first"] else (T, B)) if batched else (T,)
    mask, ma = None, None
    mkind = draw(st.sampled_from(["none", "none", "ok", "ok", "shape", "dtype"]))
    if mkind != "none":
        shp = mshape if mkind != "shape" else draw(st.sampled_from(
            [mshape[::-1] + (1,), mshape + (1,), (mshape[0] + 1,) + mshape[1:]]))
        seed = draw(st.integers(0, 2**32 - 1))
        bits = np.random.default_rng(seed).random(shp) < 0.7
        mdtype = draw(st.sampled_from([bool, bool, np.int8, np.float32, np.uint64]))
        if mkind == "dtype":
            mdtype = draw(st.sampled_from([np.complex64, object, "U1"]))
        mask = layout(bits.astype(mdtype), draw(st.sampled_from(["c", "fortran", "negative"])))
        ma = np.asarray(mask)
        if ma.dtype.kind not in "biuf":
            defects.add(TypeError, "mask must be a boolean array", f"got dtype {ma.dtype}")
        elif ma.shape != mshape:
            defects.add(ValueError, f"mask must have shape {mshape}", f"got {ma.shape}")
    return cfg, defects, x, xa, hx, states, mask, ma, batched


def _seq_major(a, batched, batch_first):
    a = np.asarray(a)
    if not batched:
        return a[:, None]
    return a.transpose(1, 0, 2) if batch_first else a


def _user_layout(a, batched, batch_first):
    if not batched:
        return a[:, 0]
    return a.transpose(1, 0, 2) if batch_first else a


def expected_forward(model, cfg, xa, states, ma, batched):
    """The reference's y, h_n, c_n in the user's layout."""
    dt = model.dtype
    with np.errstate(all="ignore"):
        xs = _seq_major(xa.astype(dt), batched, cfg["batch_first"]).astype(np.float64)
        s = []
        for st_ in states:
            if st_ is None:
                s.append(None)
            else:
                v = st_[1].astype(dt).astype(np.float64)
                s.append(v if batched else v[:, None])
    m = None
    if ma is not None:
        m = np.asarray(ma != 0)
        m = m[:, None] if not batched else (m.T if cfg["batch_first"] else m)
    y, hn, cn = ref_masked(xs, model.state_dict(), cfg["L"], cfg["bidir"], s[0], s[1], m)
    y = _user_layout(y, batched, cfg["batch_first"])
    if not batched:
        hn, cn = hn[:, 0], cn[:, 0]
    return y, hn, cn


def _snapshot(a):
    return None if a is None else np.array(a, copy=True)


@settings(max_examples=examples("lstm_forward"))
@given(cases(), st.booleans())
def test_lstm_forward_any_input(case, train):
    cfg, defects, x, xa, hx, states, mask, ma, batched = case
    model = _model(**cfg)
    before = _snapshot(xa) if xa.dtype.kind in "fiub" else None
    if defects:
        defects.run(lambda: model.forward(x, hx, train=train, mask=mask))
        return
    y, (hn, cn) = model.forward(x, hx, train=train, mask=mask)
    yr, hr, cr = expected_forward(model, cfg, xa, states, ma, batched)
    for name, a in (("y", y), ("h_n", hn), ("c_n", cn)):
        assert isinstance(a, np.ndarray) and a.dtype == model.dtype, (name, type(a), a.dtype)
    T = yr.shape[1] if batched and cfg["batch_first"] else yr.shape[0]
    assert_close(y, yr, model.dtype, "y")
    assert_close(hn, hr, model.dtype, "h_n")
    assert_close(cn, cr, model.dtype, "c_n", scale=max(1, T))
    if before is not None:               # the input is never written to
        np.testing.assert_array_equal(np.asarray(x), before)
    if train:                            # and a backward of the right shapes runs
        dx, (dh0, dc0) = model.backward(np.ones_like(y))
        assert dx.shape == xa.shape and dh0.shape == hn.shape and dc0.shape == cn.shape
        assert dx.dtype == model.dtype


@st.composite
def train_cases(draw):
    cfg = draw(configs)
    cfg["dtype"] = draw(st.sampled_from([np.float64, np.float64, np.float32]))
    I, H, L, D = cfg["I"], cfg["H"], cfg["L"], 2 if cfg["bidir"] else 1
    batched = draw(st.integers(0, 4)) > 0
    T, B = draw(st.integers(0, 4)), draw(st.integers(0, 3)) if batched else 1
    xshape = ((B, T, I) if cfg["batch_first"] else (T, B, I)) if batched else (T, I)
    x = layout(draw(float_values(xshape, specials=False)).astype(
        draw(st.sampled_from([np.float32, np.float64]))), draw(st.sampled_from(X_LAYOUTS[:-1])))
    sshape = (L * D, B, H) if batched else (L * D, H)
    h0 = draw(st.one_of(st.none(), float_values(sshape, specials=False)))
    c0 = draw(st.one_of(st.none(), float_values(sshape, specials=False)))
    mask = None
    if draw(st.booleans()):
        mshape = ((B, T) if cfg["batch_first"] else (T, B)) if batched else (T,)
        mask = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).random(mshape) < 0.7
    return cfg, batched, x, h0, c0, mask


@settings(max_examples=examples("lstm_train"))
@given(train_cases(), st.integers(0, 2**32 - 1), st.sampled_from(
    ["ok", "ok", "ok", "dy_shape", "dy_dtype", "dstate_shape", "dstate_kind", "twice", "none"]))
def test_lstm_backward_matches_reference_gradient(case, seed, variant):
    """Gradients of a random forward(train=True) along a random direction
    equal the central difference of the float64 reference; bad dy / dstate
    / call order give the fitting exception."""
    cfg, batched, x, h0, c0, mask = case
    model = _model(**cfg)
    dt, L, D, H = model.dtype, cfg["L"], 2 if cfg["bidir"] else 1, cfg["H"]
    hx = None if h0 is None and c0 is None else (h0, c0)
    if variant == "none":
        model.forward(x, hx, mask=mask)                       # inference clears the cache
        with pytest.raises(RuntimeError, match=r"needs a forward\(x, train=True\) first"):
            model.backward(np.zeros(1))
        return
    y, (hn, cn) = model.forward(x, hx, mask=mask, train=True)
    rng = np.random.default_rng(seed)
    ry, rh, rc = (rng.standard_normal(a.shape) for a in (y, hn, cn))
    if variant == "dy_shape":
        bad = np.zeros(y.shape + (1,))
        with pytest.raises(ValueError, match=r"dy must have the shape of y, .*got " +
                           str(bad.shape).replace("(", r"\(").replace(")", r"\)")):
            model.backward(bad)
        return
    if variant == "dy_dtype":
        with pytest.raises(TypeError, match="dy must be a floating-point array, got dtype int64"):
            model.backward(np.zeros(y.shape, np.int64))
        return
    if variant == "dstate_shape":
        with pytest.raises(ValueError, match=r"dh_n must have shape"):
            model.backward(ry, (np.zeros(hn.shape + (2,)), None))
        return
    if variant == "dstate_kind":
        with pytest.raises(TypeError, match=r"tuple \(dh_n, dc_n\), got ndarray"):
            model.backward(ry, np.zeros(hn.shape))
        return
    dx, (dh0, dc0) = model.backward(ry.astype(dt), (rh, rc))
    if variant == "twice":
        with pytest.raises(RuntimeError, match="needs a forward"):
            model.backward(ry, (rh, rc))
        return
    xa = np.asarray(x)
    assert dx.shape == xa.shape and dx.dtype == dt
    assert dh0.shape == hn.shape and dc0.shape == cn.shape
    grads = model.grads
    assert list(grads) == [k for k, _ in model.named_parameters()]

    # directional derivative of the reference loss along a random direction
    params = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    xs0 = _seq_major(xa.astype(dt), batched, cfg["batch_first"]).astype(np.float64)
    h00 = np.zeros(hn.shape) if h0 is None else np.asarray(h0).astype(dt).astype(np.float64)
    c00 = np.zeros(cn.shape) if c0 is None else np.asarray(c0).astype(dt).astype(np.float64)
    m = None
    if mask is not None:
        m = mask[:, None] if not batched else (mask.T if cfg["batch_first"] else mask)
    ry_s = _seq_major(ry, batched, cfg["batch_first"])
    v = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    vx, vh, vc = (rng.standard_normal(a.shape) for a in (xs0, h00, c00))

    def loss(e):
        p = {k: params[k] + e * v[k] for k in params}
        hh, cc = h00 + e * vh, c00 + e * vc
        if not batched:
            hh, cc = hh[:, None], cc[:, None]
        yy, hN, cN = ref_masked(xs0 + e * vx, p, L, cfg["bidir"], hh, cc, m)
        if not batched:
            hN, cN = hN[:, 0], cN[:, 0]
        return np.sum(yy * ry_s) + np.sum(hN * rh) + np.sum(cN * rc)

    eps = 1e-6
    fd = (loss(eps) - loss(-eps)) / (2 * eps)
    dxs = _seq_major(dx, batched, cfg["batch_first"])
    terms = [np.sum(dxs * vx), np.sum(dh0 * vh), np.sum(dc0 * vc)]
    terms += [np.sum(grads[k].astype(np.float64) * v[k]) for k in params]
    analytic = float(sum(terms))
    size = 1.0 + sum(abs(t) for t in terms)
    tol = 1e-7 if dt == np.float64 else 2e-3
    assert abs(fd - analytic) <= tol * size, (fd, analytic, terms)


# ---- step(): one time step of online inference ------------------------------------------

@st.composite
def step_cases(draw):
    cfg = draw(configs)
    cfg["batch_first"] = False
    cfg["bidir"] = draw(st.integers(0, 9)) == 0           # refused: step needs one direction
    I, H, L = cfg["I"], cfg["H"], cfg["L"]
    dt = np.dtype(cfg["dtype"])
    d = Defects()
    if cfg["bidir"]:
        d.add(ValueError, "bidirectional LSTM needs the whole sequence")
    B = draw(st.integers(0, 3))
    F = I if draw(st.integers(0, 7)) else draw(st.integers(0, 5))
    shape = draw(st.sampled_from([(B, F)] * 4 + [(F,)] * 2 + [(), (1, B, F)]))
    x, xa = draw(arrays(shape, bad_dtype_chance=10))
    if xa.dtype.kind != "f":
        d.add(TypeError, "x must be a floating-point array", f"got dtype {xa.dtype}")
    if xa.ndim not in (1, 2):
        d.add(ValueError, f"x must be (B, {I}) or ({I},)", f"got shape {xa.shape}")
    elif xa.shape[-1] != I:
        d.add(ValueError, f"x has {xa.shape[-1]} features", f"input_size={I}")
    batched = xa.ndim == 2
    B = xa.shape[0] if batched else 1
    ushape = (L, B, H) if batched else (L, H)
    wrong = lambda shp: draw(st.sampled_from([shp + (1,), shp[1:], (shp[0] + 1,) + shp[1:]]))  # noqa: E731
    state, sa = None, [None, None]
    skind = draw(st.sampled_from(["none", "tuple", "tuple", "list", "bad"]))
    if skind == "bad":
        state = np.zeros(ushape)
        d.add(TypeError, "state must be a tuple (h, c)", "got ndarray")
    elif skind != "none":
        parts = []
        for k, part in enumerate("hc"):
            kind = draw(st.sampled_from(["ok"] * 5 + ["shape", "dtype"]))
            shp = ushape if kind != "shape" else wrong(ushape)
            g, a = draw(arrays(shp, bad_dtype_chance=0 if kind == "dtype" else None,
                               bound=1e4 if part == "c" else None))
            if a.dtype.kind != "f":
                d.add(TypeError, f"state {part} must be a floating-point array",
                      f"got dtype {a.dtype}")
            elif a.shape != ushape:
                d.add(ValueError, f"state {part} must have shape {ushape}", f"got {a.shape}")
            parts.append(g)
            sa[k] = a
        state = tuple(parts) if skind == "tuple" else parts
    out = None
    okind = draw(st.sampled_from(["none", "none", "fresh", "fresh", "state", "bad_dtype",
                                  "readonly", "fortran", "unaligned", "shape", "container"]))
    if okind == "container":
        out = [np.zeros(ushape, dt)]
        d.add(TypeError, "out must be a tuple (h, c)", "got list")
    elif okind == "state" and skind in ("tuple", "list") and not d:
        out = tuple(np.require(a, dt, ["C", "A", "W", "O"]) for a in sa)   # in place
        state = out if skind == "tuple" else list(out)
        sa = [a.copy() for a in out]
    elif okind not in ("none", "state"):
        shp = ushape if okind != "shape" else wrong(ushape)
        which = draw(st.integers(0, 1))
        o = [np.full(ushape, np.nan, dt), np.full(ushape, np.nan, dt)]
        if okind == "shape":
            o[which] = np.zeros(shp, dt)
            d.add(ValueError, f"out {'hc'[which]} must have shape {ushape}", f"got {shp}")
        elif okind != "fresh":
            bad = {"bad_dtype": lambda: np.zeros(ushape, np.float16 if dt == np.float32
                                                 else np.float32),
                   "readonly": lambda: layout(np.zeros(ushape, dt), "readonly"),
                   "fortran": lambda: np.asfortranarray(np.zeros(ushape + (2,), dt)[..., 0]),
                   "unaligned": lambda: layout(np.zeros(ushape, dt), "unaligned")}[okind]()
            o[which] = bad
            if not _ok_out(bad, dt):
                d.add(TypeError, f"out {'hc'[which]} must be a writeable, aligned, "
                      f"C-contiguous {dt} array")
        out = tuple(o)
    return cfg, d, x, xa, state, sa, out, batched


def _ok_out(a, dt):
    return (isinstance(a, np.ndarray) and a.dtype == dt and a.flags.c_contiguous
            and a.flags.aligned and a.flags.writeable)


@settings(max_examples=examples("lstm_step"))
@given(step_cases())
def test_step_any_input(case):
    """step(x, state, out): the reference's one step (forward over T = 1), or
    a fitting exception; out= is written in place and returned."""
    cfg, d, x, xa, state, sa, out, batched = case
    model = _model(**cfg)
    if d:
        d.run(lambda: model.step(x, state, out=out))
        return
    y, (h, c) = model.step(x, state, out=out)
    dt = model.dtype
    with np.errstate(all="ignore"):
        xs = (xa if batched else xa[None]).astype(dt).astype(np.float64)[None]
        h0 = None if sa[0] is None else sa[0].astype(dt).astype(np.float64)
        c0 = None if sa[1] is None else sa[1].astype(dt).astype(np.float64)
    if h0 is not None and not batched:
        h0, c0 = h0[:, None], c0[:, None]
    yr, hr, cr = ref_masked(xs, model.state_dict(), cfg["L"], False, h0, c0)
    if not batched:
        yr, hr, cr = yr[:, 0], hr[:, 0], cr[:, 0]
    assert y.dtype == h.dtype == c.dtype == dt
    assert_close(y, yr[0], dt, "y_t")
    assert_close(h, hr, dt, "h")
    assert_close(c, cr, dt, "c", scale=2.0)
    if h.size:                                # (empty arrays share no memory)
        if out is not None:                   # written into out, nothing else returned
            assert np.shares_memory(h, out[0]) and np.shares_memory(c, out[1])
        assert np.shares_memory(y, h)


def test_step_out_refusal_names_what_came():
    """Found by the fuzz: a refused out= array got "out h must be a writeable,
    aligned, C-contiguous float32 array", which did not say what came."""
    model = clstm.LSTM(2, 3, seed=0)
    x, good = np.zeros((1, 2), np.float32), np.zeros((1, 1, 3), np.float32)
    ro = np.zeros((1, 1, 3), np.float32)
    ro.flags.writeable = False
    for which, bad, came in [
            (0, np.zeros((1, 1, 3), np.float64), "got an array of shape (1, 1, 3): dtype float64"),
            (1, ro, "got an array of shape (1, 1, 3): read-only"),
            (0, np.zeros((1, 1, 6), np.float32)[..., ::2],
             "got an array of shape (1, 1, 3): not C-contiguous"),
            (1, layout(np.zeros((1, 1, 3), np.float32), "unaligned"),
             "got an array of shape (1, 1, 3): unaligned"),
            (0, [[[0.0, 0.0, 0.0]]], "got list [[[0.0, 0.0, 0.0]]]"),
            (1, np.zeros((1, 1, 6), np.float16)[..., ::2],
             "got an array of shape (1, 1, 3): dtype float16, not C-contiguous")]:
        out = [good, good.copy()]
        out[which] = bad
        for state in (None, (good, good)):          # the checked and the fast path
            with pytest.raises(TypeError) as e:
                model.step(x, state, out=tuple(out))
            assert str(e.value) == (f"out {'hc'[which]} must be a writeable, aligned, "
                                    f"C-contiguous float32 array, {came}")


# ---- state_dict and parameter assignment ------------------------------------------

@settings(max_examples=examples("lstm_state_dict"))
@given(configs, st.data())
def test_load_state_dict_any_mapping(cfg, data):
    model = clstm.LSTM(cfg["I"], cfg["H"], num_layers=cfg["L"], bidirectional=cfg["bidir"],
                       bias=cfg["bias"], dtype=cfg["dtype"], seed=1)
    before = model.state_dict()
    names = list(before)
    flat = data.draw(float_values((sum(v.size for v in before.values()),)))   # one draw
    sd, at = {}, 0
    for k, v in before.items():
        sd[k] = flat[at:at + v.size].reshape(v.shape)
        at += v.size
    defects = Defects()
    strict = data.draw(st.booleans())
    container = data.draw(st.sampled_from(["dict", "dict", "dict", "list", "none", "array"]))
    if container != "dict":
        arg = {"list": list(sd.values()), "none": None, "array": np.zeros(3)}[container]
        defects.add(TypeError, "state_dict must be a mapping", type(arg).__name__)
        defects.run(lambda: model.load_state_dict(arg, strict=strict))
        assert all(np.array_equal(a, b, equal_nan=True)
                   for a, b in zip(model.state_dict().values(), before.values()))
        return
    mutations = data.draw(st.lists(st.sampled_from(
        ["drop", "extra", "shape", "dtype", "fortran", "float16", "list", "transposed",
         "strided"]), max_size=3))
    missing, unexpected = [], []
    for mut in mutations:
        k = data.draw(st.sampled_from(names))
        if k not in sd:
            continue
        exp_shape = before[k].shape
        if mut == "drop":
            del sd[k]
            missing.append(k)
        elif mut == "extra":
            extra = data.draw(st.sampled_from(["weight_ih_l9", "foo", "bias_ih_l0_reverse",
                                               "weight_hh_l0.weight"]))
            if extra in before or extra in sd:
                continue
            sd[extra] = np.zeros(2)
            unexpected.append(extra)
        elif mut == "shape":
            sd[k] = np.zeros(data.draw(st.sampled_from(
                [exp_shape[::-1] + (1,), exp_shape + (1,), (exp_shape[0] + 1,) + exp_shape[1:]])))
        elif mut == "dtype":
            sd[k] = cast(sd[k], data.draw(st.sampled_from(BAD_DTYPES[:7] + [object])))
        elif mut == "list":
            sd[k] = np.asarray(sd[k]).tolist()
        else:
            sd[k] = layout(np.asarray(sd[k]) if mut != "float16" else
                           cast(np.asarray(sd[k]), np.float16),
                           {"fortran": "fortran", "float16": "c", "transposed": "permuted",
                            "strided": "strided"}[mut])
    for k, v in sd.items():
        if k not in before:
            continue
        va = np.asarray(v)
        if va.dtype.kind != "f":
            defects.add(TypeError, f"{k} must be a floating-point array", f"got dtype {va.dtype}")
        elif va.shape != before[k].shape:
            defects.add(ValueError, f"{k} must have shape {before[k].shape}", f"got {va.shape}")
    if strict and (missing or unexpected):
        defects.add(KeyError, "state_dict does not match this LSTM", *map(repr, missing),
                    *map(repr, unexpected))
    via_setattr = data.draw(st.booleans()) and not missing and not unexpected
    if defects:
        if via_setattr:
            k, v = next((k, v) for k, v in sd.items() if k in before)
            d1 = Defects()
            d1.items = [d for d in defects.items if any(k + " must" in f for f in d[1])]
            if d1:
                d1.run(lambda: setattr(model, k, v))
        else:
            defects.run(lambda: model.load_state_dict(sd, strict=strict))
        for (k, a), b in zip(model.state_dict().items(), before.values()):   # all or nothing
            assert np.array_equal(a, b, equal_nan=True), f"{k} changed by a refused load"
        return
    if via_setattr:
        for k, v in sd.items():
            setattr(model, k, v)
    else:
        got = model.load_state_dict(sd, strict=strict)
        assert sorted(got[0]) == sorted(missing) and sorted(got[1]) == sorted(unexpected)
    after = model.state_dict()
    for k in names:
        expect = np.asarray(sd[k]).astype(model.dtype) if k in sd else before[k]
        assert np.array_equal(after[k], expect, equal_nan=True), k
        assert after[k].dtype == model.dtype
    x = np.random.default_rng(0).standard_normal((3, 2, cfg["I"]))
    y, _ = model(x)
    # compared only for moderate weights: a weight of 1e30 amplifies any last-bit
    # difference (e.g. the core's sigmoid floor of ~1e-308 against an exact 0)
    if all(np.abs(v).max(initial=0) <= 10 for v in after.values()):
        yr, _, _ = ref_masked(x.astype(model.dtype), after, cfg["L"], cfg["bidir"])
        assert_close(y, yr, model.dtype, "y after load_state_dict")


# ---- constructor ------------------------------------------------------------------------

SIZE_VALUES = [1, 2, 3, 0, -1, -(2**40), 2**31 - 1, 2**31, 2**40, 2**64, 2**25, 2.0, 2.5,
               float("nan"), float("inf"), True, False, None, "3", b"3", np.int8(2),
               np.uint64(3), np.int64(-3), np.float64(2.0), np.array(3), [3], 3 + 0j]


def _size_outcome(v, name, minimum=1):
    """None if v is a valid size, else (exc, fragments)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        return TypeError, (f"{name} must be an int", type(v).__name__)
    if v < minimum:
        return ValueError, (f"{name} must be >= {minimum}", f"got {int(v)}")
    if v > 2**31 - 1:
        return ValueError, (f"{name} must be <= {2**31 - 1}", f"got {int(v)}")
    return None


@settings(max_examples=examples("lstm_constructor"))
@given(st.sampled_from(SIZE_VALUES), st.sampled_from(SIZE_VALUES),
       st.sampled_from(SIZE_VALUES[:4] + SIZE_VALUES[11:]),
       st.sampled_from([0.0, 0.5, 0.999, 1.0, -0.1, float("nan"), float("inf"), True, "0.1",
                        None, np.float32(0.25), 0, 1]),
       st.sampled_from([np.float32, np.float64, "float32", "float64", "f8", np.float16,
                        np.longdouble, np.int32, np.complex64, bool, object, "xyz", None, 3]),
       st.booleans(), st.booleans())
def test_constructor_any_arguments(input_size, hidden_size, num_layers, dropout, dtype, bidir,
                                   bias):
    defects = Defects()
    for v, name in ((input_size, "input_size"), (hidden_size, "hidden_size"),
                    (num_layers, "num_layers")):
        out = _size_outcome(v, name)
        if out:
            defects.add(out[0], *out[1])
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)):
        defects.add(TypeError, "dropout must be a float", repr(dropout))
    elif not 0 <= float(dropout) < 1:
        defects.add(ValueError, "dropout must be in [0, 1)", f"got {dropout}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.float32, np.float64) or dtype is None:
        # np.dtype(None) is float64: refused only by name; accept either outcome
        if dtype is not None:
            defects.add(TypeError, "dtype must be float32 or float64", "got")
    if not defects:
        I, H, L = int(input_size), int(hidden_size), int(num_layers)
        D = 2 if bidir else 1
        if 4 * H > 2**31 - 1:
            defects.add(ValueError, "4*hidden_size", "exceeds the BLAS limit")
        else:
            itemsize = 8 if dt is None else dt.itemsize
            nbytes = itemsize * sum(4 * H * ((I if k == 0 else D * H) + H + 2) * D
                                    for k in range(L))
            if nbytes > 2**46:
                defects.add(MemoryError, "Unable to allocate")
            else:
                assume(nbytes < 2**26)     # never a real multi-GB allocation in the suite
    kwargs = dict(num_layers=num_layers, dropout=dropout, dtype=dtype, bidirectional=bidir,
                  bias=bias, seed=0)
    if defects:
        defects.run(lambda: clstm.LSTM(input_size, hidden_size, **kwargs))
        return
    model = clstm.LSTM(input_size, hidden_size, **kwargs)
    assert type(model.input_size) is int and model.hidden_size == int(hidden_size)
    assert repr(model).startswith("LSTM(")
    y, _ = model(np.ones((2, 1, int(input_size))))
    assert y.shape == (2, 1, (2 if bidir else 1) * int(hidden_size)) and np.isfinite(y).all()


# ---- findings in lstm.py (each fixed; these keep them fixed) ---------------------------

def test_blas_limit_checked_before_the_input_copy():
    """Found by the fuzz: lstm.py converted x before check_blas_dims, so a view
    whose T*B overflows a BLAS int was first copied (here 2**46 rows: the copy
    failed with MemoryError), then refused.  Now refused by size, before any
    copy, in each layout."""
    model = clstm.LSTM(3, 2, dtype=np.float64)
    x = np.broadcast_to(np.zeros(1, np.float32), (2**23, 2**23, 3))   # T*B = 2**46
    with pytest.raises(ValueError, match=r"^T\*B = 70368744177664 exceeds the BLAS limit"):
        model(x)
    first = clstm.LSTM(3, 2, batch_first=True, dtype=np.float64)
    x = np.broadcast_to(np.zeros(1, np.float32), (2**17, 2**15, 3))   # (B, T, I)
    with pytest.raises(ValueError, match=r"^T\*B = 4294967296 exceeds the BLAS limit"):
        first(x)
    with pytest.raises(ValueError, match=r"^T\*B = 4294967296 exceeds the BLAS limit"):
        model(np.broadcast_to(np.zeros(1, np.float32), (2**32, 3)))    # unbatched (T, I)


def test_unaligned_input_is_aligned_before_c():
    """Found by the fuzz (contract checker): lstm.py handed unaligned,
    C-contiguous x / dy to C (np.ascontiguousarray does not align); fixed in
    30996f2, this keeps it fixed."""
    model = clstm.LSTM(3, 2, dtype=np.float64, seed=0)
    x = layout(np.random.default_rng(0).standard_normal((4, 2, 3)), "unaligned")
    assert not x.flags.aligned
    y, _ = model(x)          # through the contract checker: fails on "unaligned"
    np.testing.assert_array_equal(y, model(np.array(x))[0])


def test_ragged_input_names_the_argument():
    """Found by the fuzz: a ragged nested list as x or as a state_dict value
    raised NumPy's "inhomogeneous shape" ValueError, naming no argument."""
    model = clstm.LSTM(2, 2)
    ragged = [[[1.0, 2.0]], [[1.0]]]
    want = r"must be an array \(a regular nested sequence\), got a list that is not one"
    with pytest.raises(ValueError, match="^x " + want):
        model(ragged)
    with pytest.raises(ValueError, match="^x " + want):
        model.step([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match="^mask " + want):
        model(np.zeros((2, 1, 2)), mask=[[True], []])
    before = model.state_dict()
    with pytest.raises(ValueError, match="^weight_ih_l0 " + want):
        model.load_state_dict({**before, "weight_ih_l0": [[1.0], [1.0, 2.0]]})
    with pytest.raises(ValueError, match="^weight_hh_l0 " + want):
        model.weight_hh_l0 = [[1.0], [1.0, 2.0]]
    for k, v in model.state_dict().items():          # nothing changed
        np.testing.assert_array_equal(v, before[k])
    model.forward(np.zeros((1, 1, 2)), train=True)
    with pytest.raises(ValueError, match="^dy " + want):
        model.backward([[[1.0, 2.0]], [[1.0]]])


def test_bad_seed_names_the_argument():
    """Found by the fuzz: seed went to NumPy unchecked (LSTM(2, 2, seed=-1)
    raised "expected non-negative integer", naming neither seed nor -1)."""
    for seed, exc, came in [(-1, ValueError, "got int -1 (expected non-negative integer)"),
                            ([3, -1], ValueError, "got list [3, -1]"),
                            (1.5, TypeError, "got float 1.5"),
                            ("7", TypeError, "got str '7'"),
                            (True, TypeError, "got bool True")]:
        with pytest.raises(exc, match=r"^seed must be None, an int >= 0, .*" + re.escape(came)):
            clstm.LSTM(2, 2, seed=seed)
    # what NumPy takes still works, with NumPy's streams
    ref = clstm.LSTM(2, 2, seed=7).state_dict()
    for seed in (np.int64(7), np.random.default_rng(7), np.random.SeedSequence(7)):
        got = clstm.LSTM(2, 2, seed=seed).state_dict()
        for k in ref:
            np.testing.assert_array_equal(got[k], ref[k])
    a, b = clstm.LSTM(2, 2, seed=[3, 4]), clstm.LSTM(2, 2, seed=[3, 5])
    assert not np.array_equal(a.weight_ih_l0, b.weight_ih_l0)


def test_sigmoid_of_minus_inf_is_zero():
    """A forget gate saturated by a -inf pre-activation times an infinite cell
    state: NaN, as IEEE arithmetic (the reference, PyTorch) has it."""
    from clstm.activations import sigmoid
    for dt in (np.float32, np.float64):
        assert sigmoid(np.array([-np.inf], dt))[0] == 0
    model = clstm.LSTM(1, 1, bias=False, dtype=np.float64, seed=0)
    model.load_state_dict({"weight_ih_l0": np.zeros((4, 1)),
                           "weight_hh_l0": np.array([[1.0], [1.0], [1.0], [1.0]])})
    h0 = np.full((1, 1, 1), -np.inf)        # every gate pre-activation -inf: f = 0
    c0 = np.full((1, 1, 1), np.inf)
    _, (h, c) = model(np.zeros((1, 1, 1)), (h0, c0))
    assert np.isnan(c).all()                # 0 * inf, as IEEE and torch.nn.LSTM
