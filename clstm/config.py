"""What this clstm build runs on: BLAS, SIMD level, OpenMP, threads."""
from . import _core, _threads


def config():
    """The build and run-time facts as a dict."""
    path, blas_config = _threads.blas_info()
    from . import __version__
    return {
        "clstm": __version__,
        "simd": _core.simd_level(),
        "openmp": _core.has_openmp(),
        "threads": _threads.get_num_threads(),
        "blas": blas_config or "scipy.linalg.cython_blas (library not identified)",
        "blas_library": path,
        "blas_threads": _threads.blas_num_threads(),
        "large_products": _large_products_text(),
        "dtypes": "float32, float64",
    }


def _large_products_text():
    """The backward's product routes, e.g. "float32 dW: core tile kernels,
    float32 dX: core tile kernels, float64 dW: BLAS, float64 dX: core tile
    kernels"."""
    name = {"tile": "core tile kernels", "BLAS": "BLAS"}
    return ", ".join(f"{dt} {p}: {name[r]}" for dt, routes in _core.large_products().items()
                     for p, r in routes.items())


def show_config(file=None):
    """Print the build and run-time configuration (BLAS, SIMD, OpenMP, threads)."""
    cfg = config()
    width = max(map(len, cfg))
    for key, value in cfg.items():
        print(f"{key:<{width}} : {value}", file=file)
