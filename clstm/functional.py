"""Functional LSTM ops over one layer and one direction, with explicit
weights, for users who keep their own parameters.

    y, (h_n, c_n) = lstm_forward(x, w_ih, w_hh, b_ih, b_hh)
    y, (h_n, c_n), cache = lstm_forward(x, w_ih, w_hh, b_ih, b_hh, train=True)
    dx, (dh0, dc0), grads = lstm_backward(cache, dy)

Shapes are PyTorch's: x (T, B, I), weight_ih (4H, I), weight_hh (4H, H),
biases (4H), h0/c0 (B, H), y (T, B, H); gates in the order i, f, g, o.
The core computes with the transposed weights; a weight passed as the
transpose of a C-contiguous (I, 4H) / (H, 4H) array (e.g. an LSTM's own
parameter) is used without a copy.
The dtype (float32 or float64) is weight_ih's; all other inputs are
converted to it.
"""
import numpy as np

from . import _alloc, _core
from ._validate import (as_mask, as_real, asarray, check_blas_dims, check_shape,
                        resolve_dtype)


class LSTMCache:
    """What lstm_backward needs from one lstm_forward(..., train=True).
    One backward per forward: backward turns the stored gates into gradients."""

    __slots__ = ("x", "w_ih_t", "w_hh_t", "has_bias", "h0", "c0", "mask", "y",
                 "gates", "cs", "hs", "reverse", "used")

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        self.used = False


def _float_array(a, name):
    arr = asarray(a, name)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    return arr


def _weights(weight_ih, weight_hh, bias_ih, bias_hh):
    """dtype, I, H, the transposed weights (I, 4H), (H, 4H) C-contiguous (one
    copy at most), and the summed bias or None."""
    w_ih = _float_array(weight_ih, "weight_ih")
    if w_ih.dtype.itemsize > 8:
        raise TypeError(f"weight_ih must be float16, float32 or float64 (it sets the dtype), "
                        f"got dtype {w_ih.dtype}")
    dtype = resolve_dtype(w_ih.dtype if w_ih.dtype.itemsize >= 4 else np.float32)
    if w_ih.ndim != 2 or w_ih.shape[0] % 4 or w_ih.shape[0] == 0 or w_ih.shape[1] == 0:
        raise ValueError(f"weight_ih must have shape (4*hidden_size, input_size), got {w_ih.shape}")
    H, I = w_ih.shape[0] // 4, w_ih.shape[1]
    w_hh = check_shape(_float_array(weight_hh, "weight_hh"), "weight_hh", (4 * H, H))
    bias = None
    if (bias_ih is None) != (bias_hh is None):
        given = "bias_ih" if bias_hh is None else "bias_hh"
        raise ValueError(f"give both bias_ih and bias_hh, or neither; got only {given}")
    if bias_ih is not None:
        b_ih = check_shape(as_real(bias_ih, "bias_ih", dtype), "bias_ih", (4 * H,))
        b_hh = check_shape(as_real(bias_hh, "bias_hh", dtype), "bias_hh", (4 * H,))
        bias = b_ih + b_hh
    # np.require, not ascontiguousarray: C must not get an unaligned buffer
    return (dtype, I, H, np.require(w_ih.T, dtype, ["C", "A"]),
            np.require(w_hh.T, dtype, ["C", "A"]), bias)


def _state(a, name, dtype, B, H):
    return None if a is None else check_shape(as_real(a, name, dtype), name, (B, H))


