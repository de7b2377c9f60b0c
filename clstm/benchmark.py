"""Compare clstm with torch.nn.LSTM and onnxruntime's LSTM, in one process.

What is measured
  Single-layer unidirectional LSTMs of five shapes (T, B, I, H), in two modes:
  "forward" (inference: clstm ``lstm(x)``, torch under ``inference_mode``,
  onnxruntime ``session.run``) and "fwd+bwd" (one training step without the
  optimizer: clstm ``forward(x, train=True)`` then ``backward(dy)``, torch
  ``lstm(x)`` then ``y.backward(dy)`` with the parameters' grads cleared
  first; onnxruntime has no backward).  Every library gets the same weights
  (torch's initialization, copied) and the same input; before any timing the
  outputs (and, for fwd+bwd, all gradients) are checked to agree, and the
  script aborts if they do not.

How
  The machine is shared and noisy, so the libraries are timed interleaved,
  in one process: each round runs every library once (the first library
  rotating from round to round), round after round, and the median time per
  call of each library is reported, with ratios against clstm (ratio > 1:
  clstm is faster).  A library's turn in a round is a block: a 0.15 s pause,
  so that the previous library's idle worker threads stop spinning (on 2
  cores they would otherwise slow the next library down, by up to 3-4x), a
  few untimed calls, then timed calls.  Warm-up calls set the rounds (5 to 7)
  and the calls per block, so that every library gets about --budget seconds
  of timed calls per case and mode.  Each thread count is a separate pass:
  clstm.set_num_threads(n), torch.set_num_threads(n), and an onnxruntime
  session with intra_op_num_threads=n and spinning disabled.  The rate of a
  large BLAS GEMM is timed in the largest forward case's rounds, as the
  yardstick for clstm's GFLOP/s there.  Last, the performance targets are
  printed with PASS or MISS.

Usage (the same program either way; bench/compare.py is the repository's entry)
  python -m clstm bench [--threads 1 2] [--repeats N] [--dtype float32|float64]
                        [--quick] [--budget SECONDS] [--markdown FILE]
  python bench/compare.py ...
"""
import argparse
import gc
import io
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas as scipy_blas

import clstm

try:
    import torch
except ImportError:
    torch = None

try:
    import onnx
    import onnxruntime
    from onnx import helper, numpy_helper
except ImportError:
    onnx = onnxruntime = None

LIBS = ("clstm", "torch", "ort")
MODES = ("forward", "fwd+bwd")
GEMM_SIZE = 2048        # the yardstick GEMM is GEMM_SIZE^3
ONNX_OPSET = 14
SETTLE_S = 0.2          # pause between cases so threads go idle
SEED = 0

# Forward tolerance per dtype (max abs diff); gradients are compared relative
# to their own scale, as they are sums over T*B terms.
FORWARD_ATOL = {np.float32: 1e-4, np.float64: 1e-10}
GRAD_RTOL = {np.float32: 1e-4, np.float64: 1e-10}


@dataclass(frozen=True)
class Case:
    T: int
    B: int
    I: int
    H: int

    @property
    def label(self):
        return f"({self.T},{self.B},{self.I},{self.H})"

    @property
    def forward_flops(self):
        """The gate GEMMs' flops: 2 * T * B * 4H * (I + H)."""
        return 2 * self.T * self.B * 4 * self.H * (self.I + self.H)


SMALL = (Case(100, 1, 8, 32), Case(60, 32, 1, 50), Case(50, 1, 256, 256))
MEDIUM = Case(100, 32, 128, 256)
LARGE = Case(50, 64, 512, 1024)
CASES = SMALL + (MEDIUM, LARGE)

