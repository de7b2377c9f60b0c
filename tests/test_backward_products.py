"""The backward's products after the recurrence (dW_ih, dW_hh, db, dX) take
different routes by shape: the core's tile kernel with threads sharing dG's
columns, or, where X and h_{t-1} are too wide for L2, the "large products"
route (the tile kernel on CPUs with full-width AVX-512, else BLAS); dX by
dot products (threads sharing its columns) where its rows are few, else over
rows (threads sharing them) by the large products route; with few inputs dX
by dot products inside the recurrence's steps instead.  The shapes below
reach each route, with partial vectors and panels, several chunks of rows,
one step, reverse directions (where dx accumulates) and h0, and run with the
large products forced through BLAS and onto the tile kernel
(_core.set_large_products), whatever this CPU would choose.

Gradients are checked against the float64 NumPy reference through
directional derivatives: for a random direction V of one parameter (or of x,
h0, c0), <grad, V> against the central difference of the reference's loss
along V.  Two reference forwards per check, so shapes with hundreds of
thousands of parameters stay cheap, and the reference shares no code with
the core.  float32 gradients are compared with float64 ones from the core."""
import numpy as np
import pytest

import clstm
from clstm import _core
from reference import ref_lstm

# (T, B, I, H) and what each reaches (float64 lanes: 8 with AVX-512, 4 with
# AVX2; a panel is 4 vectors; BLAS above (I + H) * 256 * 8 bytes = 1 MB)
SHAPES = {
    # 4H = 204: a partial vector; dX by dot products (TB = 6 < 4 I), 70
    # columns: a partial group of 4
    "own, partial vector and panel": (3, 2, 70, 51),
    # I + H = 530 rows: dW by BLAS; dX by dot products
    "blas dW, own dX": (3, 2, 400, 130),
    # TB = 280 rows of dG: two chunks, h_{t-1}'s rows start and end inside
    # them (dx in the steps: I <= 8)
    "own, two chunks of rows": (70, 4, 5, 20),
    # dX over rows (TB = 120 >= 4 I): 21 columns, a partial panel; 4H = 36
    "dX over rows, partial panel": (40, 3, 21, 9),
    # dX over rows: I = 70 columns, two or three panels; 4H = 280 > 256: two
    # chunks of dG's columns (the transposed W_ih panels)
    "dX over rows, panels and chunks": (50, 6, 70, 70),
    # one step: dW_hh is h0's term alone
    "one step": (1, 3, 6, 10),
    # I <= 8: dx_t by dot products in each step (4H = 52: a partial vector);
    # at 2 threads 17 rows split the batch
    "dx in the step, rows split": (5, 17, 3, 13),
    # a batch of one: dh and dx both by dot products on the unpacked weights
    "batch of one": (6, 1, 4, 13),
}


def _loss_weights(T, B, H, D, rng):
    return (rng.standard_normal((T, B, D * H)), rng.standard_normal((D, B, H)),
            rng.standard_normal((D, B, H)))


def _ref_loss(x, params, h0, c0, bidir, weights):
    y, hn, cn = ref_lstm(x, params, 1, bidir, h0, c0)
    ry, rh, rc = weights
    return float(np.sum(y * ry) + np.sum(hn * rh) + np.sum(cn * rc))


@pytest.fixture(params=["blas", "tile"], autouse=True)
def large_products(request):
    """Each test runs with the large products through BLAS, then on the tile kernel."""
    _core.set_large_products({"blas": 0, "tile": 1}[request.param])
    yield request.param
    _core.set_large_products(-1)


def _core_grads(shape, bidir, threads, dtype, seed=0):
    T, B, I, H = shape
    D = 2 if bidir else 1
    rng = np.random.default_rng(seed)
    lstm = clstm.LSTM(I, H, bidirectional=bidir, dtype=np.float64, seed=seed)
    for _, p in lstm.named_parameters():
        p[...] = rng.uniform(-0.3, 0.3, p.shape)
    x = rng.standard_normal((T, B, I))
    h0, c0 = rng.standard_normal((D, B, H)), rng.standard_normal((D, B, H))
    weights = _loss_weights(T, B, H, D, rng)
    params = {k: v.copy() for k, v in lstm.state_dict().items()}
    if dtype != np.float64:
        lstm = _cast(lstm, dtype)
    old = clstm.get_num_threads()
    clstm.set_num_threads(threads)
    try:
        lstm.forward(x.astype(dtype), (h0.astype(dtype), c0.astype(dtype)), train=True)
        ry, rh, rc = weights
        dx, (dh0, dc0) = lstm.backward(ry.astype(dtype), (rh.astype(dtype), rc.astype(dtype)))
    finally:
        clstm.set_num_threads(old)
    grads = {k: np.asarray(v, np.float64) for k, v in lstm.grads.items()}
    grads.update(x=dx.astype(np.float64), h0=dh0.astype(np.float64), c0=dc0.astype(np.float64))
    return params, x, h0, c0, weights, grads


def _cast(lstm, dtype):
    other = clstm.LSTM(lstm.input_size, lstm.hidden_size,
                       bidirectional=lstm.bidirectional, dtype=dtype)
    other.load_state_dict({k: v.astype(dtype) for k, v in lstm.state_dict().items()})
    return other


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("bidir", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_gradients_match_reference_directional_derivatives(name, bidir, threads):
    params, x, h0, c0, weights, grads = _core_grads(SHAPES[name], bidir, threads, np.float64)
    rng = np.random.default_rng(1)
    eps = 1e-5
    for key in list(params) + ["x", "h0", "c0"]:
        base = {"x": x, "h0": h0, "c0": c0}.get(key, params.get(key))
        v = rng.standard_normal(base.shape)

        def loss_at(step):
            p = dict(params)
            args = {"x": x, "h0": h0, "c0": c0}
            if key in args:
                args[key] = base + step * v
            else:
                p[key] = base + step * v
            return _ref_loss(args["x"], p, args["h0"], args["c0"], bidir, weights)

        want = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
        got = float(np.sum(grads[key] * v))
        assert abs(got - want) <= 1e-6 * max(1.0, abs(want)), (key, got, want)


@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("threads", [1, 2])
def test_float32_gradients_follow_float64(name, threads):
    g64 = _core_grads(SHAPES[name], True, threads, np.float64)[-1]
    g32 = _core_grads(SHAPES[name], True, threads, np.float32)[-1]
    for key, want in g64.items():
        scale = np.abs(want).max() + 1e-30
        assert np.abs(g32[key] - want).max() <= 2e-4 * scale, key


def test_float32_large_route_for_wide_inputs():
    # float32 reaches the large products' dW at I + H > 1024
    shape = (2, 2, 1000, 40)
    for threads in (1, 2):
        g64 = _core_grads(shape, False, threads, np.float64)[-1]
        g32 = _core_grads(shape, False, threads, np.float32)[-1]
        for key, want in g64.items():
            scale = np.abs(want).max() + 1e-30
            assert np.abs(g32[key] - want).max() <= 2e-4 * scale, key
