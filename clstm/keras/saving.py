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
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "clstm.keras.model"
WEIGHTS_FORMAT = "clstm.keras.weights"
VERSION = 1
_HEADER = "__clstm__"
_MAX_HEADER_BYTES = 16 << 20
_MAX_ARRAYS = 100_000


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


def _read(path, fmt):
    """(header, weights) from a file written by _write, fully checked."""
    path = os.fspath(path)
    where = f"{path!r}"
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelFileError(f"{where} is not a clstm model file (not a readable zip/npz "
                             f"archive: {e})") from None
    with zf:
        members = {i.filename: i for i in zf.infolist()}
        if _HEADER + ".npy" not in members:
            raise ModelFileError(f"{where} is not a clstm model file (no {_HEADER} header)")
        if members[_HEADER + ".npy"].file_size > _MAX_HEADER_BYTES:
            raise ModelFileError(f"{where}: header too large")
        try:
            with np.load(path, allow_pickle=False) as npz:
                raw = npz[_HEADER]
                header = json.loads(raw.tobytes().decode())
                if not isinstance(header, dict) or header.get("format") != fmt:
                    raise ModelFileError(f"{where} is not a {fmt} file "
                                         f"(format {header.get('format')!r})")
                if header.get("version") != VERSION:
                    raise ModelFileError(f"{where} has format version "
                                         f"{header.get('version')!r}; this clstm reads "
                                         f"version {VERSION}")
                specs = header.get("weights")
                if not isinstance(specs, list) or len(specs) > _MAX_ARRAYS:
                    raise ModelFileError(f"{where}: bad weight list in the header")
                weights = []
                for i, spec in enumerate(specs):
                    name = f"w{i}.npy"
                    shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])
                    if dtype.kind not in "fiu" or any(
                            not isinstance(d, int) or d < 0 for d in shape):
                        raise ModelFileError(f"{where}: bad spec for weight {i}: {spec}")
                    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    if name not in members or members[name].file_size < nbytes:
                        raise ModelFileError(f"{where}: weight {i} is missing or truncated")
                    w = npz[f"w{i}"]
                    if w.shape != shape or w.dtype != dtype:
                        raise ModelFileError(f"{where}: weight {i} is {w.shape} {w.dtype}, "
                                             f"the header says {shape} {dtype}")
                    weights.append(w)
        except ModelFileError:
            raise
        except (ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError, OSError,
                UnicodeDecodeError, json.JSONDecodeError) as e:
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


def load_model(filepath, compile=True):
    """A Sequential model from a file written by model.save(); refuses
    foreign, truncated or corrupted files with ModelFileError (a ValueError)."""
    from .models import Sequential
    header, weights = _read(filepath, FORMAT)
    try:
        model = Sequential.from_config(header["config"])
        model.set_weights(weights)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{os.fspath(filepath)!r}: the stored model does not rebuild: "
                             f"{e}") from None
    comp = header.get("compile")
    if compile and comp:
        _restore_compile(model, comp)
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


def _restore_compile(model, comp):
    from . import losses
    loss_cls = getattr(losses, comp["loss"]["class_name"], None)
    if loss_cls is None:
        raise ModelFileError(f"unknown loss class {comp['loss']['class_name']!r} in the file")
    cfg = {k: v for k, v in comp["loss"]["config"].items() if k not in ("name", "reduction")}
    model.compile(optimizer=comp["optimizer"], loss=loss_cls(**cfg), metrics=comp["metrics"])
