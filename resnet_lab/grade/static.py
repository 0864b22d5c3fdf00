"""Reading an answer's code, in the grader's process, before anything of it runs: is it the student's own?

The answer process reports the package's reference when it sees it (:mod:`resnet_lab.grade.references`),
but that process runs the student's code, which may blind it. This module needs nothing from there: it
parses the cells an exercise's answer runs (its exercise cell whole, and the definitions of earlier cells
that the answer reaches by name) and reports

* ``reference used`` when that code names the exercise's reference (``resnet_lab.BasicBlock``, an alias
  ``from resnet_lab import BasicBlock as B``, a base class ``class MyBlock(BasicBlock)``, the reference
  reached through any imported module such as ``checks.blocks.BasicBlock``), whatever it does with it;
* ``needs review`` when it uses code that can reach anything without naming it: ``__import__``,
  ``importlib``, ``exec``/``eval``/``compile``, ``globals()``, ``sys``/``os``/``gc``/``inspect``, a
  ``getattr``/``setattr`` with a computed name on anything but ``self``, dunder attributes such as
  ``__dict__`` or ``__globals__``, ``open``; or changes an attribute of an imported module (``torch.allclose
  = ...``). Honest answers to the course's exercises need none of these, so such an answer goes to the
  teacher instead of being graded ``passed``.
"""

from __future__ import annotations

import ast
import copy
from typing import Any

from ..notebook_cells import parse_cell

_DYNAMIC_CALLS = {
    "__import__", "exec", "eval", "compile", "globals", "locals", "vars", "open", "breakpoint", "__builtins__",
}  # fmt: skip
_DYNAMIC_MODULES = {
    "importlib", "sys", "os", "gc", "ctypes", "inspect", "subprocess", "builtins", "pickle", "marshal",
    "types", "socket", "pathlib", "shutil", "multiprocessing", "threading", "signal", "runpy", "code",
    "operator", "pkgutil", "pydoc", "copyreg", "weakref", "dis",
}  # fmt: skip
_DYNAMIC_ATTRS = {
    "__dict__", "__globals__", "__code__", "__closure__", "__builtins__", "__subclasses__", "__import__",
    "__loader__", "__spec__", "__getattribute__", "__reduce__", "__reduce_ex__", "__bases__", "__mro__",
    "f_back", "f_globals", "f_locals", "f_builtins", "gi_frame", "tb_frame", "__self__", "__func__",
    "__base__", "__wrapped__", "__class__", "__qualname__", "__module__", "__objclass__",
}  # fmt: skip
# the grader's own machinery: an answer has no business reaching it
_INTERNALS = ("resnet_lab.grade", "resnet_lab.checks.engine", "resnet_lab.checks.pairing")
_INTERNAL_ATTRS = {"grade", "engine", "pairing", "CHECKERS"}
_ATTR_FUNCTIONS = {"getattr", "setattr", "delattr", "hasattr"}
# packages whose ResNet code counts as a reference (torchvision's blocks for the block exercises)
_PACKAGES = ("resnet_lab", "torchvision")


def _owner(origin: str) -> str:
    return "torchvision's" if origin.startswith("torchvision") else "resnet_lab's"


class _StripBodies(ast.NodeTransformer):
    """What runs when a cell is executed: everything but the bodies of its functions (their decorators
    and default values do run; so do class bodies)."""

    def visit_FunctionDef(self, node: ast.AST) -> ast.AST:
        node = self.generic_visit(node)
        node.body = [ast.Pass()]  # type: ignore[attr-defined]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef


def reference_names(exercise: str) -> set[str]:
    from .references import REFERENCES

    return {key.split(":")[1] for key in REFERENCES.get(exercise, ())}


def reference_keys(exercise: str) -> set[str]:
    from .references import REFERENCES

    return set(REFERENCES.get(exercise, ()))


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001
        return "?"


