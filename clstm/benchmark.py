"""Compare clstm with torch.nn.LSTM and onnxruntime's LSTM, in one process.

What is measured
  Single-layer unidirectional LSTMs of five shapes (T, B, I, H), in two modes:
  "forward" (inference: clstm ``lstm(x)``, torch under ``inference_mode``,
  onnxruntime ``session.run``) and "fwd+bwd" (one training step without the
  optimizer: clstm ``forward(x, train=True)`` then ``backward(dy)``, torch
  ``lstm(x)`` then ``y.backward(dy)`` with the parameters' grads cleared
  first and x requiring grad, so that both compute dx, dW and db; onnxruntime
  has no backward).  Every library gets the same weights
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
  session with intra_op_num_threads=n and spinning disabled.  Before anything
  is timed, glibc's malloc is set to keep large freed blocks for reuse
  (--malloc steady, the default): with its own settings (--malloc default)
  a block over 32 MB is mapped afresh by each malloc unless the heap
  happens to hold that much free memory, so torch's fwd+bwd paid ~1-2 us
  per 4 KB page of its temporaries each call, or not, according to what
  the process had run before.  The rate of a
  large BLAS GEMM is timed in the largest forward case's rounds, as the
  yardstick for clstm's GFLOP/s there.  Last, the performance targets are
  printed with PASS or MISS.

Training epoch ("epoch", float32)
  The seed model of clstm.keras, Sequential([LSTM(50, input_shape=(60, 1)),
  Dense(1)]) compiled with Adam and MSE, against the same loop written in
  torch (nn.LSTM(1, 50, batch_first=True), nn.Linear(50, 1) on the last
  output, torch.optim.Adam with Keras's defaults, MSELoss, batch 32, a fresh
  shuffle each epoch, the loss read back per batch as fit() does), on the
  same 2048 windows of 60 steps x 1 feature (a noisy two-sine series, fixed
  seed) and from the same initial weights (torch's, copied).  First one
  epoch of each must lower the loss over the whole set (else the script
  aborts); then whole epochs, clstm ``fit(x, y, epochs=1, batch_size=32,
  verbose=0)`` (no validation), are timed in interleaved rounds as above.

Peak memory ("memory", float32, B=16, I=256, H=512)
  Each measurement runs in a fresh interpreter that imports only the library
  measured, builds the model and the input, calls it once on 2 steps (thread
  pools started), then records ru_maxrss before and after one call:
  inference (clstm ``lstm(x)``, torch under inference_mode) at T = 2000 and
  8000, and training (forward(train=True) + backward, torch forward +
  backward) at T = 2000.  The growth is printed beside the output's own size
  (T*B*H*4 bytes) for inference and beside what BPTT must keep (gates
  T*B*4H, cell states and outputs T*B*H each, 4 bytes apiece) for training.
  The interpreter is started through a small launcher process, because
  ru_maxrss inherits, through exec, the peak of the process that execs, and
  on Linux the peak is reset (/proc/self/clear_refs) just before the call,
  so the growth is the call's own peak over the memory held before it.
  These interpreters keep the C library's malloc settings.

Usage (the same program either way; bench/compare.py is the repository's entry)
  python -m clstm bench [--threads 1 2] [--repeats N] [--dtype float32|float64|both]
                        [--only {lstm,epoch,memory} ...] [--quick] [--budget SECONDS]
                        [--markdown FILE] [--malloc steady|default]
  python bench/compare.py ...

  --only picks parts ("lstm": the shapes above and step(); "epoch"; "memory");
  the default runs them all.  "epoch" and "memory" are float32 measurements
  and run when float32 is among --dtype.  Without torch (or onnxruntime) the
  missing library's columns print "-" and its targets SKIP.
"""
import argparse
import ctypes
import dataclasses
import gc
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas as scipy_blas

import clstm

try:
    import resource   # minor page faults per call (Unix)
except ImportError:
    resource = None

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
    # x requires grad: torch then computes dx, as clstm's backward always does
    # ("all gradients"); without it torch skips the dX GEMM, 1/6 of the work.
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    dyt = torch.from_numpy(dy)
    params = list(model.parameters())

    def step():
        for p in params:
            p.grad = None
        xt.grad = None
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


