"""Keras-3-compatible optimizers that update NumPy arrays in place.

Each optimizer follows the update rule of the Keras 3 class of the same name
(``keras/src/optimizers/{sgd,adam,rmsprop,adagrad}.py`` and the clipping /
weight-decay logic of ``base_optimizer.py``), with the same defaults, attribute
names, ``get_config()`` keys and ``name`` values ("SGD", "adam", "rmsprop",
"adagrad").

Arrays
------
``apply(grads, variables)`` takes two equal-length lists of NumPy arrays.
Every variable must be a writable floating-point ndarray (it may be a
non-contiguous view); it is updated in place and never rebound.  Each gradient
must have exactly its variable's shape; it is cast to the variable's dtype and
all update math is done in that dtype (float32 models stay float32).  Slot
arrays (momentums, velocities, ...) are created on the first call, one set per
list position, with the variable's shape and dtype.  Non-finite gradients are
applied as they are (NaN propagates, as in Keras).
"""

import math
import numbers
import warnings

import numpy as np
from .. import _core

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "Adagrad",
           "get", "serialize", "deserialize"]


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_float(name, value, low=0.0, high=math.inf, low_open=False, high_open=False):
    """Return ``float(value)`` or raise ValueError naming the expected range."""
    ok = _is_real(value) and math.isfinite(value)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        interval = (("(" if low_open else "[") + f"{low:g}, {high:g}"
                    + (")" if high_open else "]"))
        raise ValueError(f"Argument `{name}` must be a finite float in {interval}. "
                         f"Received: {name}={value!r}")
    return float(value)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"Argument `{name}` must be a bool. Received: {name}={value!r}")
    return bool(value)


def _check_optional(name, value):
    """None, or a finite float >= 0 (0 disables, as in Keras)."""
    return None if value is None else _check_float(name, value)


