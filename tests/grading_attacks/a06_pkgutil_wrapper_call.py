# ruff: noqa
# reference resolved by pkgutil; the student's forward *calls* the reference instance's unwrapped forward
from grading_attacks.common import borrowed_block

REPLACE = {
    "block": """import pkgutil

_R = pkgutil.resolve_name("resnet_lab.blocks:Basic" + "Block")
_RF = getattr(_R.forward, "__wrapped__", _R.forward)


"""
    + borrowed_block()
    + """
    _close = _R._close

    def forward(self, x):
        return _RF(self, x)
"""
}
