#!/usr/bin/env bash
# Runs clstm's core tests under valgrind memcheck, from a fresh copy of the
# repository with its own build (-O1 -g; the checkout's build is untouched),
# and the standalone C core's self-check too.  Reports every memcheck error,
# and the definite leaks whose allocation stack passes through clstm (the
# extension or the C core); CPython's own exit-time leaks are not clstm's.
#
#   tools/valgrind.sh                   # the core tests (about 10-20 minutes)
#   tools/valgrind.sh tests/test_step.py   # other test files instead
#   KEEP=1 tools/valgrind.sh            # keep the temp dir (XML logs)
#
# Exit status 0 only with zero memcheck errors with a clstm frame, none in
# NumPy / SciPy / OpenBLAS (where uninitialised output of clstm would show),
# zero definite leaks allocated through clstm, and a clean C self-check.
# CPython 3.11 built without valgrind support reports a few dozen
# uninitialised-value errors of its own (Py_INCREF, long compare) and ld.so
# some strncmp reads: they are listed by library, not counted against clstm.
set -uo pipefail

command -v valgrind >/dev/null || { echo "valgrind is not installed"; exit 2; }
. "$(dirname "$0")/copy_tree.sh" valgrind
echo "== building $SRC with -O1 -g"
(cd "$SRC" && CLSTM_EXTRA_CFLAGS="-O1 -g" python setup.py build_ext --inplace \
    >"$WORK/build.log" 2>&1) || { tail -20 "$WORK/build.log"; exit 2; }

export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONMALLOC=malloc          # memcheck sees every Python allocation
export OPENBLAS_NUM_THREADS=1       # fewer threads, shorter run, same code paths in clstm
where=$(cd /tmp && python -c "import clstm; print(clstm.__file__)")
case "$where" in "$SRC"/*) ;; *) echo "imported $where, not the copy"; exit 2 ;; esac

if [ $# -eq 0 ]; then
    set -- tests/test_forward.py tests/test_functional.py tests/test_gradients.py \
           tests/test_mask.py tests/test_bad_input.py tests/test_state_dict.py \
           tests/test_step.py tests/test_activations.py tests/test_thread_splits.py \
           tests/test_backward_products.py
fi
# Deselected: the 3-ulp accuracy bounds in float64, which valgrind's emulation
# of the vector / FMA arithmetic misses by 1 ulp (float64 tanh: 4 ulp under
# memcheck; natively within 3 with the AVX-512, AVX2 and baseline builds
# alike).  The kernels still run under memcheck: float32 there, and in every
# other test.
DESELECT=(--deselect "tests/test_activations.py::test_within_three_ulp[float64]")
for hb in 64-12 64-1 50-12 50-1; do   # [hidden-batch-dtype]
    DESELECT+=(--deselect "tests/test_activations.py::test_gate_kernels_within_three_ulp[$hb-float64]")
done
echo "== valgrind memcheck: pytest $* (deselected, numerics only: the float64 ulp bounds)"
start=$(date +%s)
# the interpreter itself, not a wrapper script (pyenv's shim would be traced instead)
PY=$(python -c "import sys; print(sys.executable)")
(cd "$SRC" && valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=40 --xml=yes \
    --xml-file="$WORK/memcheck.xml" \
    "$PY" -m pytest -q -p no:cacheprovider "${DESELECT[@]}" "$@") >"$WORK/pytest.log" 2>&1
rc=$?
end=$(date +%s)
tail -3 "$WORK/pytest.log"

echo "== standalone C core self-check under valgrind"
cp -r "$REPO/src_c" "$WORK/src_c"
make -s -C "$WORK/src_c" example CFLAGS_EXTRA="-O1 -g" >"$WORK/core-build.log" 2>&1
(cd "$WORK/src_c" && valgrind --tool=memcheck --leak-check=full --error-exitcode=99 \
    --errors-for-leak-kinds=definite,indirect,possible ./example) >"$WORK/core.log" 2>&1
core_rc=$?
grep -E "ERROR SUMMARY|definitely lost|in use at exit" "$WORK/core.log"

python - "$WORK/memcheck.xml" "$rc" "$((end - start))" "$core_rc" <<'EOF'
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter

path, rc, secs, core_rc = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
text = open(path).read()
records = [ET.fromstring(b) for b in re.findall(r"<error>.*?</error>", text, re.S)]


def ours(err):
    """Any native frame in clstm's extension or C core (the build in the copy;
    NumPy's numpy/_core/ is not ours)."""
    for fr in err.iter("frame"):
        where = " ".join((fr.findtext("obj") or "", fr.findtext("dir") or ""))
        if "clstm-src" in where:
            return True
    return False


def tracemalloc_own(err):
    """A block tracemalloc allocated for its own tables (raw_malloc in
    _tracemalloc.c) while tracing an allocation: CPython's, whichever code
    made the traced allocation (seen: the bound method of LSTM.step, a Cython
    function, under tests/test_step.py's tracemalloc)."""
    frames = list(err.iter("frame"))
    return len(frames) > 1 and frames[1].findtext("file") == "_tracemalloc.c"


def lib(err):
    fr = next(err.iter("frame"), None)
    return "?" if fr is None else (fr.findtext("obj") or "?").rsplit("/", 1)[-1]


errors = [e for e in records if not e.findtext("kind", "").startswith("Leak_")]
leaks = [e for e in records if e.findtext("kind") == "Leak_DefinitelyLost"]
our_errors = [e for e in errors if ours(e)]
our_leaks = [e for e in leaks if ours(e) and not tracemalloc_own(e)]
# uninitialised data handed out by clstm would surface where NumPy / BLAS read it
suspect = [e for e in errors if not ours(e) and re.search(r"numpy|scipy|openblas|_multiarray",
                                                          lib(e))]
by_lib = Counter(lib(e) for e in errors if not ours(e))
lost = sum(int(e.findtext("xwhat/leakedbytes") or 0) for e in leaks)
print("\n================ valgrind summary ================")
print(f"pytest exit status             : {rc} ({secs} s under memcheck)")
print(f"memcheck errors in clstm       : {len(our_errors)}")
print(f"errors in numpy/scipy/OpenBLAS : {len(suspect)}")
print(f"errors elsewhere (by library)  : {dict(by_lib) or 0}  (CPython / ld.so, not clstm)")
print(f"definite leaks from clstm      : {len(our_leaks)}")
print(f"definite leaks, all            : {len(leaks)} blocks, {lost} bytes (CPython at exit)")
print(f"C core self-check              : exit {core_rc} (99 = memcheck errors or leaks)")
for e in (our_errors + our_leaks + suspect)[:10]:
    print("----", e.findtext("kind"), e.findtext("what") or e.findtext("xwhat/text"))
    for fr in list(e.iter("frame"))[:8]:
        print("     ", fr.findtext("fn"), fr.findtext("file") or fr.findtext("obj"),
              fr.findtext("line") or "")
ok = rc == 0 and not our_errors and not suspect and not our_leaks and core_rc == 0
print("RESULT:", "CLEAN (no errors or definite leaks from clstm)" if ok
      else "REPORTS OR FAILURES")
sys.exit(0 if ok else 1)
EOF
