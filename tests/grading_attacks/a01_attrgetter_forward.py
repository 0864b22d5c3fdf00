# ruff: noqa
# operator.attrgetter reaches the package's BasicBlock through a string; the block takes its layers, forward and _close
from grading_attacks.common import borrowed_block

REPLACE = {
    "block": """import operator

_R = operator.attrgetter("blocks.Basic" + "Block")(resnet_lab)


"""
    + borrowed_block()
    + """
    forward = _R.forward
    _close = _R._close
"""
}
