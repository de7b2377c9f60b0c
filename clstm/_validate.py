"""Checks at the Python boundary: every public entry point turns user input
into C-contiguous arrays of the model's dtype here, or raises an exception
naming what was expected and what came."""
import numbers
import operator

import numpy as np

INT_MAX = 2**31 - 1  # BLAS dimensions are 32-bit ints


def resolve_dtype(dtype):
    """np.float32 or np.float64 as an np.dtype; anything else is refused."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def asarray(a, name):
    """np.asarray(a), with NumPy's error for ragged nested sequences re-raised
    naming the argument."""
    try:
        return np.asarray(a)
    except ValueError as e:
        raise ValueError(f"{name} must be an array (a regular nested sequence), got a "
                         f"{type(a).__name__} that is not one: {e}") from None


def is_ready(a, dtype):
    """Whether `a` is already a plain ndarray of `dtype`, C-contiguous and
    aligned: what np.require(a, dtype, ["C", "A"]) would return unchanged,
    checked without its ~5 us a call."""
    return (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous
            and a.flags.aligned)


def as_real(a, name, dtype):
    """`a` as a C-contiguous, aligned array of `dtype` (a copy only where
    needed: np.ascontiguousarray alone passes unaligned buffers through, and
    C may not read floats from them).  Float input of another precision is
    converted; integer, bool, complex and object input is refused rather
    than silently cast."""
    if is_ready(a, dtype):
        return a
    arr = asarray(a, name)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a floating-point array, got dtype {arr.dtype}")
    return np.require(arr, dtype=dtype, requirements=["C", "A"])


def positive_int(value, name, minimum=1):
    """An int >= minimum (numpy ints too, bool refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > INT_MAX:
        raise ValueError(f"{name} must be <= {INT_MAX}, got {value}")
    return value


def check_blas_dims(T, B, I, H):
    """Refuse shapes whose GEMM dimensions overflow a 32-bit BLAS int."""
    # runs on every forward: a tuple, not a dict (~0.2 against ~0.5 us)
    for what, n in (("T*B", T * B), ("4*hidden_size", 4 * H), ("input_size", I)):
        if n > INT_MAX:
            raise ValueError(f"{what} = {n} exceeds the BLAS limit of {INT_MAX}; "
                             f"split the sequence or the batch")


def check_shape(arr, name, shape):
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return arr


def as_mask(mask, shape, name="mask"):
    """A step mask as a C-contiguous uint8 array of `shape`: nonzero (True)
    marks a real step, 0 a step to skip."""
    m = asarray(mask, name)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a boolean array, got dtype {m.dtype}")
    if m.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {m.shape}")
    return np.ascontiguousarray(m != 0, dtype=np.uint8)
