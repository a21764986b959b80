"""NumPy's BLAS runs on one thread while the NumPy decode step uses it.

The NumPy decode step (engine/models/numpy_step.py) runs one row's
matrix-vector products in NumPy's BLAS, which keeps its own thread pool, sized
to every core by default. Measured on a 2-core EPYC (bench/generate_speed.py),
a second BLAS thread made one row no faster, and beside torch's own OpenMP
threads (spinning after a parallel region) the two pools fought for the cores:
beam search ran 6x slower, and a busy core stalls a split product the way it
stalls torch's (engine/machine/threads.py). So the step asks for one BLAS
thread. threadpoolctl finds the BLAS library NumPy loaded (OpenBLAS, MKL,
BLIS); where it cannot, the step still runs, with the library's default.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def use_one_thread() -> None:
    """Set NumPy's BLAS pool to one thread, once per process; later calls cost a check."""
    global _done
    if _done:
        return
    with _lock:
        if not _done:
            for controller in _blas_controllers():
                controller.set_num_threads(1)
            _done = True


def current() -> int:
    """NumPy's BLAS thread count as the library reports it (0 where none is found)."""
    controllers = _blas_controllers()
    return int(controllers[0].num_threads) if controllers else 0


def _blas_controllers() -> list:
    try:
        import numpy  # noqa: F401  (NumPy's BLAS must be loaded before it can be found)
        from threadpoolctl import ThreadpoolController

        return list(ThreadpoolController().select(user_api="blas").lib_controllers)
    except Exception:  # no threadpoolctl, or a BLAS it cannot drive: leave it be
        return []