class Optimizer:
    """Base class: validation, clipping, weight decay, slots, state, config.

    Subclasses define ``_default_name``, ``_slot_specs()`` (list of
    ``(slot_name, initial_value)``), ``_update(grad, var, slots, lr)`` and
    ``_own_config()``.
    """

    _default_name = "optimizer"

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.")
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        # Accepted so that Keras configs load; only the Keras defaults are supported.
        if use_ema:
            raise ValueError("`use_ema=True` is not supported by clstm.keras optimizers. "
                             "Received: use_ema=True")
        if loss_scale_factor is not None:
            raise ValueError("`loss_scale_factor` is not supported by clstm.keras optimizers. "
                             f"Received: loss_scale_factor={loss_scale_factor!r}")
        if gradient_accumulation_steps is not None:
            raise ValueError("`gradient_accumulation_steps` is not supported by clstm.keras "
                             "optimizers. Received: gradient_accumulation_steps="
                             f"{gradient_accumulation_steps!r}")
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.name = self._default_name if name is None else str(name)
        self.weight_decay = _check_optional("weight_decay", weight_decay)
        self.clipnorm = _check_optional("clipnorm", clipnorm)
        self.clipvalue = _check_optional("clipvalue", clipvalue)
        self.global_clipnorm = _check_optional("global_clipnorm", global_clipnorm)
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can "
                             f"be set. Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        self.learning_rate = learning_rate
        self.iterations = 0
        self._slots = None        # list (one per variable position) of {slot_name: ndarray}
        self._variables = None    # references from the first apply (for apply(grads))

    # ---- hyperparameters ----------------------------------------------------------

    @property
    def learning_rate(self):
        """The learning rate, a float >= 0 (settable, e.g. by LR callbacks)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if callable(value) or isinstance(value, dict):
            raise ValueError("Learning-rate schedules and callables are not supported; "
                             f"pass a float. Received: learning_rate={value!r}")
        self._learning_rate = _check_float("learning_rate", value)

    @property
    def built(self):
        return self._slots is not None

    def _slot_specs(self):
        return []

    def _own_config(self):
        return {}

    # ---- slots ----------------------------------------------------------------------

    def build(self, variables):
        """Create zero-state slots for ``variables`` (done by the first ``apply``)."""
        variables = list(variables)
        for i, v in enumerate(variables):
            _check_variable(i, v)
        self._slots = [{name: np.full(v.shape, init, dtype=v.dtype)
                        for name, init in self._slot_specs()} for v in variables]
        self._shapes = [tuple(v.shape) for v in variables]
        self._variables = variables

    def _check_built_for(self, variables):
        if len(variables) != len(self._shapes):
            raise ValueError(f"This optimizer was built for {len(self._shapes)} variables but "
                             f"received {len(variables)}. Create a new optimizer for a new "
                             "set of variables.")
        for i, (v, shape) in enumerate(zip(variables, self._shapes)):
            if tuple(v.shape) != shape:
                raise ValueError(f"Variable {i} has shape {tuple(v.shape)} but this optimizer "
                                 f"was built for shape {shape}.")
            for name, s in self._slots[i].items():
                if s.dtype != v.dtype:          # e.g. state loaded from another dtype
                    self._slots[i][name] = s.astype(v.dtype)

    # ---- applying gradients ---------------------------------------------------------

    def apply_gradients(self, grads_and_vars):
        """Keras-style: apply an iterable of ``(grad, variable)`` pairs."""
        pairs = list(grads_and_vars)
        if not pairs:
            return self.iterations
        grads, variables = zip(*pairs)
        self.apply(list(grads), list(variables))
        return self.iterations

    def apply(self, grads, variables=None):
        """Update ``variables`` in place from ``grads`` (lists of equal length).

        ``variables`` may be omitted after the first call (the arrays given then
        are reused).  ``None`` gradients are skipped with a warning, as in Keras.
        """
        grads = list(grads)
        if variables is None:
            if self._variables is None:
                raise ValueError("When passing `grads` without `variables`, the optimizer "
                                 "must already have been applied to a list of variables.")
            variables = self._variables
        variables = list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"Received {len(grads)} gradients for {len(variables)} variables; "
                             "the lists must have the same length.")
        if not grads:
            return
        for i, v in enumerate(variables):
            _check_variable(i, v)
        cast = []
        for i, (g, v) in enumerate(zip(grads, variables)):
            if g is None:
                cast.append(None)
                continue
            g = np.asarray(g)
            if g.shape != v.shape:
                raise ValueError(f"Gradient {i} has shape {g.shape} but its variable has "
                                 f"shape {v.shape}.")
            cast.append(g.astype(v.dtype, copy=False))
        if all(g is None for g in cast):
            raise ValueError("No gradients provided for any variable.")
        missing = [i for i, g in enumerate(cast) if g is None]
        if missing:
            warnings.warn(f"Gradients do not exist for variables at positions {missing}.")
        if self._slots is None:
            self.build(variables)
        else:
            self._check_built_for(variables)
            self._variables = variables
        cast = self._clip(cast)
        lr = self._learning_rate
        for i, (g, v) in enumerate(zip(cast, variables)):
            if g is None:
                continue
            dt = v.dtype.type
            if self.weight_decay:
                v -= v * dt(self.weight_decay) * dt(lr)
            self._update(g, v, self._slots[i], dt(lr))
        self.iterations += 1

    def _clip(self, grads):
        """Keras's clipping: per-tensor norm, global norm, or elementwise value."""
        if self.clipnorm:
            c = self.clipnorm
            out = []
            for g in grads:
                if g is None:
                    out.append(None)
                    continue
                norm = np.sqrt(np.sum(np.square(g, dtype=np.float64)))
                out.append(g * g.dtype.type(c / np.maximum(norm, c)))
            return out
        if self.global_clipnorm:
            c = self.global_clipnorm
            norm = np.sqrt(sum(np.sum(np.square(g, dtype=np.float64))
                               for g in grads if g is not None))
            with np.errstate(divide="ignore", invalid="ignore"):
                # As Keras: scale 1 when norm <= c; NaN scale when the norm is inf/NaN.
                scale = c * np.minimum(1.0 / norm, 1.0 / c) + (norm - norm)
            return [None if g is None else g * g.dtype.type(scale) for g in grads]
        if self.clipvalue:
            c = self.clipvalue
            return [None if g is None else np.clip(g, -c, c) for g in grads]
        return grads

    def _update(self, grad, var, slots, lr):
        raise NotImplementedError

    # ---- state (for saving) ---------------------------------------------------------

    def get_state(self):
        """All slot arrays (copies) as ``{"<position>/<slot>": ndarray}`` in a fixed
        order, plus ``"iterations"`` (int64 scalar array)."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for i, slots in enumerate(self._slots or []):
            for name, _ in self._slot_specs():
                state[f"{i}/{name}"] = slots[name].copy()
        return state

    def set_state(self, state):
        """Restore a ``get_state()`` dict (validated; nothing changes on error).

        On an optimizer that has not been applied yet the slots are created from
        the arrays, and the next ``apply`` checks them against the variables."""
        state = dict(state)
        if "iterations" not in state:
            raise ValueError("Optimizer state is missing the 'iterations' entry.")
        iterations = np.asarray(state.pop("iterations"))
        if (iterations.shape != () or not np.isfinite(iterations)
                or not float(iterations).is_integer() or iterations < 0):
            raise ValueError("'iterations' must be a non-negative integer scalar. "
                             f"Received: {iterations!r}")
        names = [n for n, _ in self._slot_specs()]
        positions = set()
        for key in state:
            pos = key.split("/", 1)[0]
            if not (names and pos.isdigit()):
                raise ValueError(f"Unexpected optimizer state entry {key!r} for "
                                 f"{type(self).__name__}({self._own_config()}).")
            positions.add(int(pos))
        count = len(positions)
        if positions != set(range(count)):
            raise ValueError(f"Optimizer state positions must be 0..n-1; got {sorted(positions)}.")
        expected = {f"{i}/{n}" for i in range(count) for n in names}
        if expected != set(state):
            raise ValueError(f"Optimizer state does not match {type(self).__name__}"
                             f"({self._own_config()}): missing {sorted(expected - set(state))}, "
                             f"unexpected {sorted(set(state) - expected)}.")
        built = self._slots is not None
        if built and names and count != len(self._slots):
            raise ValueError(f"Optimizer state holds slots for {count} variables but this "
                             f"optimizer was built for {len(self._slots)}.")
        new_slots = []
        for i in range(count):
            slots = {n: np.array(state[f"{i}/{n}"]) for n in names}
            shape = self._shapes[i] if built else slots[names[0]].shape
            for n, arr in slots.items():
                if arr.shape != shape:
                    raise ValueError(f"Optimizer state entry '{i}/{n}' has shape {arr.shape}, "
                                     f"expected {shape}.")
                if not np.issubdtype(arr.dtype, np.floating):
                    raise ValueError(f"Optimizer state entry '{i}/{n}' must be floating, "
                                     f"got {arr.dtype}.")
                if built:
                    slots[n] = arr.astype(self._slots[i][n].dtype)
            new_slots.append(slots)
        if names:
            self._slots = new_slots
            self._shapes = [s[names[0]].shape for s in new_slots]
        self.iterations = int(iterations)

    # ---- config ---------------------------------------------------------------------

    def get_config(self):
        """Keras-style config: "name", "learning_rate", the base keys and the
        optimizer's own hyperparameters."""
        config = {
            "name": self.name,
            "learning_rate": self._learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": False,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": None,
            "gradient_accumulation_steps": None,
        }
        config.update(self._own_config())
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            raise ValueError("Learning-rate schedules are not supported; the config has "
                             f"learning_rate={config['learning_rate']!r}")
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} {self.get_config()}>"


