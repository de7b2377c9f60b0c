"""Sequential: Keras's model API (compile / fit / predict / evaluate,
summary, save, get_weights / set_weights) over clstm.keras layers."""
import numpy as np

from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import utils
from .layers import get as layer_class
from .layers.base import Layer, batch_chunks
from .progress import Progress, format_logs
from .._validate import asarray, positive_int


def _batch_size(batch_size):
    """32 by default; else an int >= 1 (a 0 or negative size looped forever)."""
    return 32 if batch_size is None else positive_int(batch_size, "batch_size")


def _verbose(verbose):
    if verbose == "auto":
        return 1
    if isinstance(verbose, (bool, np.bool_)) or not isinstance(verbose, (int, np.integer)) \
            or verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1, 2 or 'auto', got {verbose!r}")
    return int(verbose)


def _as_array(a, name):
    if a is None:
        raise ValueError(f"{name} is required")
    arr = asarray(a, name)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a batch axis, got a scalar")
    return arr


class Sequential:
    """A linear stack of layers, batch-major as Keras: x (B, ...) -> y (B, ...)."""

    def __init__(self, layers=None, name=None):
        self.name = name or "sequential"
        self.layers = []
        self.built = False
        self.input_shape = None
        self.optimizer = self.loss = None
        self.metrics = []
        self.compiled = False
        self.stop_training = False
        self.history = None
        for layer in layers or []:
            self.add(layer)

    # ---- building -------------------------------------------------------------

    def add(self, layer):
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a clstm.keras layer, got "
                            f"{type(layer).__name__}")
        if getattr(layer, "return_state", False):
            raise ValueError(f"layer {layer.name!r} has return_state=True: a Sequential model "
                             "passes one array between layers; call the layer directly instead")
        self.layers.append(layer)
        if self.built:            # extend the built stack, as Keras does
            shape = self.output_shape[1:]
            layer.ensure_built(shape)
            self.output_shape = (None,) + tuple(layer.compute_output_shape(shape))
        elif len(self.layers) == 1 and layer.input_shape_arg is not None:
            self.build((None,) + layer.input_shape_arg)

    def build(self, input_shape):
        """input_shape: (batch, ...) with batch None or an int."""
        if not self.layers:
            raise ValueError("the model has no layers")
        shape = tuple(input_shape[1:])
        self.input_shape = (None,) + shape
        for layer in self.layers:
            layer.ensure_built(shape)
            shape = layer.compute_output_shape(shape)
        self.output_shape = (None,) + tuple(shape)
        self.built = True

    def _ensure_built(self, x):
        """Builds on the first data; later inputs must fit the first layer
        (timesteps may vary, as in Keras)."""
        if not self.built:
            self.build((None,) + x.shape[1:])
        elif not self.layers[0].accepts(x.shape[1:]):
            raise ValueError(f"the model expects inputs of shape "
                             f"{self.input_shape}, got {(None,) + x.shape[1:]}")

    # ---- computation --------------------------------------------------------------

    def _forward(self, x, training):
        """(output, mask of the output or None)."""
        mask = None
        for layer in self.layers:
            out = layer.call(x, training=training, mask=mask)
            mask = layer.compute_mask(x, mask)
            x = out
        return x, mask

    def _backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
            if dy is None:
                break

    def _variables(self):
        return [w for layer in self.layers if layer.trainable for w in layer.weights]

    def _gradients(self):
        return [g for layer in self.layers if layer.trainable
                for g in (layer.grads[n] for n in layer.weight_names)]

    def __call__(self, x, training=False):
        x = _as_array(x, "x")
        self._ensure_built(x)
        return self._forward(x, training)[0]

    # ---- training -----------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        if loss is None:
            raise ValueError("compile() needs a loss, e.g. loss='mse'")
        self.optimizer = optimizers_module.get(optimizer)
        self.loss = losses_module.get(loss)
        self._metric_ids = list(metrics or [])
        self.compiled = True
        self._build_metrics()

    def _build_metrics(self):
        out_shape = getattr(self, "output_shape", None)
        self.metrics = [metrics_module.get(m, loss=self.loss, output_shape=out_shape)
                        for m in self._metric_ids]

    def _check_compiled(self):
        if not self.compiled:
            raise RuntimeError("the model must be compiled before training or evaluating: "
                               "call model.compile(optimizer, loss)")

    def _check_xy(self, x, y):
        x, y = _as_array(x, "x"), _as_array(y, "y")
        if len(x) != len(y):
            raise ValueError(f"x and y have different numbers of samples: {len(x)} and {len(y)}")
        self._ensure_built(x)
        if any(getattr(m, "_needs_shape", False) for m in self.metrics):
            self._build_metrics()
        return x, y

    def _train_step(self, xb, yb):
        out, mask = self._forward(xb, training=True)
        loss_mask = mask if (mask is not None and out.ndim == 3) else None
        value, dy = self.loss.value_and_grad(yb, out, mask=loss_mask)
        self._backward(dy)
        self.optimizer.apply(self._gradients(), self._variables())
        for m in self.metrics:
            m.update_state(yb, out, mask=loss_mask)
        return float(value)

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Trains for `epochs` epochs of minibatches (default batch_size 32).
        Returns a History whose .history maps 'loss', each metric and their
        'val_' versions to per-epoch values.  A batch with a NaN or infinite
        loss stops training (TerminateOnNaN is always on)."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        batch_size = _batch_size(batch_size)
        epochs = positive_int(epochs, "epochs", minimum=0)
        initial_epoch = positive_int(initial_epoch, "initial_epoch", minimum=0)
        verbose = _verbose(verbose)
        if validation_data is not None and (not isinstance(validation_data, (tuple, list))
                                            or len(validation_data) != 2):
            got = (f"a {type(validation_data).__name__} of length {len(validation_data)}"
                   if isinstance(validation_data, (tuple, list))
                   else type(validation_data).__name__)
            raise ValueError(f"validation_data must be a tuple (x_val, y_val), got {got}")
        if isinstance(validation_split, (bool, np.bool_)) or \
                not isinstance(validation_split, (int, float, np.integer, np.floating)):
            raise TypeError(f"validation_split must be a float in (0, 1), got "
                            f"{validation_split!r}")
        if validation_data is None and validation_split:
            if not 0 < validation_split < 1:
                raise ValueError(f"validation_split must be in (0, 1), got {validation_split}")
            split = int(len(x) * (1 - validation_split))   # Keras: the last samples, unshuffled
            x, y, validation_data = x[:split], y[:split], (x[split:], y[split:])
        if len(x) == 0:
            raise ValueError("no training samples")
        history = callbacks_module.History()
        cbs = list(callbacks or [])
        if not any(isinstance(c, callbacks_module.TerminateOnNaN) for c in cbs):
            cbs.append(callbacks_module.TerminateOnNaN())
        cbs.append(history)
        steps = len(batch_chunks(len(x), batch_size))
        for c in cbs:
            c.set_model(self)
            c.set_params({"epochs": epochs, "steps": steps, "verbose": verbose})
        self.stop_training = False
        for c in cbs:
            c.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            for c in cbs:
                c.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
            order = utils.rng().permutation(len(x)) if shuffle else np.arange(len(x))
            for m in self.metrics:
                m.reset_state()
            progress = Progress(steps, verbose)
            total, seen = 0.0, 0
            for step, (a, b) in enumerate(batch_chunks(len(x), batch_size)):
                idx = order[a:b]
                for c in cbs:
                    c.on_train_batch_begin(step)
                value = self._train_step(x[idx], y[idx])
                total += value * (b - a)
                seen += b - a
                logs = {"loss": total / seen, **{m.name: m.result() for m in self.metrics}}
                for c in cbs:
                    c.on_train_batch_end(step, {**logs, "loss": value})
                progress.update(step + 1, logs)
                if self.stop_training:
                    break
            if validation_data is not None:
                vx, vy = validation_data
                val = self.evaluate(vx, vy, batch_size=batch_size, verbose=0, return_dict=True)
                logs.update({f"val_{k}": v for k, v in val.items()})
            progress.finish(logs)
            for c in cbs:
                c.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for c in cbs:
            c.on_train_end()
        self.history = history
        return history

    def train_on_batch(self, x, y):
        self._check_compiled()
        x, y = self._check_xy(x, y)
        for m in self.metrics:
            m.reset_state()
        value = self._train_step(x, y)
        return [value] + [m.result() for m in self.metrics] if self.metrics else value

    # ---- inference ------------------------------------------------------------

    def predict(self, x, batch_size=None, verbose=0):
        """Outputs for x, computed in batches of batch_size (default 32)."""
        x = _as_array(x, "x")
        self._ensure_built(x)
        batch_size = _batch_size(batch_size)
        outs = [self._forward(x[a:b], training=False)[0] for a, b in batch_chunks(len(x), batch_size)]
        if not outs:
            return np.zeros((0,) + self.output_shape[1:], np.float32)
        return np.concatenate(outs, axis=0)

    def predict_on_batch(self, x):
        return self(x)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False):
        """The loss (and metrics) on x, y: a float, or [loss, metrics...] when
        compiled with metrics, or a dict with return_dict=True."""
        self._check_compiled()
        x, y = self._check_xy(x, y)
        batch_size = _batch_size(batch_size)
        for m in self.metrics:
            m.reset_state()
        total = 0.0
        for a, b in batch_chunks(len(x), batch_size):
            out, mask = self._forward(x[a:b], training=False)
            loss_mask = mask if (mask is not None and out.ndim == 3) else None
            total += float(self.loss(y[a:b], out, mask=loss_mask)) * (b - a)
            for m in self.metrics:
                m.update_state(y[a:b], out, mask=loss_mask)
        result = {"loss": total / max(len(x), 1), **{m.name: m.result() for m in self.metrics}}
        if verbose not in (0, "0") and verbose != "auto":
            print(format_logs(result))
        if return_dict:
            return result
        return [result["loss"]] + [m.result() for m in self.metrics] if self.metrics \
            else result["loss"]

    def test_on_batch(self, x, y):
        return self.evaluate(x, y, batch_size=len(x), verbose=0)

    def reset_states(self):
        for layer in self.layers:
            if hasattr(layer, "reset_states"):
                layer.reset_states()

    # ---- weights, config, summary -----------------------------------------------

    def get_weights(self):
        """All weights, layer by layer, each layer in Keras's order and layout."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        need = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != need:
            raise ValueError(f"the model has {need} weight arrays, got {len(weights)}")
        i = 0
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(weights[i:i + n])
            i += n

    def count_params(self):
        return sum(layer.count_params() for layer in self.layers)

    def get_config(self):
        return {"name": self.name,
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                           for l in self.layers],
                "build_input_shape": list(self.input_shape) if self.built else None}

    @classmethod
    def from_config(cls, config):
        model = cls(name=config.get("name"))
        for spec in config["layers"]:
            model.add(layer_class(spec["class_name"]).from_config(spec["config"]))
        if config.get("build_input_shape") and not model.built:
            model.build(tuple(config["build_input_shape"]))
        return model

    def summary(self, print_fn=print):
        rows = [(f"{l.name} ({type(l).__name__})",
                 str((None,) + tuple(l.compute_output_shape(l.input_shape))) if l.built
                 else "(unbuilt)", f"{l.count_params():,}") for l in self.layers]
        w = [max(28, max((len(r[0]) for r in rows), default=0) + 2), 26, 10]
        rule = "_" * sum(w)
        lines = [f'Model: "{self.name}"', rule,
                 f"{'Layer (type)':<{w[0]}}{'Output Shape':<{w[1]}}{'Param #':>{w[2]}}",
                 "=" * sum(w)]
        lines += [f"{a:<{w[0]}}{b:<{w[1]}}{c:>{w[2]}}" for a, b, c in rows]
        total = self.count_params()
        trainable = sum(l.count_params() for l in self.layers if l.trainable)
        lines += ["=" * sum(w), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", rule]
        for line in lines:
            print_fn(line)

    # ---- saving ---------------------------------------------------------------------

    def save(self, filepath):
        """Architecture, weights and compile settings in one file, atomically."""
        from .saving import save_model
        save_model(self, filepath)

    def save_weights(self, filepath):
        from .saving import save_weights
        save_weights(self, filepath)

    def load_weights(self, filepath):
        from .saving import load_weights
        load_weights(self, filepath)
