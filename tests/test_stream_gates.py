"""The training forward writes its gates with streaming stores once they
reach CLSTM_STREAM_GATES_BYTES (4 MB, src_c/internal.h), where the gates
array starts on a vector boundary and H is a whole number of vectors; the
arrays clstm allocates start on 64-byte boundaries from 16 KB up
(clstm/_alloc.py).

The shapes below reach the streaming path in float32 and float64 (fused:
I <= 32; 4H rows of 1024 values); their gradients are checked against the
float64 NumPy reference by directional derivatives, and the same forward
with a misaligned gates array (ordinary stores) must give the same bits."""
import numpy as np
import pytest

import clstm
from clstm import _alloc, _core
from clstm.functional import lstm_forward
from reference import ref_lstm

STREAM_BYTES = 4 * 1024 * 1024
# (T, B, I, H): T B 4H values of the dtype reach STREAM_BYTES exactly
SHAPES = {np.float32: (128, 8, 8, 256), np.float64: (64, 8, 8, 256)}


@pytest.mark.parametrize("shape", [(0,), (3,), (5, 7), (1, 0, 9), (4096,), (64, 65), (3, 100, 21)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_alloc_empty_is_64_byte_aligned_from_min_bytes(shape, dtype):
    for _ in range(20):   # fresh buffers land at various offsets
        a = _alloc.empty(shape, dtype)
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        if a.nbytes >= _alloc.MIN_BYTES:
            assert a.ctypes.data % 64 == 0
        a[...] = 1   # every element is inside the buffer
        assert _alloc.zeros(shape, dtype).sum() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_and_training_arrays_are_64_byte_aligned(dtype):
    # every array below is at least _alloc.MIN_BYTES
    lstm = clstm.LSTM(40, 64, dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((20, 8, 40)).astype(dtype)
    y, _ = lstm.forward(x, train=True)
    dx, _ = lstm.backward(np.ones_like(y))
    assert y.ctypes.data % 64 == 0 and dx.ctypes.data % 64 == 0
    for name in ("weight_ih_l0", "weight_hh_l0"):
        assert lstm.grads[name].ctypes.data % 64 == 0, name
    _, _, cache = lstm_forward(x, lstm.weight_ih_l0, lstm.weight_hh_l0, train=True)
    for a in (cache.gates, cache.cs, cache.y):
        assert a.nbytes >= _alloc.MIN_BYTES and a.ctypes.data % 64 == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_streamed_gates_give_reference_gradients(dtype, threads):
    T, B, I, H = SHAPES[dtype]
    assert T * B * 4 * H * np.dtype(dtype).itemsize == STREAM_BYTES
    rng = np.random.default_rng(3)
    lstm = clstm.LSTM(I, H, dtype=dtype, seed=3)
    for _, p in lstm.named_parameters():
        p[...] = rng.uniform(-0.2, 0.2, p.shape)
    params = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
    x = rng.standard_normal((T, B, I))
    ry = rng.standard_normal((T, B, H))
    old = clstm.get_num_threads()
    clstm.set_num_threads(threads)
    try:
        y, _ = lstm.forward(x.astype(dtype), train=True)
        dx, _ = lstm.backward(ry.astype(dtype))
    finally:
        clstm.set_num_threads(old)
    want_y = ref_lstm(x, params, 1)[0]
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert np.abs(y - want_y).max() <= tol
    grads = {k: np.asarray(v, np.float64) for k, v in lstm.grads.items()}
    grads["x"] = dx.astype(np.float64)
    vrng = np.random.default_rng(4)
    eps = 1e-5
    for key, got in grads.items():
        v = vrng.standard_normal(got.shape)

        def loss_at(step):
            p = dict(params)
            xs = x + step * v if key == "x" else x
            if key != "x":
                p[key] = params[key] + step * v
            return float(np.sum(ref_lstm(xs, p, 1)[0] * ry))

        want = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
        rtol = 1e-3 if dtype == np.float32 else 1e-6
        assert abs(float(np.sum(got * v)) - want) <= rtol * max(1.0, abs(want)), (key, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misaligned_gates_give_the_same_bits(dtype):
    T, B, I, H = SHAPES[dtype]
    rng = np.random.default_rng(5)
    w_ih = rng.uniform(-0.2, 0.2, (4 * H, I)).astype(dtype)
    w_hh = rng.uniform(-0.2, 0.2, (4 * H, H)).astype(dtype)
    bias = rng.uniform(-0.2, 0.2, 4 * H).astype(dtype)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    y, (hn, cn), cache = lstm_forward(x, w_ih, w_hh, bias, np.zeros_like(bias), train=True)
    # the same call with gates one element past a 64-byte boundary
    raw = _alloc.empty((T * B * 4 * H + 1,), dtype)
    gates = raw[1:].reshape(T, B, 4 * H)
    y2, hn2, cn2 = np.empty_like(y), np.empty_like(hn), np.empty_like(cn)
    cs = np.empty((T, B, H), dtype)
    _core.forward(x, np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), bias, None, None,
                  None, y2, 0, hn2, cn2, False, gates, cs, None)
    assert gates.ctypes.data % 64 != 0
    np.testing.assert_array_equal(gates, cache.gates)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(cs, cache.cs)
