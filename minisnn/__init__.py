"""minisnn: a from-scratch spiking-neural-network engine with hand-derived BPTT."""
import os

# After every BLAS call OpenBLAS's worker threads busy-wait 2^28 cycles (~0.1 s) before they
# sleep. Between products the Numba kernels need the same cores: on two cores the spinning made
# a training step 35 % slower (benchmarks/bench_step.py: 0.311 against 0.231 s). 2^4 cycles
# lets them sleep at once. It acts only if NumPy is not loaded yet (importing minisnn first, as
# `python -m minisnn.train` does); a value already set wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
