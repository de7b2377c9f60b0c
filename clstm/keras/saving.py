"""One-file model saving: architecture, weights and compile settings.

The file is a NumPy .npz (a zip of .npy arrays) holding a JSON header
("__clstm__": format name, version, model config, compile config, the
weights' names / shapes / dtypes and a SHA-256 over their bytes) and the
weights "w0", "w1", ...  Loading never unpickles, checks every array's
declared size against the header before reading it, verifies the checksum,
and changes nothing unless all of that passed.  Saving writes a temporary
file beside the target and renames it over the target, so an interrupted
save leaves the previous file intact."""
import hashlib
import json
import math
import os
import struct
import tempfile
import zipfile

import numpy as np

FORMAT = "clstm.keras.model"
WEIGHTS_FORMAT = "clstm.keras.weights"
VERSION = 1
_HEADER = "__clstm__"
_MAX_HEADER_BYTES = 16 << 20
_MAX_ARRAYS = 100_000


# What zipfile and numpy's .npy reader raise on damaged bytes: besides
# BadZipFile, a flipped bit can ask for an unsupported zip version or
# compression (NotImplementedError) or mark a member encrypted (RuntimeError).
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
               RuntimeError, struct.error)


class ModelFileError(ValueError):
    """A file that is not a clstm model, or a damaged one."""


def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _atomic_savez(path, arrays):
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".clstm-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _write(path, fmt, weights, extra):
    header = {"format": fmt, "version": VERSION,
              "weights": [{"shape": list(w.shape), "dtype": str(w.dtype)} for w in weights],
              "sha256": _digest(weights), **extra}
    arrays = {f"w{i}": np.ascontiguousarray(w) for i, w in enumerate(weights)}
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    _atomic_savez(path, arrays)


def _npy_header(zf, info, where):
    """(shape, dtype) from the .npy header of a zip member, read without
    reading (or allocating for) the data; only stored (uncompressed) members,
    as np.savez writes them, so that no size can exceed the file's."""
    if info.compress_type != zipfile.ZIP_STORED:
        raise ModelFileError(f"{where}: member {info.filename} is compressed; clstm files "
                             f"are not")
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ModelFileError(f"{where}: member {info.filename} has .npy version {version}")
    if fortran or dtype.hasobject:
        raise ModelFileError(f"{where}: member {info.filename} is not a plain C-order array")
    return tuple(shape), dtype