# The performance issue's bar, checked at TARGET_THREADS threads.
TARGET_THREADS = 2
FORWARD_VS_ORT = {SMALL[0]: 1.5, SMALL[1]: 1.3, SMALL[2]: 1.3, MEDIUM: 1.05, LARGE: 1.0}
FWDBWD_VS_TORCH = {SMALL[0]: 2.0, SMALL[1]: 2.0, SMALL[2]: 2.0, MEDIUM: 1.25, LARGE: 1.1}
GEMM_FRACTION = 0.93    # of the GEMM rate, clstm's forward rate on LARGE
SCALING_CASES = (MEDIUM, LARGE)


@dataclass
class Settings:
    threads: list
    dtype: type
    budget_s: float     # timed seconds per library, case and mode
    warmup_s: float
    min_rounds: int
    max_rounds: int
    fixed_rounds: int   # --repeats; 0 means choose from the warm-up
    cases: tuple


# ---------------------------------------------------------------- models ---

def reference_state(case, dtype):
    """Initial parameters (PyTorch names, numpy): torch's init when torch is
    importable, else clstm's own."""
    if torch is not None:
        torch.manual_seed(SEED)
        model = torch.nn.LSTM(case.I, case.H)
        return {k: v.detach().numpy().astype(dtype) for k, v in model.state_dict().items()}
    model = clstm.LSTM(case.I, case.H, dtype=dtype, seed=SEED)
    return dict(model.state_dict())


def build_clstm(case, state, dtype):
    model = clstm.LSTM(input_size=case.I, hidden_size=case.H, num_layers=1, dtype=dtype, seed=SEED)
    model.load_state_dict(state)
    return model


def build_torch(case, state, dtype):
    model = torch.nn.LSTM(case.I, case.H).to(torch.float64 if dtype == np.float64 else torch.float32)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return model


def onnx_gate_order(w):
    """PyTorch stacks the gate blocks i, f, g, o along axis 0; ONNX wants i, o, f, c."""
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build_onnx(case, state, dtype):
    """A serialized ONNX model holding one LSTM node with the given weights."""
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    w = onnx_gate_order(state["weight_ih_l0"])[None]
    r = onnx_gate_order(state["weight_hh_l0"])[None]
    b = np.concatenate([onnx_gate_order(state["bias_ih_l0"]),
                        onnx_gate_order(state["bias_hh_l0"])])[None]
    inits = [numpy_helper.from_array(np.ascontiguousarray(a, dtype=dtype), name)
             for a, name in ((w, "W"), (r, "R"), (b, "B"))]
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=case.H)
    graph = helper.make_graph(
        [node], "lstm",
        [helper.make_tensor_value_info("X", elem, [case.T, case.B, case.I])],
        [helper.make_tensor_value_info("Y", elem, [case.T, 1, case.B, case.H]),
         helper.make_tensor_value_info("Y_h", elem, [1, case.B, case.H]),
         helper.make_tensor_value_info("Y_c", elem, [1, case.B, case.H])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_ort(model_bytes, threads):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 4  # a missing kernel is reported by the caller
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


# -------------------------------------------------------------- callables ---

def clstm_forward(model, x):
    return lambda: model(x)


def clstm_fwdbwd(model, x, dy):
    def step():
        model.forward(x, train=True)
        return model.backward(dy)
    return step


def torch_forward(model, x):
    xt = torch.from_numpy(x)

    def step():
        with torch.inference_mode():
            return model(xt)
    return step


def torch_fwdbwd(model, x, dy):
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    params = list(model.parameters())

    def step():
        for p in params:
            p.grad = None
        y, _ = model(xt)
        y.backward(dyt)
    return step


def ort_forward(session, x):
    return lambda: session.run(None, {"X": x})


def gemm_call(dtype, n=GEMM_SIZE):
    """A callable doing one n^3 GEMM (Fortran-ordered, output preallocated)."""
    rng = np.random.default_rng(SEED)
    a, b = (np.asfortranarray(rng.standard_normal((n, n)).astype(dtype)) for _ in range(2))
    c = np.zeros((n, n), dtype=dtype, order="F")
    gemm = scipy_blas.get_blas_funcs("gemm", (a,))
    return lambda: gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=1)


# ------------------------------------------------------------ correctness ---

class Disagreement(AssertionError):
    pass


def expect_close(what, got, want, atol):
    err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))))
    if not err <= atol:
        raise Disagreement(f"{what}: max abs diff {err:.3g} > {atol:.3g}")
    return err


