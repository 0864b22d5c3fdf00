# ruff: noqa
# reference class obtained as type() of a block inside a package ResNet; no strings, no flagged constructs
from grading_attacks.common import borrowed_block

REPLACE = {
    "conv": '''import functools
import operator

_f = operator.attrgetter("shapes.conv_output" + "_size")(resnet_lab).__wrapped__


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a conv or pooling layer along one dimension of length n."""
    return _f(n, kernel, stride, padding)
''',
    "block": """_R = type(resnet_lab.resnet18().layer1[0])


"""
    + borrowed_block(residual=True)
    + """
    forward = _R.forward
    _close = _R._close
""",
    "switch": '''class MyBlockWithSwitch(MyBasicBlock):
    """MyBasicBlock with a switch: residual=False removes the shortcut (a plain block)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__(in_channels, planes, stride, residual)
''',
}