def minor_faults():
    """The process's minor page faults so far (None where not measurable)."""
    return None if resource is None else resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# glibc serves a block over its mmap threshold (at most 32 MB by default) by
# a fresh mapping, unless its heap happens to hold that much free memory, so
# a library whose per-call temporaries are that large pays a page fault per
# 4 KB page on every call, or not, according to how the heap lies.  Session
# 11 measured torch's fwd+bwd at (50,64,512,1024) at 676 ms with ~45000
# faults a call and 598 ms with none; at (100,32,128,256) the state flipped
# from process to process.  The benchmark sets the thresholds so that no
# library pays for fresh pages.
KEEP_BYTES = 256 << 20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # glibc's mallopt parameter numbers


def glibc():
    """True where the C library is glibc on Linux (mallopt's parameters as above)
    and malloc is its own: an allocator put in front of it (ASan's, or
    jemalloc's or tcmalloc's through LD_PRELOAD) does not follow mallopt."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        first, libc = ctypes.CDLL(None).malloc, ctypes.CDLL("libc.so.6").malloc
    except (OSError, AttributeError):
        return False
    return ctypes.cast(first, ctypes.c_void_p).value == ctypes.cast(libc, ctypes.c_void_p).value


def steady_malloc(keep=KEEP_BYTES):
    """Have glibc's malloc serve blocks up to keep bytes from its heap and
    keep up to 2 keep bytes of freed memory (mallopt M_MMAP_THRESHOLD and
    M_TRIM_THRESHOLD), so per-call temporaries are reused, not mapped fresh.
    Returns the report's line about it, or None where the C library is not
    glibc (nothing is changed then)."""
    if not glibc():
        return None
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not mallopt(M_MMAP_THRESHOLD, keep):   # refused: nothing changed
        return None
    mallopt(M_TRIM_THRESHOLD, 2 * keep)
    return (f"malloc: glibc serving blocks up to {keep >> 20} MB from its heap and keeping freed "
            f"memory (--malloc steady: mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)")


def malloc_setting(choice):
    """Applies --malloc's choice; the report's line about the allocator."""
    if choice == "steady":
        line = steady_malloc()
        if line:
            return line
        return ("malloc: the C library's own settings (--malloc steady: malloc is not glibc's, "
                "or its mallopt refused the threshold)")
    return "malloc: the C library's own settings (--malloc default)"


def run_block(fn, lead_in, calls, samples, faults=None):
    """Pause, run fn lead_in times untimed, then calls times timed; faults,
    if a list, gets the block's minor page faults per timed call."""
    time.sleep(SPIN_OUT_S)
    for _ in range(lead_in):
        fn()
    f0 = minor_faults()
    for _ in range(calls):
        timed_call(fn, samples)
    if faults is not None and f0 is not None:
        faults.append((minor_faults() - f0) / calls)


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
    """({name: median seconds per call}, rounds, {name: median minor page
    faults per call}) over rounds of blocks (the first callable rotating from
    round to round).  The faults are empty where the OS does not count them;
    a library whose big temporaries come fresh from the OS each call pays
    ~1-2 us per 4 KB page, and whether they do can depend on what the process
    ran before (see FAULTS_NOTE)."""
    plan = plan_blocks(warm_up(fns, settings), settings)
    names = list(fns)
    samples = {name: [] for name in names}
    faults = {name: [] for name in names}
    gc.collect()
    gc.disable()
    try:
        for r in range(plan.rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                run_block(fns[name], plan.lead_in[name], plan.calls[name], samples[name], faults[name])
    finally:
        gc.enable()
    return ({name: statistics.median(s) for name, s in samples.items()}, plan.rounds,
            {name: statistics.median(f) for name, f in faults.items() if f})


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
    """Check agreement, then time both modes; {mode: ({name: s}, rounds, {name: faults})}."""
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
    """{threads: {(case, mode): ({name: median s}, rounds, {name: median faults})}}."""
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


# ------------------------------------------------------------------ epoch ---
# One training epoch of the seed model (clstm.keras) against the same loop in
# torch, float32, same data, same initial weights.

EPOCH_WINDOWS = 2048    # samples per epoch
EPOCH_STEPS = 60        # time steps per window (1 feature)
EPOCH_UNITS = 50
EPOCH_BATCH = 32
EPOCH_BAR = 2.5         # torch/clstm, whole epochs, at TARGET_THREADS threads


class SanityError(AssertionError):
    pass


def epoch_data(windows=EPOCH_WINDOWS, steps=EPOCH_STEPS):
    """x (windows, steps, 1): windows of a noisy two-sine series; y (windows,
    1): the value after each window.  float32, fixed seed."""
    rng = np.random.default_rng(SEED + 2)
    t = np.arange(windows + steps)
    series = (np.sin(2 * np.pi * t / 50) + 0.5 * np.sin(2 * np.pi * t / 13)
              + 0.1 * rng.standard_normal(t.size)).astype(np.float32)
    x = series[np.arange(windows)[:, None] + np.arange(steps)][..., None]
    y = series[steps:steps + windows, None].copy()
    return x, y


def torch_seed_model(features=1, units=EPOCH_UNITS):
    """nn.LSTM(features, units) + nn.Linear(units, 1) on the last output,
    batch-major as Keras, with torch's initialization under SEED."""
    class SeedModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(features, units, batch_first=True)
            self.dense = torch.nn.Linear(units, 1)

        def forward(self, x):
            out, _ = self.lstm(x)
            return self.dense(out[:, -1])

    torch.manual_seed(SEED)
    return SeedModel()


def keras_weights_from_torch(net):
    """The torch seed model's weights in clstm.keras's order and layout:
    LSTM kernel (F, 4H), recurrent_kernel (H, 4H), bias (4H) (gate order i, f,
    g/c, o in both), Dense kernel (H, 1), bias (1)."""
    sd = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    return [sd["lstm.weight_ih_l0"].T, sd["lstm.weight_hh_l0"].T,
            sd["lstm.bias_ih_l0"] + sd["lstm.bias_hh_l0"],
            sd["dense.weight"].T, sd["dense.bias"]]


def clstm_seed_model(features=1, steps=EPOCH_STEPS, units=EPOCH_UNITS, weights=None):
    """Sequential([LSTM(units, input_shape=(steps, features)), Dense(1)]),
    compiled with Adam and MSE; weights in Keras order, else clstm's init."""
    from clstm import keras
    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.layers.LSTM(units, input_shape=(steps, features)),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    if weights is not None:
        model.set_weights(weights)
    return model


def clstm_epoch(model, x, y, batch=EPOCH_BATCH):
    return lambda: model.fit(x, y, epochs=1, batch_size=batch, verbose=0)


def torch_epoch(net, x, y, batch=EPOCH_BATCH):
    """A callable running one epoch of the usual torch loop (shuffled batches:
    zero_grad, forward, MSE, backward, Adam step, loss.item()); returns the
    mean batch loss."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)  # Keras's Adam defaults
    loss_fn = torch.nn.MSELoss()
    gen = torch.Generator().manual_seed(SEED)
    n = len(x)

    def epoch():
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for a in range(0, n, batch):
            idx = order[a:a + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        return total / n
    return epoch


def torch_loss(net, x, y):
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(net(torch.from_numpy(x)), torch.from_numpy(y)))


def build_epoch_callables(x, y):
    """{library: one-epoch callable} and the sanity check's losses
    {library: (before, after one epoch)}; raises SanityError when the two
    start from different losses or an epoch does not lower the loss."""
    net = torch_seed_model(x.shape[2]) if torch is not None else None
    model = clstm_seed_model(x.shape[2], x.shape[1],
                             weights=keras_weights_from_torch(net) if net is not None else None)
    fns = {"clstm": clstm_epoch(model, x, y)}
    losses = {"clstm": model.evaluate(x, y, batch_size=len(x), verbose=0)}
    if net is not None:
        fns["torch"] = torch_epoch(net, x, y)
        losses["torch"] = torch_loss(net, x, y)
        if not abs(losses["clstm"] - losses["torch"]) <= 1e-4 * losses["torch"]:
            raise SanityError(f"seed model before training: clstm loss {losses['clstm']:.6g}, torch "
                              f"{losses['torch']:.6g} from the same weights")
    for lib, fn in fns.items():
        fn()
        after = (model.evaluate(x, y, batch_size=len(x), verbose=0) if lib == "clstm"
                 else torch_loss(net, x, y))
        losses[lib] = (losses[lib], after)
        if not after < losses[lib][0]:
            raise SanityError(f"seed model: one epoch of {lib} did not lower the loss "
                              f"({losses[lib][0]:.6g} -> {after:.6g})")
    return fns, losses


def run_epoch(settings, log):
    """{threads: ({library: median s per epoch}, rounds)} and the sanity losses."""
    x, y = epoch_data()
    results, losses = {}, None
    for n in settings.threads:
        set_threads(n)
        t0 = time.perf_counter()
        fns, checked = build_epoch_callables(x, y)
        losses = losses or checked
        results[n] = time_interleaved(fns, settings)[:2]
        log(f"  threads={n} epoch (seed model): checked and timed in {time.perf_counter() - t0:.1f} s")
        time.sleep(SETTLE_S)
    return results, losses


# ----------------------------------------------------------------- memory ---
# Peak RSS of one call, each in a fresh interpreter importing only the library
# measured.  The interpreter is started by a small launcher: the kernel gives
# an exec'd process the peak RSS of the process that exec'd (ru_maxrss would
# start at this benchmark's own peak), and a launcher that is a bare Python
# brings that floor down to ~10 MB.  On Linux the peak is then reset just
# before the call (writing 5 to /proc/self/clear_refs), so ru_maxrss after the
# call minus ru_maxrss before it is the call's peak over what was held before.

MEMORY_SHAPE = (16, 256, 512)     # B, I, H
MEMORY_INFER_T = (2000, 8000)
MEMORY_TRAIN_T = (2000,)
# Inference may grow by the output + this: the core's fixed workspace (weights
# packed per call, (I+H)*4H values, 6 MiB here, and a gate chunk of at most
# 4 MiB), whatever T is.
MEMORY_SLACK_MB = 16
MB = 2 ** 20

MEMORY_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"

MEMORY_CHILD = r'''
import gc, json, resource, sys
import numpy as np

spec = json.loads(sys.argv[1])
lib, mode, threads = spec["lib"], spec["mode"], spec["threads"]
T, B, I, H = spec["T"], spec["B"], spec["I"], spec["H"]


def maxrss():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024   # bytes on macOS, KiB elsewhere


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, I), dtype=np.float32)
dy = rng.standard_normal((T, B, H), dtype=np.float32)
if lib == "clstm":
    import clstm
    clstm.set_num_threads(threads)
    model = clstm.LSTM(I, H, seed=0)

    def call(x, dy):
        if mode == "inference":
            return model(x)
        model.forward(x, train=True)
        return model.backward(dy)
else:
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torch.nn.LSTM(I, H)

    def call(x, dy):
        if mode == "inference":
            with torch.inference_mode():
                return model(torch.from_numpy(x))
        for p in model.parameters():
            p.grad = None
        y, _ = model(torch.from_numpy(x))
        y.backward(torch.from_numpy(dy))
        return y.detach()

call(x[:2], dy[:2])      # thread pools and lazy set-up, outside the measurement
gc.collect()
reset = reset_peak()
before = maxrss()
out = call(x, dy)
after = maxrss()
print(json.dumps({"before": before, "after": after, "reset": reset}))
'''


@dataclass(frozen=True)
class MemoryCase:
    mode: str       # "inference" or "training"
    T: int

    def reference(self):
        """(what, bytes): the output's size for inference; what BPTT must keep
        (gates T*B*4H, cell states and outputs T*B*H each) for training."""
        B, _, H = MEMORY_SHAPE
        if self.mode == "inference":
            return "output", self.T * B * H * 4
        return "BPTT state", self.T * B * 6 * H * 4


def memory_cases(quick):
    infer = MEMORY_INFER_T[:1] if quick else MEMORY_INFER_T
    return ([MemoryCase("inference", t) for t in infer]
            + [MemoryCase("training", t) for t in MEMORY_TRAIN_T])


def measure_memory(lib, case, threads, timeout=900):
    """The RSS growth of one call in a fresh interpreter, in bytes, and
    whether the peak was reset before it; (None, reason) on failure."""
    B, I, H = MEMORY_SHAPE
    spec = json.dumps({"lib": lib, "mode": case.mode, "threads": threads,
                       "T": case.T, "B": B, "I": I, "H": H})
    # Run where this process found clstm, so the child imports the same build.
    root = os.path.dirname(os.path.dirname(os.path.abspath(clstm.__file__)))
    try:
        proc = subprocess.run([sys.executable, "-c", MEMORY_LAUNCHER, sys.executable, "-c",
                               MEMORY_CHILD, spec], cwd=root, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return None, last
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    return got["after"] - got["before"], got["reset"]


def run_memory(quick, log, threads=TARGET_THREADS):
    """{(case, library): growth bytes or None}, and notes."""
    libs = ["clstm"] + (["torch"] if torch is not None else [])
    growth, notes, not_reset = {}, [], False
    for case in memory_cases(quick):
        for lib in libs:
            t0 = time.perf_counter()
            value, info = measure_memory(lib, case, threads)
            growth[(case, lib)] = value
            if value is None:
                notes.append(f"{lib} {case.mode} T={case.T} failed: {info}")
            elif not info:
                not_reset = True
            log(f"  memory {lib} {case.mode} T={case.T}: "
                f"{'-' if value is None else f'{value / MB:.1f} MB'} in {time.perf_counter() - t0:.1f} s")
    if not_reset:
        notes.append("peak RSS could not be reset before the call (no /proc/self/clear_refs): "
                     "a higher peak before the call hides part of the growth (a lower bound)")
    if quick:
        notes.append(f"memory: T={MEMORY_INFER_T[1]} skipped (--quick)")
    return growth, notes


# -------------------------------------------------------------- reporting ---

def fmt_ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.2f}"


def fmt_ratio(other, mine):
    return "-" if other is None or mine is None else f"{other / mine:.2f}"


def fmt_count(n):
    return "-" if n is None else f"{n:.0f}"


FAULTS_NOTE = (
    "page faults/call: minor page faults per timed call (median of the blocks).  A library "
    "whose temporaries come fresh from the OS pays ~1-2 us per 4 KB page each call.  With "
    "glibc's own settings (--malloc default) a block over 32 MB is mapped afresh unless the "
    "heap happens to hold that much free memory, so whether torch's fwd+bwd temporaries "
    "came fresh each call depended on what the process had run before: at (100,32,128,256) "
    "~8300 faults a call and ~1.3x slower in some processes, none in others; at "
    "(50,64,512,1024) ~45000-75000 faults and ~1.13x slower.  The default run "
    "(--malloc steady) has glibc keep such blocks for reuse, so that no library pays that "
    "cost and the ratios do not depend on the process's history (bench/RESULTS.md, "
    "sessions 10-11).")


def thread_table(res):
    """Header and rows for one thread count."""
    header = ["shape (T,B,I,H)", "mode", "rounds", "clstm ms", "torch ms", "ort ms",
              "torch/clstm", "ort/clstm", "page faults/call clstm, torch, ort"]
    rows = []
    for case in CASES:
        for mode in MODES:
            if (case, mode) not in res:
                continue
            med, rounds, faults = res[(case, mode)]
            c, t, o = (med.get(lib) for lib in LIBS)
            counts = ", ".join(fmt_count(faults.get(lib)) for lib in LIBS)
            rows.append([case.label, mode, str(rounds), fmt_ms(c), fmt_ms(t), fmt_ms(o),
                         fmt_ratio(t, c), fmt_ratio(o, c), counts])
    return header, rows


def gemm_line(res, dtype):
    """clstm's forward GFLOP/s on LARGE against the GEMM timed in the same rounds."""
    if (LARGE, "forward") not in res:
        return None
    med = res[(LARGE, "forward")][0]
    gemm_rate = 2 * GEMM_SIZE ** 3 / med["gemm"] / 1e9
    rate = LARGE.forward_flops / med["clstm"] / 1e9
    name = "sgemm" if dtype == np.float32 else "dgemm"
    return (f"{LARGE.label} forward: clstm {rate:.1f} GFLOP/s = {100 * rate / gemm_rate:.1f}% of "
            f"{name} {GEMM_SIZE}^3 ({gemm_rate:.1f} GFLOP/s, median, same rounds)")


def epoch_table(epoch):
    """Header and rows: whole epochs of the seed model per thread count."""
    header = ["threads", "rounds", "clstm ms", "torch ms", "torch/clstm"]
    rows = [[str(n), str(rounds), fmt_ms(med.get("clstm")), fmt_ms(med.get("torch")),
             fmt_ratio(med.get("torch"), med.get("clstm"))] for n, (med, rounds) in epoch.items()]
    return header, rows


def epoch_lines(losses):
    same = "; both from torch's initial weights" if "torch" in losses else ""
    return ["sanity: full-set MSE before -> after one epoch: " + ", ".join(
        f"{lib} {a:.4f} -> {b:.4f}" for lib, (a, b) in losses.items()),
        f"{EPOCH_WINDOWS} windows of {EPOCH_STEPS} steps x 1 feature, batch {EPOCH_BATCH}, "
        f"LSTM({EPOCH_UNITS}) + Dense(1), Adam, MSE, float32{same}"]


def fmt_mb(nbytes):
    return "-" if nbytes is None else f"{nbytes / MB:.1f}"


def memory_table(growth):
    """Header and rows: RSS growth of one call per library, beside the
    reference size (the output, or what BPTT must keep)."""
    header = ["run", "T", "clstm MB", "torch MB", "reference", "reference MB"]
    rows = []
    for case in dict.fromkeys(case for case, _ in growth):
        what, size = case.reference()
        rows.append([case.mode, str(case.T), fmt_mb(growth.get((case, "clstm"))),
                     fmt_mb(growth.get((case, "torch"))), what, fmt_mb(size)])
    return header, rows


def memory_lines():
    B, I, H = MEMORY_SHAPE
    return [f"B={B}, I={I}, H={H}, float32, {TARGET_THREADS} threads; peak RSS growth (ru_maxrss) of "
            f"one call, each in a fresh interpreter",
            "reference: output = T*B*H*4 bytes; BPTT state = gates T*B*4H + cell states T*B*H "
            "+ outputs T*B*H, 4 bytes each (clstm's training figure also holds dx, T*B*I*4)"]


TEXT_COLUMNS = ("shape (T,B,I,H)", "mode", "target", "measured", "status", "run", "reference")


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


def ratio_target(res, case, mode, lib, bar, skip_reason, suffix=""):
    what = f"{mode} vs {lib} {case.label}{suffix}"
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
    med = res[(LARGE, "forward")][0]
    share = (LARGE.forward_flops / med["clstm"]) / (2 * GEMM_SIZE ** 3 / med["gemm"])
    return Outcome(what, f"{share:.1%}", f">= {GEMM_FRACTION:.0%}",
                   "PASS" if share >= GEMM_FRACTION else "MISS")


def scaling_targets(results, suffix=""):
    if not {1, TARGET_THREADS} <= set(results):
        return []
    out = []
    for case in SCALING_CASES:
        for mode in MODES:
            if (case, mode) not in results[1]:
                continue
            one, two = (results[n][(case, mode)][0]["clstm"] for n in (1, TARGET_THREADS))
            out.append(Outcome(f"clstm {mode} {case.label} {TARGET_THREADS} threads vs 1{suffix}",
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
    """The issue's LSTM targets at TARGET_THREADS threads for one dtype (None
    if not run); float64 lines say so."""
    if TARGET_THREADS not in results:
        return None
    res = results[TARGET_THREADS]
    out = []
    if dtype == np.float32:
        out += [ratio_target(res, c, "forward", "ort", bar, skip_reason) for c, bar in FORWARD_VS_ORT.items()]
        out.append(gemm_target(res, dtype))
        out += [ratio_target(res, c, "forward", "torch", 1.0, skip_reason) for c in CASES]
        out += [ratio_target(res, c, "fwd+bwd", "torch", bar, skip_reason) for c, bar in FWDBWD_VS_TORCH.items()]
        suffix = ""
    else:
        suffix = f" {np.dtype(dtype).name}"
        out += [ratio_target(res, c, m, "torch", 1.0, skip_reason, suffix) for c in CASES for m in MODES]
    step_outcome = step_target(step)
    return out + scaling_targets(results, suffix) + ([step_outcome] if step_outcome else [])


def epoch_target(epoch, skip_reason):
    what = "training epoch (seed model)"
    bar = f">= {EPOCH_BAR:.2f}"
    if TARGET_THREADS not in epoch:
        return Outcome(what, "-", bar, f"SKIP ({TARGET_THREADS} threads not run)")
    med = epoch[TARGET_THREADS][0]
    if "torch" not in med:
        return Outcome(what, "-", bar, f"SKIP ({skip_reason.get('torch', 'not run')})")
    ratio = med["torch"] / med["clstm"]
    return Outcome(what, f"torch/clstm = {ratio:.2f}", bar, "PASS" if ratio >= EPOCH_BAR else "MISS")


def memory_targets(growth):
    """clstm's inference growth against the output's size + MEMORY_SLACK_MB,
    per T (the issue asks for reports only; this is its one bar)."""
    out = []
    for case in dict.fromkeys(case for case, _ in growth):
        if case.mode != "inference":
            continue
        what = f"clstm inference RSS growth T={case.T}"
        bar = f"<= output + {MEMORY_SLACK_MB} MB"
        got, (_, size) = growth.get((case, "clstm")), case.reference()
        if got is None:
            out.append(Outcome(what, "-", bar, "SKIP (failed)"))
            continue
        out.append(Outcome(what, f"{got / MB:.1f} MB = output {size / MB:.1f} + {(got - size) / MB:.1f}", bar,
                           "PASS" if got <= size + MEMORY_SLACK_MB * MB else "MISS"))
    return out


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


def report_sections(parts, targets, notes):
    """(title, table header, rows, extra lines) per section, in order.  parts:
    "lstm" {dtype name: {threads: results}}, "epoch" (results, losses),
    "memory" (growth, notes), each present when run."""
    sections = []
    for name, results in parts.get("lstm", {}).items():
        for n, res in results.items():
            header, rows = thread_table(res)
            extra = [line for line in [gemm_line(res, np.dtype(name).type)] if line]
            if not sections:   # once, under the first table
                extra.append(FAULTS_NOTE)
            sections.append((f"{n} thread{'s' if n > 1 else ''}, {name}", header, rows, extra))
    if "epoch" in parts:
        epoch, losses = parts["epoch"]
        header, rows = epoch_table(epoch)
        sections.append(("Training epoch, seed model (float32)", header, rows, epoch_lines(losses)))
    if "memory" in parts:
        growth, memory_notes = parts["memory"]
        header, rows = memory_table(growth)
        sections.append(("Peak memory (RSS growth of one call)", header, rows,
                         memory_lines() + memory_notes))
    dtypes = " + ".join(parts.get("lstm", {}) or ["float32"])
    if targets:
        sections.append((f"Targets ({TARGET_THREADS} threads, {dtypes})",
                         ["target", "measured", "bar", "status"], [t.row() for t in targets], notes))
    else:
        sections.append(("Targets", None, None, notes or ["none evaluated"]))
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

PARTS = ("lstm", "epoch", "memory")
FLOAT32_PARTS = ("epoch", "memory")


def parse_args(argv, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    p.add_argument("--repeats", type=int, default=0,
                   help="rounds (one block per library each) per case and mode (default: 5 to 7)")
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default="float32",
                   help="of the LSTM shapes (both: float32, then float64); the epoch and memory "
                        "parts are float32 and run when float32 is included")
    p.add_argument("--only", nargs="+", choices=PARTS, metavar="PART",
                   help="run only these parts: lstm (the shapes and step()), epoch (a training "
                        "epoch of the seed model), memory (peak RSS); default: all")
    p.add_argument("--budget", type=float, default=None,
                   help="timed seconds per library, case and mode (default 1.5, quick 0.15)")
    p.add_argument("--quick", action="store_true",
                   help=f"a smoke test: few rounds, {LARGE.label} and memory at "
                        f"T={MEMORY_INFER_T[-1]} skipped")
    p.add_argument("--markdown", metavar="FILE", help="also write the tables and targets as Markdown")
    p.add_argument("--malloc", choices=["steady", "default"], default="steady",
                   help="steady (default): glibc keeps large freed blocks for reuse, so no "
                        "library's per-call temporaries are mapped fresh each call (the peak "
                        "memory part keeps the C library's settings); default: the C library's "
                        "own settings, under which torch's fwd+bwd times depend on what the "
                        "process ran before")
    return p.parse_args(argv)


def make_settings(args):
    quick = args.quick
    return Settings(threads=args.threads,
                    dtype=np.dtype("float32" if args.dtype == "both" else args.dtype).type,
                    budget_s=args.budget if args.budget is not None else (0.15 if quick else 1.5),
                    warmup_s=0.05 if quick else 0.3, min_rounds=3 if quick else 5,
                    max_rounds=3 if quick else 7, fixed_rounds=max(0, args.repeats),
                    cases=tuple(c for c in CASES if not (quick and c == LARGE)))


def run_lstm(settings, skip_reason, notes, log):
    """Results of the shapes (and step() in float32) for one dtype, and their
    targets (None when TARGET_THREADS is not among the thread counts)."""
    name = np.dtype(settings.dtype).name
    reasons = dict(skip_reason)
    why_not_ort = ort_unavailable(settings.dtype, SMALL[0])
    if why_not_ort:
        reasons["ort"] = why_not_ort
        notes.append(f"onnxruntime skipped ({name}): {why_not_ort}")
        log(notes[-1])
    results = run_all(settings, why_not_ort is None, log)
    step = None
    if settings.dtype == np.float32:
        set_threads(TARGET_THREADS)
        step = step_timings(settings)
        log("  step(): " + ", ".join(f"{k} {v * 1e6:.2f} us" for k, v in step.items()))
    targets = evaluate_targets(results, settings.dtype, reasons, step)
    if targets is None:
        notes.append(f"{name} LSTM targets not evaluated: they are for {TARGET_THREADS} threads, not run")
    return results, targets or []


def main(argv=None, prog="python bench/compare.py"):
    args = parse_args(argv, prog)
    settings = make_settings(args)
    command = f"{prog} " + " ".join(sys.argv[1:] if argv is None else argv)
    parts = list(dict.fromkeys(args.only or PARTS))
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]
    notes = []
    if "float32" not in dtypes and any(p in FLOAT32_PARTS for p in parts):
        dropped = [p for p in parts if p in FLOAT32_PARTS]
        parts = [p for p in parts if p not in FLOAT32_PARTS]
        notes.append(f"{' and '.join(dropped)} skipped: float32 measurements (--dtype float32 or both)")
    skip_reason = {"torch": "torch not importable"} if torch is None else {}
    if torch is None:
        notes.append("torch skipped: not importable")
    if "lstm" in parts and LARGE not in settings.cases:
        notes.append(f"{LARGE.label} skipped (--quick)")
    for note in notes:
        print(note)
    if not parts:
        print("nothing to run", file=sys.stderr)
        return 2
    malloc_line = malloc_setting(args.malloc)
    print(malloc_line)
    t0 = time.perf_counter()
    report, targets = {}, []
    try:
        if "lstm" in parts:
            report["lstm"] = {}
            for name in dtypes:
                results, lstm_targets = run_lstm(dataclasses.replace(settings, dtype=np.dtype(name).type),
                                                 skip_reason, notes, print)
                report["lstm"][name] = results
                targets += lstm_targets
        if "epoch" in parts:
            report["epoch"] = run_epoch(dataclasses.replace(settings, dtype=np.float32), print)
            targets.append(epoch_target(report["epoch"][0], skip_reason))
        if "memory" in parts:
            report["memory"] = run_memory(args.quick, print)
            targets += memory_targets(report["memory"][0])
    except Disagreement as exc:
        print(f"\nABORT: the libraries disagree, timings would be meaningless:\n  {exc}", file=sys.stderr)
        return 2
    except SanityError as exc:
        print(f"\nABORT: the training epochs failed their sanity check:\n  {exc}", file=sys.stderr)
        return 2
    print(f"total {time.perf_counter() - t0:.0f} s")
    sections = report_sections(report, targets, notes)
    env = environment() + [malloc_line]
    print_report(sections, env, command)
    if args.markdown:
        write_markdown(args.markdown, sections, env, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