def _read_member(zf, info, where, shape, dtype, file_size):
    """The array of a member whose .npy header must say `shape` and `dtype`;
    its size is checked against the member and the file before reading."""
    got_shape, got_dtype = _npy_header(zf, info, where)
    if got_shape != shape or got_dtype != dtype:
        raise ModelFileError(f"{where}: {info.filename} is {got_shape} {got_dtype}, "
                             f"the header says {shape} {dtype}")
    nbytes = math.prod(shape) * dtype.itemsize          # Python ints: no overflow
    if nbytes > info.file_size or info.compress_size > file_size:
        raise ModelFileError(f"{where}: {info.filename} is truncated or claims "
                             f"{nbytes} bytes in a file of {file_size}")
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _read(path, fmt):
    """(header, weights) from a file written by _write, fully checked."""
    path = os.fspath(path)
    where = f"{path!r}"
    try:
        zf = zipfile.ZipFile(path)
        file_size = os.path.getsize(path)
    except FileNotFoundError:
        raise
    except _ZIP_ERRORS as e:
        raise ModelFileError(f"{where} is not a clstm model file (not a readable zip/npz "
                             f"archive: {e})") from None
    with zf:
        try:
            members = {i.filename: i for i in zf.infolist()}
            if _HEADER + ".npy" not in members:
                raise ModelFileError(f"{where} is not a clstm model file (no {_HEADER} header)")
            info = members[_HEADER + ".npy"]
            hshape, hdtype = _npy_header(zf, info, where)
            if hdtype != np.uint8 or len(hshape) != 1 or hshape[0] > _MAX_HEADER_BYTES:
                raise ModelFileError(f"{where}: bad header ({hshape} {hdtype}, at most "
                                     f"{_MAX_HEADER_BYTES} bytes of uint8)")
            raw = _read_member(zf, info, where, hshape, hdtype, file_size)
            header = json.loads(raw.tobytes().decode())
            if not isinstance(header, dict) or header.get("format") != fmt:
                got = header.get("format") if isinstance(header, dict) else type(header).__name__
                raise ModelFileError(f"{where} is not a {fmt} file (format {got!r})")
            version = header.get("version")
            if type(version) is not int or version != VERSION:
                raise ModelFileError(f"{where} has format version {version!r}; this clstm "
                                     f"reads version {VERSION}")
            specs = header.get("weights")
            if not isinstance(specs, list) or len(specs) > _MAX_ARRAYS:
                raise ModelFileError(f"{where}: bad weight list in the header")
            parsed, total = [], 0
            for i, spec in enumerate(specs):
                if not isinstance(spec, dict) or not isinstance(spec.get("shape"), list) \
                        or not isinstance(spec.get("dtype"), str):
                    raise ModelFileError(f"{where}: bad spec for weight {i}: {spec!r:.200}")
                shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])
                if dtype.kind not in "fiu" or any(type(d) is not int or d < 0 for d in shape):
                    raise ModelFileError(f"{where}: bad spec for weight {i}: {spec!r:.200}")
                name = f"w{i}.npy"
                total += math.prod(shape) * dtype.itemsize
                if name not in members or total > file_size:
                    raise ModelFileError(f"{where}: weight {i} is missing or truncated")
                parsed.append((members[name], shape, dtype))
            weights = [_read_member(zf, m, where, shape, dtype, file_size)
                       for m, shape, dtype in parsed]
        except ModelFileError:
            raise
        except _ZIP_ERRORS + (KeyError, TypeError, RecursionError) as e:
            raise ModelFileError(f"{where} is corrupted or not a clstm model file: "
                                 f"{type(e).__name__}: {e}") from None
    if _digest(weights) != header.get("sha256"):
        raise ModelFileError(f"{where} is corrupted: the weights do not match their checksum")
    return header, weights


def save_model(model, filepath):
    """Write model (config, weights, compile settings) to filepath atomically."""
    if not model.built:
        raise ValueError("the model is not built yet: fit it, call it on data, or give the "
                         "first layer an input_shape before saving")
    extra = {"config": model.get_config(), "compile": _compile_config(model)}
    _write(filepath, FORMAT, model.get_weights(), extra)


def _layer_specs(config):
    """(class_name, config) of every layer a stored Sequential config makes, in
    order; a Bidirectional's two inner layers follow it as the LSTMs its
    from_config makes of them (whatever class they claim).  Parts that are
    not dicts are skipped here: from_config refuses them."""
    layers = config.get("layers") if isinstance(config, dict) else None
    for spec in layers if isinstance(layers, list) else ():
        if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
            continue
        cls, cfg = spec.get("class_name"), spec["config"]
        yield cls, cfg
        if cls == "Bidirectional":
            for key in ("layer", "backward_layer"):
                inner = cfg.get(key)
                if isinstance(inner, dict) and isinstance(inner.get("config"), dict):
                    yield "LSTM", inner["config"]


def _int(v):
    return type(v) is int     # JSON ints only (bool, float, str: the constructor refuses them)


