"""Build of clstm's extension: the C core in src_c/ plus the Cython binding.

-O3 everywhere; OpenMP where the compiler has it (probed, not assumed);
no -march=native unless CLSTM_NATIVE=1: the hot kernels carry their own
AVX-512/AVX2/baseline clones and pick one at run time.
"""
import os
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_SOURCES = ["src_c/runtime.c", "src_c/activations.c", "src_c/optim.c", "src_c/lstm_f32.c",
             "src_c/lstm_f64.c"]


def _compiles(compiler, cflags, ldflags=(), code="int main(void){return 0;}\n"):
    """True when `code` compiles and links with these flags."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(code)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=list(cflags))
            compiler.link_executable(objs, os.path.join(tmp, "probe"),
                                     extra_postargs=list(ldflags))
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        cc = self.compiler
        # -fno-math-errno: the core never reads errno, and with errno to set
        # GCC leaves loops that call sqrt scalar (src_c/optim.c)
        cflags = ["-O3", "-fno-trapping-math", "-fno-math-errno"]
        ldflags = []
        if sys.platform == "win32" and cc.compiler_type == "msvc":
            cflags = ["/O2"]
        else:
            if os.environ.get("CLSTM_NATIVE") == "1":
                cflags += ["-march=native", "-DCLSTM_NATIVE"]
            if _compiles(cc, ["-mprefer-vector-width=512"]):
                cflags.append("-mprefer-vector-width=512")
            # GCC turns the dW panel's row copies (256 bytes each, with the
            # column sums beside them) into memcpy calls: 2.7% of a medium
            # fwd+bwd's samples went to memmove, 1% net of it came back inline
            if _compiles(cc, ["-fno-tree-loop-distribute-patterns"]):
                cflags.append("-fno-tree-loop-distribute-patterns")
        omp_code = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 0;}\n"
        openmp = os.environ.get("CLSTM_NO_OPENMP") != "1" and _compiles(
            cc, ["-fopenmp"], ["-fopenmp"], omp_code)
        if openmp:
            cflags.append("-fopenmp")
            ldflags.append("-fopenmp")
        else:
            print("clstm: building without OpenMP (the core runs on one thread; BLAS keeps its own)")
        extra = os.environ.get("CLSTM_EXTRA_CFLAGS", "").split()
        for ext in self.extensions:
            ext.extra_compile_args = cflags + extra
            ext.extra_link_args = ldflags + extra
        super().build_extensions()


ext = Extension(
    "clstm._core",
    sources=["clstm/_core.pyx"] + C_SOURCES,
    include_dirs=["src_c", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    depends=["src_c/clstm.h", "src_c/internal.h", "src_c/vmath.h",
             "src_c/cell_template.h", "src_c/lstm_template.h",
             "src_c/step_gemm_template.h", "src_c/tile_template.h"],
)

setup(
    ext_modules=cythonize([ext], language_level=3),
    cmdclass={"build_ext": BuildExt},
)
