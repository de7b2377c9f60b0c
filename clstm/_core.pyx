# cython: language_level=3, boundscheck=False, wraparound=False
"""Thin binding over the C core (src_c/).

Callers (clstm.functional, clstm.lstm) hand in C-contiguous arrays of one
float dtype with shapes already checked; this layer takes their pointers,
allocates the workspace, releases the GIL and calls C.  BLAS is scipy's,
passed to C as function pointers.
"""
from libc.stdlib cimport malloc, free
from libc.stddef cimport size_t
from libc.limits cimport INT_MAX
cimport cython
cimport numpy as cnp
from scipy.linalg.cython_blas cimport sgemm, dgemm

cnp.import_array()

cdef extern from "clstm.h" nogil:
    ctypedef void (*clstm_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *,
                                    int *, float *, int *, float *, float *, int *)
    ctypedef void (*clstm_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *,
                                    int *, double *, int *, double *, double *, int *)
    ctypedef int (*clstm_get_threads_fn)()
    ctypedef void (*clstm_set_threads_fn)(int)
    ctypedef struct clstm_blas:
        clstm_sgemm_fn sgemm
        clstm_dgemm_fn dgemm
        clstm_get_threads_fn get_threads
        clstm_set_threads_fn set_threads
    void clstm_set_num_threads(int n)
    int clstm_get_num_threads()
    int clstm_has_openmp()
    const char *clstm_simd_level()
    void clstm_set_large_products(int mode)
    int clstm_large_products()
    void clstm_sigmoid_array_f32(size_t n, const float *x, float *y)
    void clstm_tanh_array_f32(size_t n, const float *x, float *y)
    void clstm_sigmoid_array_f64(size_t n, const double *x, double *y)
    void clstm_tanh_array_f64(size_t n, const double *x, double *y)
    void clstm_adam_f32(size_t n, const float *g, float *w, float *m, float *v, float alpha,
                        float c1, float c2, float eps)
    void clstm_adam_f64(size_t n, const double *g, double *w, double *m, double *v,
                        double alpha, double c1, double c2, double eps)
    size_t clstm_forward_workspace(int T, int B, int In, int H, int train, int masked)
    size_t clstm_backward_workspace(int B, int H, int masked)
    size_t clstm_step_workspace(int B, int H)
    int clstm_lstm_step_f32(const clstm_blas *blas, int B, int I, int H, const float *x,
        const float *w_ih_t, const float *w_hh_t, const float *b_ih, const float *b_hh,
        const float *h, const float *c, float *h_out, float *c_out, float *ws)
    int clstm_lstm_step_f64(const clstm_blas *blas, int B, int I, int H, const double *x,
        const double *w_ih_t, const double *w_hh_t, const double *b_ih, const double *b_hh,
        const double *h, const double *c, double *h_out, double *c_out, double *ws)
    int clstm_lstm_forward_f32(const clstm_blas *blas, int T, int B, int I, int H,
        int reverse, const float *x, const float *w_ih_t, const float *w_hh_t,
        const float *bias, const float *h0, const float *c0, const unsigned char *mask,
        float *y, int ldy, float *hn, float *cn, float *gates, float *cs, float *hs, float *ws)
    int clstm_lstm_forward_f64(const clstm_blas *blas, int T, int B, int I, int H,
        int reverse, const double *x, const double *w_ih_t, const double *w_hh_t,
        const double *bias, const double *h0, const double *c0, const unsigned char *mask,
        double *y, int ldy, double *hn, double *cn, double *gates, double *cs, double *hs, double *ws)
    int clstm_lstm_backward_f32(const clstm_blas *blas, int T, int B, int I, int H,
        int reverse, const float *x, const float *w_ih_t, const float *w_hh_t,
        const float *h0, const float *c0, const unsigned char *mask,
        const float *y, int ldy, float *gates, const float *cs, const float *hs,
        const float *dy, int lddy, const float *dhn, const float *dcn,
        float *dx, float dx_beta, float *dh0, float *dc0,
        float *dw_ih_t, float *dw_hh_t, float *db, float *ws)
    int clstm_lstm_backward_f64(const clstm_blas *blas, int T, int B, int I, int H,
        int reverse, const double *x, const double *w_ih_t, const double *w_hh_t,
        const double *h0, const double *c0, const unsigned char *mask,
        const double *y, int ldy, double *gates, const double *cs, const double *hs,
        const double *dy, int lddy, const double *dhn, const double *dcn,
        double *dx, double dx_beta, double *dh0, double *dc0,
        double *dw_ih_t, double *dw_hh_t, double *db, double *ws)