def check_forward(case, dtype, x, models):
    """clstm's y, h_n, c_n against torch's and onnxruntime's."""
    atol = FORWARD_ATOL[dtype]
    y, (h, c) = models["clstm"](x)
    if "torch" in models:
        with torch.inference_mode():
            ty, (th, tc) = models["torch"](torch.from_numpy(x))
        for name, got, want in (("y", y, ty), ("h_n", h, th), ("c_n", c, tc)):
            expect_close(f"{case.label} forward {name} clstm vs torch", got, want.numpy(), atol)
    if "ort" in models:
        oy, oh, oc = models["ort"].run(None, {"X": x})
        for name, got, want in (("y", y, oy[:, 0]), ("h_n", h, oh), ("c_n", c, oc)):
            expect_close(f"{case.label} forward {name} clstm vs onnxruntime", got, want, atol)


def check_backward(case, dtype, x, dy, models):
    """clstm's dx, dh0, dc0 and parameter gradients against torch's."""
    if "torch" not in models:
        return
    model = models["clstm"]
    model.forward(x, train=True)
    dx, (dh0, dc0) = model.backward(dy)
    tmodel = models["torch"]
    for p in tmodel.parameters():
        p.grad = None
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    h0 = torch.zeros((1, case.B, case.H), dtype=xt.dtype, requires_grad=True)
    c0 = torch.zeros((1, case.B, case.H), dtype=xt.dtype, requires_grad=True)
    ty, _ = tmodel(xt, (h0, c0))
    ty.backward(torch.from_numpy(dy))
    want = {"dx": xt.grad, "dh0": h0.grad, "dc0": c0.grad}
    want.update({name: p.grad for name, p in tmodel.named_parameters()})
    got = {"dx": dx, "dh0": dh0, "dc0": dc0, **model.grads}
    for name, w in want.items():
        w = w.numpy()
        atol = GRAD_RTOL[dtype] * max(1.0, float(np.max(np.abs(w))))
        expect_close(f"{case.label} backward {name} clstm vs torch", got[name], w, atol)
    for p in tmodel.parameters():
        p.grad = None


# ----------------------------------------------------------------- timing ---
# Idle BLAS and OpenMP worker threads keep spinning for a while after a call
# (OpenBLAS's for 2^28 TSC cycles, about 0.1 s), and on a 2-core machine they
# take a core from whatever runs next: alternating single calls timed each
# library with the previous one's threads in its way, up to 3-4x slower.  So
# a round gives each library a block: a pause (SPIN_OUT_S) for the previous
# library's threads to go idle, a short untimed lead-in, then its timed calls.

SPIN_OUT_S = 0.15       # > OpenBLAS's default idle spin (2^28 cycles)
LEAD_IN_S = 0.02        # untimed calls back into a library's steady state


@dataclass
class Plan:
    rounds: int
    calls: dict         # timed calls per block, by callable
    lead_in: dict       # untimed calls per block, by callable


def timed_call(fn, samples):
    t0 = time.perf_counter()
    fn()
    samples.append(time.perf_counter() - t0)


def run_block(fn, lead_in, calls, samples):
    """Pause, run fn lead_in times untimed, then calls times timed."""
    time.sleep(SPIN_OUT_S)
    for _ in range(lead_in):
        fn()
    for _ in range(calls):
        timed_call(fn, samples)