def _bound_config(config, shapes, where):
    """Before any layer exists: every size the stored config asks for must be
    a dimension of a weight the header declares, and the weights the config
    needs at the least must fit in the header's total (which _read bounds by
    the file's size).  So a crafted config (LSTM(units=2**26) beside the small
    weights of the file) is refused without building anything."""
    dims = {d for shape in shapes for d in shape}
    total = sum(math.prod(shape) for shape in shapes)
    need = 0
    for cls, cfg in _layer_specs(config):
        if not isinstance(cls, str):
            continue                       # any JSON value: from_config refuses it
        name = cfg.get("name", cls)
        sizes = {"LSTM": ("units",), "Dense": ("units",),
                 "Embedding": ("input_dim", "output_dim")}.get(cls, ())
        for key in sizes:
            v = cfg.get(key)
            if _int(v) and v not in dims:
                raise ModelFileError(
                    f"{where}: layer {name!r:.80} ({cls}) of the stored config asks for "
                    f"{key}={v}, but no weight in the file has a dimension of {v} (the file "
                    f"declares {len(shapes)} weights of at most {max(dims, default=0)} per axis)")
        bias = bool(cfg.get("use_bias", True))
        if cls == "LSTM" and _int(cfg.get("units")):
            H = cfg["units"]
            need += 4 * H * H + (4 * H if bias else 0)       # recurrent kernel (H, 4H), bias
        elif cls == "Embedding" and _int(cfg.get("input_dim")) and _int(cfg.get("output_dim")):
            need += cfg["input_dim"] * cfg["output_dim"]
        elif cls == "Dense" and _int(cfg.get("units")) and bias:
            need += cfg["units"]
        if need > total:
            raise ModelFileError(
                f"{where}: the stored config needs at least {need} weight values up to layer "
                f"{name!r:.80} ({cls}), the file declares {total} in all")


def load_model(filepath, compile=True):
    """A Sequential model from a file written by model.save(); refuses
    foreign, truncated or corrupted files with ModelFileError (a ValueError).
    Nothing is allocated beyond what the file holds: the config's sizes are
    bounded by the header's weights before any layer is made, and each weight
    a layer creates is checked against the file's next one before it is."""
    from .layers import base
    from .models import Sequential
    header, weights = _read(filepath, FORMAT)
    where = repr(os.fspath(filepath))
    _bound_config(header.get("config"), [w.shape for w in weights], where)
    shapes = iter([w.shape for w in weights])

    def guard(layer, name, shape):
        """Every weight the stored config creates must be the next one in the
        file, checked before it is allocated: a config cannot ask for more
        memory than the file holds."""
        want = next(shapes, None)
        if want != tuple(shape):
            raise ModelFileError(f"{where}: the stored config makes weight {layer.name}/{name} "
                                 f"of shape {tuple(shape)}, the file holds "
                                 f"{'none' if want is None else want}")

    token = base.WEIGHT_GUARD.set(guard)
    try:
        model = Sequential.from_config(header["config"])
        model.set_weights(weights)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as e:
        raise ModelFileError(f"{where}: the stored model does not rebuild: "
                             f"{type(e).__name__}: {e}") from None
    finally:
        base.WEIGHT_GUARD.reset(token)
    comp = header.get("compile")
    if compile and comp:
        try:
            _restore_compile(model, comp, where)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise ModelFileError(f"{where}: the stored compile settings do not load: "
                                 f"{type(e).__name__}: {e}") from None
    return model


def save_weights(model, filepath):
    _write(filepath, WEIGHTS_FORMAT, model.get_weights(), {})


def load_weights(model, filepath):
    _, weights = _read(filepath, WEIGHTS_FORMAT)
    model.set_weights(weights)


def _compile_config(model):
    if not model.compiled:
        return None
    return {"optimizer": {"class_name": type(model.optimizer).__name__,
                          "config": model.optimizer.get_config()},
            "loss": {"class_name": type(model.loss).__name__, "config": model.loss.get_config()},
            "metrics": [m if isinstance(m, str) else m.name for m in model._metric_ids]}


def _restore_compile(model, comp, where):
    from . import losses
    name = comp["loss"]["class_name"]
    loss_cls = getattr(losses, name, None) if isinstance(name, str) else None
    # a Loss class only: the name must not reach other callables of the module
    if not (isinstance(loss_cls, type) and issubclass(loss_cls, losses.Loss)):
        raise ModelFileError(f"{where}: unknown loss class {comp['loss']['class_name']!r:.80} "
                             f"in the file")
    cfg = {k: v for k, v in comp["loss"]["config"].items() if k not in ("name", "reduction")}
    model.compile(optimizer=comp["optimizer"], loss=loss_cls(**cfg), metrics=comp["metrics"])
