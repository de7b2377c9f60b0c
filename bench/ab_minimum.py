"""A/B of two clstm builds in one process, interleaved call by call (where
bench/clstm_only.py times one build, to be alternated with another by hand).

The base build is a copy of another checkout's built `clstm/` directory under
another package name, e.g. for the last commit:

    git clone -q . /tmp/base && (cd /tmp/base && python setup.py build_ext --inplace)
    mkdir -p /tmp/abpkg && cp -r /tmp/base/clstm /tmp/abpkg/clstm_base
    python bench/ab_minimum.py --path /tmp/abpkg --base clstm_base --shapes b1,m --modes fwd,fb

Each round times `--calls` calls of each build, alternating which goes first,
and prints per shape and mode the ratio base / new (> 1: the working build is
faster) of the two builds' minimum and 25th-percentile times, median [range]
over the rounds.  The minimum, because on a shared host neighbours move the
medians by more than most changes do.  Modes: fwd (inference), bwd (the
backward alone, after an untimed forward(train=True)), fb (both)."""
import argparse
import importlib
import statistics
import sys
import time

import numpy as np

# compare.py's shapes (clstm.benchmark.CASES, not imported: it loads torch), and b4
SHAPES = {"s": (100, 1, 8, 32), "c": (60, 32, 1, 50), "b1": (50, 1, 256, 256),
          "b4": (50, 4, 256, 256), "m": (100, 32, 128, 256), "l": (50, 64, 512, 1024)}


def timer(pk, shape, mode, dtype):
    """A function that runs one call and returns its time in seconds."""
    T, B, I, H = shape
    m = pk.LSTM(I, H, dtype=dtype, seed=0)
    x = np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)
    dy = np.ones((T, B, H), dtype)

    def run():
        if mode == "fwd":
            t0 = time.perf_counter()
            m(x)
        elif mode == "bwd":
            m.forward(x, train=True)
            t0 = time.perf_counter()
            m.backward(dy)
        else:
            t0 = time.perf_counter()
            m.forward(x, train=True)
            m.backward(dy)
        return time.perf_counter() - t0
    run()
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--path", required=True, help="the directory holding the base package")
    ap.add_argument("--base", required=True, help="the base package's name")
    ap.add_argument("--shapes", default="b1", help=",".join(SHAPES))
    ap.add_argument("--modes", default="fwd,fb")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args(argv)
    sys.path.insert(0, a.path)
    import clstm as new
    base = importlib.import_module(a.base)
    for pk in (new, base):
        pk.set_num_threads(a.threads)
    for s in a.shapes.split(","):
        for mode in a.modes.split(","):
            fn, fb = timer(new, SHAPES[s], mode, a.dtype), timer(base, SHAPES[s], mode, a.dtype)
            rmin, rq = [], []
            for _ in range(a.rounds):
                tn, tb = [], []
                for i in range(a.calls):
                    if i % 2:
                        tb.append(fb()); tn.append(fn())
                    else:
                        tn.append(fn()); tb.append(fb())
                tn.sort(); tb.sort()
                q = a.calls // 4
                rmin.append(tb[0] / tn[0]); rq.append(tb[q] / tn[q])
            print(f"{s:3} {mode:4} {a.threads} threads: new min {1e3 * tn[0]:.3f} ms, "
                  f"base min {1e3 * tb[0]:.3f} ms | base/new of minima "
                  f"{statistics.median(rmin):.3f} [{min(rmin):.3f}, {max(rmin):.3f}], "
                  f"of 25th percentiles {statistics.median(rq):.3f} "
                  f"[{min(rq):.3f}, {max(rq):.3f}]", flush=True)


if __name__ == "__main__":
    main()
