"""Shared machinery of the property-based (hypothesis) tests, test_fuzz_*.py.

Profiles (select with the environment variable CLSTM_FUZZ_PROFILE):
  default  derandomized (the same cases every run), no example database,
           about 11,000 generated cases over the suite in well under a minute;
  long     random, with hypothesis's example database, LONG_FACTOR (20) times
           as many cases per test: `CLSTM_FUZZ_PROFILE=long pytest tests/test_fuzz_*.py`;
           CLSTM_FUZZ_SCALE=<float> multiplies the counts of either profile.

Also here:
  * core_contract(): wraps clstm._core.forward / backward / activation and
    asserts, on every call that reaches C, each precondition the C code relies
    on and does not check itself: dtype, C order, alignment, every shape,
    writable outputs, outputs not overlapping inputs, 32-bit sizes.  A
    violation is an AssertionError in the calling test: with it, a wrong shape
    that would read out of bounds is a test failure, not a silent overread.
  * the masked NumPy float64 reference (reference.ref_lstm per sequence),
  * value and memory-layout generators for inputs.
"""
import contextlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import clstm
from clstm import _core
from reference import ref_lstm

PROFILE = os.environ.get("CLSTM_FUZZ_PROFILE", "default")
if PROFILE not in ("default", "long"):
    raise ValueError(f"CLSTM_FUZZ_PROFILE must be 'default' or 'long', got {PROFILE!r}")
LONG_FACTOR = 20
SCALE = float(os.environ.get("CLSTM_FUZZ_SCALE", "1")) * (LONG_FACTOR if PROFILE == "long" else 1)

_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much,
                                      HealthCheck.function_scoped_fixture])
settings.register_profile("clstm-default", derandomize=True, database=None, **_common)
settings.register_profile("clstm-long", **_common)
settings.load_profile("clstm-" + PROFILE)

# Budget of the default profile, per test (tests call examples(name)); the sum
# is what RELIABILITY.md reports.  test_fuzz_budget checks the total.
BUDGET = {
    "lstm_forward": 2000,
    "lstm_step": 800,
    "lstm_train": 1000,
    "lstm_state_dict": 600,
    "lstm_constructor": 900,
    "functional_forward": 1300,
    "functional_backward": 600,
    "activations": 700,
    "keras_lstm_layer": 900,
    "keras_other_layers": 700,
    "keras_model": 500,
    "files_bytes": 500,
    "files_header": 500,
    "row_groups": 60,
}


def examples(name):
    return max(1, int(BUDGET[name] * SCALE))


def test_fuzz_budget():
    """The default profile generates at least 10,000 cases over the suite."""
    assert sum(BUDGET.values()) >= 10_000
    if PROFILE == "long":
        assert SCALE >= LONG_FACTOR


# ---- the C boundary's contract -------------------------------------------------

INT_MAX = 2**31 - 1


def _arr(a, name, dtype, shape=None, out=False):
    assert isinstance(a, np.ndarray), f"{name}: {type(a).__name__} reached C, not an ndarray"
    assert a.dtype == dtype, f"{name}: dtype {a.dtype} reached C, expected {dtype}"
    assert a.flags.c_contiguous, f"{name}: a non-C-contiguous array reached C"
    assert a.flags.aligned, f"{name}: an unaligned array reached C"
    if out:
        assert a.flags.writeable, f"{name}: a read-only output array reached C"
    if shape is not None:
        assert a.shape == tuple(shape), f"{name}: shape {a.shape} reached C, expected {shape}"


def _no_overlap(outputs, inputs):
    outs = [(n, a) for n, a in outputs if a is not None and a.size]
    ins = [(n, a) for n, a in inputs if a is not None and a.size]
    for i, (n, a) in enumerate(outs):
        for m, b in ins + outs[i + 1:]:
            assert not np.shares_memory(a, b), f"output {n} overlaps {m}"