cdef clstm_blas _blas
_blas.sgemm = <clstm_sgemm_fn>sgemm
_blas.dgemm = <clstm_dgemm_fn>dgemm
_blas.get_threads = NULL
_blas.set_threads = NULL


def set_blas_thread_functions(size_t get_threads, size_t set_threads):
    """Addresses of the BLAS's int get_threads(void) and void set_threads(int)
    (0 for unknown): the core holds the BLAS at 1 thread while its own
    threads run GEMM slices."""
    _blas.get_threads = <clstm_get_threads_fn>get_threads if get_threads and set_threads else NULL
    _blas.set_threads = <clstm_set_threads_fn>set_threads if get_threads and set_threads else NULL


cdef inline char *_ptr(object a, Py_ssize_t offset=0):
    """Data pointer of an ndarray (None -> NULL), `offset` elements in."""
    if a is None:
        return NULL
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return <char *>cnp.PyArray_DATA(arr) + offset * cnp.PyArray_ITEMSIZE(arr)


cdef void *_workspace(size_t n, size_t itemsize) except NULL:
    cdef void *p = malloc((n if n > 0 else 1) * itemsize)
    if p == NULL:
        raise MemoryError(f"clstm: cannot allocate a workspace of {n * itemsize} bytes")
    return p


def forward(cnp.ndarray x, cnp.ndarray w_ih_t, cnp.ndarray w_hh_t, bias, h0, c0, mask,
            cnp.ndarray y, int col, cnp.ndarray hn, cnp.ndarray cn, bint reverse,
            gates, cs, hs):
    """One layer, one direction.  x (T, B, I); w_ih_t (I, 4H); w_hh_t (H, 4H);
    bias (4H) or None; h0, c0 (B, H) or None; mask (T, B) uint8 or None;
    y (T, B, ldy) receives h_t in columns [col, col + H); hn, cn (B, H) out;
    training: gates (T, B, 4H), cs (T, B, H) and, with a mask, hs (T, B, H);
    inference: all three None."""
    cdef int T = <int>x.shape[0], B = <int>x.shape[1], I = <int>x.shape[2]
    cdef int H = <int>w_hh_t.shape[0], ldy = <int>y.shape[2]
    cdef int train = gates is not None
    cdef size_t nws = clstm_forward_workspace(T, B, I, H, train, mask is not None)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef void *ws = _workspace(nws, 4 if f32 else 8)
    cdef char *px = _ptr(x)
    cdef char *pwi = _ptr(w_ih_t)
    cdef char *pwh = _ptr(w_hh_t)
    cdef char *pb = _ptr(bias)
    cdef char *ph0 = _ptr(h0)
    cdef char *pc0 = _ptr(c0)
    cdef const unsigned char *pm = <const unsigned char *>_ptr(mask)
    cdef char *py = _ptr(y, col)
    cdef char *phn = _ptr(hn)
    cdef char *pcn = _ptr(cn)
    cdef char *pg = _ptr(gates)
    cdef char *pcs = _ptr(cs)
    cdef char *phs = _ptr(hs)
    with nogil:
        if f32:
            clstm_lstm_forward_f32(&_blas, T, B, I, H, reverse, <float *>px, <float *>pwi,
                <float *>pwh, <float *>pb, <float *>ph0, <float *>pc0, pm, <float *>py, ldy,
                <float *>phn, <float *>pcn, <float *>pg, <float *>pcs, <float *>phs,
                <float *>ws)
        else:
            clstm_lstm_forward_f64(&_blas, T, B, I, H, reverse, <double *>px, <double *>pwi,
                <double *>pwh, <double *>pb, <double *>ph0, <double *>pc0, pm, <double *>py,
                ldy, <double *>phn, <double *>pcn, <double *>pg, <double *>pcs, <double *>phs,
                <double *>ws)
        free(ws)


