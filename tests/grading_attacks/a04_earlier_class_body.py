# ruff: noqa
# flagged constructs (sys, vars, __dict__, getattr on a module) in the body of an earlier, never-named class:
# the answer process runs it (class bodies are definitions), the static reading never reads it
from grading_attacks.common import borrowed_block

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
    "block": borrowed_block("HelperBlock")
    + """
    forward = HelperBlock.forward
    _close = HelperBlock._close
"""
}
