"""clstm.LSTM: a multi-layer, optionally bidirectional LSTM with the
semantics, parameter names and shapes of torch.nn.LSTM, on NumPy arrays."""
import reprlib
import sys
from collections import OrderedDict

import numpy as np

from . import _alloc, _core
from ._validate import (INT_MAX, as_mask, as_real, asarray, check_blas_dims, positive_int,
                        resolve_dtype)


def _rng(seed):
    """np.random.default_rng(seed) for the seeds NumPy takes (None, ints >= 0,
    sequences of them, a Generator, BitGenerator or SeedSequence); anything
    else is refused naming seed and what came (NumPy's message names neither)."""
    if isinstance(seed, (bool, np.bool_)):
        raise TypeError(f"seed must be None, an int >= 0, a sequence of such ints or a numpy "
                        f"Generator, BitGenerator or SeedSequence, got bool {seed}")
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as e:
        raise type(e)(f"seed must be None, an int >= 0, a sequence of such ints or a numpy "
                      f"Generator, BitGenerator or SeedSequence, got {type(seed).__name__} "
                      f"{reprlib.repr(seed)} ({e})") from None


def _held(a):
    """Whether anyone but the pool holds the pooled array `a` (from
    _alloc.empty) or a view of it.  References when free: to `a`, the pool's,
    the caller's and getrefcount's argument; to an aligned array's byte
    buffer, a's and the argument (numpy points every view of `a`, .T
    included, at the buffer; at `a` itself where `a` owns its data)."""
    return sys.getrefcount(a) > 4 or (a.base is not None and sys.getrefcount(a.base) > 2)


