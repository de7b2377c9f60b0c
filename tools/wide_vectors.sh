#!/usr/bin/env bash
# Runs the core's tests with the tile kernels built at another vector width
# than this CPU's, so that the AVX-512 instance's tiling (16 float / 8 double
# lanes, 6-row tiles, 8 activations at a time, compact last blocks of 1-4
# units) is exercised on a machine without AVX-512 (and the AVX2 one's on a
# machine without AVX2).  The build has no run-time clones
# (-DCLSTM_NO_CLONES) and its portable instance is compiled at the width asked
# (-DCLSTM_BASE_KVB=64 or 32): generic vector code that GCC lowers to the
# instructions this CPU has.  Slow code, the same arithmetic order.
#
#   tools/wide_vectors.sh            # 64-byte vectors (the AVX-512 instance)
#   KVB=32 tools/wide_vectors.sh     # 32-byte vectors (the AVX2 instance)
#   tools/wide_vectors.sh -x -k mask # extra args go to pytest
#
# Builds in a temp copy (the checkout's build is left alone); exits non-zero
# on a build or test failure.
set -uo pipefail

KVB=${KVB:-64}
. "$(dirname "$0")/copy_tree.sh" wide

FLAGS="-DCLSTM_NO_CLONES -DCLSTM_BASE_KVB=$KVB"
echo "== building with $FLAGS"
if ! (cd "$SRC" && CLSTM_EXTRA_CFLAGS="$FLAGS" python setup.py build_ext --inplace \
      >"$WORK/build.log" 2>&1); then
    tail -30 "$WORK/build.log"; echo "BUILD FAILED"; exit 2
fi
export PYTHONPATH="$SRC${PYTHONPATH:+:$PYTHONPATH}"
where=$(cd /tmp && python -c "import clstm; print(clstm.__file__)")
case "$where" in
    "$SRC"/*) echo "== clstm imported from $where" ;;
    *) echo "clstm was imported from $where, not from the test build"; exit 2 ;;
esac
cd "$SRC" && python -m pytest -q -p no:cacheprovider tests/test_forward.py \
    tests/test_gradients.py tests/test_mask.py tests/test_thread_splits.py \
    tests/test_functional.py tests/test_state_dict.py tests/test_step.py \
    tests/test_backward_products.py tests/test_activations.py "$@"
