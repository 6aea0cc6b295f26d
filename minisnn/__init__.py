"""minisnn: a from-scratch spiking-neural-network engine with hand-derived BPTT."""
import os
import sys
import warnings

# After every BLAS call OpenBLAS's worker threads busy-wait 2^28 cycles (~0.1 s) before they
# sleep. Between products the Numba kernels need the same cores: on two cores the spinning made
# a training step 35 % slower (benchmarks/bench_step.py: 0.311 against 0.231 s). 2^4 cycles
# lets them sleep at once. OpenBLAS reads the variable once, when NumPy loads it, and has no call
# to change it later: so it acts only if minisnn is imported before NumPy (as `python -m
# minisnn.train` and the test suite do); a value already set wins. Otherwise we say so, once.
_user_set_timeout = "OPENBLAS_THREAD_TIMEOUT" in os.environ
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def _numpy_blas_is_openblas():
    try:
        blas = sys.modules["numpy"].show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:   # an older NumPy or another layout: nothing reliable to say
        return False
    return "openblas" in blas.lower()


if "numpy" in sys.modules and not _user_set_timeout and _numpy_blas_is_openblas():
    warnings.warn("NumPy was imported before minisnn, so OpenBLAS threads spin ~0.1 s after every product "
                  "(training up to 35 % slower on few cores): import minisnn first, or set "
                  "OPENBLAS_THREAD_TIMEOUT=4 before starting Python", RuntimeWarning, stacklevel=2)

__version__ = "0.1.0"