def backward(cnp.ndarray x, cnp.ndarray w_ih_t, cnp.ndarray w_hh_t, h0, c0, mask,
             cnp.ndarray y, int col, bint reverse, cnp.ndarray gates, cnp.ndarray cs, hs,
             dy, int dcol, dhn, dcn, cnp.ndarray dx, double dx_beta,
             cnp.ndarray dh0, cnp.ndarray dc0, cnp.ndarray dw_ih_t, cnp.ndarray dw_hh_t, db):
    """BPTT through one forward(train) call.  x, weights, h0, c0, mask, y, gates,
    cs, hs as that call had them (gates is overwritten with the gate
    gradients); dy (T, B, lddy) with this direction's gradient in columns
    [dcol, dcol + H), or None (no gradient through the outputs); dhn, dcn
    (B, H) or None; dx (T, B, I) = dx_beta * dx + grad; dh0, dc0 (B, H),
    dw_ih_t (I, 4H), dw_hh_t (H, 4H) out; db (4H) out or None."""
    cdef int T = <int>x.shape[0], B = <int>x.shape[1], I = <int>x.shape[2]
    cdef int H = <int>w_hh_t.shape[0], ldy = <int>y.shape[2]
    cdef int lddy = H if dy is None else <int>(<cnp.ndarray>dy).shape[2]
    cdef size_t nws = clstm_backward_workspace(B, H, mask is not None)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    cdef void *ws = _workspace(nws, 4 if f32 else 8)
    cdef char *px = _ptr(x)
    cdef char *pwi = _ptr(w_ih_t)
    cdef char *pwh = _ptr(w_hh_t)
    cdef char *ph0 = _ptr(h0)
    cdef char *pc0 = _ptr(c0)
    cdef const unsigned char *pm = <const unsigned char *>_ptr(mask)
    cdef char *py = _ptr(y, col)
    cdef char *pg = _ptr(gates)
    cdef char *pcs = _ptr(cs)
    cdef char *phs = _ptr(hs)
    cdef char *pdy = _ptr(dy, dcol)
    cdef char *pdhn = _ptr(dhn)
    cdef char *pdcn = _ptr(dcn)
    cdef char *pdx = _ptr(dx)
    cdef char *pdh0 = _ptr(dh0)
    cdef char *pdc0 = _ptr(dc0)
    cdef char *pdwi = _ptr(dw_ih_t)
    cdef char *pdwh = _ptr(dw_hh_t)
    cdef char *pdb = _ptr(db)
    with nogil:
        if f32:
            clstm_lstm_backward_f32(&_blas, T, B, I, H, reverse, <float *>px,
                <float *>pwi, <float *>pwh, <float *>ph0, <float *>pc0, pm, <float *>py, ldy,
                <float *>pg, <float *>pcs, <float *>phs, <float *>pdy, lddy, <float *>pdhn,
                <float *>pdcn, <float *>pdx, <float>dx_beta, <float *>pdh0, <float *>pdc0,
                <float *>pdwi, <float *>pdwh, <float *>pdb, <float *>ws)
        else:
            clstm_lstm_backward_f64(&_blas, T, B, I, H, reverse, <double *>px,
                <double *>pwi, <double *>pwh, <double *>ph0, <double *>pc0, pm, <double *>py,
                ldy, <double *>pg, <double *>pcs, <double *>phs, <double *>pdy, lddy,
                <double *>pdhn, <double *>pdcn, <double *>pdx, dx_beta, <double *>pdh0,
                <double *>pdc0, <double *>pdwi, <double *>pdwh, <double *>pdb, <double *>ws)
        free(ws)


