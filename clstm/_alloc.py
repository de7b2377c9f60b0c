"""Arrays whose data start on a 64-byte boundary.

NumPy aligns a large array to 16 bytes only.  The C core stores whole
vectors (64 bytes with AVX-512) along the rows of its outputs; on a
16-byte boundary each of those stores straddles two cache lines.  The
training forward writes its gates by streaming stores, which need whole
aligned vectors (src_c/tile_template.h, vstream): on a misaligned gates
array it falls back to ordinary stores.

Arrays under MIN_BYTES come from np.empty as they are: aligning one costs
~1.5 us, more than its stores gain (the smallest benchmark shape's forward
takes ~15 us in all).
"""
import math

import numpy as np

from . import _core

ALIGN = 64
MIN_BYTES = 16384


def empty(shape, dtype):
    """An uninitialized C-contiguous array of `shape` (a tuple) and `dtype`;
    from MIN_BYTES up, its data start on a 64-byte boundary (a view into a
    byte buffer 64 bytes longer than the data)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.empty(shape, dtype)
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -_core.data_address(raw) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def zeros(shape, dtype):
    """empty(shape, dtype), zero-filled."""
    a = empty(shape, dtype)
    a[...] = 0
    return a
