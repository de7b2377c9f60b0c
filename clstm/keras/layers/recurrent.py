"""LSTM and Bidirectional, on clstm's C core.

Keras's LSTM weights are the core's own layout: kernel (F, 4H) and
recurrent_kernel (H, 4H) are the transposed PyTorch weights, bias (4H)
one vector, gates i, f, c (= PyTorch's g), o in both.  So the core reads
the layer's arrays directly: no copies, no per-call transposes."""
import numpy as np

from ... import _core
from ..._validate import as_mask, asarray, check_blas_dims, positive_int
from .. import utils
from .base import Layer, as_float_input


class LSTM(Layer):
    """Keras's LSTM layer: (B, T, F) -> (B, units), or (B, T, units) with
    return_sequences; with return_state also the final h and c (B, units).

    A (B, T) mask (from Embedding(mask_zero=True)) skips padded steps in the
    C core: final states come from each sequence's last real step, padded
    outputs are 0, gradients through padding are 0.  stateful=True carries
    the final state of each batch into the next (truncated BPTT; gradients
    stop at the batch boundary) until reset_states().  dropout drops input
    features (one mask per sequence, as Keras).  Activations are fixed to
    tanh / sigmoid: that is what the fused core computes."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, **kwargs):
        super().__init__(**kwargs)
        self.units = positive_int(units, "units")
        if activation != "tanh" or recurrent_activation != "sigmoid":
            raise ValueError("clstm's LSTM computes activation='tanh' and "
                             "recurrent_activation='sigmoid' (Keras's defaults); got "
                             f"{activation!r} and {recurrent_activation!r}")
        if recurrent_dropout:
            raise ValueError("recurrent_dropout is not supported by clstm's fused LSTM kernel; "
                             f"use dropout (on the inputs) instead, got {recurrent_dropout!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
                not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.unit_forget_bias = bool(unit_forget_bias)
        self.dropout = float(dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.states = None
        self._cache = None

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"LSTM expects inputs of shape (batch, timesteps, features), got "
                             f"(batch, {', '.join(map(str, input_shape))})")
        F, H = input_shape[1], self.units
        if F is None:
            raise ValueError(f"LSTM needs a known feature size, got input shape "
                             f"(batch, {input_shape[0]}, None)")
        check_blas_dims(1, 1, F, H)
        self.add_weight("kernel", (F, 4 * H), self.kernel_initializer)
        self.add_weight("recurrent_kernel", (H, 4 * H), self.recurrent_initializer)
        if self.use_bias:
            b = self.add_weight("bias", (4 * H,), self.bias_initializer)
            if self.unit_forget_bias:
                b[H:2 * H] = 1.0
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        T = input_shape[0]
        return (T, self.units) if self.return_sequences else (self.units,)

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def reset_states(self):
        self.states = None

    def _initial_state(self, B, initial_state):
        if initial_state is not None:
            if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
                got = (f"{type(initial_state).__name__} of length {len(initial_state)}"
                       if isinstance(initial_state, (tuple, list))
                       else type(initial_state).__name__)
                raise ValueError(f"{self.name}: initial_state must be [h, c], got {got}")
            h0, c0 = (as_float_input(s, self.name, self.dtype) for s in initial_state)
            for s, n in ((h0, "h"), (c0, "c")):
                if s.shape != (B, self.units):
                    raise ValueError(f"{self.name}: initial state {n} must have shape "
                                     f"({B}, {self.units}), got {s.shape}")
            return h0, c0
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != B:
                raise ValueError(f"stateful {self.name} holds states for batch size "
                                 f"{self.states[0].shape[0]}, got a batch of {B}; use one batch "
                                 "size throughout (a divisor of the data) or reset_states()")
            return self.states
        return None, None

    def call(self, x, training=False, mask=None, initial_state=None):
        """x (B, T, F) -> output (see the class docstring)."""
        xa = asarray(x, self.name)
        if not self.built:
            self.build(xa.shape[1:])
        F0 = self._weights["kernel"].shape[0]
        if xa.ndim != 3 or xa.shape[2] != F0:
            raise ValueError(f"{self.name} expects inputs of shape (batch, timesteps, {F0}), "
                             f"got {xa.shape}")
        B, T, F = xa.shape
        H = self.units
        check_blas_dims(T, B, F, H)     # before the conversion: a view may be huge
        x = as_float_input(xa, self.name, self.dtype)
        xt = np.ascontiguousarray(x.transpose(1, 0, 2))           # (T, B, F)
        drop = None
        if training and self.dropout > 0:
            keep = 1.0 - self.dropout
            drop = ((utils.rng().random((B, F)) < keep) / keep).astype(self.dtype)
            xt *= drop
        m = None
        if mask is not None:
            m = np.ascontiguousarray(as_mask(mask, (B, T), f"{self.name}: mask").T)  # (T, B)
        h0, c0 = self._initial_state(B, initial_state)
        w = self._weights
        y = np.empty((T, B, H), self.dtype)
        hn, cn = np.empty((B, H), self.dtype), np.empty((B, H), self.dtype)
        gates = np.empty((T, B, 4 * H), self.dtype) if training else None
        cs = np.empty((T, B, H), self.dtype) if training else None
        hs = np.empty((T, B, H), self.dtype) if training and m is not None else None
        if T == 0 or B == 0:
            hn[...] = 0 if h0 is None else h0
            cn[...] = 0 if c0 is None else c0
        else:
            _core.forward(xt, w["kernel"], w["recurrent_kernel"], w.get("bias"), h0, c0, m, y, 0,
                          hn, cn, self.go_backwards, gates, cs, hs)
        self._cache = (xt, drop, m, h0, c0, y, gates, cs, hs) if training else None
        if self.stateful:
            self.states = (hn.copy(), cn.copy())
        if self.return_sequences:
            out = y[::-1] if self.go_backwards else y           # Keras: reversed sequence
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        else:
            out = hn
        return [out, hn, cn] if self.return_state else out

    def backward(self, dy, dstates=None):
        """dy: gradient w.r.t. the output (as call returned it); dstates:
        optional (dh, dc) w.r.t. the returned final states.  Returns dx
        (B, T, F) and fills grads (kernel, recurrent_kernel, bias)."""
        if self._cache is None:
            raise RuntimeError(f"{self.name}.backward needs a call(..., training=True) first")
        xt, drop, m, h0, c0, y, gates, cs, hs = self._cache
        T, B, F = xt.shape
        H = self.units
        # the shapes are checked here: C reads as many elements as (T, B, H) says
        want = (B, T, H) if self.return_sequences else (B, H)
        dy = as_float_input(dy, f"{self.name}.backward: dy", self.dtype)
        if dy.shape != want:
            raise ValueError(f"{self.name}.backward: dy must have the output's shape {want}, "
                             f"got {dy.shape}")
        if dstates is not None and (not isinstance(dstates, (tuple, list)) or len(dstates) != 2):
            raise ValueError(f"{self.name}.backward: dstates must be (dh, dc), got "
                             f"{type(dstates).__name__}")
        ds = [None, None]
        for k, what in enumerate(("dh", "dc")):
            if dstates is not None and dstates[k] is not None:
                ds[k] = as_float_input(dstates[k], f"{self.name}.backward: {what}", self.dtype)
                if ds[k].shape != (B, H):
                    raise ValueError(f"{self.name}.backward: {what} must have shape {(B, H)}, "
                                     f"got {ds[k].shape}")
        dhn, dcn = ds
        self._cache = None
        if self.return_sequences:
            dY = dy.transpose(1, 0, 2)
            dY = np.ascontiguousarray(dY[::-1] if self.go_backwards else dY)
        else:   # only h_T is an output: no gradient through the others
            dY = None
            dhn = dy if dhn is None else dhn + dy
        dhn = None if dhn is None else np.require(dhn, self.dtype, ["C", "A"])
        w = self._weights
        dx = np.empty((T, B, F), self.dtype)
        dh0, dc0 = np.empty((B, H), self.dtype), np.empty((B, H), self.dtype)
        run = T > 0 and B > 0
        new = np.empty if run else np.zeros   # the core writes every element
        g = {"kernel": new((F, 4 * H), self.dtype), "recurrent_kernel": new((H, 4 * H), self.dtype)}
        if self.use_bias:
            g["bias"] = new(4 * H, self.dtype)
        if run:
            _core.backward(xt, w["kernel"], w["recurrent_kernel"], h0, c0, m, y, 0,
                           self.go_backwards, gates, cs, hs, dY, 0, dhn, dcn, dx, 0.0, dh0, dc0,
                           g["kernel"], g["recurrent_kernel"], g.get("bias"))
        else:
            dx[...] = 0
        self.grads = g
        if drop is not None:
            dx *= drop
        return np.ascontiguousarray(dx.transpose(1, 0, 2))

    def get_config(self):
        cfg = super().get_config()
        cfg.update(units=self.units, use_bias=self.use_bias,
                   kernel_initializer=self.kernel_initializer,
                   recurrent_initializer=self.recurrent_initializer,
                   bias_initializer=self.bias_initializer, unit_forget_bias=self.unit_forget_bias,
                   dropout=self.dropout, return_sequences=self.return_sequences,
                   return_state=self.return_state, go_backwards=self.go_backwards,
                   stateful=self.stateful)
        return cfg


_MERGES = ("concat", "sum", "mul", "ave")


class Bidirectional(Layer):
    """Bidirectional(LSTM(...), merge_mode='concat'): a forward copy and a
    go_backwards copy of the layer, outputs aligned in time and merged by
    'concat' (default), 'sum', 'mul' or 'ave'.  Weights: the forward
    layer's, then the backward layer's (Keras's order)."""

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, LSTM):
            raise TypeError(f"Bidirectional wraps an LSTM layer, got {type(layer).__name__}")
        if merge_mode not in _MERGES:
            raise ValueError(f"merge_mode must be one of {_MERGES}, got {merge_mode!r}")
        if layer.return_state:
            raise ValueError("Bidirectional(LSTM(return_state=True)) is not supported")
        super().__init__(**kwargs)
        if self.input_shape_arg is None:
            self.input_shape_arg = layer.input_shape_arg
        self.merge_mode = merge_mode
        self.forward_layer = layer
        if backward_layer is None:
            cfg = layer.get_config()
            cfg.pop("input_shape", None)
            cfg.update(name="backward_" + layer.name, go_backwards=not layer.go_backwards)
            backward_layer = LSTM(**cfg)
        self.backward_layer = backward_layer
        self.return_sequences = layer.return_sequences

    def build(self, input_shape):
        self.forward_layer.ensure_built(input_shape)
        self.backward_layer.ensure_built(input_shape)
        for prefix, sub in (("forward", self.forward_layer), ("backward", self.backward_layer)):
            for n, w in sub._weights.items():
                self._weights[f"{prefix}_{n}"] = w     # the sublayers' arrays, shared
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        out = self.forward_layer.compute_output_shape(input_shape)
        return out[:-1] + (2 * out[-1],) if self.merge_mode == "concat" else out

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def reset_states(self):
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    def call(self, x, training=False, mask=None):
        yf = self.forward_layer.call(x, training=training, mask=mask)
        yb = self.backward_layer.call(x, training=training, mask=mask)
        if self.return_sequences:
            yb = np.ascontiguousarray(yb[:, ::-1])     # back into time order
        self._parts = (yf, yb)
        if self.merge_mode == "concat":
            return np.concatenate([yf, yb], axis=-1)
        if self.merge_mode == "sum":
            return yf + yb
        if self.merge_mode == "mul":
            return yf * yb
        return (yf + yb) * self.dtype.type(0.5)

    def backward(self, dy):
        if getattr(self, "_parts", None) is None:
            raise RuntimeError(f"{self.name}.backward needs a call(..., training=True) first")
        yf, yb = self._parts
        H = yf.shape[-1]
        want = yf.shape[:-1] + (2 * H,) if self.merge_mode == "concat" else yf.shape
        dy = as_float_input(dy, f"{self.name}.backward: dy", self.dtype)
        if dy.shape != want:
            raise ValueError(f"{self.name}.backward: dy must have the output's shape {want}, "
                             f"got {dy.shape}")
        if self.merge_mode == "concat":
            H = yf.shape[-1]
            dyf, dyb = dy[..., :H], dy[..., H:]
        elif self.merge_mode == "sum":
            dyf = dyb = dy
        elif self.merge_mode == "mul":
            dyf, dyb = dy * yb, dy * yf
        else:
            dyf = dyb = dy * self.dtype.type(0.5)
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        dx = self.forward_layer.backward(np.ascontiguousarray(dyf))
        dx += self.backward_layer.backward(np.ascontiguousarray(dyb))
        self.grads = {f"forward_{n}": g for n, g in self.forward_layer.grads.items()}
        self.grads.update({f"backward_{n}": g for n, g in self.backward_layer.grads.items()})
        return dx

    def get_config(self):
        cfg = super().get_config()
        cfg.update(merge_mode=self.merge_mode,
                   layer={"class_name": "LSTM", "config": self.forward_layer.get_config()},
                   backward_layer={"class_name": "LSTM",
                                   "config": self.backward_layer.get_config()})
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        layer = LSTM(**config.pop("layer")["config"])
        backward = config.pop("backward_layer", None)
        backward = LSTM(**backward["config"]) if backward else None
        return cls(layer, backward_layer=backward, **config)
