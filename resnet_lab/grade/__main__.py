"""``python -m resnet_lab.grade SUBMISSIONS --report grades.csv``: see :mod:`resnet_lab.grade`."""

import sys

from . import main

sys.exit(main())
