"""Test-suite settings, decided here once.

Fast mode: the notebooks executed by nbval run in fast mode. Their kernels inherit this process's
environment, and each notebook's first cell reads it (``FAST = resnet_lab.fast_mode()``) and passes
``fast=FAST`` / smaller epochs on. Library functions never read it themselves: unit tests pass
``fast=True``, sizes and epochs explicitly.
Matplotlib's backend is left alone: kernels use the inline backend, as in JupyterLab.

Parallel workers: pytest.ini runs the suite on pytest-xdist workers (one per core; each notebook and
each test file stays on one worker, in order). Every worker, and the notebook kernels it starts, then
gets its share of the cores as torch threads (OMP_NUM_THREADS), so the workers don't fight over the
same cores: OpenMP threads that outnumber the cores make torch several times slower, not faster.
A caller's OMP_NUM_THREADS is kept.
"""

import os

os.environ["RESNET_LAB_FAST"] = "1"

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))
