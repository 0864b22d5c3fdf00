"""Test-suite settings shared by unit tests and nbval's notebook kernels.

Kernels started by nbval inherit this process's environment, so fast mode reaches them too.
"""

import os

os.environ["RESNET_LAB_FAST"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
