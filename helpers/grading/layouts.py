"""Finding each student's notebook in what the instructor collected.

Three layouts are understood:

- nbgrader's own: ``submitted/<student>/<lesson>/<notebook>.ipynb`` (the folder given may be
  ``submitted/`` itself or the course folder that holds it);
- a flat folder with one notebook per student, the id taken from the file name
  (``jane_doe.ipynb``, ``jane_doe_01_tensors_autograd.ipynb``);
- a zip from a learning-management system, with Canvas-style names such as
  ``doe_jane_12345_6789_01_tensors_autograd.ipynb`` (``doe_jane_LATE_12345_...`` when late),
  or a zip of either layout above.

A file that cannot be graded (not a notebook, another lesson, a second copy) becomes a
:class:`Problem` naming the file; everything else is still graded.
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

CANVAS = re.compile(r"^(?P<name>[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)*?)_(?:(?P<late>late|LATE)_)?"
                    r"(?P<uid>\d+)_(?P<sid>\d+)_(?P<file>.+)$")
MAX_MEMBER_BYTES = 100 * 2**20  # a notebook bigger than this in a zip is not extracted


class LayoutError(ValueError):
    """The submissions path is none of the known layouts; the message says what was found."""


@dataclass(frozen=True)
class Submission:
    """One student's notebook for the lesson."""

    student: str
    path: Path  # the file to grade (an extracted copy for a zip)
    source: str  # where the instructor finds it
    submitted_at: datetime | None = None
    marked_late: bool = False
    canvas_id: str | None = None  # the Canvas user id, from an LMS zip's file name


@dataclass(frozen=True)
class Problem:
    """A file or student that could not be graded, and why."""

    source: str
    message: str
    student: str | None = None


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "__MACOSX", "~$"))


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)


def collect(path: Path, lesson: str, lessons: list[str], scratch: Path) -> tuple[list[Submission], list[Problem], str]:
    """The submissions for ``lesson`` under ``path``, the problems met, and the layout's name.

    Args:
        lessons: every lesson of the course, to recognise a notebook for another one.
        scratch: a folder where a zip is extracted (the zip itself is only read).

    Raises:
        LayoutError: ``path`` is missing or in no known layout.
    """
    path = Path(path)
    if not path.exists():
        raise LayoutError(f"{path} does not exist.")
    if path.is_file() and zipfile.is_zipfile(path):
        root, skipped = _extract(path, scratch / "unzipped")
        subs, problems, layout = collect(root, lesson, lessons, scratch / "inner")
        problems = skipped + problems
        rel = lambda s: f"{path.name}:{s}"  # noqa: E731
        subs = [replace(s, source=rel(s.source)) for s in subs]
        problems = [Problem(rel(p.source), p.message, p.student) for p in problems]
        return subs, problems, f"zip ({layout})"
    if path.is_file():
        raise LayoutError(f"{path} is not a folder or a zip file; give the folder of submissions or the "
                          "zip your learning-management system exported.")
    if (path / "submitted").is_dir():
        return (*_nbgrader(path / "submitted", lesson), "nbgrader")
    entries = sorted(p for p in path.iterdir() if _visible(p))
    if any(p.is_dir() and (p / lesson).is_dir() for p in entries):
        return (*_nbgrader(path, lesson), "nbgrader")
    files = [p for p in entries if p.is_file()]
    if files:
        return (*_flat(path, files, lesson, lessons), "flat")
    if len(entries) == 1 and entries[0].is_dir():  # a zip that holds one folder
        return collect(entries[0], lesson, lessons, scratch)
    found = ", ".join(p.name + ("/" if p.is_dir() else "") for p in entries[:5]) or "nothing"
    raise LayoutError(
        f"{path} holds no notebooks and no nbgrader folders for lesson {lesson} (found: {found}). Expected "
        f"submitted/<student>/{lesson}/{lesson}.ipynb, a folder of <student>.ipynb files, or an LMS zip.")