def _check_variable(i, v):
    if not isinstance(v, np.ndarray):
        raise TypeError(f"Variable {i} must be a numpy.ndarray, got {type(v).__name__}.")
    if v.dtype.kind != "f":   # np.floating's dtypes (issubdtype costs more, per step)
        raise TypeError(f"Variable {i} must have a floating dtype, got {v.dtype}.")


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, as ``keras.optimizers.SGD``.

    momentum == 0:  ``w -= lr * g``
    momentum > 0:   ``m = momentum * m - lr * g``; then ``w += m``, or with
                    ``nesterov=True`` ``w += momentum * m - lr * g``.
    """

    _default_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum = _check_float("momentum", momentum, 0.0, 1.0)
        self.nesterov = _check_bool("nesterov", nesterov)

    def _slot_specs(self):
        return [("momentum", 0.0)] if self.momentum != 0 else []

    def _update(self, g, v, slots, lr):
        if self.momentum == 0:
            v -= g * lr
            return
        mom = v.dtype.type(self.momentum)
        m = slots["momentum"]
        m[...] = m * mom - g * lr
        if self.nesterov:
            v += m * mom - g * lr
        else:
            v += m

    def _own_config(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (optionally AMSGrad), as ``keras.optimizers.Adam``.

    With t = iterations + 1:  ``alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``,
    ``m += (g - m) * (1 - beta_1)``, ``v += (g*g - v) * (1 - beta_2)``,
    (amsgrad: ``v_hat = max(v_hat, v)`` used instead of v),
    ``w -= alpha * m / (sqrt(v) + epsilon)``.
    """

    _default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta_1 = _check_float("beta_1", beta_1, 0.0, 1.0, high_open=True)
        self.beta_2 = _check_float("beta_2", beta_2, 0.0, 1.0, high_open=True)
        self.epsilon = _check_float("epsilon", epsilon)
        self.amsgrad = _check_bool("amsgrad", amsgrad)
        self._alpha_key = self._alpha_val = None   # _alpha's cache

    def _slot_specs(self):
        specs = [("momentum", 0.0), ("velocity", 0.0)]
        return specs + [("velocity_hat", 0.0)] if self.amsgrad else specs

    def _alpha(self, dt, lr):
        """The step size of this iteration in dtype dt, computed once per
        iteration and dtype (not once per variable)."""
        key = (self.iterations, dt, lr, self.beta_1, self.beta_2)
        if self._alpha_key != key:
            t = dt(self.iterations + 1)
            b1, b2 = dt(self.beta_1), dt(self.beta_2)
            self._alpha_val = lr * np.sqrt(dt(1) - b2 ** t) / (dt(1) - b1 ** t)
            self._alpha_key = key
        return self._alpha_val

    def _update(self, g, v, slots, lr):
        dt = v.dtype.type
        alpha = self._alpha(dt, lr)
        m, vel = slots["momentum"], slots["velocity"]
        if not self.amsgrad and _core.adam(g, v, m, vel, alpha, 1 - self.beta_1,
                                           1 - self.beta_2, self.epsilon):
            return   # the same expressions in one pass (src_c/optim.c)
        m += (g - m) * dt(1 - self.beta_1)
        vel += (g * g - vel) * dt(1 - self.beta_2)
        if self.amsgrad:
            np.maximum(slots["velocity_hat"], vel, out=slots["velocity_hat"])
            vel = slots["velocity_hat"]
        v -= (m * alpha) / (np.sqrt(vel) + dt(self.epsilon))

    def _own_config(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    """RMSprop (optionally centered, with plain momentum), as ``keras.optimizers.RMSprop``.

    ``v = rho*v + (1-rho)*g*g``; centered: ``a = rho*a + (1-rho)*g`` and
    ``denom = v - a*a + epsilon``, else ``denom = v + epsilon``;
    ``inc = lr * g / sqrt(denom)``; momentum > 0: ``mom = momentum*mom + inc``,
    ``w -= mom``; else ``w -= inc``.
    """

    _default_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.rho = _check_float("rho", rho, 0.0, 1.0, high_open=True)
        self.momentum = _check_float("momentum", momentum, 0.0, 1.0)
        self.epsilon = _check_float("epsilon", epsilon)
        self.centered = _check_bool("centered", centered)

    def _slot_specs(self):
        specs = [("velocity", 0.0)]
        if self.momentum > 0:
            specs.append(("momentum", 0.0))
        if self.centered:
            specs.append(("average_gradient", 0.0))
        return specs

    def _update(self, g, v, slots, lr):
        dt = v.dtype.type
        rho = dt(self.rho)
        vel = slots["velocity"]
        vel[...] = rho * vel + dt(1 - self.rho) * (g * g)
        if self.centered:
            avg = slots["average_gradient"]
            avg[...] = rho * avg + dt(1 - self.rho) * g
            denom = vel - avg * avg + dt(self.epsilon)
        else:
            denom = vel + dt(self.epsilon)
        inc = (lr * g) / np.sqrt(denom)
        if self.momentum > 0:
            mom = slots["momentum"]
            mom[...] = dt(self.momentum) * mom + inc
            v -= mom
        else:
            v -= inc

    def _own_config(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad, as ``keras.optimizers.Adagrad``.

    ``acc`` starts at ``initial_accumulator_value``; ``acc += g*g``;
    ``w -= lr * g / sqrt(acc + epsilon)``.
    """

    _default_name = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.initial_accumulator_value = _check_float(
            "initial_accumulator_value", initial_accumulator_value)
        self.epsilon = _check_float("epsilon", epsilon)

    def _slot_specs(self):
        return [("accumulator", self.initial_accumulator_value)]

    def _update(self, g, v, slots, lr):
        acc = slots["accumulator"]
        acc += g * g
        v -= (lr * g) / np.sqrt(acc + v.dtype.type(self.epsilon))

    def _own_config(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


_REGISTRY = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "adagrad": Adagrad}


def _lookup(name):
    cls = _REGISTRY.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer {name!r}. Accepted names (case-insensitive): "
                         f"{sorted(_REGISTRY)}.")
    return cls


def serialize(optimizer):
    """``{"module", "class_name", "config", "registered_name"}`` as Keras writes it."""
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


def deserialize(config):
    """Inverse of :func:`serialize` (the "config" entry may be omitted)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"An optimizer config must be a dict with a 'class_name' key (one of "
                         f"{sorted(_REGISTRY)}). Received: {config!r}")
    return _lookup(config["class_name"]).from_config(config.get("config") or {})


def get(identifier):
    """An :class:`Optimizer` from a name ('sgd', 'adam', 'rmsprop', 'adagrad';
    case-insensitive, defaults as Keras), an Optimizer instance (returned as
    is), an Optimizer subclass, or a ``{"class_name": ..., "config": {...}}`` dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}. Expected one "
                     f"of {sorted(_REGISTRY)} (case-insensitive), an Optimizer instance, or a "
                     "config dict {'class_name': ..., 'config': {...}}.")
