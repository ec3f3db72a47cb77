"""Answers taken from the course's own package: a static look at what a student wrote.

An answer to an exercise must be the learner's code. The reference solutions use nothing
from ``helpers``; the lessons hand out some of it as tools (data, plots, widgets, the
instant checks), and the rest (the reference code behind the checks, lesson 04's trainer
``training.fit``) would answer an exercise. A student-written cell that reaches
for the rest costs the exercise it belongs to all its points, with a review line naming what
it used.

Which exercise a cell belongs to: an answer cell ``exN_answer`` to exercise N; a cell the
student added, to each exercise whose answer names (``predict``, ``n_params``) it binds. A cell
of the student's own that binds no answer (an experiment with ``training.fit``)
costs nothing and is noted for the review column.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "helpers"
TOOLS = ("helpers.config", "helpers.data", "helpers.plots", "helpers.widgets", "helpers.distributed",
         "helpers.worker_loop",
         "helpers.training.set_seed", "helpers.training.TensorLoader", "helpers.training.History")
# What answers an exercise of a lesson although the lesson's own cells use it (after the exercise,
# or in another lesson before the exercise asks for it).
# lesson 04's trainer, helpers.training.fit, holds a training step and a validation pass; the patience
# widget's early_stop_epochs finds lesson 06's best epoch and stopping epoch.
ANSWERS = {
    "05": ("helpers.training.fit",),
    "06": ("helpers.training.fit", "helpers.widgets.training.early_stop_epochs"),
}


def modules(root: Path) -> set[str]:
    """The dotted names of the package's modules and subpackages."""
    base = root / PACKAGE
    names = {PACKAGE}
    for path in base.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _uses(tree: ast.AST, aliases: dict[str, list], mods: set[str]) -> list[str]:
    """Every dotted ``helpers...`` path the code refers to: names imported from the package (not
    the import of a module itself), and names bound to the package (by the lesson's imports or the
    code's own) with the longest chain of attributes taken from them."""
    bound = {name: ".".join(p for p in target if p) for name, target in aliases.items()}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                path = f"{node.module}.{a.name}" if a.name != "*" else node.module
                bound[a.asname or a.name] = path
                found += [path] if a.name == "*" or path not in mods else []
    bound = {k: v for k, v in bound.items() if v == PACKAGE or v.startswith(PACKAGE + ".")}
    inner: set[int] = set()  # parts of a longer chain, already counted with it
    for node in ast.walk(tree):  # outer nodes come first
        if id(node) in inner:
            continue
        if isinstance(node, ast.Name) and node.id in bound:
            found.append(bound[node.id])
        elif isinstance(node, ast.Attribute):
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                inner.add(id(base))
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                inner.add(id(base))
                found.append(".".join([bound[base.id], *reversed(chain)]))
    return [p for p in found if p == PACKAGE or p.startswith(PACKAGE + ".")]


def allowed(released_uses: set[str], mods: set[str], lesson: str) -> set[str]:
    """Prefixes a student may use: the tool modules, what the lesson's cells use, and the objects
    those uses hang from (``checks.ex1`` for ``checks.ex1.check``) when they are not modules."""
    ok = set(TOOLS)
    for path in released_uses:
        ok.add(path)
        parent = path.rpartition(".")[0]
        if parent and parent not in mods:
            ok.add(parent)
    return ok - set(ANSWERS.get(lesson[:2], ()))


def verdict(path: str, ok: set[str], mods: set[str], lesson: str) -> bool:
    """True when ``path`` is copying: an answer, a module that is not a tool used as a whole (say
    through getattr), or anything of the package that the lesson does not hand out."""
    if any(path == a or path.startswith(a + ".") for a in ANSWERS.get(lesson[:2], ())):
        return True
    if path in mods:  # a module used as a whole: only a tool module (or one inside a tool package) may be
        return not any(path == t or path.startswith(t + ".") for t in TOOLS)
    return not any(path == p or path.startswith(p + ".") for p in ok)


def _parse(source: str):
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return None


def bound_names(tree: ast.AST) -> set[str]:
    """The global names a cell binds: its functions, classes, assignments and imports (also inside
    if / try / with / for blocks, not inside functions)."""
    names: set[str] = set()
    for node in getattr(tree, "body", []):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for tgt in targets for n in ast.walk(tgt) if isinstance(n, ast.Name))
        for block in ("body", "orelse", "finalbody", "handlers"):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and hasattr(node, block):
                for child in getattr(node, block):
                    names |= bound_names(ast.Module(body=[child], type_ignores=[]))
    return names


def answer_names(source_nb) -> dict[str, set[str]]:
    """``{exercise prefix: names its reference answer defines}``, from the instructor notebook."""
    found: dict[str, set[str]] = {}
    for cell in source_nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution") and gid.endswith("_answer"):
            tree = _parse(cell.source)
            found[gid.split("_")[0]] = bound_names(tree) if tree is not None else set()
    return found


def find(nb, released: set[str], aliases: dict[str, list], root: Path, lesson: str,
         answers: dict[str, set[str]]) -> dict[str, list[str]]:
    """``{exercise prefix ("ex3"): [what it used]}`` for the student-written cells that copy: an
    answer cell, or a cell of the student's own that binds one of the exercise's answer names.
    What a cell of the student's own uses without binding an answer is under ``""`` (noted only).

    Args:
        answers: ``answer_names`` of the instructor notebook.
    """
    mods = modules(root)
    released_uses = set()
    for source in released:
        tree = _parse(source)
        released_uses.update(_uses(tree, aliases, mods) if tree is not None else [])
    ok = allowed(released_uses, mods, lesson)
    found: dict[str, list[str]] = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        gid = meta.get("grade_id", "")
        if cell.cell_type != "code" or meta.get("grade") or meta.get("locked") \
                or (cell.source in released and not meta.get("solution")):
            continue
        tree = _parse(cell.source)
        used = sorted({p for p in _uses(tree, aliases, mods) if verdict(p, ok, mods, lesson)}) if tree else []
        if not used:
            continue
        if meta.get("solution") and gid.endswith("_answer"):
            owners = [gid.split("_")[0]]
        else:
            binds = bound_names(tree)
            owners = [ex for ex, names in answers.items() if names & binds] or [""]
        for owner in owners:
            found.setdefault(owner, []).extend(used)
    return {k: sorted(set(v)) for k, v in found.items()}