cdef inline bint _fits(object a, int typenum, int ndim, Py_ssize_t d0, Py_ssize_t d1,
                      Py_ssize_t d2, bint write):
    """a is an ndarray of typenum, C-contiguous and aligned, of shape (d0, d1[, d2])."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum or cnp.PyArray_NDIM(arr) != ndim or \
            not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr) or \
            (write and not cnp.PyArray_ISWRITEABLE(arr)):
        return False
    if arr.shape[0] != d0 or arr.shape[1] != d1 or (ndim == 3 and arr.shape[2] != d2):
        return False
    return True


cdef enum:
    # B*H*(I+H) (a quarter of one layer's multiply-adds) below which step() keeps the GIL
    STEP_NOGIL_MIN = 16384


cdef inline void _step_layer(bint f32, int B, int I, int H, char *x, char *w_ih_t, char *w_hh_t,
                             char *b_ih, char *b_hh, char *h, char *c, char *h_out, char *c_out,
                             void *ws) noexcept nogil:
    if f32:
        clstm_lstm_step_f32(&_blas, B, I, H, <float *>x, <float *>w_ih_t, <float *>w_hh_t,
                            <float *>b_ih, <float *>b_hh, <float *>h, <float *>c,
                            <float *>h_out, <float *>c_out, <float *>ws)
    else:
        clstm_lstm_step_f64(&_blas, B, I, H, <double *>x, <double *>w_ih_t, <double *>w_hh_t,
                            <double *>b_ih, <double *>b_hh, <double *>h, <double *>c,
                            <double *>h_out, <double *>c_out, <double *>ws)


@cython.wraparound(True)
def lstm_step(self, x, state=None, out=None):
    """One time step of online inference (a unidirectional LSTM).

    x: (B, input_size), or (input_size,) for one sequence.
    state: (h, c), each (num_layers, B, H) (unbatched: (num_layers, H)),
    or None for zeros.  out: optional (h, c) arrays of that shape, C-contiguous
    in the LSTM's dtype, that receive the new state (they may be `state`
    itself): then nothing is allocated.  Returns (y_t, (h, c)): y_t (B, H),
    the last layer's output, is a view of the new h.

    clstm.LSTM.step is this function: the call that fits (tuples of arrays
    that fit as they are) runs here without a Python frame; everything else
    goes to LSTM._step_slow, which checks, converts and allocates.
    """
    cdef dict d = <dict>self.__dict__
    # set by the first _step_slow of a unidirectional LSTM; the sizes are plain
    # attributes of clstm.LSTM (a subclass that makes them properties goes the
    # checked way)
    layers = d.get("_step_layers_cache")
    typenum, I, H = d.get("_typenum"), d.get("input_size"), d.get("hidden_size")
    if layers is not None and type(state) is tuple and type(out) is tuple and \
            len(<tuple>state) == 2 and len(<tuple>out) == 2 and \
            type(typenum) is int and type(I) is int and type(H) is int:
        h_out = (<tuple>out)[0]
        if _step(x, <tuple>layers, (<tuple>state)[0], (<tuple>state)[1], h_out, (<tuple>out)[1],
                 typenum, I, H):
            return h_out[-1], out
    return self._step_slow(x, state, out)


def step(x, tuple layers, h, c, h_out, c_out, int typenum, int I, int H):
    """_step for Python callers (LSTM._step_slow)."""
    return bool(_step(x, layers, h, c, h_out, c_out, typenum, I, H))


cdef int _step(x, tuple layers, h, c, h_out, c_out, int typenum, int I, int H) except -1:
    """One time step through a stack of unidirectional layers, if every array
    fits: x (B, I); h, c (L, B, H) in; h_out, c_out (L, B, H) out, writeable
    (may be h and c); all of dtype `typenum`, C-contiguous.  layers: per
    layer (w_ih_t (I_k, 4H), w_hh_t (H, 4H), b_ih or None, b_hh or None),
    the LSTM's own arrays.  Layer k's input is layer k-1's new h.  Returns
    0, doing nothing, when an array does not fit (the caller converts
    and calls again), 1 when done."""
    cdef int L = <int>len(layers)
    if not cnp.PyArray_CheckExact(x) or cnp.PyArray_NDIM(<cnp.ndarray>x) != 2:
        return 0
    cdef Py_ssize_t B = (<cnp.ndarray>x).shape[0]
    if B > INT_MAX:             # the core takes the batch as a C int
        return 0
    if not (_fits(x, typenum, 2, B, I, 0, False) and _fits(h, typenum, 3, L, B, H, False)
            and _fits(c, typenum, 3, L, B, H, False) and _fits(h_out, typenum, 3, L, B, H, True)
            and _fits(c_out, typenum, 3, L, B, H, True)):
        return 0
    cdef bint f32 = typenum == cnp.NPY_FLOAT32
    cdef size_t BH = <size_t>B * H
    # small steps use this stack buffer: step() with out= allocates nothing
    cdef double stack_ws[2048]
    cdef size_t nws = clstm_step_workspace(<int>B, H) * (4 if f32 else 8)
    cdef void *ws = <void *>stack_ws if nws <= sizeof(stack_ws) else _workspace(nws, 1)
    cdef char *px
    cdef char *pwi
    cdef char *pwh
    cdef char *pbi
    cdef char *pbh
    cdef char *ph
    cdef char *pc
    cdef char *pho
    cdef char *pco
    cdef int k, Ik
    for k in range(L):
        w_ih_t, w_hh_t, b_ih, b_hh = layers[k]
        px = _ptr(x) if k == 0 else _ptr(h_out, (k - 1) * BH)
        Ik = I if k == 0 else H
        pwi, pwh, pbi, pbh = _ptr(w_ih_t), _ptr(w_hh_t), _ptr(b_ih), _ptr(b_hh)
        ph, pc = _ptr(h, k * BH), _ptr(c, k * BH)
        pho, pco = _ptr(h_out, k * BH), _ptr(c_out, k * BH)
        if BH * (Ik + H) < STEP_NOGIL_MIN:
            # dropping and retaking the GIL costs more than such a step
            _step_layer(f32, <int>B, Ik, H, px, pwi, pwh, pbi, pbh, ph, pc, pho, pco, ws)
        else:
            with nogil:
                _step_layer(f32, <int>B, Ik, H, px, pwi, pwh, pbi, pbh, ph, pc, pho, pco, ws)
    if ws != <void *>stack_ws:
        free(ws)
    return 1


def data_address(cnp.ndarray a):
    """The address of a's first element (clstm._alloc aligns by it; numpy's
    own ways to read it, .ctypes and __array_interface__, take ~2.5 us)."""
    return <size_t>cnp.PyArray_DATA(a)


def set_num_threads(int n):
    """Threads for the core's elementwise passes (OpenMP)."""
    clstm_set_num_threads(n)


