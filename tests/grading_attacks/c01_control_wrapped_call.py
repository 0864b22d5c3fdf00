# ruff: noqa
# control: a06, but the student's forward calls the reference's forward as the package has it (wrapped, so
# the answer process's reference watch sees the call)
from grading_attacks.a06_pkgutil_wrapper_call import REPLACE as A06
from grading_attacks.common import vary

REPLACE = vary(A06, "block", "return _RF(self, x)", "return _R.forward(self, x)")