def _nbgrader(submitted: Path, lesson: str) -> tuple[list[Submission], list[Problem]]:
    subs, problems = [], []
    for entry in sorted(p for p in submitted.iterdir() if _visible(p)):
        source = str(entry.relative_to(submitted.parent))
        if not entry.is_dir():
            problems.append(Problem(source, "is not a student folder (expected submitted/<student>/); skipped"))
            continue
        folder = entry / lesson
        if not folder.is_dir():
            others = ", ".join(p.name for p in entry.iterdir() if p.is_dir()) or "none"
            problems.append(Problem(source, f"has no {lesson}/ folder (lessons found: {others})", entry.name))
            continue
        notebooks = sorted(p for p in folder.glob("*.ipynb") if _visible(p))
        chosen = [p for p in notebooks if p.name == f"{lesson}.ipynb"] or (notebooks if len(notebooks) == 1 else [])
        if not chosen:
            what = "no notebook" if not notebooks else f"{len(notebooks)} notebooks and none named {lesson}.ipynb"
            problems.append(Problem(str(folder.relative_to(submitted.parent)), f"has {what}", entry.name))
            continue
        stamp = folder / "timestamp.txt"
        subs.append(Submission(entry.name, chosen[0], str(chosen[0].relative_to(submitted.parent)),
                               _parse_stamp(stamp) if stamp.is_file() else _mtime(chosen[0])))
    return subs, problems


def _parse_stamp(path: Path) -> datetime | None:
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(path.read_text().strip()).replace(tzinfo=timezone.utc)
    except Exception:  # an unreadable timestamp: fall back to the file's time
        return _mtime(path)


def _flat(folder: Path, files: list[Path], lesson: str, lessons: list[str]) -> tuple[list[Submission], list[Problem]]:
    problems: list[Problem] = []
    found: list[tuple[str, str | None, Submission]] = []  # (name, canvas user id, submission)
    for path in files:
        canvas = CANVAS.match(path.stem)
        name = canvas["name"] if canvas else _strip_lesson(path.stem, lesson)
        rest = canvas["file"] if canvas else path.stem
        if path.suffix.lower() != ".ipynb":
            problems.append(Problem(path.name, "is not a notebook (.ipynb); skipped", name or None))
            continue
        other = [n for n in lessons if n != lesson and n in rest and lesson not in rest]
        if other:
            problems.append(Problem(path.name, f"is for lesson {other[0]}, not {lesson}; skipped", name or None))
            continue
        if not name:
            problems.append(Problem(path.name, "does not say whose it is: name files <student>.ipynb"))
            continue
        found.append((name, canvas["uid"] if canvas else None,
                      Submission(name, path, path.name, _mtime(path), bool(canvas and canvas["late"]),
                                 canvas["uid"] if canvas else None)))
    return _one_per_student(found, problems)


def _strip_lesson(stem: str, lesson: str) -> str:
    for token in (lesson, lesson.split("_")[0]):
        stem = stem.replace(token, "") if token and len(token) > 2 else stem
    return re.sub(r"[_\-. ]+", "_", stem).strip("_")


def _one_per_student(found, problems) -> tuple[list[Submission], list[Problem]]:
    uids: dict[str, set] = {}
    for name, uid, _ in found:
        uids.setdefault(name, set()).add(uid)
    by_student: dict[str, list[Submission]] = {}
    for name, uid, sub in found:
        student = f"{name}_{uid}" if len(uids[name]) > 1 and uid else name
        by_student.setdefault(student, []).append(replace(sub, student=student))
    subs = []
    for student, items in sorted(by_student.items()):
        items.sort(key=lambda s: (s.submitted_at or datetime.min.replace(tzinfo=timezone.utc), s.source))
        subs.append(items[-1])
        problems += [Problem(s.source, f"is an older submission of {student} (graded: {items[-1].source}); skipped",
                             student) for s in items[:-1]]
    return subs, problems


def _extract(archive: Path, dest: Path) -> tuple[Path, list[Problem]]:
    """Extract the zip's files (safely: no absolute paths, no '..', bounded sizes) into ``dest``."""
    skipped: list[Problem] = []
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            parts = [p for p in PurePosixPath(info.filename.replace("\\", "/")).parts if p not in ("", ".", "..", "/")]
            if info.is_dir() or not parts or parts[0] == "__MACOSX":
                continue
            if info.file_size > MAX_MEMBER_BYTES:
                skipped.append(Problem(info.filename, f"is larger than {MAX_MEMBER_BYTES // 2**20} MB; not extracted"))
                continue
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            stamp = datetime(*info.date_time, tzinfo=timezone.utc).timestamp()
            os.utime(target, (stamp, stamp))
    return dest, skipped