def get_num_threads():
    return clstm_get_num_threads()


def has_openmp():
    return bool(clstm_has_openmp())


def simd_level():
    return clstm_simd_level().decode()


def set_large_products(int mode):
    """The backward's large products: -1 by the CPU (default), 0 through
    BLAS, 1 on the core's tile kernels (for tests reaching both routes)."""
    clstm_set_large_products(mode)


def large_products():
    """The routes of the backward's products after the recurrence on this CPU:
    {"float32": {"dW": route, "dX": route}, "float64": {...}}, each route
    "tile" (the core's kernels) or "BLAS".  dW: the weight gradients where X
    and h_{t-1} outgrow L2 (smaller ones always run on the tile kernels); dX:
    dX = dG W_ih over many rows."""
    cdef int bits = clstm_large_products()
    route = lambda bit: "tile" if bits & bit else "BLAS"
    return {"float32": {"dW": route(1), "dX": route(2)},
            "float64": {"dW": route(4), "dX": route(8)}}


def activation(cnp.ndarray x, cnp.ndarray y, bint tanh):
    """y = tanh(x) or sigmoid(x) with the core's vectorized kernels; x and y
    contiguous, same shape and float dtype, not overlapping."""
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef char *px = _ptr(x)
    cdef char *py = _ptr(y)
    cdef bint f32 = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32
    with nogil:
        if f32 and tanh:
            clstm_tanh_array_f32(n, <float *>px, <float *>py)
        elif f32:
            clstm_sigmoid_array_f32(n, <float *>px, <float *>py)
        elif tanh:
            clstm_tanh_array_f64(n, <double *>px, <double *>py)
        else:
            clstm_sigmoid_array_f64(n, <double *>px, <double *>py)


cdef inline bint _flat(object a, int typenum, Py_ssize_t n, bint write):
    """a is an exact ndarray of typenum, C-contiguous, aligned, of n elements."""
    if not cnp.PyArray_CheckExact(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_SIZE(arr) == n and
            cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr) and
            (not write or cnp.PyArray_ISWRITEABLE(arr)))


def adam(g, w, m, v, double alpha, double c1, double c2, double eps):
    """One Adam step in place, if every array fits: w, m, v (and g) exact
    float32 or float64 ndarrays of w's dtype and size, C-contiguous, aligned,
    w, m, v writeable, no two sharing memory.  Returns False, doing nothing,
    when one does not (the caller runs the NumPy expressions), True when done."""
    if not cnp.PyArray_CheckExact(w):
        return False
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>w)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>w)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        return False
    if not (_flat(w, typenum, n, True) and _flat(m, typenum, n, True) and
            _flat(v, typenum, n, True) and _flat(g, typenum, n, False)):
        return False
    cdef size_t nbytes = <size_t>n * cnp.PyArray_ITEMSIZE(<cnp.ndarray>w)
    cdef char *p[4]
    p[0], p[1], p[2], p[3] = _ptr(g), _ptr(w), _ptr(m), _ptr(v)
    cdef int i, j
    for i in range(4):
        for j in range(i + 1, 4):
            if p[i] < p[j] + nbytes and p[j] < p[i] + nbytes:
                return False
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            clstm_adam_f32(<size_t>n, <float *>p[0], <float *>p[1], <float *>p[2], <float *>p[3],
                           <float>alpha, <float>c1, <float>c2, <float>eps)
        else:
            clstm_adam_f64(<size_t>n, <double *>p[0], <double *>p[1], <double *>p[2],
                           <double *>p[3], alpha, c1, c2, eps)
    return True
