"""clstm alone, forward and fwd+bwd on the compare.py shapes: for before/after
checks of one change (alternate two builds' runs; quote medians).

    python bench/clstm_only.py [--threads 2] [--shapes 0 1 2] [--mode fwd|both]
"""
import argparse
import statistics
import time

import numpy as np

import clstm

SHAPES = [(100, 1, 8, 32), (60, 32, 1, 50), (50, 1, 256, 256), (100, 32, 128, 256),
          (50, 64, 512, 1024)]


def median_ms(fn, budget):
    fn()
    times = []
    end = time.perf_counter() + budget
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shapes", type=int, nargs="*", default=range(len(SHAPES)))
    p.add_argument("--mode", choices=["fwd", "both"], default="both")
    p.add_argument("--budget", type=float, default=1.0)
    p.add_argument("--dtype", default="float32")
    a = p.parse_args()
    clstm.set_num_threads(a.threads)
    for i in a.shapes:
        T, B, I, H = SHAPES[i]
        m = clstm.LSTM(I, H, dtype=a.dtype, seed=0)
        x = np.random.default_rng(0).standard_normal((T, B, I)).astype(a.dtype)
        f = median_ms(lambda: m(x), a.budget)
        line = f"{(T, B, I, H)!s:20} fwd {f:9.3f} ms"
        if a.mode == "both":
            dy = np.ones((T, B, H), a.dtype)

            def fb():
                m.forward(x, train=True)
                m.backward(dy)
            line += f"   fwd+bwd {median_ms(fb, a.budget):9.3f} ms"
        print(line, flush=True)


if __name__ == "__main__":
    main()
