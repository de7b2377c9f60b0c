# Sourced by the tools that build the project apart from the checkout
# (sanitize.sh, valgrind.sh, wide_vectors.sh): sets REPO (this checkout),
# WORK (a new temp dir, removed on exit unless KEEP=1) and SRC ($WORK/clstm-src,
# a copy of the sources without build products or caches).
#   usage: . "$(dirname "$0")/copy_tree.sh" NAME   (temp dir /tmp/clstm-NAME.*)
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "/tmp/clstm-$1.XXXXXX")
SRC="$WORK/clstm-src"
mkdir -p "$SRC"
cleanup() { if [ "${KEEP:-0}" != 1 ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi; }
trap cleanup EXIT
tar -C "$REPO" --exclude=./.git --exclude=./build --exclude='*.so' --exclude='*.o' \
    --exclude='*.a' --exclude=./clstm/_core.c --exclude=__pycache__ --exclude=.pytest_cache \
    --exclude=.hypothesis --exclude=.benchmarks --exclude=./src_c/example -cf - . \
    | tar -C "$SRC" -xf -
