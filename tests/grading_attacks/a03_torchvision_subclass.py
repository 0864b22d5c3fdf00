# ruff: noqa
# a subclass of torchvision's BasicBlock (imported under another name), with the option B shortcut
REPLACE = {
    "block": """from torchvision.models.resnet import BasicBlock as TV


class MyBasicBlock(TV):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        downsample = None
        if stride != 1 or in_channels != planes:
            downsample = nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        super().__init__(in_channels, planes, stride, downsample=downsample)
"""
}
