"""Build script for the compiled core.

Every ``src/fastfutures/*.pyx`` is an extension module ``fastfutures.<name>``.

Environment switches:
  FASTFUTURES_DEBUG_BUILD=1  -O0 -g, Cython linetrace (coverage), internal assertions
  FASTFUTURES_SANITIZE=1     AddressSanitizer + UndefinedBehaviorSanitizer
"""
import glob
import os
import sys

from setuptools import Extension, setup

DEBUG = os.environ.get("FASTFUTURES_DEBUG_BUILD") == "1"
SANITIZE = os.environ.get("FASTFUTURES_SANITIZE") == "1"

define_macros = []
extra_compile_args = []
extra_link_args = []
directives = {
    "language_level": 3,
    "embedsignature": True,
    "cdivision": True,
}

if sys.platform != "win32":
    extra_compile_args += ["-std=gnu11"]
    if DEBUG or SANITIZE:
        extra_compile_args += ["-O0", "-g3", "-fno-omit-frame-pointer"]
    else:
        extra_compile_args += ["-O2"]
if DEBUG:
    directives.update(linetrace=True, profile=True)
    define_macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1"), ("FF_DEBUG", "1")]
if SANITIZE:
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    extra_compile_args += flags
    extra_link_args += flags
    define_macros += [("FF_DEBUG", "1")]

extensions = [
    Extension(
        "fastfutures." + os.path.splitext(os.path.basename(path))[0],
        [path],
        include_dirs=["src/fastfutures"],
        define_macros=define_macros,
        extra_compile_args=extra_compile_args,
        extra_link_args=extra_link_args,
    )
    for path in sorted(glob.glob("src/fastfutures/*.pyx"))
]


def cythonize(exts):
    from Cython.Build import cythonize as _cythonize

    return _cythonize(
        exts,
        compiler_directives=directives,
        annotate=os.environ.get("FASTFUTURES_ANNOTATE") == "1",
        force=DEBUG or SANITIZE,
    )


setup(ext_modules=cythonize(extensions))
