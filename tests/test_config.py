"""Threads, configuration and the command line."""
import io
import subprocess
import sys

import clstm
from clstm import _core


def test_threads_round_trip():
    before = clstm.get_num_threads()
    try:
        clstm.set_num_threads(1)
        assert clstm.get_num_threads() == 1
        clstm.set_num_threads(3)
        assert clstm.get_num_threads() == 3
        from clstm import _threads
        if _threads.blas_num_threads() is not None:
            assert _threads.blas_num_threads() == 3
    finally:
        clstm.set_num_threads(before)


def test_show_config_names_the_parts():
    buf = io.StringIO()
    clstm.show_config(file=buf)
    text = buf.getvalue()
    for key in ("simd", "openmp", "threads", "blas", "dtypes"):
        assert key in text
    assert "float32, float64" in text


def test_show_config_reports_the_large_products_routes():
    # the CPU's choice by default; forced either way, every route follows
    try:
        for mode, route, says in ((0, "BLAS", "BLAS"), (1, "tile", "core tile kernels")):
            _core.set_large_products(mode)
            routes = _core.large_products()
            assert routes == {dt: {"dW": route, "dX": route} for dt in ("float32", "float64")}
            text = clstm.config.config()["large_products"]
            assert text == ", ".join(f"{dt} {p}: {says}" for dt in ("float32", "float64")
                                     for p in ("dW", "dX"))
    finally:
        _core.set_large_products(-1)
    routes = _core.large_products()
    # float64 never takes the tile kernels for dW where float32 does not
    assert not (routes["float64"]["dW"] == "tile" and routes["float32"]["dW"] == "BLAS")
    for dt in ("float32", "float64"):
        for p in ("dW", "dX"):
            assert f"{dt} {p}: " + {"tile": "core tile kernels", "BLAS": "BLAS"}[routes[dt][p]] \
                in clstm.config.config()["large_products"]


def test_cli_info_and_help(tmp_path):
    # run away from the source tree, which has no compiled extension in a fresh clone
    run = dict(capture_output=True, text=True, cwd=tmp_path)
    out = subprocess.run([sys.executable, "-m", "clstm", "info"], **run)
    assert out.returncode == 0 and "blas" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "clstm", "--help"], **run)
    assert out.returncode == 0 and "info" in out.stdout
