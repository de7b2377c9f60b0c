"""The same model in torch.nn.LSTM and clstm.LSTM (weights through the
state_dict) agrees on outputs and on every gradient.  Skipped without torch."""
import itertools

import numpy as np
import pytest

import clstm

torch = pytest.importorskip("torch")


def _pair(I, H, layers, bidir, bias, batch_first, dtype):
    torch.manual_seed(0)
    tl = torch.nn.LSTM(I, H, num_layers=layers, bias=bias, batch_first=batch_first,
                       bidirectional=bidir)
    tl = tl.double() if dtype == np.float64 else tl.float()
    cl = clstm.LSTM(I, H, num_layers=layers, bias=bias, batch_first=batch_first,
                    bidirectional=bidir, dtype=dtype)
    cl.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
    return tl, cl


@pytest.mark.parametrize("layers,bidir,bias,batch_first,dtype", list(itertools.product(
    [1, 2], [False, True], [True, False], [False, True], [np.float32, np.float64])))
def test_outputs_and_gradients_agree(layers, bidir, bias, batch_first, dtype):
    I, H, T, B = 5, 7, 6, 3
    tl, cl = _pair(I, H, layers, bidir, bias, batch_first, dtype)
    rng = np.random.default_rng(0)
    D = 2 if bidir else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(dtype)
    h0 = rng.standard_normal((layers * D, B, H)).astype(dtype)
    c0 = rng.standard_normal((layers * D, B, H)).astype(dtype)
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    ty, (thn, tcn) = tl(tx, (th0, tc0))
    y, (hn, cn) = cl.forward(x, (h0, c0), train=True)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    for a, b in ((y, ty), (hn, thn), (cn, tcn)):
        np.testing.assert_allclose(a, b.detach().numpy(), atol=tol)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dh = rng.standard_normal(hn.shape).astype(dtype)
    dc = rng.standard_normal(cn.shape).astype(dtype)
    torch.autograd.backward([ty, thn, tcn], [torch.tensor(dy), torch.tensor(dh),
                                              torch.tensor(dc)])
    dx, (dh0, dc0) = cl.backward(dy, (dh, dc))
    gtol = 1e-10 if dtype == np.float64 else 1e-4
    for a, b in ((dx, tx.grad), (dh0, th0.grad), (dc0, tc0.grad)):
        np.testing.assert_allclose(a, b.numpy(), atol=gtol)
    for name, p in tl.named_parameters():
        np.testing.assert_allclose(cl.grads[name], p.grad.numpy(), atol=gtol, err_msg=name)


def test_unbatched_like_torch():
    tl, cl = _pair(3, 4, 2, True, True, False, np.float64)
    x = np.random.default_rng(0).standard_normal((5, 3))
    ty, (th, tc) = tl(torch.tensor(x))
    y, (h, c) = cl(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(h, th.detach().numpy(), atol=1e-12)
