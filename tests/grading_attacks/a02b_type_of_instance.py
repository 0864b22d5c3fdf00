# ruff: noqa
# reference class obtained as type() of a block inside a package ResNet; no strings, no flagged constructs
REPLACE = {
    "conv": '''import functools
import operator

_g = operator.attrgetter("shapes.conv_output" + "_size")(resnet_lab)
_f = getattr(_g, "__wrapped__", _g)  # unwrapped in the answer process; the plain function in a kernel


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a conv or pooling layer along one dimension of length n."""
    return _f(n, kernel, stride, padding)
''',
    "block": """_R = type(resnet_lab.resnet18().layer1[0])


class MyBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        ref = _R(in_channels, planes, stride, residual=residual)
        self.conv1, self.bn1, self.relu, self.conv2, self.bn2 = ref.conv1, ref.bn1, ref.relu, ref.conv2, ref.bn2
        self.downsample = ref.downsample
        self.residual, self.preact, self.stride, self.se = residual, False, stride, None

    forward = _R.forward
    _close = _R._close
""",
    "switch": '''class MyBlockWithSwitch(MyBasicBlock):
    """MyBasicBlock with a switch: residual=False removes the shortcut (a plain block)."""

    def __init__(self, in_channels: int, planes: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__(in_channels, planes, stride, residual)
''',
}
