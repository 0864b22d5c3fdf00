"""Imported first by the grader's fork servers: the process makes itself non-dumpable at once.

A non-dumpable process cannot be ``ptrace``-d (gdb, code injection) or have its ``/proc/PID/mem``, ``fd``
or ``environ`` opened by another process of the same user, unless that process has ``CAP_SYS_PTRACE``
(root has): see docs/teachers.md for why student code must not run as root.
"""

from __future__ import annotations


def keep_private() -> bool:
    """``prctl(PR_SET_DUMPABLE, 0)`` on Linux; False where that is not available. Inherited by ``fork``."""
    try:
        import ctypes

        return ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        return False


PRIVATE = keep_private()