def warm_up(fns, settings):
    """Seconds per call of each callable: each run alone after a pause for
    warmup_s (at least two calls), the median of its calls but the first."""
    per_call = {}
    for name, fn in fns.items():
        time.sleep(SPIN_OUT_S)
        samples = []
        t_end = time.perf_counter() + settings.warmup_s
        while len(samples) < 2 or time.perf_counter() < t_end:
            timed_call(fn, samples)
        per_call[name] = statistics.median(samples[1:])
    return per_call


def plan_blocks(per_call, settings):
    """Rounds so the slowest callable gets about budget_s of timed calls (within
    the rounds bounds), and calls per block so every callable does."""
    rounds = settings.fixed_rounds or max(
        settings.min_rounds, min(settings.max_rounds, math.ceil(settings.budget_s / max(per_call.values()))))
    calls = {name: max(1, round(settings.budget_s / rounds / t)) for name, t in per_call.items()}
    lead_in = {name: int(LEAD_IN_S / t) for name, t in per_call.items()}
    return Plan(rounds, calls, lead_in)


def time_interleaved(fns, settings):
    """Median seconds per call of each callable over rounds of blocks (the
    first callable rotating from round to round), and the rounds."""
    plan = plan_blocks(warm_up(fns, settings), settings)
    names = list(fns)
    samples = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(plan.rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                run_block(fns[name], plan.lead_in[name], plan.calls[name], samples[name])
    finally:
        gc.enable()
    return {name: statistics.median(s) for name, s in samples.items()}, plan.rounds


# ------------------------------------------------------------------ cases ---

def set_threads(n):
    clstm.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def ort_unavailable(dtype, case):
    """Why onnxruntime cannot run this dtype (None if it can)."""
    if onnxruntime is None:
        return "onnxruntime/onnx not importable"
    try:
        session = build_ort(build_onnx(case, reference_state(case, dtype), dtype), 1)
        session.run(None, {"X": np.zeros((case.T, case.B, case.I), dtype=dtype)})
    except Exception as exc:  # e.g. "LSTM operator does not support double yet"
        reason = str(exc).splitlines()[0].split("Status Message:")[-1].strip()
        return f"onnxruntime cannot run {np.dtype(dtype).name} ({reason})"
    return None


def build_models(case, dtype, threads, use_ort):
    state = reference_state(case, dtype)
    models = {"clstm": build_clstm(case, state, dtype)}
    if torch is not None:
        models["torch"] = build_torch(case, state, dtype)
    if use_ort:
        models["ort"] = build_ort(build_onnx(case, state, dtype), threads)
    return models


def case_inputs(case, dtype):
    rng = np.random.default_rng(SEED + 1)
    x = rng.standard_normal((case.T, case.B, case.I)).astype(dtype)
    dy = rng.standard_normal((case.T, case.B, case.H)).astype(dtype)
    return x, dy


def mode_callables(mode, models, x, dy):
    """{library: callable doing one step of mode} for the libraries built."""
    if mode == "forward":
        makers = {"clstm": clstm_forward, "torch": torch_forward, "ort": ort_forward}
        return {lib: makers[lib](models[lib], x) for lib in LIBS if lib in models}
    makers = {"clstm": clstm_fwdbwd, "torch": torch_fwdbwd}
    return {lib: makers[lib](models[lib], x, dy) for lib in LIBS if lib in models and lib in makers}


def run_case(case, settings, threads, use_ort):
    """Check agreement, then time both modes; {mode: ({name: s}, rounds)}."""
    models = build_models(case, settings.dtype, threads, use_ort)
    x, dy = case_inputs(case, settings.dtype)
    check_forward(case, settings.dtype, x, models)
    check_backward(case, settings.dtype, x, dy, models)
    results = {}
    for mode in MODES:
        fns = mode_callables(mode, models, x, dy)
        if mode == "forward" and case == LARGE:
            fns["gemm"] = gemm_call(settings.dtype)
        results[mode] = time_interleaved(fns, settings)
    return results


def run_all(settings, use_ort, log):
    """{threads: {(case, mode): ({name: median s}, rounds)}}."""
    results = {}
    for n in settings.threads:
        set_threads(n)
        results[n] = {}
        for case in settings.cases:
            t0 = time.perf_counter()
            for mode, res in run_case(case, settings, n, use_ort).items():
                results[n][(case, mode)] = res
            log(f"  threads={n} {case.label}: checked and timed in {time.perf_counter() - t0:.1f} s")
            time.sleep(SETTLE_S)
    return results


# -------------------------------------------------------------- reporting ---

def fmt_ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.2f}"


