"""The C core builds and runs without Python or a BLAS library: src_c's own
self-check (naive GEMM, scalar reference, finite differences)."""
import shutil
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src_c"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                    reason="needs make and a C compiler")
def test_standalone_core_self_check(tmp_path):
    build = tmp_path / "src_c"
    shutil.copytree(SRC, build)
    out = subprocess.run(["make", "-s", "check"], cwd=build, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("OK")
