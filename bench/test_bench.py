"""pytest-benchmark suite: clstm (and torch.nn.LSTM, when importable) on the
shapes of bench/compare.py, float32, forward and forward+backward.

    pytest bench/                        # time every case
    pytest bench/ --benchmark-disable    # run each case once (a smoke test)

Each shape's clstm and torch cases share a benchmark group, so the table
pytest-benchmark prints puts them side by side.  The training epoch of the
seed model (clstm.keras LSTM(50) + Dense(1), Adam, MSE, 2048 windows of 60
steps, batch 32) is timed for clstm alone.  For interleaved medians, ratios
against onnxruntime and torch, the peak memory and the performance targets,
use compare.py.  As compare.py does by default (--malloc steady), glibc's malloc
is set to keep large freed blocks first, so that no library's temporaries are
mapped afresh on each call (process-wide: it stays for the rest of the run).
"""
import numpy as np
import pytest

import clstm

SHAPES = [(100, 1, 8, 32), (60, 32, 1, 50), (50, 1, 256, 256), (100, 32, 128, 256), (50, 64, 512, 1024)]
SHAPE_IDS = [f"T{T}-B{B}-I{I}-H{H}" for T, B, I, H in SHAPES]
SLOW_CALL_FLOPS = 1e10  # above this forward flop count, time a fixed few rounds
SEED = 0


def forward_flops(shape):
    T, B, I, H = shape
    return 2 * T * B * 4 * H * (I + H)


def inputs(shape):
    T, B, I, H = shape
    rng = np.random.default_rng(SEED)
    return (rng.standard_normal((T, B, I)).astype(np.float32),
            rng.standard_normal((T, B, H)).astype(np.float32))


def run(benchmark, shape, mode, fn):
    """Time fn; the slowest shape gets 3 rounds after one warm-up round."""
    benchmark.group = f"{mode} T{shape[0]}-B{shape[1]}-I{shape[2]}-H{shape[3]}"
    if forward_flops(shape) > SLOW_CALL_FLOPS:
        benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)


@pytest.fixture(scope="module", autouse=True)
def steady_malloc():
    from clstm.benchmark import steady_malloc
    steady_malloc()


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(clstm.get_num_threads())
    return torch


def clstm_model(shape):
    T, B, I, H = shape
    return clstm.LSTM(input_size=I, hidden_size=H, num_layers=1, dtype=np.float32, seed=SEED)


def torch_model(torch, shape):
    T, B, I, H = shape
    torch.manual_seed(SEED)
    return torch.nn.LSTM(I, H)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_clstm_forward(benchmark, shape):
    model, (x, _) = clstm_model(shape), inputs(shape)
    run(benchmark, shape, "forward", lambda: model(x))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_clstm_forward_backward(benchmark, shape):
    model, (x, dy) = clstm_model(shape), inputs(shape)

    def step():
        model.forward(x, train=True)
        return model.backward(dy)
    run(benchmark, shape, "fwd+bwd", step)
    assert model.grads["weight_hh_l0"].shape == (4 * shape[3], shape[3])


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_torch_forward(benchmark, torch, shape):
    model, (x, _) = torch_model(torch, shape), inputs(shape)
    xt = torch.from_numpy(x)

    def step():
        with torch.inference_mode():
            return model(xt)
    run(benchmark, shape, "forward", step)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_torch_forward_backward(benchmark, torch, shape):
    from clstm.benchmark import torch_fwdbwd
    model, (x, dy) = torch_model(torch, shape), inputs(shape)
    run(benchmark, shape, "fwd+bwd", torch_fwdbwd(model, x, dy))


def test_clstm_epoch(benchmark):
    """One fit() epoch of the seed model on compare.py's data: a few rounds
    after one warm-up epoch, and the loss must have come down."""
    from clstm.benchmark import EPOCH_BATCH, clstm_epoch, clstm_seed_model, epoch_data
    x, y = epoch_data()
    model = clstm_seed_model(x.shape[2], x.shape[1])
    before = model.evaluate(x, y, batch_size=len(x), verbose=0)
    benchmark.group = f"epoch seed model N{len(x)}-T{x.shape[1]}-batch{EPOCH_BATCH}"
    benchmark.pedantic(clstm_epoch(model, x, y), rounds=3, iterations=1, warmup_rounds=1)
    assert model.evaluate(x, y, batch_size=len(x), verbose=0) < before
