"""The archive students receive: the student notebooks, the ``helpers`` package without
the instructors' tools (``helpers/course``, ``helpers/grading``) and a short README.

The build refuses to write an archive that contains any solution (the body of a
``### BEGIN SOLUTION`` block in ``solutions/``) or any hidden test.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

INSTRUCTOR_ONLY = ("helpers/course", "helpers/grading")
BLOCKS = (("### BEGIN SOLUTION", "### END SOLUTION"), ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))

README = """# Hands-on PyTorch: student bundle

The course's notebooks (`notebooks/`) and the `helpers` package they import.

1. Install Python 3.10 or newer with PyTorch and torchvision (Colab has both).
2. In this folder: `pip install ".[mnist-subset]"` (installs `helpers`; it never installs torch).
3. Open `notebooks/01_tensors_autograd/01_tensors_autograd.ipynb` in JupyterLab and run the setup cell.

Write your code where it says `raise NotImplementedError()`, run the cell, then run the
check below it: it says correct, incorrect (and why), or not attempted. Stuck? Run the
hints cell (`checks.ex1.hint(1)`, then `hint(2)` and `hint(3)`: the idea, the PyTorch pieces,
a skeleton with blanks). Don't edit the graded cells: they are
restored when your notebook is graded.
"""


class LeakError(RuntimeError):
    """The bundle would contain a solution or a hidden test."""


def _normal(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _sources(root: Path) -> list[str]:
    return ["".join(cell.get("source", []))
            for path in sorted((root / "solutions").glob("*/*.ipynb"))
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]]


def secrets(root: Path) -> list[list[str]]:
    """The solution and hidden-test bodies of every instructor notebook, as stripped lines."""
    found = []
    for source in _sources(root):
        for start, end in BLOCKS:
            for body in re.findall(re.escape(start) + r"(.*?)" + re.escape(end), source, re.S):
                if _normal(body):
                    found.append(_normal(body))
    return found


def public_text(root: Path) -> str:
    """What the instructor notebooks show openly: every cell with its solution and hidden-test blocks cut out.
    Code there is course material (a later lesson may show an earlier lesson's answer, a "find the bug"
    exercise shows training loops), so finding it in the bundle is not a leak."""
    text = []
    for source in _sources(root):
        for start, end in BLOCKS:
            source = re.sub(re.escape(start) + r".*?" + re.escape(end), "\n", source, flags=re.S)
        text += _normal(source)
    return "\n".join(text)


def readable_text(name: str, data: bytes) -> str:
    """A file's text as a reader sees it: a notebook's cell sources and outputs, else the file itself."""
    text = data.decode("utf-8", errors="replace")
    if name.endswith(".ipynb"):
        try:
            cells = json.loads(text)["cells"]
        except (ValueError, KeyError, TypeError):
            return text
        parts = []
        for cell in cells:
            parts.append("".join(cell.get("source", [])))
            for out in cell.get("outputs", []):
                parts.append("".join(out.get("text", [])))
                parts += ["".join(v) if isinstance(v, list) else str(v) for v in out.get("data", {}).values()]
        return "\n".join(parts)
    return text


MIN_SECRET_CHARS = 20  # shorter bodies (`model.train()`) are ordinary course code, not a give-away


def leaks(files: dict[str, bytes], bodies: list[list[str]], public: str = "") -> list[str]:
    """'file: first line of the secret' for each secret found: a whole body, or four of its lines in a row
    (three in a row are still common idioms, such as the opening of a training loop). What ``public`` (the
    instructor notebooks' open text) already shows does not count."""
    found = []
    bodies = [b for b in bodies if len("\n".join(b)) >= MIN_SECRET_CHARS and "\n".join(b) not in public]
    for name, data in files.items():
        text = "\n".join(_normal(readable_text(name, data)))
        for body in bodies:
            windows = ["\n".join(body[i:i + 4]) for i in range(max(1, len(body) - 3))] if len(body) >= 4 else []
            if "\n".join(body) in text or any(w in text and w not in public for w in windows):
                found.append(f"{name}: {body[0]}")
    return found


def _members(root: Path) -> dict[str, bytes]:
    files = {}
    for top in ("notebooks", "helpers"):
        for path in sorted((root / top).rglob("*")):
            rel = path.relative_to(root).as_posix()
            if not path.is_file() or rel.startswith(INSTRUCTOR_ONLY) or "__pycache__" in rel \
                    or ".ipynb_checkpoints" in rel or path.suffix in (".pyc", ".db"):
                continue
            files[rel] = path.read_bytes()
    files["pyproject.toml"] = (root / "pyproject.toml").read_bytes()
    files["README.md"] = README.encode()
    return files


def build(root: Path, out: Path) -> tuple[Path, int]:
    """Write the bundle to ``out``; returns its path and how many files it holds.

    Raises:
        LeakError: a solution or hidden test would be inside.
    """
    files = _members(root)
    practice = sorted(name for name in files if name.endswith("/solutions.json"))
    if practice:
        raise LeakError("the notebooks are a practice release, with solutions (" + ", ".join(practice) + "): "
                        "the student bundle is for graded work. Set [tool.course] practice = false in "
                        "pyproject.toml and run `make release`, then `make bundle`.")
    found = leaks(files, secrets(root), public_text(root))
    if found:
        raise LeakError("the student bundle would contain solutions or hidden tests:\n  " + "\n  ".join(found))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data, zipfile.ZIP_DEFLATED)
    return out, len(files)