class LSTM:
    """Multi-layer LSTM over NumPy arrays, parameter-compatible with torch.nn.LSTM.

    Parameters are attributes named as PyTorch names them, float arrays of the
    LSTM's dtype: ``weight_ih_l{k}`` (4H, I_k), ``weight_hh_l{k}`` (4H, H),
    ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (4H), with a ``_reverse`` suffix for
    the second direction; gates are stacked i, f, g, o.  I_0 = input_size,
    I_k = H * num_directions above.  All start uniform in +-1/sqrt(H).
    The weights are transposed views of the C-contiguous (I_k, 4H) and
    (H, 4H) buffers the core computes with: in-place updates take effect,
    assignment copies into them (shape-checked).

    Shapes (sequence-major unless batch_first):
      x:      (T, B, input_size), or (B, T, input_size) if batch_first, or
              (T, input_size) for one unbatched sequence
      h0, c0: (num_layers * num_directions, B, H), or (..., H) unbatched
      y:      (T, B, num_directions * H) (batch_first: (B, T, ...))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float32, seed=None):
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)):
            raise TypeError(f"dropout must be a float in [0, 1), got {dropout!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.dtype = resolve_dtype(dtype)
        self._typenum = self.dtype.num
        check_blas_dims(1, 1, self.input_size, self.hidden_size)
        self._rng = _rng(seed)
        self._params = OrderedDict()   # name -> array in PyTorch's shape (a view)
        self._core_arrays = {}         # name -> the C-contiguous array the core reads
        self._shapes = OrderedDict()
        H, D = self.hidden_size, self.num_directions
        for layer in range(self.num_layers):
            isz = self.input_size if layer == 0 else H * D
            for d in range(D):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                self._shapes["weight_ih" + sfx] = (4 * H, isz)
                self._shapes["weight_hh" + sfx] = (4 * H, H)
                if self.bias:
                    self._shapes["bias_ih" + sfx] = (4 * H,)
                    self._shapes["bias_hh" + sfx] = (4 * H,)
        self.reset_parameters()
        self.grads = {}
        self._cache = None   # what backward needs from the last forward(train=True)

    # ---- parameters ---------------------------------------------------------

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def reset_parameters(self):
        """Uniform in +-1/sqrt(hidden_size), as torch.nn.LSTM."""
        k = 1.0 / np.sqrt(self.hidden_size)
        for name, shape in self._shapes.items():
            if name not in self._params:
                buf = np.empty(shape[::-1], self.dtype)   # weights: (in, 4H); biases: (4H,)
                self._core_arrays[name] = buf
                self._params[name] = buf.T
            self._params[name][...] = self._rng.uniform(-k, k, shape)

    def __getattr__(self, name):
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        shapes = self.__dict__.get("_shapes")
        if shapes is not None and name in shapes:
            self._params[name][...] = self._checked_param(name, value)
        else:
            object.__setattr__(self, name, value)

    def _checked_param(self, name, value):
        arr = asarray(value, name)
        if arr.dtype.kind != "f":
            raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
        if arr.shape != self._shapes[name]:
            raise ValueError(f"{name} must have shape {self._shapes[name]}, got {arr.shape}")
        return arr

    def named_parameters(self):
        """(name, array) pairs in PyTorch's order; the arrays are the live
        parameters (in-place updates take effect)."""
        return list(self._params.items())

    def parameters(self):
        return list(self._params.values())

    def state_dict(self):
        """An OrderedDict of C-contiguous copies of the parameters, PyTorch
        names and shapes."""
        return OrderedDict((k, np.ascontiguousarray(v).copy()) for k, v in self._params.items())

    def load_state_dict(self, state_dict, strict=True):
        """Load parameters by PyTorch name (torch tensors may be passed as
        numpy arrays via .numpy()).  strict: the keys must match exactly.
        All-or-nothing: on any error no parameter is changed."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, "
                            f"got {type(state_dict).__name__}")
        keys = set(state_dict.keys())
        missing = [k for k in self._shapes if k not in keys]
        unexpected = sorted(str(k) for k in keys if k not in self._shapes)
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict does not match this LSTM: missing {missing}, "
                           f"unexpected {unexpected}")
        new = {k: self._checked_param(k, state_dict[k]) for k in self._shapes if k in keys}
        for k, v in new.items():
            self._params[k][...] = v
        return missing, unexpected

    def __repr__(self):
        extra = [f"num_layers={self.num_layers}"] if self.num_layers != 1 else []
        if not self.bias:
            extra.append("bias=False")
        if self.batch_first:
            extra.append("batch_first=True")
        if self.dropout:
            extra.append(f"dropout={self.dropout}")
        if self.bidirectional:
            extra.append("bidirectional=True")
        if self.dtype != np.float32:
            extra.append(f"dtype={self.dtype}")
        return f"LSTM({', '.join([str(self.input_size), str(self.hidden_size)] + extra)})"

    # ---- forward / backward -------------------------------------------------

    def __call__(self, x, hx=None, mask=None):
        """Inference: forward(x, hx, mask=mask)."""
        return self.forward(x, hx, mask=mask)

    def _input(self, x):
        """x as (T, B, I) contiguous in the LSTM's dtype, and whether it came
        batched; one copy at most (batch_first transposes in that copy)."""
        x = asarray(x, "x")
        if x.dtype.kind != "f":
            raise TypeError(f"x must be a floating-point array, got dtype {x.dtype}")
        if x.ndim not in (2, 3):
            layout = "(B, T, {0})" if self.batch_first else "(T, B, {0})"
            raise ValueError(f"x must be 3-D {layout.format(self.input_size)} or 2-D "
                             f"(T, {self.input_size}) for one sequence, got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has {x.shape[-1]} features, this LSTM was built for "
                             f"input_size={self.input_size}")
        batched = x.ndim == 3
        T, B = (x.shape[1], x.shape[0]) if batched and self.batch_first else \
            (x.shape[0], x.shape[1] if batched else 1)
        # before the copy below: a broadcast view may stand for petabytes
        check_blas_dims(T, B, max(self.input_size, self.hidden_size * self.num_directions),
                        self.hidden_size)
        return self._seq_major(x, batched), batched

    def _seq_major(self, a, batched):
        """A user-layout sequence array as contiguous, aligned (T, B, F) of
        our dtype (np.ascontiguousarray alone would pass an unaligned buffer)."""
        if batched and not self.batch_first and type(a) is np.ndarray and a.dtype == self.dtype:
            flags = a.flags     # already as the core wants it: np.require costs ~1.7 us
            if flags.c_contiguous and flags.aligned:
                return a
        if not batched:
            a = a[:, None, :]
        elif self.batch_first:
            a = a.transpose(1, 0, 2)
        return np.require(a, dtype=self.dtype, requirements=["C", "A"])

    def _states(self, hx, B, batched, name0="h0", name1="c0"):
        if hx is None:
            return None, None
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"the state must be a tuple ({name0}, {name1}), got {type(hx).__name__}")
        L = self.num_layers * self.num_directions
        shape = (L, B, self.hidden_size) if batched else (L, self.hidden_size)
        out = []
        for name, a in ((name0, hx[0]), (name1, hx[1])):
            if a is None:
                out.append(None)
                continue
            a = as_real(a, name, self.dtype)
            if a.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
            out.append(a if batched else a.reshape(L, 1, self.hidden_size))
        return out[0], out[1]

    def _mask(self, mask, T, B, batched):
        """A user step mask ((T, B), batch_first (B, T), unbatched (T,)) as
        the core's (T, B) uint8, or None."""
        if mask is None:
            return None
        m = asarray(mask, "mask")
        if not batched:
            return as_mask(m, (T,))[:, None]
        if self.batch_first:
            return np.ascontiguousarray(as_mask(m, (B, T)).T)
        return as_mask(m, (T, B))

    def forward(self, x, hx=None, train=False, mask=None):
        """y, (h_n, c_n) = forward(x, (h0, c0)).

        x: float array (T, B, input_size) (batch_first: (B, T, input_size));
        hx: optional (h0, c0), each (num_layers * num_directions, B, H).
        mask: optional booleans (T, B) (batch_first: (B, T)); False skips that
        step of that sequence: its state carries over and its output is 0, so
        padded sequences end (and start, in reverse) at their own real steps.
        train=True keeps what backward() needs and applies dropout between
        layers.  Returns y (T, B, num_directions * H) (batch_first: (B, T, ...))
        and h_n, c_n shaped as h0, in the LSTM's dtype.
        """
        x, batched = self._input(x)
        T, B, _ = x.shape          # within the BLAS limits (checked by _input)
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        h0, c0 = self._states(hx, B, batched)
        mask = self._mask(mask, T, B, batched)
        hn = np.empty((L * D, B, H), self.dtype)
        cn = np.empty((L * D, B, H), self.dtype)
        if train:   # superseded: its arrays may serve this call (_train_array)
            self.__dict__["_cache"] = None
        arrays = self._core_arrays
        layers = []
        inp = x
        for layer in range(L):
            y = _alloc.empty((T, B, D * H), self.dtype)
            saved = {"x": inp, "y": y, "gates": [], "cs": [], "hs": [], "dropout": None}
            for d in range(D):
                k = layer * D + d
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                bias = arrays["bias_ih" + sfx] + arrays["bias_hh" + sfx] if self.bias else None
                gates = self._train_array("gates" + sfx, (T, B, 4 * H)) if train else None
                cs = self._train_array("cs" + sfx, (T, B, H)) if train else None
                hs = self._train_array("hs" + sfx, (T, B, H)) if train and mask is not None else None
                h0k = None if h0 is None else h0[k]
                c0k = None if c0 is None else c0[k]
                if T == 0 or B == 0:
                    hn[k] = 0 if h0k is None else h0k
                    cn[k] = 0 if c0k is None else c0k
                else:
                    _core.forward(inp, arrays["weight_ih" + sfx], arrays["weight_hh" + sfx], bias,
                                  h0k, c0k, mask, y, d * H, hn[k], cn[k], d == 1, gates, cs, hs)
                saved["gates"].append(gates)
                saved["cs"].append(cs)
                saved["hs"].append(hs)
            inp = y
            if train and self.dropout > 0 and layer < L - 1:
                keep = 1.0 - self.dropout
                m = (self._rng.random(y.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                saved["dropout"] = m
                inp = y * m
            layers.append(saved)
        cache = None
        if train:
            cache = {"layers": layers, "h0": h0, "c0": c0, "mask": mask, "batched": batched,
                     "shape": (T, B)}
        self.__dict__["_cache"] = cache
        # no dropout after the last layer, as in PyTorch
        return self._output(layers[-1]["y"], batched), self._state_out(hn, cn, batched)

    # (B, I) -> ((B, H), state): one time step of online inference; in C, so that
    # a call with out= buffers costs no Python frame (docstring in _core.lstm_step)
    step = _core.lstm_step

    def _step_slow(self, x, state, out):
        """step() for inputs that need checking, converting or allocating."""
        if self.bidirectional:
            raise ValueError("step() runs one time step forward; a bidirectional LSTM needs "
                             "the whole sequence: use forward()")
        x = asarray(x, "x")
        if x.dtype.kind != "f":
            raise TypeError(f"x must be a floating-point array, got dtype {x.dtype}")
        if x.ndim not in (1, 2):
            raise ValueError(f"x must be (B, {self.input_size}) or ({self.input_size},), "
                             f"got shape {x.shape}")
        batched = x.ndim == 2
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has {x.shape[-1]} features, this LSTM was built for "
                             f"input_size={self.input_size}")
        B = x.shape[0] if batched else 1
        if B > INT_MAX:         # before any copy or state allocation
            raise ValueError(f"x has a batch of B = {B} rows, which exceeds the BLAS limit of "
                             f"{INT_MAX}; split the batch")
        x = np.require(x if batched else x.reshape(1, -1), dtype=self.dtype,
                       requirements=["C", "A"])
        shape = (self.num_layers, B, self.hidden_size)
        if state is None:
            h = c = np.zeros(shape, self.dtype)
        else:
            h, c = self._step_state(state, "state", shape, batched, out=False)
        if out is None:
            h_out, c_out = np.empty(shape, self.dtype), np.empty(shape, self.dtype)
        else:
            h_out, c_out = self._step_state(out, "out", shape, batched, out=True)
        done = _core.step(x, self._step_layers(), h, c, h_out, c_out, self._typenum,
                          self.input_size, self.hidden_size)
        assert done, "step(): arrays prepared for the core did not fit it"
        if not batched:
            h_out, c_out = h_out[:, 0], c_out[:, 0]
        return h_out[-1], (h_out, c_out)

    def _step_layers(self):
        """Per layer, the core's arrays (w_ih_t, w_hh_t, b_ih, b_hh): the same
        buffers for the LSTM's life (assignment copies into them)."""
        layers = self.__dict__.get("_step_layers_cache")
        if layers is None:
            a = self._core_arrays
            layers = tuple((a[f"weight_ih_l{k}"], a[f"weight_hh_l{k}"], a.get(f"bias_ih_l{k}"),
                            a.get(f"bias_hh_l{k}")) for k in range(self.num_layers))
            self.__dict__["_step_layers_cache"] = layers
        return layers

    def _step_state(self, pair, name, shape, batched, out):
        """The (h, c) of step() as (L, B, H) arrays of our dtype; `out` pairs
        must already be C-contiguous arrays of our dtype (written in place)."""
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"{name} must be a tuple (h, c), got {type(pair).__name__}")
        user_shape = shape if batched else (shape[0], shape[2])
        res = []
        for part, a in zip("hc", pair):
            if out:
                came = self._out_defects(a)
                if came:
                    raise TypeError(f"{name} {part} must be a writeable, aligned, C-contiguous "
                                    f"{self.dtype} array, got {came}")
            else:
                a = as_real(a, f"{name} {part}", self.dtype)
            if a.shape != user_shape:
                raise ValueError(f"{name} {part} must have shape {user_shape}, got {a.shape}")
            res.append(a if batched else a.reshape(shape))
        return res

    def _out_defects(self, a):
        """What keeps `a` from being an out= array of step() ("" if nothing):
        its type, or its dtype and the flags it lacks."""
        if not isinstance(a, np.ndarray):
            return f"{type(a).__name__} {reprlib.repr(a)}"
        bad = [f"dtype {a.dtype}"] if a.dtype != self.dtype else []
        bad += [what for ok, what in ((a.flags.writeable, "read-only"),
                                      (a.flags.aligned, "unaligned"),
                                      (a.flags.c_contiguous, "not C-contiguous")) if not ok]
        return ", ".join(bad) and f"an array of shape {a.shape}: " + ", ".join(bad)

    def _output(self, y, batched):
        if not batched:
            return y[:, 0, :]
        return y.transpose(1, 0, 2) if self.batch_first else y

    @staticmethod
    def _state_out(h, c, batched):
        return (h, c) if batched else (h[:, 0, :], c[:, 0, :])

    def _grad_array(self, key, shape, written):
        """The array `key` of backward's gradients (dtype self.dtype): the last
        backward's, where nothing outside this LSTM refers to it any more,
        else a new one; zeroed unless the core writes it (`written`).  Reuse
        matters on small shapes: a new array's pages come from the OS and
        each first write faults (~1.4 us per 4 KB page on the benchmark
        machine, ~0.75 ms of (50,1,256,256)'s ~2 ms fwd+bwd).  A caller who
        keeps an earlier `grads` (or any array or view of it) keeps its
        values: those arrays are not reused."""
        pool = self.__dict__.setdefault("_grad_pool", {})
        a = pool.get(key)
        if a is None or a.shape != shape or a.dtype != self.dtype or _held(a):
            a = pool[key] = _alloc.empty(shape, self.dtype)
        if not written:
            a[...] = 0
        return a

    def _train_array(self, key, shape):
        """An uninitialized array `key` of what backward() needs (the gates,
        c_t, h_t of forward(train=True)): the last call's, once backward() or a
        new training forward has let it go, else a new one.  Above glibc's
        largest mmap threshold (32 MB) every new array is mapped afresh and
        each page faults and is zeroed in the forward: at (50,64,512,1024),
        52 MB of gates, ~10% of the training forward at 2 threads."""
        pool = self.__dict__.setdefault("_train_pool", {})
        a = pool.get(key)
        if a is None or a.shape != shape or a.dtype != self.dtype or _held(a):
            a = pool[key] = None   # the old one goes before the new one comes
            a = pool[key] = _alloc.empty(shape, self.dtype)
        return a

    def backward(self, dy, dstate=None):
        """Backpropagation through time for the last forward(..., train=True).

        dy: gradient of the loss w.r.t. y, shaped as y; dstate: optional
        (dh_n, dc_n) shaped as h_n (None entries mean zeros).
        Returns dx shaped as x and (dh0, dc0) shaped as h0; fills self.grads
        with the gradient of every parameter, by parameter name.
        One backward per forward(train=True).
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("backward() needs a forward(x, train=True) first "
                               "(each training forward supports one backward)")
        T, B = cache["shape"]
        batched = cache["batched"]
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        dy = asarray(dy, "dy")
        if dy.dtype.kind != "f":
            raise TypeError(f"dy must be a floating-point array, got dtype {dy.dtype}")
        yshape = self._output(np.empty((T, B, D * H), self.dtype), batched).shape
        if dy.shape != yshape:
            raise ValueError(f"dy must have the shape of y, {yshape}, got {dy.shape}")
        dy = self._seq_major(dy, batched)
        dhn, dcn = self._states(dstate, B, batched, "dh_n", "dc_n")
        self.__dict__["_cache"] = None
        h0, c0, mask = cache["h0"], cache["c0"], cache["mask"]
        dh0 = np.zeros((L * D, B, H), self.dtype)
        dc0 = np.zeros((L * D, B, H), self.dtype)
        arrays = self._core_arrays
        grads = {}
        self.grads = {}   # our references to the last gradients go (see _grad_array)
        # the core writes every element of dx (the reverse direction adds to
        # the forward one's), dW and db; np.zeros cost a pass over them
        run = T > 0 and B > 0
        g = dy
        for layer in reversed(range(L)):
            saved = cache["layers"][layer]
            inp = saved["x"]
            dx = (_alloc.empty if run else _alloc.zeros)(inp.shape, self.dtype)
            for d in range(D):
                k = layer * D + d
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                w_ih_t, w_hh_t = arrays["weight_ih" + sfx], arrays["weight_hh" + sfx]
                dw_ih_t = self._grad_array("weight_ih" + sfx, w_ih_t.shape, run)
                dw_hh_t = self._grad_array("weight_hh" + sfx, w_hh_t.shape, run)
                db = self._grad_array("bias" + sfx, (4 * H,), run) if self.bias else None
                if run:
                    _core.backward(inp, w_ih_t, w_hh_t, None if h0 is None else h0[k],
                                   None if c0 is None else c0[k], mask, saved["y"], d * H, d == 1,
                                   saved["gates"][d], saved["cs"][d], saved["hs"][d], g, d * H,
                                   None if dhn is None else dhn[k],
                                   None if dcn is None else dcn[k], dx, float(d > 0),
                                   dh0[k], dc0[k], dw_ih_t, dw_hh_t, db)
                else:
                    if dhn is not None:
                        dh0[k] = dhn[k]
                    if dcn is not None:
                        dc0[k] = dcn[k]
                grads["weight_ih" + sfx] = dw_ih_t.T    # PyTorch's shapes, no copy
                grads["weight_hh" + sfx] = dw_hh_t.T
                if self.bias:
                    grads["bias_ih" + sfx] = db
                    grads["bias_hh" + sfx] = db.copy()
            if layer > 0 and cache["layers"][layer - 1]["dropout"] is not None:
                dx *= cache["layers"][layer - 1]["dropout"]
            g = dx
        self.grads = OrderedDict((k, grads[k]) for k in self._shapes)
        return self._output(g, batched), self._state_out(dh0, dc0, batched)
