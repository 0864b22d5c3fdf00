# ruff: noqa
# flagged constructs (sys, vars, __dict__, getattr on a module) in the body of an earlier, never-named class:
# the answer process runs it (class bodies are definitions), the static reading never reads it
BEFORE = {
    "block": [
        '''class _Notes:
    """Some notes for myself."""
    import builtins, sys
    builtins.HelperBlock = vars(sys.modules["resnet_lab.blocks"])["Basic" + "Block"]
'''
    ]
}
REPLACE = {
    "block": """class MyBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        ref = HelperBlock(in_channels, planes, stride)
        self.conv1, self.bn1, self.relu, self.conv2, self.bn2 = ref.conv1, ref.bn1, ref.relu, ref.conv2, ref.bn2
        self.downsample = ref.downsample
        self.residual, self.preact, self.stride, self.se = True, False, stride, None

    forward = HelperBlock.forward
    _close = HelperBlock._close
"""
}