def _checked_forward(x, w_ih_t, w_hh_t, bias, h0, c0, mask, y, col, hn, cn, reverse,
                     gates, cs, hs):
    dt = x.dtype
    assert dt in (np.float32, np.float64), f"x: dtype {dt} reached C"
    assert x.ndim == 3, f"x: {x.ndim}-D reached C"
    T, B, I = x.shape
    assert T > 0 and B > 0, "an empty sequence or batch reached C (callers handle it)"
    _arr(x, "x", dt)
    assert w_hh_t.ndim == 2
    H = w_hh_t.shape[0]
    assert H > 0 and 4 * H <= INT_MAX and I <= INT_MAX and T * B <= INT_MAX
    _arr(w_ih_t, "w_ih_t", dt, (I, 4 * H))
    _arr(w_hh_t, "w_hh_t", dt, (H, 4 * H))
    if bias is not None:
        _arr(bias, "bias", dt, (4 * H,))
    for name, a in (("h0", h0), ("c0", c0)):
        if a is not None:
            _arr(a, name, dt, (B, H))
    if mask is not None:
        _arr(mask, "mask", np.uint8, (T, B))
    assert y.ndim == 3 and y.shape[:2] == (T, B), f"y: shape {y.shape} for x {x.shape}"
    _arr(y, "y", dt, out=True)
    assert 0 <= col and col + H <= y.shape[2] <= INT_MAX, f"y columns {col}+{H} of {y.shape}"
    _arr(hn, "hn", dt, (B, H), out=True)
    _arr(cn, "cn", dt, (B, H), out=True)
    train = gates is not None
    if train:
        _arr(gates, "gates", dt, (T, B, 4 * H), out=True)
        _arr(cs, "cs", dt, (T, B, H), out=True)
        if mask is not None:
            _arr(hs, "hs", dt, (T, B, H), out=True)
        else:
            assert hs is None
    else:
        assert cs is None and hs is None
    _no_overlap([("y", y), ("hn", hn), ("cn", cn), ("gates", gates), ("cs", cs), ("hs", hs)],
                [("x", x), ("w_ih_t", w_ih_t), ("w_hh_t", w_hh_t), ("bias", bias),
                 ("h0", h0), ("c0", c0), ("mask", mask)])
    return _ORIG["forward"](x, w_ih_t, w_hh_t, bias, h0, c0, mask, y, col, hn, cn, reverse,
                            gates, cs, hs)


def _checked_backward(x, w_ih_t, w_hh_t, h0, c0, mask, y, col, reverse, gates, cs, hs,
                      dy, dcol, dhn, dcn, dx, dx_beta, dh0, dc0, dw_ih_t, dw_hh_t, db):
    dt = x.dtype
    assert dt in (np.float32, np.float64) and x.ndim == 3
    T, B, I = x.shape
    assert T > 0 and B > 0
    H = w_hh_t.shape[0]
    _arr(x, "x", dt)
    _arr(w_ih_t, "w_ih_t", dt, (I, 4 * H))
    _arr(w_hh_t, "w_hh_t", dt, (H, 4 * H))
    for name, a in (("h0", h0), ("c0", c0), ("dhn", dhn), ("dcn", dcn)):
        if a is not None:
            _arr(a, name, dt, (B, H))
    if mask is not None:
        _arr(mask, "mask", np.uint8, (T, B))
        _arr(hs, "hs", dt, (T, B, H))
    else:
        assert hs is None
    assert y.ndim == 3 and y.shape[:2] == (T, B)
    _arr(y, "y", dt)
    assert 0 <= col and col + H <= y.shape[2]
    _arr(gates, "gates", dt, (T, B, 4 * H), out=True)
    _arr(cs, "cs", dt, (T, B, H))
    if dy is not None:   # None: no gradient through the outputs
        assert dy.ndim == 3 and dy.shape[:2] == (T, B), f"dy: shape {dy.shape} for x {x.shape}"
        _arr(dy, "dy", dt)
        assert 0 <= dcol and dcol + H <= dy.shape[2], f"dy columns {dcol}+{H} of {dy.shape}"
    _arr(dx, "dx", dt, (T, B, I), out=True)
    assert dx_beta in (0.0, 1.0)
    _arr(dh0, "dh0", dt, (B, H), out=True)
    _arr(dc0, "dc0", dt, (B, H), out=True)
    _arr(dw_ih_t, "dw_ih_t", dt, (I, 4 * H), out=True)
    _arr(dw_hh_t, "dw_hh_t", dt, (H, 4 * H), out=True)
    if db is not None:
        _arr(db, "db", dt, (4 * H,), out=True)
    _no_overlap([("dx", dx), ("dh0", dh0), ("dc0", dc0), ("dw_ih_t", dw_ih_t),
                 ("dw_hh_t", dw_hh_t), ("db", db), ("gates", gates)],
                [("x", x), ("w_ih_t", w_ih_t), ("w_hh_t", w_hh_t), ("h0", h0), ("c0", c0),
                 ("mask", mask), ("y", y), ("cs", cs), ("hs", hs), ("dy", dy), ("dhn", dhn),
                 ("dcn", dcn)])
    return _ORIG["backward"](x, w_ih_t, w_hh_t, h0, c0, mask, y, col, reverse, gates, cs, hs,
                             dy, dcol, dhn, dcn, dx, dx_beta, dh0, dc0, dw_ih_t, dw_hh_t, db)


