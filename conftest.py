"""Test-suite settings shared by unit tests and nbval's notebook kernels.

Kernels started by nbval inherit this process's environment, so fast mode reaches them too.
Matplotlib's backend is left alone: kernels use the inline backend, as in JupyterLab.
"""

import os

os.environ["RESNET_LAB_FAST"] = "1"