def fmt_ratio(other, mine):
    return "-" if other is None or mine is None else f"{other / mine:.2f}"


def thread_table(res):
    """Header and rows for one thread count."""
    header = ["shape (T,B,I,H)", "mode", "rounds", "clstm ms", "torch ms", "ort ms",
              "torch/clstm", "ort/clstm"]
    rows = []
    for case in CASES:
        for mode in MODES:
            if (case, mode) not in res:
                continue
            med, rounds = res[(case, mode)]
            c, t, o = (med.get(lib) for lib in LIBS)
            rows.append([case.label, mode, str(rounds), fmt_ms(c), fmt_ms(t), fmt_ms(o),
                         fmt_ratio(t, c), fmt_ratio(o, c)])
    return header, rows


def gemm_line(res, dtype):
    """clstm's forward GFLOP/s on LARGE against the GEMM timed in the same rounds."""
    if (LARGE, "forward") not in res:
        return None
    med, _ = res[(LARGE, "forward")]
    gemm_rate = 2 * GEMM_SIZE ** 3 / med["gemm"] / 1e9
    rate = LARGE.forward_flops / med["clstm"] / 1e9
    name = "sgemm" if dtype == np.float32 else "dgemm"
    return (f"{LARGE.label} forward: clstm {rate:.1f} GFLOP/s = {100 * rate / gemm_rate:.1f}% of "
            f"{name} {GEMM_SIZE}^3 ({gemm_rate:.1f} GFLOP/s, median, same rounds)")


TEXT_COLUMNS = ("shape (T,B,I,H)", "mode", "target", "measured", "status")