def _checked_activation(x, y, tanh):
    _arr(x, "x", x.dtype)
    assert x.dtype in (np.float32, np.float64)
    _arr(y, "y", x.dtype, x.shape, out=True)
    _no_overlap([("y", y)], [("x", x)])
    return _ORIG["activation"](x, y, tanh)


def _fits(a, dtype, shape, write=False):
    return (type(a) is np.ndarray and a.dtype == dtype and a.shape == tuple(shape)
            and a.flags.c_contiguous and a.flags.aligned and (a.flags.writeable or not write))


def _checked_step(x, layers, h, c, h_out, c_out, typenum, I, H):
    """step() checks its arrays itself (in Cython) and declines what does not
    fit: here the same check in Python; the core must run exactly when it holds,
    and then the weights must fit too."""
    dt = np.dtype(np.float32) if typenum == np.dtype(np.float32).num else np.dtype(np.float64)
    L = len(layers)
    B = x.shape[0] if type(x) is np.ndarray and x.ndim == 2 else -1
    fits = B >= 0 and _fits(x, dt, (B, I)) and all(
        _fits(a, dt, (L, B, H), w) for a, w in ((h, False), (c, False), (h_out, True),
                                                (c_out, True)))
    if fits:
        for k, (w_ih_t, w_hh_t, b_ih, b_hh) in enumerate(layers):
            _arr(w_ih_t, f"w_ih_t[{k}]", dt, (I if k == 0 else H, 4 * H))
            _arr(w_hh_t, f"w_hh_t[{k}]", dt, (H, 4 * H))
            for b in (b_ih, b_hh):
                if b is not None:
                    _arr(b, "bias", dt, (4 * H,))
    done = _ORIG["step"](x, layers, h, c, h_out, c_out, typenum, I, H)
    assert bool(done) == fits, f"core step ran={done} but the arrays fit={fits}"
    return done


_ORIG = {"forward": _core.forward, "backward": _core.backward, "activation": _core.activation,
         "step": getattr(_core, "step", None)}
_NAMES = ("forward", "backward", "activation", "step")


@contextlib.contextmanager
def checked_core():
    """clstm._core's entry points, wrapped by the contract checks above."""
    checked = {"forward": _checked_forward, "backward": _checked_backward,
               "activation": _checked_activation, "step": _checked_step}
    for n in _NAMES:
        if _ORIG[n] is not None:
            setattr(_core, n, checked[n])
    try:
        yield
    finally:
        for n in _NAMES:
            if _ORIG[n] is not None:
                setattr(_core, n, _ORIG[n])


@pytest.fixture(scope="module")
def core_contract():
    with checked_core():
        yield


def test_contract_checker_catches_a_bad_call():
    """The checker itself: a wrong-shaped output would be caught before C."""
    x = np.zeros((2, 1, 3), np.float32)
    w_ih, w_hh = np.zeros((3, 8), np.float32), np.zeros((2, 8), np.float32)
    hn, cn = np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32)
    with checked_core():
        with pytest.raises(AssertionError, match="y: shape"):
            _core.forward(x, w_ih, w_hh, None, None, None, None, np.zeros((1, 1, 2), np.float32),
                          0, hn, cn, False, None, None, None)
        with pytest.raises(AssertionError, match="unaligned"):
            buf = np.zeros(2 * 8 * 4 + 4, np.uint8)[1:1 + 64].view(np.float32).reshape(2, 8)
            _core.forward(x, w_ih, buf, None, None, None, None, np.zeros((2, 1, 2), np.float32),
                          0, hn, cn, False, None, None, None)
        y = np.zeros((2, 1, 2), np.float32)
        _core.forward(x, w_ih, w_hh, None, None, None, None, y, 0, hn, cn, False, None, None, None)
    assert _core.forward is _ORIG["forward"]


# ---- values and layouts -----------------------------------------------------------

# Finite magnitudes stay <= 1e30 (float32) / 1e300 (float64), so that sums of a
# few of them cannot overflow: a mismatch with the reference is then a bug, not
# a difference in the order of float additions.
SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 1e-45, 5e-324, 1e30, -1e30, 1e300, -1e300,
           np.inf, -np.inf, np.nan]

