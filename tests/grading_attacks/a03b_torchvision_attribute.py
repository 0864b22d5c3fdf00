# ruff: noqa
# a03, but naming torchvision's class through its module path
from grading_attacks.a03_torchvision_subclass import REPLACE as A03
from grading_attacks.common import vary

REPLACE = vary(
    A03,
    "block",
    "from torchvision.models.resnet import BasicBlock as TV\n\n\nclass MyBasicBlock(TV):",
    "class MyBasicBlock(torchvision.models.resnet.BasicBlock):",
)
