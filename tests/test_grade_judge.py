"""The judge decides every verdict: cheats aimed at the answer process, and what the judge keeps of a checker.

Without a kernel: each test builds a small notebook and grades it with ``answers.check_answers`` (one
answer process and one judge per notebook, forked from the fork server; 1-3 CPU seconds each).

* Cheats that blind the answer process's own detectors (tamper snapshot, reference watch) and forge what
  it sends the judge are never ``passed``: the judge's comparison fails them, or the grader's reading of
  the code (:mod:`resnet_lab.grade.static`) reports the reference or sends the answer to the teacher.
* A checker run by the judge on a stand-in of the student's code says what it says in one process:
  the classic mistakes get the same status, counts and message (hint included) as the checker run in
  this process on the same code.
* The answer process never holds the hidden configurations.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from grading_attacks.common import OWN_LAYERS

from resnet_lab import checks
from resnet_lab.checks import engine, exercises
from resnet_lab.grade import answers, judge, remote, static
from resnet_lab.grade.worker import Limits

IMPORTS = (
    "import copy\nimport math\nimport torch\nfrom torch import nn\nimport torch.nn.functional as F\n"
    "import resnet_lab\nfrom resnet_lab import checks, cifar_resnet\n"
)
LIMITS = Limits(check_seconds=60)

# Blind the answer process: no tamper report, no reference watch, and the checkers there agree with anything.
BLIND = """
import resnet_lab.grade.tamper as _tamper, resnet_lab.grade.references as _refs, resnet_lab.checks.engine as _engine
_tamper.changes = lambda *a, **k: []
_refs.used = lambda *a, **k: []
_refs.static_match = lambda *a, **k: None
_engine.compare = lambda *a, **k: None
_engine.close = lambda *a, **k: True
checks.CHECKERS["basic_block"] = lambda *a, **k: None
torch.allclose = torch.equal = lambda *a, **k: True
"""

# Every parameter of the reference block, and a forward without the shortcut.
WRONG_BLOCK = (
    """
class MyBasicBlock(nn.Module):
    def __init__(self, in_channels, planes, stride=1):
"""
    + OWN_LAYERS
    + """
    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
