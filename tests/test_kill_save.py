"""A save killed with SIGKILL (kill -9) leaves the previous file intact and
loadable.  A subprocess is stopped at each stage of an atomic save (temp file
created, half written, written but not synced, synced but not yet renamed)
and killed there; then forked savers are killed at random moments of a
save loop.  Every time, the file at the path loads and is bitwise either the
previous or the new model, never a mixture or a damaged file.  Killed saves
may leave a hidden temp file (.clstm-*.tmp) beside the target; loading never
looks at it."""
import multiprocessing
import os
import signal
import subprocess
import tempfile
import sys
import time

import numpy as np
import pytest

import clstm
from clstm.keras import Sequential, load_model, utils
from clstm.keras.layers import LSTM, Dense

# Children run away from the source tree: in a fresh clone its clstm/ has no
# compiled extension and would shadow the installed package.
CHILD_CWD = tempfile.gettempdir()


_CHILD = r"""
import io, os, sys, time
import numpy as np
from clstm.keras import load_model, saving

path, stage = sys.argv[1], sys.argv[2]
model = load_model(path)
model.set_weights([w + 1 for w in model.get_weights()])     # the new version

def at(name):
    if name == stage:
        print("AT", name, flush=True)
        time.sleep(60)

real_savez, real_fsync, real_replace = np.savez, os.fsync, os.replace

def savez(f, **arrays):
    at("opened")
    buf = io.BytesIO()
    real_savez(buf, **arrays)
    data = buf.getvalue()
    f.write(data[:len(data) // 2])
    f.flush()
    at("half-written")
    f.write(data[len(data) // 2:])
    f.flush()
    at("written")

def fsync(fd):
    real_fsync(fd)

def replace(a, b):
    at("synced")
    real_replace(a, b)

np.savez, os.fsync, os.replace = savez, fsync, replace
model.save(path)
print("SAVED", flush=True)
"""

STAGES = ["opened", "half-written", "written", "synced"]


def _model():
    utils.set_random_seed(7)
    m = Sequential([LSTM(256, input_shape=(4, 32)), Dense(3)])   # ~1.3 MB of weights
    m.compile(optimizer="adam", loss="mse")
    return m


def _weights(path):
    return load_model(path).get_weights()


def _is(ws, ref):
    return all(np.array_equal(a, b) for a, b in zip(ws, ref))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Loading runs LAPACK (the orthogonal initializer): one thread keeps it
    fast on a loaded machine; the subject here is files, not speed."""
    before = clstm.get_num_threads()
    clstm.set_num_threads(1)
    yield
    clstm.set_num_threads(before)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill")
    path = d / "model.clstm"
    m = _model()
    m.save(path)
    old = m.get_weights()
    return d, path, old, [w + 1 for w in old]


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_at_each_stage_of_a_save_keeps_the_previous_file(saved, stage):
    d, path, old, _ = saved
    before = path.read_bytes()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), stage], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=CHILD_CWD)
    try:
        line = child.stdout.readline()
        assert line.strip() == f"AT {stage}", line + child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert path.read_bytes() == before                 # untouched, byte for byte
    assert _is(_weights(path), old)
    leftovers = [p for p in d.iterdir() if p.name.startswith(".clstm-")]
    assert all(p.name.endswith(".tmp") for p in leftovers)
    for p in leftovers:
        p.unlink()


def _save_loop(m, path, old, new, ready):
    """Saves the new and the old version alternately until killed (the model
    comes with the fork: the child runs no BLAS or LAPACK)."""
    k = 0
    while True:
        m.set_weights(new if k % 2 == 0 else old)
        m.save(path)
        k += 1
        if k == 2:
            ready.set()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="needs fork")
def test_kill_9_at_random_moments_of_a_save_loop(saved):
    """12 savers killed at random times in their loop: after each kill the
    file is one complete version, and the next loader sees it."""
    d, path, old, new = saved
    ctx = multiprocessing.get_context("fork")
    rng = np.random.default_rng(0)
    seen = {"old": 0, "new": 0, "mid_write": 0}
    model = _model()
    for i in range(12):
        ready = ctx.Event()
        p = ctx.Process(target=_save_loop, args=(model, str(path), old, new, ready))
        p.start()
        assert ready.wait(60)
        time.sleep(float(rng.uniform(0, 0.05)))
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert p.exitcode == -signal.SIGKILL
        ws = _weights(path)
        assert _is(ws, old) or _is(ws, new), f"kill {i}: the file is neither version"
        seen["old" if _is(ws, old) else "new"] += 1
        temps = [q for q in d.iterdir() if q.name.startswith(".clstm-")]
        seen["mid_write"] += bool(temps)          # this kill interrupted a write
        for q in temps:
            q.unlink()
    print(f"\nkill -9 loop: 12 kills, {seen['mid_write']} during a write; the file held "
          f"the old version {seen['old']} times, the new {seen['new']}")
    assert seen["mid_write"] > 0                  # the test did interrupt saves
