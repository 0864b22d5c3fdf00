# ruff: noqa
# functools.reduce(getattr, ...) reaches the package's BasicBlock; the block takes its layers, forward and _close
from grading_attacks.common import borrowed_block

REPLACE = {
    "block": """import functools

_R = functools.reduce(getattr, ("blocks", "Basic" + "Block"), resnet_lab)


"""
    + borrowed_block()
    + """
    forward = _R.forward
    _close = _R._close
"""
}
