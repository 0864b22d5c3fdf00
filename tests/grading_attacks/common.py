"""What the red team's answer cells have in common, written once; each attack file keeps only what it varies.

Every piece here is *text*: the source of a notebook cell, run by the grader (a kernel, the answer process)
like any student's answer. Read an attack file from the top: its own lines, with one of these pieces
inserted where the name stands.

* :func:`borrowed_block`: ``class MyBasicBlock`` whose ``__init__`` takes every layer of an instance of the
  package's ``BasicBlock`` (however the cell reached that class); the attack adds the rest of the class
  (its forward).
* :data:`OWN_LAYERS`: the body of an ``__init__`` that builds the reference block's layers itself (a
  block whose forward is the attack).
* :func:`vary`: an attack that is another with a few lines changed (a02b of a02, a03b of a03, c01 of a06).

To read an attack's cells whole, as the grader gets them: ``python tests/grading_attacks/common.py a01_attrgetter_forward``.
"""

from __future__ import annotations


def borrowed_block(reference: str = "_R", residual: bool = False) -> str:
    """``class MyBasicBlock`` to the end of its ``__init__``, built on ``ref = reference(in_channels, planes,
    stride)`` (with ``residual=residual`` passed on when ``residual``); the attack appends its forward."""
    param, arg, value = (", residual: bool = True", ", residual=residual", "residual") if residual else ("", "", "True")
    return f"""class MyBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1{param}) -> None:
        super().__init__()
        ref = {reference}(in_channels, planes, stride{arg})
        self.conv1, self.bn1, self.relu, self.conv2, self.bn2 = ref.conv1, ref.bn1, ref.relu, ref.conv2, ref.bn2
        self.downsample = ref.downsample
        self.residual, self.preact, self.stride, self.se = {value}, False, stride, None
"""


# The reference block's layers, built by the answer itself (after an ``__init__(self, in_channels, planes,
# stride=1)`` line): whatever its forward does, the parameters are those of a right answer.
OWN_LAYERS = """\
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
"""


def vary(cells: dict[str, str], cell: str, old: str, new: str) -> dict[str, str]:
    """``cells`` (an attack's ``REPLACE``) with ``old`` replaced by ``new`` in the cell ``cell``; ``old``
    must be there, once."""
    assert cells[cell].count(old) == 1, (cell, old)
    return {**cells, cell: cells[cell].replace(old, new)}


if __name__ == "__main__":
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    for name in sys.argv[1:]:
        attack = importlib.import_module(f"grading_attacks.{name}")
        for key, sources in getattr(attack, "BEFORE", {}).items():
            for source in sources:
                print(f"# ---- {name}: a cell inserted before the cell {key!r}\n{source}")
        for key, source in getattr(attack, "REPLACE", {}).items():
            print(f"# ---- {name}: the cell {key!r} replaced by\n{source}")
