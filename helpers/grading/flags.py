"""A static look at what a student wrote, for the instructor's review column.

It changes no score: the guard and the sandbox decide what a notebook can do. It points
out code that reaches for the machinery around the grading (the IPython shell, the
import system, interpreter frames, process control), which an honest answer to these
exercises never needs, so an instructor can look at those notebooks by hand.
"""

from __future__ import annotations

import ast

SUSPECT_NAMES = {  # bare names, and modules imported
    "get_ipython": "uses the IPython shell",
    "__builtins__": "touches the builtins",
    "builtins": "touches the builtins",
    "ctypes": "uses ctypes",
    "gc": "walks the garbage collector",
    "inspect": "inspects interpreter frames",
    "exec": "runs code built at run time (exec)",
    "eval": "runs code built at run time (eval)",
    "compile": "compiles code at run time",
    "__import__": "imports through __import__",
    "importlib": "uses importlib",
    "subprocess": "starts processes",
    "signal": "handles signals",
}
SUSPECT_ATTRIBUTES = {  # attribute names, whatever they belong to
    "_getframe": "inspects interpreter frames",
    "f_globals": "inspects interpreter frames",
    "f_locals": "inspects interpreter frames",
    "f_back": "inspects interpreter frames",
    "settrace": "installs a trace function",
    "setprofile": "installs a profile function",
    "meta_path": "changes the import system",
    "input_transformers_post": "changes how cells are read",
    "ast_transformers": "changes how cells are read",
    "set_custom_exc": "swallows exceptions",
}
SUSPECT_MODULE_ATTRIBUTES = {
    ("sys", "modules"): "changes sys.modules",
    ("os", "fork"): "forks processes",
    ("os", "_exit"): "ends the kernel (os._exit)",
    ("os", "kill"): "sends signals",
    ("os", "system"): "runs shell commands",
}


def _notes(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in SUSPECT_NAMES:
            found.add(SUSPECT_NAMES[node.id])
        elif isinstance(node, ast.alias) and node.name.split(".")[0] in SUSPECT_NAMES:
            found.add(SUSPECT_NAMES[node.name.split(".")[0]])
        elif isinstance(node, ast.Attribute):
            if node.attr in SUSPECT_ATTRIBUTES:
                found.add(SUSPECT_ATTRIBUTES[node.attr])
            if isinstance(node.value, ast.Name) and (node.value.id, node.attr) in SUSPECT_MODULE_ATTRIBUTES:
                found.add(SUSPECT_MODULE_ATTRIBUTES[(node.value.id, node.attr)])
        elif isinstance(node, ast.ImportFrom) and node.module in ("os", "sys"):
            for a in node.names:
                if (node.module, a.name) in SUSPECT_MODULE_ATTRIBUTES:
                    found.add(SUSPECT_MODULE_ATTRIBUTES[(node.module, a.name)])
    return found


def _rebinds_lesson_names(tree: ast.AST, protected: set[str]) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for target in targets:
            root = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and (root.id in protected or root.id.endswith("Error")):
                found.add(ast.unparse(target))
    return found


def scan(nb, protected: set[str], released: set[str]) -> list[str]:
    """Review notes for the code the student wrote: cells not locked and not as released."""
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager()
    notes: dict[str, None] = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("locked") or cell.source in released:
            continue
        try:
            tree = ast.parse(python.transform_cell(cell.source))
        except SyntaxError:
            continue
        for note in sorted(_notes(tree)):
            notes[note] = None
        imported = {a.asname or a.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
        for target in sorted(_rebinds_lesson_names(tree, protected | imported)):
            notes[f"assigns to {target}"] = None
    return list(notes)
