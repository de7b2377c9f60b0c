"""One thread count for both halves of the work: the BLAS's threads (GEMMs)
and the core's OpenMP threads (elementwise passes), which never run at once.

The BLAS is the OpenBLAS that scipy loaded; its thread setter is found by
name in that library.  Where it cannot be found (another BLAS, another
platform) only the core's threads are set, and show_config says so."""
import ctypes
import glob
import os

from . import _core

_SETTERS = ("scipy_openblas_set_num_threads", "openblas_set_num_threads",
            "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")
_GETTERS = ("scipy_openblas_get_num_threads", "openblas_get_num_threads",
            "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")
_CONFIGS = ("scipy_openblas_get_config", "openblas_get_config",
            "scipy_openblas_get_config64_", "openblas_get_config64_")


def _candidate_libraries():
    paths = []
    try:  # the libraries this process has loaded (Linux)
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1] if "/" in line else ""
                if "openblas" in path.lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    import scipy
    libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    paths += sorted(glob.glob(os.path.join(libs, "*openblas*")))
    return paths


def _find_blas():
    for path in _candidate_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        funcs = {}
        for key, names in (("set", _SETTERS), ("get", _GETTERS), ("config", _CONFIGS)):
            for name in names:
                fn = getattr(lib, name, None)
                if fn is not None:
                    funcs[key] = fn
                    break
        if "set" in funcs:
            funcs["path"] = path
            return funcs
    return {}


_blas = _find_blas()
if "get" in _blas:
    _blas["get"].restype = ctypes.c_int
if "config" in _blas:
    _blas["config"].restype = ctypes.c_char_p


def default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def set_num_threads(n):
    """Use n threads for clstm's work: BLAS GEMMs and elementwise passes."""
    from ._validate import positive_int
    n = positive_int(n, "n")
    _core.set_num_threads(n)
    if "set" in _blas:
        _blas["set"](ctypes.c_int(n))


def get_num_threads():
    """The thread count set by set_num_threads (the elementwise passes')."""
    return _core.get_num_threads()


def blas_num_threads():
    """The BLAS's own thread count, or None where it cannot be read."""
    return int(_blas["get"]()) if "get" in _blas else None


def blas_info():
    """(library path, configuration string) of the BLAS in use, or Nones."""
    config = _blas["config"]().decode() if "config" in _blas else None
    return _blas.get("path"), config


if "get" in _blas and "set" in _blas:
    _core.set_blas_thread_functions(ctypes.cast(_blas["get"], ctypes.c_void_p).value,
                                    ctypes.cast(_blas["set"], ctypes.c_void_p).value)

_core.set_num_threads(default_threads())
