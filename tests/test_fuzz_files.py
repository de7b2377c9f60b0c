"""Model files under attack: random byte corruption, truncation, random edits
of the JSON header (with or without a forged checksum), foreign files, and
crafted size claims.  Loading either refuses the file with ModelFileError
(a ValueError) naming the file, or returns exactly the saved model; it never
unpickles, never raises anything else, and never allocates more than the file
holds.  Counts of refused / accepted files are printed by test_zz_report (-s).

Memory stays bounded even if a size check regresses: every load here runs
under an address-space limit (RLIMIT_AS, a few GB above the process's size;
not under the sanitizers, whose own allocator limit does that job), so a
regression is a MemoryError in the test, not the machine's OOM killer; the
crafted-config case that once took 24 GB runs in a capped subprocess."""
import contextlib
import copy
import io
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clstm.keras import ModelFileError, Sequential, load_model, optimizers, utils
from clstm.keras.layers import LSTM, Bidirectional, Dense, Embedding
from test_fuzz_common import core_contract, examples

pytestmark = [pytest.mark.usefixtures("core_contract"),
              # zipfile warns about the duplicate member names random foreign zips have
              pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")]

SANITIZED = os.environ.get("CLSTM_SANITIZED") == "1"
# children run away from the source tree (a fresh clone's clstm/ has no extension)
CHILD_CWD = tempfile.gettempdir()


def _vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextlib.contextmanager
def _memory_cap(headroom=2 << 30):
    """While the body runs, the process may map at most `headroom` bytes more
    than it has now: a load that tried to allocate GBs fails with MemoryError.
    Not under ASan (it reserves terabytes of address space; sanitize.sh caps
    its allocations instead) nor off Linux."""
    try:
        import resource
    except ImportError:
        resource = None
    if SANITIZED or resource is None or not sys.platform.startswith("linux"):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + headroom
    for cap in (soft, hard):
        if cap != resource.RLIM_INFINITY:
            limit = min(limit, cap)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _load_model_capped(path):
    with _memory_cap():
        return load_model(path)

COUNTS = {"bytes_refused": 0, "bytes_identical": 0, "header_refused": 0, "header_loaded": 0,
          "foreign_refused": 0}


def _model():
    """Named layers: the file's bytes, and so the derandomized cases drawn from
    them, do not depend on how many layers earlier tests made."""
    utils.set_random_seed(3)
    m = Sequential([Embedding(9, 3, mask_zero=True, input_shape=(5,), name="emb"),
                    Bidirectional(LSTM(3, return_sequences=True, name="lstm_a"), name="bidir"),
                    LSTM(2, name="lstm_b"), Dense(2, name="dense")])
    m.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    return m


MODEL = _model()
X = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
PRED = MODEL.predict(X)
_buf = {}


def _saved_bytes(kind):
    if kind not in _buf:
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m")
            (MODEL.save if kind == "model" else MODEL.save_weights)(p)
            with open(p, "rb") as f:
                _buf[kind] = f.read()
    return _buf[kind]


def _load(path, kind):
    if kind == "model":
        return _load_model_capped(path)
    m = _model()
    with _memory_cap():
        m.load_weights(path)
    return m


def _same_model(m):
    assert [type(l).__name__ for l in m.layers] == [type(l).__name__ for l in MODEL.layers]
    for a, b in zip(m.get_weights(), MODEL.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(m.predict(X), PRED)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("files")


MUTATIONS = ["flip", "flip", "truncate", "insert", "delete", "zero", "append", "swap"]


@settings(max_examples=examples("files_bytes"))
@given(st.sampled_from(["model", "model", "weights"]), st.sampled_from(MUTATIONS),
       st.integers(0, 2**32 - 1), st.integers(1, 16))
def test_corrupted_bytes_refused_or_identical(workdir, kind, how, seed, n):
    data = bytearray(_saved_bytes(kind))
    rng = np.random.default_rng(seed)
    pos = int(rng.integers(0, len(data)))
    if how == "flip":
        for p in rng.integers(0, len(data), n):
            data[p] ^= int(rng.integers(1, 256))
    elif how == "truncate":
        data = data[:pos]
    elif how == "insert":
        data[pos:pos] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    elif how == "delete":
        del data[pos:pos + n]
    elif how == "zero":
        data[pos:pos + n] = bytes(len(data[pos:pos + n]))
    elif how == "append":
        data += rng.integers(0, 256, n * 64, dtype=np.uint8).tobytes()
    else:
        q = int(rng.integers(0, len(data)))
        a, b = sorted((pos, q))
        data[a:a + n], data[b:b + n] = data[b:b + n], data[a:a + n]
    path = workdir / f"corrupt-{kind}"
    path.write_bytes(bytes(data))
    try:
        m = _load(path, kind)
    except ModelFileError as e:
        assert repr(str(path)) in str(e), str(e)          # the message names the file
        COUNTS["bytes_refused"] += 1
        return
    _same_model(m)            # the damage hit bytes that carry nothing (e.g. timestamps)
    COUNTS["bytes_identical"] += 1


def _header_and_arrays(kind="model"):
    with np.load(io.BytesIO(_saved_bytes(kind)), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(arrays.pop("__clstm__").tobytes()), arrays


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
              st.sampled_from([0, 1, -1, 2**31, 2**40, 1e308, 0.5]), st.text(max_size=6),
              st.sampled_from(["LSTM", "Dense", "float32", "O", "f8", "glorot_uniform", "adam"])),
    lambda kids: st.one_of(st.lists(kids, max_size=3),
                           st.dictionaries(st.text(max_size=5), kids, max_size=3)),
    max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=examples("files_header"))
@given(st.data())
def test_header_edits_refused_or_loaded_safely(workdir, data):
    """Random edits anywhere in the JSON header (the weights' checksum does not
    cover it): the file is refused with ModelFileError, or it loads into a
    model that holds exactly the file's weights and runs."""
    header, arrays = _header_and_arrays()
    paths = [p for p in _paths(header) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        node = header
        try:
            for k in path[:-1]:
                node = node[k]
            op = data.draw(st.sampled_from(["replace", "replace", "delete", "number"]))
            if op == "delete" and isinstance(node, dict):
                del node[path[-1]]
            elif op == "number" and isinstance(node[path[-1]], int) and \
                    not isinstance(node[path[-1]], bool):
                node[path[-1]] = node[path[-1]] * data.draw(st.sampled_from([0, -1, 2, 10**6]))
            else:
                node[path[-1]] = data.draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue                                       # an earlier edit removed it
    if data.draw(st.booleans()):    # forge: weights resized to what the header now says
        try:
            specs = header["weights"]
            for i, spec in enumerate(specs[:len(arrays)]):
                size = int(np.prod(spec["shape"]))
                if 0 <= size <= 10_000:
                    arrays[f"w{i}"] = np.zeros(spec["shape"], spec["dtype"])
            from clstm.keras.saving import _digest
            header["sha256"] = _digest([arrays[f"w{i}"] for i in range(len(specs))])
        except Exception:       # noqa: BLE001 - a header too broken to forge from
            pass
    path = workdir / "edited.clstm"
    try:
        blob = json.dumps(header).encode()
    except (ValueError, TypeError):
        return
    with open(path, "wb") as f:
        np.savez(f, __clstm__=np.frombuffer(blob, np.uint8), **arrays)
    try:
        m = _load_model_capped(path)
    except ModelFileError as e:
        assert repr(str(path)) in str(e), str(e)
        COUNTS["header_refused"] += 1
        return
    COUNTS["header_loaded"] += 1
    with np.load(path) as z:
        stored = [z[f"w{i}"] for i in range(len(m.get_weights()))]
    for a, b in zip(m.get_weights(), stored):
        np.testing.assert_array_equal(a, b)
    shape = m.input_shape[1:] if m.built else ()
    # run it only on a small input: an edited timestep count (2**31, say) is a
    # valid model (Embedding's weights do not depend on it), not a small input
    if shape and all(isinstance(d, int) and 0 <= d for d in shape) and np.prod(shape) <= 1000:
        x = np.ones((2,) + shape, np.float32)
        try:
            m.predict(x)
        except (ValueError, TypeError):
            pass                                           # refused with a clear error


@settings(max_examples=max(50, examples("files_bytes") // 5))
@given(st.one_of(st.binary(max_size=300), st.lists(
    st.tuples(st.text(min_size=1, max_size=12), st.binary(max_size=64)), max_size=4)))
def test_foreign_files_refused(workdir, content):
    path = workdir / "foreign"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with zipfile.ZipFile(path, "w") as z:
            for name, blob in content:
                z.writestr(name.replace("\x00", "_") or "x", blob)
    with pytest.raises(ModelFileError, match=re.escape(repr(str(path)))):
        _load_model_capped(path)
    COUNTS["foreign_refused"] += 1


# ---- crafted sizes: refused before allocation -------------------------------------------

def _write_npz(path, header, arrays, raw_members=()):
    with zipfile.ZipFile(path, "w") as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
            z.writestr(name + ".npy", buf.getvalue())
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.frombuffer(json.dumps(header).encode(), np.uint8))
        z.writestr("__clstm__.npy", buf.getvalue())
        for name, blob in raw_members:
            z.writestr(name, blob)


def _npy_claiming(shape, dtype="<f4", payload=b"\0" * 64):
    """A .npy member whose header claims `shape`, with only `payload` after it."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + payload


def _peak_mb(fn):
    """MB allocated at the peak while fn() runs (under the memory cap)."""
    tracemalloc.start()
    try:
        with _memory_cap():
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


@pytest.mark.parametrize("claim", [(2**40,), (2**20, 2**20), (2**62, 2**62), (2**28,)])
def test_npy_header_size_claims_refused_before_allocating(workdir, claim):
    header, arrays = _header_and_arrays()
    w0 = arrays.pop("w0")
    header["weights"][0] = {"shape": list(claim), "dtype": "float32"}
    path = workdir / "claim.clstm"
    _write_npz(path, header, arrays, [("w0.npy", _npy_claiming(claim, payload=w0.tobytes()))])
    peak = _peak_mb(lambda: pytest.raises(ModelFileError, load_model, path))
    assert peak < 20, f"{peak:.0f} MB allocated while refusing a {claim} claim"
    # the .npy header alone lying (JSON spec honest) is refused too
    header["weights"][0] = {"shape": list(w0.shape), "dtype": "float32"}
    _write_npz(path, header, arrays, [("w0.npy", _npy_claiming(claim, payload=w0.tobytes()))])
    peak = _peak_mb(lambda: pytest.raises(ModelFileError, load_model, path))
    assert peak < 20


def _crafted(workdir, name, edit):
    """The saved model's file with edit(header) applied (weights unchanged)."""
    header, arrays = _header_and_arrays()
    edit(header)
    path = workdir / name
    _write_npz(path, header, arrays)
    return path


def _set(*keys, value):
    def edit(header):
        node = header["config"]["layers"]
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return edit


_LSTM_UNITS = (2, "config", "units")                             # LSTM(2)
_INNER_UNITS = (1, "config", "layer", "config", "units")          # Bidirectional(LSTM(3))


@pytest.mark.parametrize("keys,value,message", [
    (_LSTM_UNITS, 2**26, r"layer '\w+' \(LSTM\) of the stored config asks for units=67108864, "
                         r"but no weight in the file has a dimension of 67108864 \(the file "
                         r"declares 12 weights of at most 12 per axis\)"),
    (_INNER_UNITS, 2**30, r"layer '\w+' \(LSTM\) of the stored config asks for "
                          r"units=1073741824, but no weight"),
    ((0, "config", "input_dim"), 2**40, r"layer '\w+' \(Embedding\) of the stored config asks "
                                        r"for input_dim=1099511627776, but no weight"),
    ((0, "config", "output_dim"), 10**6, r"layer '\w+' \(Embedding\) of the stored config "
                                         r"asks for output_dim=1000000, but no weight"),
    ((3, "config", "units"), 10**9, r"layer '\w+' \(Dense\) of the stored config asks for "
                                    r"units=1000000000, but no weight"),
    # 12 is a dimension the file has (4H of the first LSTMs), but LSTM(12)'s
    # recurrent kernel and bias alone are 4*12*12 + 48 = 624 values: with the
    # 27 + 2 * 48 counted before it, more than the file's 273 in all
    (_LSTM_UNITS, 12, r"the stored config needs at least 747 weight values up to layer "
                      r"'\w+' \(LSTM\), the file declares 273 in all"),
])
def test_config_sizes_bounded_before_any_layer_is_made(workdir, monkeypatch, keys, value,
                                                       message):
    """Every size in the stored config is checked against the weights the
    header declares before a single layer object exists: making one here is
    an AssertionError (which load_model does not turn into ModelFileError),
    so this test cannot allocate even if the check regresses."""
    from clstm.keras.layers import base

    def no_layers(self, *args, **kwargs):
        raise AssertionError("a layer was made before the config's sizes were checked")

    path = _crafted(workdir, "crafted.clstm", _set(*keys, value=value))
    monkeypatch.setattr(base.Layer, "__init__", no_layers)
    with pytest.raises(ModelFileError, match="^" + re.escape(repr(str(path))) + ": " + message):
        load_model(path)


def test_bidirectional_inner_layers_are_bounded_as_lstms(workdir, monkeypatch):
    """Bidirectional.from_config makes LSTMs of its inner configs whatever
    class they claim: a claim of Dropout does not hide their units."""
    def edit(header):
        inner = header["config"]["layers"][1]["config"]["backward_layer"]
        inner["class_name"] = "Dropout"
        inner["config"]["units"] = 2**26

    from clstm.keras.layers import base
    path = _crafted(workdir, "inner.clstm", edit)
    monkeypatch.setattr(base.Layer, "__init__", lambda *a, **k: pytest.fail("layer made"))
    with pytest.raises(ModelFileError, match=r"\(LSTM\) of the stored config asks for "
                                             r"units=67108864"):
        load_model(path)


@pytest.mark.parametrize("value", [[], {}, 3, None])
def test_layer_class_of_any_json_type_refused(workdir, value):
    """Found by the header fuzz: a class_name that is a list made the config
    bound raise TypeError (unhashable) out of load_model."""
    path = _crafted(workdir, "class.clstm", _set(1, "class_name", value=value))
    with pytest.raises(ModelFileError, match="^" + re.escape(repr(str(path))) + ": the stored "
                       "model does not rebuild: "):
        _load_model_capped(path)


def test_config_weights_checked_one_by_one_before_allocation(workdir):
    """Sizes the header does declare, in a config whose weights differ from
    the file's: each weight is compared with the file's next one before it is
    allocated (Dense(3) would make a (2, 3) kernel; the file holds (2, 2))."""
    path = _crafted(workdir, "dense3.clstm", _set(3, "config", "units", value=3))
    with pytest.raises(ModelFileError, match=re.escape(repr(str(path))) + r": the stored "
                       r"config makes weight \w+/kernel of shape \(2, 3\), the file holds "
                       r"\(2, 2\)"):
        _load_model_capped(path)


_HUGE_CHILD = r"""
import json, resource, sys, tracemalloc
from clstm.keras import ModelFileError, load_model

def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

limit = vm() + (1 << 30)      # 1 GB more than the interpreter with clstm loaded
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
tracemalloc.start()
try:
    load_model(sys.argv[1])
    out = {"refused": False}
except ModelFileError as e:
    out = {"refused": True, "message": str(e)}
out["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
print(json.dumps(out))
"""


@pytest.mark.skipif(SANITIZED or not sys.platform.startswith("linux"),
                    reason="RLIMIT_AS: Linux, and not under ASan (it reserves terabytes)")
def test_config_asking_for_huge_weights_refused_before_allocating(workdir):
    """The file that once took 24 GB of RSS before the OOM killer stopped the
    run: its config asks for LSTM(units=2**26) (kernel (6, 2**28), GBs once
    initialised) beside the file's small weights.  Loaded in a subprocess
    capped at 1 GB of extra address space: refused with ModelFileError, under
    20 MB allocated; a regression fails there with MemoryError."""
    path = _crafted(workdir, "huge-config.clstm", _set(*_LSTM_UNITS, value=2**26))
    r = subprocess.run([sys.executable, "-c", _HUGE_CHILD, str(path)], capture_output=True,
                       text=True, cwd=CHILD_CWD, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["refused"], out
    assert "asks for units=67108864, but no weight in the file has a dimension of " \
           "67108864" in out["message"], out
    assert out["peak_mb"] < 20, out


def test_header_member_size_claim_refused(workdir):
    _, arrays = _header_and_arrays()
    path = workdir / "big-header.clstm"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("__clstm__.npy", _npy_claiming((2**40,), "|u1", b"{}"))
    peak = _peak_mb(lambda: pytest.raises(ModelFileError, load_model, path))
    assert peak < 20


def test_compressed_members_refused(workdir):
    """A deflated member could expand far beyond the file (a zip bomb)."""
    header, arrays = _header_and_arrays()
    path = workdir / "deflated.clstm"
    with open(path, "wb") as f:
        np.savez_compressed(f, __clstm__=np.frombuffer(json.dumps(header).encode(), np.uint8),
                            **arrays)
    with pytest.raises(ModelFileError, match="compressed"):
        load_model(path)


def test_unsupported_zip_version_or_flags_refused(workdir):
    """Found by the fuzz: one flipped byte in the central directory's "version
    needed" field made zipfile raise NotImplementedError, which escaped."""
    data = bytearray(_saved_bytes("model"))
    cd = data.rfind(b"PK\x01\x02")                  # the last central directory entry
    for offset, value in ((6, 86), (8, 0x01)):       # version needed 8.6; "encrypted" flag
        bad = bytearray(data)
        bad[cd + offset] = value
        path = workdir / "flag.clstm"
        path.write_bytes(bytes(bad))
        with pytest.raises(ModelFileError):
            load_model(path)


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Boom.marker),))


def test_pickles_never_execute(workdir):
    _Boom.marker = workdir / "PWNED"
    header, arrays = _header_and_arrays()
    path = workdir / "pickle.clstm"
    payload = np.array([_Boom()], dtype=object)
    for name in ("w0", "__clstm__"):
        a = dict(arrays)
        a["__clstm__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
        a[name] = payload
        with open(path, "wb") as f:
            np.savez(f, **a)
        with pytest.raises(ModelFileError):
            load_model(path)
    raw = workdir / "raw.pickle"
    raw.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(ModelFileError):
        load_model(raw)
    assert not _Boom.marker.exists()


def test_version_and_format_checked(workdir):
    header, arrays = _header_and_arrays()
    for key, value, msg in (("version", 2, "format version 2"), ("version", True, "True"),
                            ("format", "keras", "not a clstm.keras.model file")):
        h = copy.deepcopy(header)
        h[key] = value
        path = workdir / "v.clstm"
        _write_npz(path, h, arrays)
        with pytest.raises(ModelFileError, match=msg):
            load_model(path)


def test_zz_report():
    """Prints what the fuzz above did (pytest -s shows it)."""
    print("\nmodel files:", ", ".join(f"{k} {v}" for k, v in COUNTS.items()))
    assert COUNTS["bytes_refused"] + COUNTS["header_refused"] + COUNTS["foreign_refused"] > 0