def lstm_forward(x, weight_ih, weight_hh, bias_ih=None, bias_hh=None, h0=None, c0=None,
                 *, mask=None, reverse=False, train=False):
    """Run one LSTM layer in one direction over a sequence.

    x: (T, B, I) float array.  weight_ih (4H, I), weight_hh (4H, H),
    bias_ih/bias_hh (4H) or None, h0/c0 (B, H) or None (zeros).
    mask: (T, B) booleans or None; False skips that step of that sequence
    (its state carries over, its output is 0): padding, before or after.
    reverse: run from t = T-1 down to 0 (a bidirectional layer's second half).
    Returns y (T, B, H) and (h_n, c_n), each (B, H); with train=True also a
    cache for lstm_backward.
    """
    dtype, I, H, w_ih_t, w_hh_t, bias = _weights(weight_ih, weight_hh, bias_ih, bias_hh)
    x = _float_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must be 3-D (T, B, {I}), got shape {x.shape}")
    if x.shape[2] != I:
        raise ValueError(f"x has {x.shape[2]} features, weight_ih was built for input_size={I}")
    T, B = x.shape[0], x.shape[1]
    check_blas_dims(T, B, I, H)      # before the copy below: it may be huge
    x = as_real(x, "x", dtype)
    h0 = _state(h0, "h0", dtype, B, H)
    c0 = _state(c0, "c0", dtype, B, H)
    mask = None if mask is None else as_mask(mask, (T, B))
    y = _alloc.empty((T, B, H), dtype)
    hn = np.empty((B, H), dtype)
    cn = np.empty((B, H), dtype)
    gates = _alloc.empty((T, B, 4 * H), dtype) if train else None
    cs = _alloc.empty((T, B, H), dtype) if train else None
    hs = _alloc.empty((T, B, H), dtype) if train and mask is not None else None
    if T == 0 or B == 0:
        hn[...] = 0 if h0 is None else h0
        cn[...] = 0 if c0 is None else c0
    else:
        _core.forward(x, w_ih_t, w_hh_t, bias, h0, c0, mask, y, 0, hn, cn, bool(reverse),
                      gates, cs, hs)
    if not train:
        return y, (hn, cn)
    cache = LSTMCache(x=x, w_ih_t=w_ih_t, w_hh_t=w_hh_t, has_bias=bias is not None, h0=h0,
                      c0=c0, mask=mask, y=y, gates=gates, cs=cs, hs=hs, reverse=bool(reverse))
    return y, (hn, cn), cache


def lstm_backward(cache, dy, dh_n=None, dc_n=None):
    """Backpropagation through time for one lstm_forward(..., train=True).

    dy: (T, B, H) gradient of the loss w.r.t. y; dh_n, dc_n: (B, H) gradients
    w.r.t. the final state, or None (zeros).
    Returns dx (T, B, I), (dh0, dc0) each (B, H), and a dict of parameter
    gradients: weight_ih, weight_hh and, if the forward had biases, bias_ih
    and bias_hh (equal: both enter the gates as one sum).
    """
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"cache must be the LSTMCache returned by lstm_forward(..., train=True), "
                        f"got {type(cache).__name__}")
    if cache.used:
        raise RuntimeError("this cache was already used by lstm_backward; "
                           "run lstm_forward(..., train=True) again")
    x, w_ih_t, w_hh_t, y = cache.x, cache.w_ih_t, cache.w_hh_t, cache.y
    dtype = x.dtype
    T, B, I = x.shape
    H = w_hh_t.shape[0]
    dy = check_shape(as_real(dy, "dy", dtype), "dy", (T, B, H))
    dh_n = _state(dh_n, "dh_n", dtype, B, H)
    dc_n = _state(dc_n, "dc_n", dtype, B, H)
    dx = _alloc.empty((T, B, I), dtype)
    dh0 = np.empty((B, H), dtype)
    dc0 = np.empty((B, H), dtype)
    dw_ih_t = _alloc.empty((I, 4 * H), dtype)
    dw_hh_t = _alloc.empty((H, 4 * H), dtype)
    db = np.empty(4 * H, dtype) if cache.has_bias else None
    cache.used = True
    if T == 0 or B == 0:
        dx[...] = 0
        dh0[...] = 0 if dh_n is None else dh_n
        dc0[...] = 0 if dc_n is None else dc_n
        dw_ih_t[...] = 0
        dw_hh_t[...] = 0
        if db is not None:
            db[...] = 0
    else:
        _core.backward(x, w_ih_t, w_hh_t, cache.h0, cache.c0, cache.mask, y, 0, cache.reverse,
                       cache.gates, cache.cs, cache.hs, dy, 0, dh_n, dc_n, dx, 0.0, dh0, dc0,
                       dw_ih_t, dw_hh_t, db)
    grads = {"weight_ih": dw_ih_t.T, "weight_hh": dw_hh_t.T}   # PyTorch's shapes, no copy
    if db is not None:
        grads["bias_ih"] = db
        grads["bias_hh"] = db.copy()
    return dx, (dh0, dc0), grads