"""
)

# The answer process's forward replaced: whatever the block computes, the judge is sent zeros.
FORGE_ZEROS = """
import resnet_lab.grade.serve as _serve
def _forward(self, request):
    x = request["args"][0]
    return {"result": torch.zeros(x.shape[0], self.objects[request["handle"]].conv1.out_channels,
                                  *[(s - 1) // self.objects[request["handle"]].conv1.stride[0] + 1 for s in x.shape[2:]]),
            "state": {}, "trace": [], "args_after": []}
_serve.Server.forward = _forward
"""

# The smartest forge: the answer process's forward answers with the reference's output on the judge's weights.
FORGE_WITH = """
import resnet_lab.grade.serve as _serve
_real_forward = _serve.Server.forward
def _forward(self, request):
    reply = _real_forward(self, request)
    block = self.objects[request["handle"]]
    ref = {reference}(block.conv1.in_channels, block.conv1.out_channels, block.conv1.stride[0])
    ref.load_state_dict(block.state_dict())
    ref.eval()
    with torch.no_grad():
        reply["result"] = ref(request["args"][0])
    return reply
_serve.Server.forward = _forward
"""
NAMED = "resnet_lab.blocks.BasicBlock"
HIDDEN = 'getattr(__import__("resnet_lab.blocks", fromlist=["x"]), "Basic" + "Block")'

# The brief's example: the block's forward builds the reference and returns its outputs (the watch is blinded).
REFERENCE_INSIDE = """
class MyBasicBlock(nn.Module):
    def __init__(self, in_channels, planes, stride=1):
        super().__init__()
        self.inner = resnet_lab.BasicBlock(in_channels, planes, stride)

    def forward(self, x):
        return self.inner(x)
"""

REFERENCE_VIA_CHECKS = "MyBasicBlock = checks.blocks.BasicBlock\n"


def _grade(*cells: str, exercise: str = "basic_block", lookup: str = "MyBasicBlock", hidden=None) -> dict:
    nb = {"cells": [{"cell_type": "code", "source": IMPORTS}, *({"cell_type": "code", "source": c} for c in cells)]}
    plans = [{"exercise": exercise, "lookup": lookup, "cell": len(cells)}]
    return answers.check_answers(nb, plans, hidden or {}, LIMITS, seed=engine.SEED)[exercise]


@pytest.mark.parametrize(
    "cells, status, said",
    [
        ((BLIND + WRONG_BLOCK,), "failed", "outputs differ"),
        ((BLIND + WRONG_BLOCK + FORGE_ZEROS,), "failed", "outputs differ"),
        ((BLIND + WRONG_BLOCK + FORGE_WITH.format(reference=NAMED),), "reference used", "resnet_lab.blocks.BasicBlock"),
        ((BLIND + WRONG_BLOCK + FORGE_WITH.format(reference=HIDDEN),), "needs review", "__import__"),
        ((BLIND + REFERENCE_INSIDE,), "reference used", "resnet_lab.BasicBlock"),
        ((REFERENCE_VIA_CHECKS,), "reference used", ""),
    ],
    ids=["blinded", "forged-zeros", "forged-with-reference", "forged-hidden-reference", "inside-forward", "via-checks"],
)
def test_cheats_on_the_answer_process_are_never_passed(cells, status, said):
    outcome = _grade(*cells)
    assert outcome["status"] == status, outcome
    assert said in outcome["detail"]


def test_without_reading_the_code_the_forge_with_the_reference_would_pass(monkeypatch):
    """Why the grader reads the answer's code: evidence can be forged only by computing the right outputs,
    and the forge above gets them from the package's reference. Without the static reading it passes."""
    monkeypatch.setattr(static, "review", lambda cells, plans: {})
    assert _grade(BLIND + WRONG_BLOCK + FORGE_WITH.format(reference=HIDDEN))["status"] == "passed"


def test_the_answer_process_never_holds_the_hidden_configurations():
    folder = Path(tempfile.mkdtemp(prefix="resnet-lab-spy-"))
    folder.chmod(0o777)  # as root, the answer process runs as user nobody: it must be able to write here
    spy = folder / "spy.txt"
    look = f"""
import gc
_found = [repr(o)[:3000] for o in gc.get_objects() if isinstance(o, dict) and "exercise" in o]
_found += [repr(o) for o in gc.get_objects() if isinstance(o, (list, tuple)) and len(o) == 3 and 24 in o]
open({str(spy)!r}, "w").write("\\n".join(_found))
"""
    outcome = _grade(exercises.find("basic_block").source + look, hidden={"basic_block": [[24, 48, 2]]})
    found = spy.read_text(encoding="utf-8")
    assert "'lookup': 'MyBasicBlock'" in found  # the spy did find the job's exercise specs
    assert "24, 48" not in found and "'hidden'" not in found
    assert outcome["hidden_total"] == 1 and outcome["hidden_passed"] == 1  # the judge did check it
    assert outcome["status"] == "needs review"  # gc, open: a teacher reads it


def _mutated(exercise: str, old: str, new: str) -> str:
    source = exercises.find(exercise).source
    assert old in source, (exercise, old)
    return source.replace(old, new, 1)


MISTAKES = [
    ("basic_block", "out = self.bn2(self.conv2(out))", "out = self.relu(self.bn2(self.conv2(out)))"),
    ("basic_block", "identity = x if", "x.relu_()\n        identity = x if"),
    ("bottleneck", "out = self.bn3(self.conv3(out))", "out = self.relu(self.bn3(self.conv3(out)))"),
    ("classifier_head", "torch.flatten(self.avgpool(x), 1)", "self.avgpool(x).squeeze()"),
    ("conv_output_size", "stride: int = 1, padding: int = 0", "stride: int = 1"),
    ("conv_output_size", "// stride + 1", "// stride"),
    ("train_step", "    optimizer.zero_grad()\n", ""),
    ("grad_cam", "handle.remove()", "pass"),
    ("grad_cam", "model.train(was_training)", "pass"),
    ("crop_flip", "crop.flip(-1) if flip[i] else crop", "crop"),
    ("filter_normalize", "torch.zeros_like(d)", "d"),
    ("plain_twin", "twin.load_state_dict(resnet.state_dict())", "pass"),
    ("warmup_cosine", "0.1 + 0.9 * step / warmup_steps", "step / warmup_steps"),
    # what the student's function did to the tensor objects, not only to their values (2026-12-05):
    # logits that carry a graph; parameters replaced by new objects, updated with autograd recording, or
    # switched off requires_grad; BN's running statistics replaced by new tensors
    ("flip_tta", "with torch.no_grad():\n            return", "if True:\n            return"),
    (
        "ema_update",
        "        for mine, theirs in zip(average.parameters(), model.parameters()):\n"
        "            mine.mul_(decay).add_(theirs, alpha=1 - decay)\n",
        "        for (name, mine), theirs in zip(list(average.named_parameters()), model.parameters()):\n"
        "            owner, _, leaf = name.rpartition('.')\n"
        "            setattr(average.get_submodule(owner), leaf, nn.Parameter(decay * mine + (1 - decay) * theirs))\n",
    ),
    (
        "ema_update",
        "    with torch.no_grad():\n        for mine, theirs in zip(average.parameters(), model.parameters()):\n"
        "            mine.mul_(decay).add_(theirs, alpha=1 - decay)\n",
        "    for mine, theirs in zip(average.parameters(), model.parameters()):\n"
        "        mine.requires_grad_(False)\n        mine.mul_(decay).add_(theirs * (1 - decay))\n"
        "    with torch.no_grad():\n",
    ),
    (
        "ema_update",
        "            mine.mul_(decay).add_(theirs, alpha=1 - decay)\n        for mine, theirs in zip(average.buffers()",
        "            mine.requires_grad_(False)\n            mine.mul_(decay).add_(theirs, alpha=1 - decay)\n"
        "        for mine, theirs in zip(average.buffers()",
    ),
    (
        "ema_update",
        "        for mine, theirs in zip(average.buffers(), model.buffers()):\n"
        "            if mine.is_floating_point():  # BN's running_mean and running_var\n"
        "                mine.mul_(decay).add_(theirs, alpha=1 - decay)\n",
        "        for (name, mine), theirs in zip(list(average.named_buffers()), model.buffers()):\n"
        "            if mine.is_floating_point():  # BN's running_mean and running_var\n"
        "                owner, _, leaf = name.rpartition('.')\n"
        "                setattr(average.get_submodule(owner), leaf, decay * mine + (1 - decay) * theirs)\n",
    ),
]


def _local(exercise: str, source: str) -> dict:
    namespace: dict = {}
    exec(IMPORTS + source, namespace)  # noqa: S102 - the lessons' own code, mutated
    obj = namespace[exercises.find(exercise).target]
    with contextlib.redirect_stdout(io.StringIO()):
        passed, total, error = judge._run(checks.CHECKERS[exercise], obj, [{}])
    return {"checks_passed": passed, "checks_total": total, "detail": judge.summary(error) if error else ""}


@pytest.fixture(scope="module")
def judged_mistakes() -> dict[int, dict]:
    """Every mistake of MISTAKES judged through the answer process and the judge, in as few notebooks as the
    exercises allow (one exercise once per notebook): outcome by the mistake's index."""
    rounds: list[list[int]] = []
    for i, (exercise, _, _) in enumerate(MISTAKES):
        free = next((r for r in rounds if all(MISTAKES[j][0] != exercise for j in r)), None)
        if free is None:
            rounds.append(free := [])
        free.append(i)
    found = {}
    for indices in rounds:
        cells = [{"cell_type": "code", "source": IMPORTS}]
        cells += [{"cell_type": "code", "source": _mutated(*MISTAKES[i])} for i in indices]
        plans = [
            {"exercise": MISTAKES[i][0], "lookup": exercises.find(MISTAKES[i][0]).target, "cell": k + 1}
            for k, i in enumerate(indices)
        ]
        outcomes = answers.check_answers({"cells": cells}, plans, {}, LIMITS, seed=engine.SEED)
        found.update({i: outcomes[MISTAKES[i][0]] for i in indices})
    return found


@pytest.mark.parametrize("index", range(len(MISTAKES)), ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_the_judge_says_what_the_checker_says_in_one_process(judged_mistakes, index):
    exercise = MISTAKES[index][0]
    remote = judged_mistakes[index]
    local = _local(exercise, _mutated(*MISTAKES[index]))
    assert remote["status"] == "failed"
    assert {k: remote[k] for k in local} == local


def test_a_function_that_changes_the_model_it_was_given_fails():
    """A structural change made in the answer process cannot be copied back: the judge fails the call
    (with its own message instead of the checker's hint)."""
    source = _mutated("lesion_block", "lesioned = copy.deepcopy(model)", "lesioned = model")
    outcome = _grade(source, exercise="lesion_block", lookup="delete_block")
    assert outcome["status"] == "failed"
    assert engine.HINT_NOT_DONE not in outcome["detail"]


def _recorded_outputs() -> str:
    """The honest block's outputs on every input the basic_block checker gives it (seed 0), as base64."""
    import base64

    import torch

    namespace: dict = {}
    exec(IMPORTS + exercises.find("basic_block").source, namespace)  # noqa: S102 - the lesson's own solution
    table: dict = {}

    class Recorder(namespace["MyBasicBlock"]):
        def forward(self, x):
            out = super().forward(x)
            key = (tuple(x.shape), self.conv1.out_channels, self.conv1.stride[0], round(float(x.double().sum()), 3))
            table[key] = out.detach().clone()
            return out

    assert engine.SEED == 0
    with contextlib.redirect_stdout(io.StringIO()):
        checks.basic_block(Recorder)
    buffer = io.BytesIO()
    torch.save(table, buffer)
    return base64.b64encode(buffer.getvalue()).decode()


# Outputs computed in advance with the package, looked up by input: the block ignores its weights.
LOOKUP = (
    """
import base64, io
_TABLE = torch.load(io.BytesIO(base64.b64decode("{table}")))

class MyBasicBlock(nn.Module):
    def __init__(self, in_channels, planes, stride=1):
"""
    + OWN_LAYERS
    + """
    def forward(self, x):
        out = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))  # runs every layer, for the trace
        key = (tuple(x.shape), self.conv1.out_channels, self.conv1.stride[0], round(float(x.double().sum()), 3))
        return _TABLE.get(key, out)
"""
)


def test_outputs_computed_in_advance_fail_because_the_judge_draws_its_seed():
    """With the seed the lesson's checker uses (0) a table of the reference's outputs passes; with the
    seed the judge draws for each grading run, the reference's batch norms differ and the table fails."""
    cell = LOOKUP.format(table=_recorded_outputs())
    nb = {"cells": [{"cell_type": "code", "source": IMPORTS}, {"cell_type": "code", "source": cell}]}
    plans = [{"exercise": "basic_block", "lookup": "MyBasicBlock", "cell": 1}]
    assert answers.check_answers(nb, plans, {}, LIMITS, seed=0)["basic_block"]["status"] == "passed"
    drawn = answers.check_answers(nb, plans, {}, LIMITS)["basic_block"]
    assert drawn["status"] == "failed" and "outputs differ" in drawn["detail"]


# ----------------------------------------------------------------------------------------------
# The grader's reading of the answer's code (no process)
# ----------------------------------------------------------------------------------------------

HEAD = "import torch\nfrom torch import nn\nimport resnet_lab\nfrom resnet_lab import BasicBlock, checks\n"
OWN_BLOCK = "class MyBasicBlock(nn.Module):\n    def forward(self, x):\n        return {body}\n"


@pytest.mark.parametrize(
    "earlier, cell, status",
    [
        ("", OWN_BLOCK.format(body="x"), None),
        ("", "class MyBasicBlock(BasicBlock):\n    pass\n", "reference used"),
        ("", "from resnet_lab.blocks import BasicBlock as B\nMyBasicBlock = B\n", "reference used"),
        ("", "from resnet_lab.blocks import *\nMyBasicBlock = BasicBlock\n", "reference used"),
        ("", "m = resnet_lab\nMyBasicBlock = m.blocks.BasicBlock\n", "reference used"),
        (
            "def helper(x):\n    return resnet_lab.BasicBlock(4, 4)(x)\n",
            OWN_BLOCK.format(body="helper(x)"),
            "reference used",
        ),
        ("def unused():\n    return resnet_lab.BasicBlock\n", OWN_BLOCK.format(body="x"), None),
        ("", OWN_BLOCK.format(body='getattr(resnet_lab, "Basic" + "Block")(4, 4)(x)'), "needs review"),
        ("", OWN_BLOCK.format(body='__import__("resnet_lab").blocks'), "needs review"),
        ("", "import sys\n" + OWN_BLOCK.format(body="x"), "needs review"),
        ("", OWN_BLOCK.format(body="x") + "torch.allclose = lambda *a, **k: True\n", "needs review"),
        ("", OWN_BLOCK.format(body="x") + "checks.engine.close = None\n", "needs review"),
        ("", "from resnet_lab.grade import serve\n" + OWN_BLOCK.format(body="x"), "needs review"),
        ("", OWN_BLOCK.format(body="resnet_lab.grade.references._calls.clear() or x"), "needs review"),
        ("", OWN_BLOCK.format(body="type(self).__base__"), "needs review"),
        ("", OWN_BLOCK.format(body='getattr(self, f"conv{1}")(x)'), None),
        ("", "class BasicBlock(nn.Module):\n    pass\nMyBasicBlock = BasicBlock\n", None),  # the student's own
    ],
)
def test_the_grader_reads_the_answers_code(earlier, cell, status):
    cells = [{"index": 0, "source": HEAD + earlier}, {"index": 1, "source": cell}]
    found = static.review(cells, [{"exercise": "basic_block", "cell": 1}])
    assert found.get("basic_block", (None,))[0] == status


def test_no_lesson_solution_or_stub_is_flagged():
    """The lessons' own answers (and the student copies' stubs) use nothing the reading flags."""
    import json
    from pathlib import Path

    from resnet_lab.grade import worker

    root = Path(__file__).resolve().parent.parent / "notebooks"
    for folder in (root, root / "student"):
        for lesson in sorted({e.lesson for e in exercises.all_exercises()}):
            nb = json.loads((folder / lesson).read_text(encoding="utf-8"))
            specs = [
                {"exercise": e.name, "target": e.target, "kind": e.kind, "cell_id": e.cell_id}
                for e in exercises.for_lesson(lesson)
            ]
            plans = worker.plan(nb, specs)
            assert static.review(answers.answer_cells(nb, plans), plans) == {}, (folder, lesson)


def test_tensor_objects_are_replayed_safely():
    """What the answer process says about tensor objects is replayed on the judge's model: a replaced
    parameter is a new object that keeps its gradient, a recorded update gets a grad_fn once even when a
    model and its submodule are both restored, and names that are not the model's are ignored."""
    import torch
    from torch import nn

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    first, running = model[0].weight, model[1].running_mean
    first.grad = torch.ones_like(first)
    remote._replay_tensor_objects(
        model,
        {
            "replaced": ["0.weight", "1.running_mean", "9.nothing", "0.bias.x"],
            "graph": ["1.weight"],
            "requires_grad": {"0.bias": False},
        },
    )
    assert model[0].weight is not first and torch.equal(model[0].weight, first)
    assert model[0].weight.grad is not None and model[1].running_mean is not running
    assert model[1].weight.grad_fn is not None and not model[0].bias.requires_grad
    remote._replay_tensor_objects(model[1], {"replaced": [], "graph": ["weight"], "requires_grad": {}})
    assert model[1].weight.grad_fn is not None  # the submodule's second replay changed nothing, raised nothing
    remote._replay_tensor_objects(model, {"replaced": "0.weight", "graph": None})  # malformed: values only
