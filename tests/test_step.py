"""LSTM.step: one time step of online inference, equal to forward() over
the same sequence, allocation-free with out= buffers."""
import tracemalloc

import numpy as np
import pytest

import clstm


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-13), (np.float32, 2e-6)])
@pytest.mark.parametrize("layers,B,I,H", [(1, 1, 8, 32), (2, 3, 5, 7), (3, 2, 1, 40),
                                          (1, 12, 4, 300)])
def test_steps_equal_forward(dtype, tol, layers, B, I, H):
    lstm = clstm.LSTM(I, H, num_layers=layers, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((15, B, I)).astype(dtype)
    h0 = rng.standard_normal((layers, B, H)).astype(dtype)
    c0 = rng.standard_normal((layers, B, H)).astype(dtype)
    y, (hn, cn) = lstm(x, (h0, c0))
    state = (h0, c0)
    buf = (h0.copy(), c0.copy())
    for t in range(15):
        yt, state = lstm.step(x[t], state)                 # allocating
        yb, _ = lstm.step(x[t], buf, out=buf)               # in place
        np.testing.assert_allclose(yt, y[t], atol=tol)
        np.testing.assert_array_equal(yb, yt)
    np.testing.assert_allclose(state[0], hn, atol=tol)
    np.testing.assert_allclose(state[1], cn, atol=tol)
    np.testing.assert_array_equal(buf[1], state[1])


def test_unbatched_zero_state_and_conversions():
    lstm = clstm.LSTM(3, 4, num_layers=2, dtype=np.float64, seed=1)
    x = np.random.default_rng(1).standard_normal((6, 3))
    y, (hn, cn) = lstm(x)
    state = None
    for t in range(6):
        yt, state = lstm.step(list(x[t]), state)           # lists and float16 convert
    assert yt.shape == (4,) and state[0].shape == (2, 4)
    np.testing.assert_allclose(yt, y[-1], atol=1e-13)
    np.testing.assert_allclose(state[1], cn, atol=1e-13)


def test_out_buffers_allocate_no_array_data():
    lstm = clstm.LSTM(8, 32, seed=0)
    x = np.ones((1, 8), np.float32)
    buf = (np.zeros((1, 1, 32), np.float32), np.zeros((1, 1, 32), np.float32))
    lstm.step(x, buf, out=buf)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(2000):
            lstm.step(x, buf, out=buf)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    numpy_data = tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)
    grown = after.filter_traces([numpy_data]).compare_to(
        before.filter_traces([numpy_data]), "filename")
    assert sum(s.count_diff for s in grown) == 0


def test_step_errors():
    lstm = clstm.LSTM(4, 5, num_layers=2, seed=0)
    h = np.zeros((2, 3, 5), np.float32)
    with pytest.raises(ValueError, match="bidirectional"):
        clstm.LSTM(4, 5, bidirectional=True).step(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="x has 3 features, this LSTM was built for input_size=4"):
        lstm.step(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        lstm.step(np.zeros((3, 4), int))
    with pytest.raises(ValueError, match=r"state h must have shape \(2, 3, 5\), got \(1, 3, 5\)"):
        lstm.step(np.zeros((3, 4)), (h[:1], h))
    with pytest.raises(TypeError, match="out c must be a writeable, aligned, C-contiguous float32"):
        lstm.step(np.zeros((3, 4)), (h, h), out=(h.copy(), np.zeros((2, 3, 5))))
    ro = h.copy()
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="out h must be a writeable"):
        lstm.step(np.zeros((3, 4)), (h, h), out=(ro, h.copy()))
    with pytest.raises(TypeError, match=r"state must be a tuple \(h, c\)"):
        lstm.step(np.zeros((3, 4)), h)


def _unaligned(shape):
    raw = np.zeros(1 + 4 * int(np.prod(shape)), np.uint8)
    a = np.frombuffer(raw.data, np.float32, int(np.prod(shape)), offset=1).reshape(shape)
    assert not a.flags.aligned
    return a


def test_unaligned_arrays_are_copied_or_refused():
    lstm = clstm.LSTM(4, 5, seed=0)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    ux = _unaligned((3, 4))
    ux[...] = x
    want, _ = lstm.step(x)
    got, _ = lstm.step(ux)                          # the slow path copies it aligned
    np.testing.assert_array_equal(got, want)
    seq = _unaligned((2, 3, 4))
    y, _ = lstm(seq)                                # forward copies it aligned
    np.testing.assert_array_equal(y, lstm(np.array(seq))[0])
    h = np.zeros((1, 3, 5), np.float32)
    with pytest.raises(TypeError, match="out h must be a writeable, aligned"):
        lstm.step(x, (h, h), out=(_unaligned((1, 3, 5)), h.copy()))


def test_subclass_with_size_properties_steps_like_the_base_class():
    # step()'s fast path reads the sizes from the instance dict; a subclass
    # that makes one a property must still get the same numbers
    class Sized(clstm.LSTM):
        @property
        def hidden_size(self):
            return self.__dict__["_h"]

        @hidden_size.setter
        def hidden_size(self, v):
            self.__dict__["_h"] = v

    plain, sized = clstm.LSTM(3, 5, seed=4), Sized(3, 5, seed=4)
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    bufs = [(np.zeros((1, 2, 5), np.float32), np.zeros((1, 2, 5), np.float32)) for _ in range(2)]
    for _ in range(3):
        y0, _ = plain.step(x, bufs[0], out=bufs[0])
        y1, _ = sized.step(x, bufs[1], out=bufs[1])
    assert np.array_equal(y0, y1) and np.abs(y0).max() > 0
