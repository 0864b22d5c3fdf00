"""The answer process: a fresh process that runs a submission's answers, and nothing that decides a grade.

It is started by the grader (see :mod:`resnet_lab.grade.answers`) for one notebook, never by the
student's kernel. It imports torch and the course's code *before* any student code, wraps the exercises'
references (:mod:`~resnet_lab.grade.references`) and takes a :mod:`~resnet_lab.grade.tamper` snapshot;
then, exercise by exercise, it executes the cells the answer needs (the first code cell, import and
definition-only cells, exercise cells: never the rest of the notebook) and serves the *judge*
(:mod:`resnet_lab.grade.judge`): the judge runs the exercise's checker in its own process, and each time
the checker calls the student's code, this process runs it on the judge's data and sends back plain data
(:mod:`~resnet_lab.grade.serve`). The verdict, the reference side and every comparison are the judge's.

What this process reports only ever keeps an exercise from passing: ``tampered`` when the grader's tools
here changed (before, during or after the check), ``reference used`` when the answer is (an alias or
subclass of) the package's reference or called it, ``error``/``missing`` when the cell raised or the name
is not defined. Student output goes nowhere; events for the grader's time limits go on a private channel,
each signed with a one-off token the grader chose.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import traceback
from typing import Any

import torch

try:  # the lessons import it; importing it first keeps its start-up out of the tamper check
    import torchvision  # noqa: F401
except ImportError:  # pragma: no cover - torchvision is in requirements.txt
    pass

from resnet_lab import checks  # noqa: F401 - loaded before any student code, as the lessons import it

from . import references, serve, tamper

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
TAMPERED, REFERENCE_USED = "tampered", "reference used"
MISSING, ERROR = "missing", "error"


def ready(
    namespace: dict[str, Any], spec: dict[str, Any], before: tamper.Snapshot, server: serve.Server
) -> dict[str, Any]:
    """What the judge learns once the answer's cells have run: a status found here, or the answer itself.

    A status found here (the cell raised, the name is missing, the grader's tools changed, the answer is
    the package's reference) only ever keeps an exercise from passing; the judge never takes a pass from here.
    """
    message: dict[str, Any] = {"ready": spec["exercise"]}
    changed = tamper.changes(before, tamper.snapshot())
    obj = namespace.get(spec["lookup"])
    if changed:
        detail = "code run for the answer changed the grader's tools: " + "; ".join(changed)
        return {**message, "status": TAMPERED, "detail": detail}
    if obj is None:
        return {**message, "status": MISSING, "detail": f"{spec['lookup']} is not defined after running the answer"}
    why = references.static_match(obj, spec["exercise"])
    if why:
        return {**message, "status": REFERENCE_USED, "detail": why}
    try:
        return {**message, "answer": server.encode(obj)}
    except Exception as exc:  # noqa: BLE001 - e.g. a module whose attributes raise when read
        return {**message, "status": ERROR, "detail": f"the answer could not be described: {_error_line(exc)}"}


def serve_exercise(
    conn: Any, server: serve.Server, message: dict[str, Any], spec: dict[str, Any], before: tamper.Snapshot
) -> None:
    """Send ``message`` to the judge, then run the student's code on each of its requests until it is done."""
    hot = tamper.hot_snapshot()
    references.clear()
    conn.send_bytes(serve.dumps(message))
    while True:
        request = server.loads(conn.recv_bytes())
        torch.set_rng_state(request["rng"])
        op = request["op"]
        if op == "done":
            after = {
                "after": spec["exercise"],
                "tampered_after": tamper.changes(before, tamper.snapshot()),
                "used": references.used(spec["exercise"]),
                "borrowed": _borrowed(server, spec["exercise"]),
            }
            conn.send_bytes(serve.dumps(after))
            return
        if op == "call":
            reply = server.call(request)
        elif op == "forward":
            reply = server.forward(request)
        else:
            reply = server.copy(request)
        changed = tamper.changes(hot, tamper.hot_snapshot())
        if changed:
            reply["tampered"] = changed
        reply["rng"] = torch.get_rng_state()
        conn.send_bytes(serve.dumps(reply))


def _borrowed(server: serve.Server, exercise: str) -> list[str]:
    """Functions of the exercise's reference found in the classes of the modules the answer built."""
    try:
        return references.borrowed_in(list(getattr(server, "objects", {}).values()), exercise)
    except Exception:  # noqa: BLE001 - the judge's verdict stands on its own
        return []


def python_source(source: str) -> str:
    """A cell as plain Python: IPython magics (``%...``) and shell lines (``!...``) blanked out."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def _error_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def run(job: dict[str, Any], emit: Any, conn: Any) -> None:
    """Execute the job's cells in order; once an exercise's cells have run, serve the judge's requests."""
    torch.set_num_threads(1)
    references.install()
    before = tamper.snapshot()
    server = serve.Server()
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    cells = [c for c in job["cells"] if c["index"] not in set(job.get("skip_cells", []))]
    errors: dict[int, str] = {}
    done = 0
    for spec in job["exercises"]:
        emit({"start": spec["exercise"]})
        while done < len(cells) and (spec["cell"] is None or cells[done]["index"] <= spec["cell"]):
            cell = cells[done]
            done += 1
            emit({"cell": cell["index"]})
            try:
                code = compile(python_source(cell["source"]), f"<answer cell {cell['index']}>", "exec")
                exec(code, namespace)  # noqa: S102 - running the student's answer is this process's job
            except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt too
                errors[cell["index"]] = _error_line(exc)
            emit({"cell_done": cell["index"]})
        if spec["cell"] in errors:
            message = {
                "ready": spec["exercise"],
                "status": ERROR,
                "detail": f"the exercise cell raised {errors[spec['cell']]}",
            }
        else:
            message = ready(namespace, spec, before, server)
        emit({"serving": spec["exercise"]})
        serve_exercise(conn, server, message, spec, before)


def drop_capabilities() -> None:
    """Linux, as root: drop every capability (bounding set first, so that no exec gets one back, then the
    effective, permitted and inheritable sets) and set no_new_privs. Root without CAP_SYS_PTRACE cannot
    ptrace a non-dumpable process, even one of root. Raises SystemExit if that fails."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    last = 40
    try:
        with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as f:
            last = int(f.read())
    except (OSError, ValueError):
        pass
    for cap in range(last + 1):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3: all zero
    if libc.capset(ctypes.byref(header), data) != 0:
        raise SystemExit(f"could not drop capabilities (errno {ctypes.get_errno()})")
    with open("/proc/self/status", encoding="ascii") as f:
        if any(line.startswith("CapEff:") and int(line.split()[1], 16) for line in f):
            raise SystemExit("capabilities still effective")


def main(job: dict[str, Any], channel: Any, token: str, conn: Any) -> None:
    """Entry point in the fresh process: silence the student's output, run the job, report on ``channel``.

    When the grader runs as root, ``job["user"]`` is ``[uid, gid]`` of an unprivileged user: this process
    becomes that user before any student code runs, so that code cannot ptrace, signal or read the
    grader's processes (the judge, the fork servers, the grader), whatever their dumpable flag."""
    user = job.get("user")
    if user == "nocaps":
        drop_capabilities()
    elif user:
        os.setgroups([])
        os.setgid(int(user[1]))
        os.setuid(int(user[0]))
        if os.getuid() == 0 or os.geteuid() == 0:  # pragma: no cover - setuid cannot fail silently
            raise SystemExit("could not leave root")
    os.chdir(job["cwd"])
    os.environ.update(job["env"])
    if isinstance(user, list):
        os.environ["HOME"] = job["cwd"]
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115

    def emit(event: dict[str, Any]) -> None:
        channel.send_bytes((token + json.dumps(event)).encode())

    try:
        run(job, emit, conn)
    except BaseException:  # noqa: BLE001 - tell the grader what broke, then stop
        emit({"crash": traceback.format_exc(limit=3)[-500:]})