class _Reader:
    def __init__(self, exercise: str) -> None:
        self.names = reference_names(exercise)
        self.packages = tuple(sorted({k.split(":")[0].split(".")[0] for k in reference_keys(exercise)}))
        self.imported: dict[str, str] = {}  # local name -> what it was imported as ("resnet_lab:BasicBlock")
        self.references: list[str] = []
        self.dynamic: list[str] = []
        self.patches: list[str] = []  # attributes of imported modules the answer changes (listed last)
        self.built: set[str] = set()  # names bound to what a call returned (objects the answer built itself)

    def note_names(self, tree: ast.AST) -> None:
        """Names bound to a call's result (``net = copy.deepcopy(model)``) are the answer's own objects;
        names bound to an imported name or its attribute (``m = resnet_lab``) are aliases of it."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                name, value = node.targets[0].id, node.value
                if isinstance(value, ast.Call):
                    self.built.add(name)
                elif isinstance(value, (ast.Name, ast.Attribute)) and _root(value) in self.imported:
                    base = self.imported[_root(value)]
                    self.imported[name] = base if isinstance(value, ast.Name) else f"{base}.{_dotted(value)}"

    def note_imports(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.imported[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":  # every name the module exports, the references among them
                        for name in self.names if (node.module or "").startswith(self.packages) else ():
                            self.imported[name] = f"{node.module}:{name}"
                        continue
                    self.imported[alias.asname or alias.name] = f"{node.module or ''}:{alias.name}"

    def _package_built(self, node: ast.AST) -> bool:
        """Does the expression use a name imported from a package with references (resnet_lab, torchvision)?"""
        return any(
            isinstance(n, ast.Name) and self.imported.get(n.id, "").startswith(_PACKAGES) for n in ast.walk(node)
        )

    def read(self, tree: ast.AST, where: str, imports: bool = True) -> None:
        """Note references and dynamic code in ``tree``; ``imports``: an import of a reference's name or of a
        module such as ``sys`` counts (False for the set-up code of earlier cells, where only a use counts)."""
        called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        for node in ast.walk(tree):
            line = f"{where}, line {getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                origin = self.imported.get(node.id, "")
                if origin.startswith(self.packages) and origin.rpartition(":")[2] in self.names:
                    self.references.append(f"{node.id} ({_owner(origin)} {origin.rpartition(':')[2]}; {line})")
                if node.id in _DYNAMIC_CALLS or node.id in _DYNAMIC_MODULES and node.id in self.imported:
                    self.dynamic.append(f"{node.id} ({line})")
                elif node.id in _ATTR_FUNCTIONS and id(node) not in called:  # reduce(getattr, ...), map(getattr, ...)
                    self.dynamic.append(f"{node.id} used as a value ({line})")
            elif isinstance(node, ast.Attribute):
                root = _root(node)
                if node.attr in self.names and root is not None and root in self.imported:
                    origin = self.imported[root]
                    if origin.startswith(self.packages):
                        self.references.append(f"{_dotted(node)} ({_owner(origin)} {node.attr}; {line})")
                if node.attr in _DYNAMIC_ATTRS or (node.attr in _INTERNAL_ATTRS and root in self.imported):
                    self.dynamic.append(f"{_dotted(node)} ({line})")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.Import):
                    modules = [a.name for a in node.names]
                else:
                    modules = [node.module or "", *(f"{node.module or ''}.{a.name}" for a in node.names)]
                dynamic = any(m.split(".")[0] in _DYNAMIC_MODULES for m in modules)
                if (dynamic and imports) or any(m.startswith(_INTERNALS) for m in modules):
                    self.dynamic.append(f"import {', '.join(modules)} ({line})")
                if imports and isinstance(node, ast.ImportFrom) and (node.module or "").startswith(self.packages):
                    for alias in node.names:
                        if alias.name in self.names:
                            origin = node.module or ""
                            self.references.append(
                                f"from {origin} import {alias.name} ({_owner(origin)} {alias.name}; {line})"
                            )
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type":
                if len(node.args) == 1 and self._package_built(node.args[0]):  # the class of a package object
                    self.dynamic.append(f"{_dotted(node)} ({line})")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _ATTR_FUNCTIONS:
                target = node.args[0] if node.args else None
                name = node.args[1] if len(node.args) > 1 else None
                computed = not (isinstance(name, ast.Constant) and isinstance(name.value, str))
                own = _root(target) in ("self", "cls") or _root(target) in self.built
                if (computed and not own) or (target is not None and _root(target) in self.imported):
                    self.dynamic.append(f"{_dotted(node)} ({line})")
                if isinstance(name, ast.Constant) and name.value in self.names and _root(target) in self.imported:
                    self.references.append(f"{_dotted(node)} ({line})")
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
                for target in targets:
                    if isinstance(target, (ast.Attribute, ast.Subscript)) and _root(target) in self.imported:
                        self.patches.append(f"assigns {_dotted(target)} ({line})")


def _top_level(tree: ast.Module) -> dict[str, ast.AST]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def review(cells: list[dict[str, Any]], plans: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """``{exercise: (status, detail)}`` for the answers that are not plainly the student's own code.

    ``cells``: the cells the answer process runs (``answers.answer_cells``: index and source);
    ``plans``: the exercises (``exercise`` and ``cell``, the index of the exercise cell).
    """
    parsed = [(c["index"], parse_cell(c["source"])) for c in cells]
    found: dict[str, tuple[str, str]] = {}
    for plan in plans:
        cell = plan.get("cell")
        if cell is None:
            continue
        reader = _Reader(plan["exercise"])
        earlier: dict[str, tuple[int, ast.AST]] = {}
        own: ast.Module | None = None
        for index, tree in parsed:
            if tree is None or index > cell:
                continue
            reader.note_imports(tree)
            if index == cell:
                own = tree
            else:
                earlier.update({name: (index, node) for name, node in _top_level(tree).items()})
        if own is None:
            continue
        for name in _top_level(own):  # the student's own definitions shadow imported names
            reader.imported.pop(name, None)
        reader.note_names(own)
        reader.read(own, f"cell {cell}")
        done: set[str] = set(_top_level(own))
        todo = [own]
        while todo:  # definitions of earlier cells that the answer reaches by name, and theirs
            tree = todo.pop()
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and node.id in earlier and node.id not in done:
                    done.add(node.id)
                    index, definition = earlier[node.id]
                    reader.note_names(definition)
                    reader.read(definition, f"cell {index}")
                    todo.append(definition)
        for index, tree in parsed:  # what else runs before the answer: module-level code and class bodies
            if tree is not None and index < cell:
                executed = _StripBodies().visit(copy.deepcopy(tree))
                reader.note_names(executed)
                reader.read(executed, f"cell {index}", imports=False)
        if reader.references:
            found[plan["exercise"]] = (
                "reference used",
                "the answer's code names a reference implementation of what the exercise asks: "
                + "; ".join(list(dict.fromkeys(reader.references))[:3]),
            )
        elif reader.dynamic or reader.patches:
            found[plan["exercise"]] = (
                "needs review",
                "the answer's code uses what an exercise does not need (it can reach the grader's tools "
                "without naming them), so a teacher should read it: "
                + "; ".join(list(dict.fromkeys(reader.dynamic + reader.patches))[:6]),
            )
    return found
