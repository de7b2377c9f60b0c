"""Arrays whose data start on a 64-byte boundary.

NumPy aligns a large array to 16 bytes only.  The C core stores whole
vectors (64 bytes with AVX-512) along the rows of its outputs; on a
16-byte boundary each of those stores straddles two cache lines.  The
training forward writes its gates by streaming stores, which need whole
aligned vectors (src_c/tile_template.h, vstream): on a misaligned gates
array it falls back to ordinary stores.
"""
import numpy as np

ALIGN = 64


def empty(shape, dtype):
    """An uninitialized C-contiguous array of `shape` (a tuple) and `dtype`
    whose data start on a 64-byte boundary: a view into a byte buffer 64
    bytes longer than the data."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def zeros(shape, dtype):
    """empty(shape, dtype), zero-filled."""
    a = empty(shape, dtype)
    a[...] = 0
    return a
