"""An independent, plain NumPy float64 LSTM (and finite differences) that
the tests check clstm against.  Written from the equations, sharing no code
with clstm:

    i = s(W_ii x + b_ii + W_hi h + b_hi)    f, o likewise; s = logistic
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    c' = f c + i g,   h' = o tanh(c')

Gate blocks stacked i, f, g, o; parameters named as torch.nn.LSTM's."""
import numpy as np


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic


def ref_direction(x, w_ih, w_hh, b, h, c, reverse):
    """x (T, B, I) -> y (T, B, H), h_n, c_n; one layer, one direction."""
    T = x.shape[0]
    H = w_hh.shape[1]
    y = np.zeros((T, x.shape[1], H))
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        z = x[t] @ w_ih.T + h @ w_hh.T + b
        i, f = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H])
        g, o = np.tanh(z[:, 2 * H:3 * H]), _sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        y[t] = h
    return y, h, c


def ref_lstm(x, params, num_layers, bidirectional=False, h0=None, c0=None):
    """The stacked LSTM in float64.  x (T, B, I) sequence-major; params by
    PyTorch name (biases may be absent); h0, c0 (L*D, B, H) or None.
    Returns y (T, B, D*H), h_n, c_n (L*D, B, H)."""
    x = np.asarray(x, np.float64)
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    T, B = x.shape[:2]
    h0 = np.zeros((num_layers * D, B, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((num_layers * D, B, H)) if c0 is None else np.asarray(c0, np.float64)
    hn, cn = np.zeros_like(h0), np.zeros_like(c0)
    inp = x
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            p = {k: np.asarray(v, np.float64) for k, v in params.items() if k.endswith(sfx)}
            b = p.get("bias_ih" + sfx, 0.0) + p.get("bias_hh" + sfx, 0.0)
            k = layer * D + d
            y, hn[k], cn[k] = ref_direction(inp, p["weight_ih" + sfx], p["weight_hh" + sfx],
                                            b, h0[k], c0[k], reverse=d == 1)
            outs.append(y)
        inp = np.concatenate(outs, axis=2)
    return inp, hn, cn


def finite_difference(f, arrays, eps=1e-6):
    """Central differences of the scalar f() w.r.t. every element of each
    array in `arrays` (perturbed in place, restored after)."""
    grads = []
    for a in arrays:
        g = np.zeros(a.shape)
        it = np.nditer(a, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            old = a[idx]
            a[idx] = old + eps
            fp = f()
            a[idx] = old - eps
            fm = f()
            a[idx] = old
            g[idx] = (fp - fm) / (2 * eps)
        grads.append(g)
    return grads


def rel_err(a, b):
    """Norm-wise relative error of a against the reference b."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