FLOAT_DTYPES = [np.float16, np.float32, np.float64, np.longdouble]
BAD_DTYPES = [np.int8, np.int64, np.uint8, np.uint64, np.bool_, np.complex64, np.complex128,
              object, "U3", "M8[s]", "m8[s]", [("a", "f8")]]
LAYOUTS = ["c", "c", "fortran", "permuted", "strided", "negative", "unaligned", "broadcast",
           "readonly", "list"]


@st.composite
def float_values(draw, shape, specials=True, scale=None):
    """A float64 array of `shape`: scaled normals plus a few special values."""
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0])) if scale is None else scale
    a = np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale)
    if specials and a.size and draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 3))):
            a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(SPECIAL))
    return a


def cast(a, dtype):
    """a as dtype, as a user would make it (overflow to inf, NaN -> 0 for ints...)."""
    dt = np.dtype(dtype)
    a = np.asarray(a)
    if a.dtype == object:       # a mutation may cast twice; objects go back to numbers first
        a = a.astype(np.float64)
    with np.errstate(all="ignore"):
        if dt.kind in "iub":
            return np.nan_to_num(a, posinf=7, neginf=-7).astype(dt)
        if dt.kind in "OUMmV":
            return np.zeros(a.shape, dt) if dt.kind != "O" else a.astype(object)
        return a.astype(dt)


def layout(a, how, rng_seed=0):
    """The same logical array in another memory layout (or as a nested list)."""
    if how == "c" or a.ndim == 0:
        return np.array(a, copy=True)           # (ascontiguousarray makes 0-d 1-d)
    if how == "fortran":
        return np.asfortranarray(a)
    if how == "permuted":     # stored with its axes reversed, viewed back
        perm = list(range(a.ndim))[::-1]
        inv = np.argsort(perm)
        return np.ascontiguousarray(a.transpose(perm)).transpose(inv)
    if how == "strided":
        big = np.zeros(tuple(2 * s + 1 for s in a.shape), a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if how == "negative":
        rev = tuple(slice(None, None, -1) for _ in a.shape)
        return np.ascontiguousarray(a[rev])[rev]
    if how == "unaligned":
        if a.dtype.kind in "OUV" or a.dtype.itemsize == 1 or a.dtype.kind in "Mm":
            return a
        buf = np.zeros(a.nbytes + 1, np.uint8)
        out = buf[1:].view(a.dtype).reshape(a.shape) if a.size else a
        if a.size:
            out[...] = a
        return out
    if how == "broadcast":    # read-only, zero strides: the first row repeated
        if a.shape[0] == 0:
            return a
        return np.broadcast_to(a[:1], a.shape)
    if how == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if how == "list":
        return a.tolist()
    raise ValueError(how)


# ---- reference ----------------------------------------------------------------------

def ref_masked(x, params, num_layers, bidirectional, h0=None, c0=None, mask=None):
    """The float64 reference, with a (T, B) step mask: a masked run is each
    sequence run alone on its real steps (tests/test_mask.py shows it)."""
    x = np.asarray(x, np.float64)
    if mask is None:
        return ref_lstm(x, params, num_layers, bidirectional, h0, c0)
    T, B = x.shape[:2]
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    LD = num_layers * D
    h0 = np.zeros((LD, B, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((LD, B, H)) if c0 is None else np.asarray(c0, np.float64)
    y = np.zeros((T, B, D * H))
    hn, cn = np.array(h0), np.array(c0)
    with np.errstate(all="ignore"):
        for b in range(B):
            steps = np.flatnonzero(mask[:, b])
            if steps.size == 0:
                continue
            yb, hb, cb = ref_lstm(x[steps, b:b + 1], params, num_layers, bidirectional,
                                  h0[:, b:b + 1], c0[:, b:b + 1])
            y[steps, b] = yb[:, 0]
            hn[:, b], cn[:, b] = hb[:, 0], cb[:, 0]
    return y, hn, cn


def assert_close(actual, expected, dtype, what, scale=1.0):
    """NaN where the reference has NaN, the same infinities, and close values."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    tol = (1e-10, 1e-12) if np.dtype(dtype) == np.float64 else (2e-4, 2e-5)
    np.testing.assert_allclose(actual, expected, rtol=tol[0], atol=tol[1] * scale,
                               err_msg=what)


@st.composite
def finite_size(draw, lo=0, hi=4):
    return draw(st.integers(lo, hi))