def text_table(header, rows):
    """Aligned plain-text table: text columns left, numbers right."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    left = [name in TEXT_COLUMNS for name in header]
    line = lambda r: "  ".join(c.ljust(w) if lft else c.rjust(w)
                               for c, w, lft in zip(r, widths, left)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if name in TEXT_COLUMNS else "---:" for name in header) + "|"]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


# ---------------------------------------------------------------- targets ---

@dataclass
class Outcome:
    what: str
    measured: str
    bar: str
    status: str   # PASS, MISS or SKIP

    def row(self):
        return [self.what, self.measured, self.bar, self.status]


def ratio_target(res, case, mode, lib, bar, skip_reason):
    what = f"{mode} vs {lib} {case.label}"
    med = res.get((case, mode), ({}, 0))[0]
    if lib not in med or "clstm" not in med:
        return Outcome(what, "-", f">= {bar:.2f}", f"SKIP ({skip_reason.get(lib, 'not run')})")
    ratio = med[lib] / med["clstm"]
    return Outcome(what, f"{lib}/clstm = {ratio:.2f}", f">= {bar:.2f}",
                   "PASS" if ratio >= bar else "MISS")


def gemm_target(res, dtype):
    what = f"forward {LARGE.label} share of {GEMM_SIZE}^3 GEMM rate"
    if (LARGE, "forward") not in res:
        return Outcome(what, "-", f">= {GEMM_FRACTION:.0%}", "SKIP (not run)")
    med, _ = res[(LARGE, "forward")]
    share = (LARGE.forward_flops / med["clstm"]) / (2 * GEMM_SIZE ** 3 / med["gemm"])
    return Outcome(what, f"{share:.1%}", f">= {GEMM_FRACTION:.0%}",
                   "PASS" if share >= GEMM_FRACTION else "MISS")


def scaling_targets(results):
    if not {1, TARGET_THREADS} <= set(results):
        return []
    out = []
    for case in SCALING_CASES:
        for mode in MODES:
            if (case, mode) not in results[1]:
                continue
            one, two = (results[n][(case, mode)][0]["clstm"] for n in (1, TARGET_THREADS))
            out.append(Outcome(f"clstm {mode} {case.label} {TARGET_THREADS} threads vs 1",
                               f"t1/t{TARGET_THREADS} = {one / two:.2f}", "> 1.00",
                               "PASS" if one / two > 1.0 else "MISS"))
    return out


STEP_SHAPE = (1, 8, 32)        # B, I, H of the streaming target
STEP_BAR_US = 2.0


def step_timings(settings):
    """Median seconds per call of clstm's LSTM.step (with out= buffers) and,
    when importable, torch.nn.LSTMCell, interleaved, float32."""
    B, I, H = STEP_SHAPE
    lstm = clstm.LSTM(I, H, seed=0)
    x = np.random.default_rng(0).standard_normal((B, I)).astype(np.float32)
    state = (np.zeros((1, B, H), np.float32), np.zeros((1, B, H), np.float32))
    fns = {"clstm": lambda: lstm.step(x, state, out=state)}
    if torch is not None:
        cell = torch.nn.LSTMCell(I, H)
        tx, th = torch.from_numpy(x), (torch.zeros(B, H), torch.zeros(B, H))

        def torch_step():
            with torch.inference_mode():
                cell(tx, th)
        fns["torch"] = torch_step
    return time_interleaved(fns, settings)[0]


def step_target(step):
    if step is None:
        return None
    us = step["clstm"] * 1e6
    other = f" (torch LSTMCell {step['torch'] * 1e6:.2f} us)" if "torch" in step else ""
    return Outcome(f"step() B,I,H={STEP_SHAPE}: us per call", f"{us:.2f} us{other}",
                   f"<= {STEP_BAR_US:.2f}", "PASS" if us <= STEP_BAR_US else "MISS")


def evaluate_targets(results, dtype, skip_reason, step=None):
    """The issue's targets at TARGET_THREADS threads (None if not run)."""
    if TARGET_THREADS not in results:
        return None
    res = results[TARGET_THREADS]
    out = []
    if dtype == np.float32:
        out += [ratio_target(res, c, "forward", "ort", bar, skip_reason) for c, bar in FORWARD_VS_ORT.items()]
        out.append(gemm_target(res, dtype))
        out += [ratio_target(res, c, "forward", "torch", 1.0, skip_reason) for c in CASES]
        out += [ratio_target(res, c, "fwd+bwd", "torch", bar, skip_reason) for c, bar in FWDBWD_VS_TORCH.items()]
    else:
        out += [ratio_target(res, c, m, "torch", 1.0, skip_reason) for c in CASES for m in MODES]
    step_outcome = step_target(step)
    return out + scaling_targets(results) + ([step_outcome] if step_outcome else [])


# ------------------------------------------------------------------ report ---

def environment():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    buf = io.StringIO()
    try:
        clstm.show_config(file=buf)
    except Exception:
        pass
    blas = next((line.split(":", 1)[1].strip() for line in buf.getvalue().splitlines()
                 if line.startswith("blas ")), "?")
    simd = next((line.split(":", 1)[1].strip() for line in buf.getvalue().splitlines()
                 if line.startswith("simd")), "?")
    return [f"CPU: {cpu}, {os.cpu_count()} logical CPUs",
            f"python {platform.python_version()}, numpy {np.__version__}, clstm {clstm.__version__} "
            f"(simd {simd}; BLAS {blas})",
            f"torch {torch.__version__ if torch else 'not available'}, onnxruntime "
            f"{onnxruntime.__version__ if onnxruntime else 'not available'}"]


