"""Test-suite settings, decided here once.

Fast mode: the notebooks executed by nbval run in fast mode. Their kernels inherit this process's
environment, and each notebook's first cell reads it (``FAST = resnet_lab.fast_mode()``) and passes
``fast=FAST`` / smaller epochs on. Library functions never read it themselves: unit tests pass
``fast=True``, sizes and epochs explicitly.
Matplotlib's backend is left alone: kernels use the inline backend, as in JupyterLab.
"""

import os

os.environ["RESNET_LAB_FAST"] = "1"