def report_sections(results, settings, targets, notes):
    """(title, table header, rows, extra lines) per section, in order."""
    sections = []
    for n, res in results.items():
        header, rows = thread_table(res)
        extra = [line for line in [gemm_line(res, settings.dtype)] if line]
        sections.append((f"{n} thread{'s' if n > 1 else ''}, {np.dtype(settings.dtype).name}",
                         header, rows, extra))
    if targets is None:
        sections.append(("Targets", None, None,
                         [f"not evaluated: the targets are for {TARGET_THREADS} threads, not run"]))
    else:
        sections.append((f"Targets ({TARGET_THREADS} threads, {np.dtype(settings.dtype).name})",
                         ["target", "measured", "bar", "status"], [t.row() for t in targets], notes))
    return sections


def print_report(sections, env, command):
    print()
    print(f"command: {command}")
    for line in env:
        print(line)
    for title, header, rows, extra in sections:
        print(f"\n== {title} ==")
        if header:
            print(text_table(header, rows))
        for line in extra:
            print(line)


def write_markdown(path, sections, env, command):
    lines = ["```", command, "```", ""] + [f"- {line}" for line in env]
    for title, header, rows, extra in sections:
        lines += ["", f"### {title}", ""]
        if header:
            lines += [markdown_table(header, rows), ""]
        lines += [f"{line}  " for line in extra]
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


# -------------------------------------------------------------------- main ---

def parse_args(argv, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--repeats", type=int, default=0,
                   help="rounds (one block per library each) per case and mode (default: 5 to 7)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--budget", type=float, default=None,
                   help="timed seconds per library, case and mode (default 1.5, quick 0.15)")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke test: few rounds, and {LARGE.label} skipped")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables and targets as Markdown")
    return p.parse_args(argv)


def make_settings(args):
    quick = args.quick
    return Settings(threads=args.threads, dtype=np.dtype(args.dtype).type,
                    budget_s=args.budget if args.budget is not None else (0.15 if quick else 1.5),
                    warmup_s=0.05 if quick else 0.3, min_rounds=3 if quick else 5,
                    max_rounds=3 if quick else 7, fixed_rounds=max(0, args.repeats),
                    cases=tuple(c for c in CASES if not (quick and c == LARGE)))


def main(argv=None, prog="python bench/compare.py"):
    args = parse_args(argv, prog)
    settings = make_settings(args)
    command = f"{prog} " + " ".join(sys.argv[1:] if argv is None else argv)
    skip_reason = {"torch": "torch not importable"} if torch is None else {}
    why_not_ort = ort_unavailable(settings.dtype, SMALL[0])
    notes = []
    if why_not_ort:
        skip_reason["ort"] = why_not_ort
        notes.append(f"onnxruntime skipped: {why_not_ort}")
    if torch is None:
        notes.append("torch skipped: not importable")
    if LARGE not in settings.cases:
        notes.append(f"{LARGE.label} skipped (--quick)")
    for note in notes:
        print(note)
    t0 = time.perf_counter()
    try:
        results = run_all(settings, why_not_ort is None, print)
    except Disagreement as exc:
        print(f"\nABORT: the libraries disagree, timings would be meaningless:\n  {exc}", file=sys.stderr)
        return 2
    step = None
    if settings.dtype == np.float32:
        set_threads(TARGET_THREADS)
        step = step_timings(settings)
        print("  step(): " + ", ".join(f"{k} {v * 1e6:.2f} us" for k, v in step.items()))
    print(f"total {time.perf_counter() - t0:.0f} s")
    targets = evaluate_targets(results, settings.dtype, skip_reason, step)
    sections = report_sections(results, settings, targets, notes)
    env = environment()
    print_report(sections, env, command)
    if args.markdown:
        write_markdown(args.markdown, sections, env, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
