"""Grades as a CSV file that Canvas's gradebook import accepts (Grades > Import).

Canvas's import reads the columns of its own gradebook export: ``Student, ID, SIS User ID,
SIS Login ID, Section``, then one column per assignment, named ``<title> (<assignment id>)``
for an assignment Canvas has (its scores are replaced) or a plain title for a new one (Canvas
creates it); a row whose Student cell is ``Points Possible`` gives each column's maximum. An
empty cell leaves that student's grade as it is.

The instructor exports the gradebook (the roster) and passes it to ``grade --canvas``. The
file written has the roster's students, the lesson's column (the roster's own when one is
named after the lesson, so that the import updates it) and the lessons graded before into the
same ``canvas.csv``. Students are matched by SIS User ID, else SIS Login ID, else Canvas ID
(which an LMS zip's file names carry). Nobody is dropped without a warning.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

IDENTITY = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
POINTS = "Points Possible"


class RosterError(ValueError):
    """The roster is not a Canvas gradebook export; the message says what is missing."""


@dataclass
class Roster:
    """A Canvas gradebook export: its students (identity columns only) and the lesson's column."""

    path: Path
    students: list[dict[str, str]]
    column: str  # the assignment column for the lesson (an existing one, or a new name)
    existing: bool  # whether the roster already has that column


def _read_table(path: Path) -> list[list[str]]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RosterError(f"the roster {path} does not exist; export it from Canvas (Grades > Export).") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise RosterError(f"the roster {path} is not a CSV text file (an Excel workbook?); export the gradebook "
                          "from Canvas as CSV (Grades > Export > Export Entire Gradebook).") from None
    except OSError as err:
        raise RosterError(f"the roster {path} cannot be read ({err.strerror or err}).") from None
    try:
        return [row for row in csv.reader(text.splitlines()) if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise RosterError(f"the roster {path} is not valid CSV ({err}).") from None


def _dicts(header: list[str], rows: list[list[str]]) -> list[dict[str, str]]:
    return [dict(zip(header, row + [""] * (len(header) - len(row)), strict=False)) for row in rows]


def is_student(row: dict[str, str]) -> bool:
    """False for the rows of a Canvas export that are not students: ``Points Possible``, ``Read Only``
    and the posting-policy row (indented, or with no name and no ID)."""
    name = row.get("Student") or ""
    if name != name.lstrip() or name.strip() == POINTS or name.strip().lower().startswith("read only"):
        return False
    return bool(name.strip() or (row.get("ID") or "").strip())


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def lesson_column(header: list[str], lesson: str) -> tuple[str, bool]:
    """The roster's column for ``lesson`` (named after it, or starting with its number), else a new one.

    Returns:
        (column name, whether the roster has it).

    Raises:
        RosterError: several columns could be the lesson's.
    """
    number = lesson.split("_")[0]
    names = [h for h in header if h not in IDENTITY]
    titles = {h: _norm(re.sub(r"\s*\(\d+\)\s*$", "", h)) for h in names}
    for test in (lambda t: lesson in t, lambda t: re.match(rf"{number}(?!\d)", t)):
        hits = [h for h in names if test(titles[h])]
        if len(hits) > 1:
            raise RosterError(f"several roster columns could be lesson {lesson}: {', '.join(hits)}. Rename all "
                              "but one in the CSV (or delete them), then run again.")
        if hits:
            return hits[0], True
    return lesson, False


def read_roster(path: Path, lesson: str) -> Roster:
    """Read a Canvas gradebook export and find the lesson's column in it.

    Raises:
        RosterError: not CSV, missing identity columns, no students, or an ambiguous lesson column.
    """
    table = _read_table(path)
    if not table:
        raise RosterError(f"the roster {path} is empty; export the gradebook from Canvas (Grades > Export).")
    header = [h.strip() for h in table[0]]
    missing = [c for c in IDENTITY if c not in header]
    if missing:
        raise RosterError(f"the roster {path} has no {', '.join(missing)} column{'s' * (len(missing) > 1)} (it "
                          f"has: {', '.join(header[:8]) or 'none'}). A Canvas gradebook export starts with "
                          f"{', '.join(IDENTITY)}; export it again from Canvas (Grades > Export).")
    rows = _dicts(header, table[1:])
    students = [{c: r[c].strip() for c in IDENTITY} for r in rows if is_student(r)]
    if not students:
        raise RosterError(f"the roster {path} lists no students (only its header and {len(rows)} other rows).")
    column, existing = lesson_column(header, lesson)
    return Roster(Path(path), students, column, existing)


def _keys(student: dict[str, str]) -> list[tuple[str, str]]:
    login = student["SIS Login ID"].lower()
    keys = [("SIS User ID", student["SIS User ID"].lower()), ("SIS Login ID", login)]
    keys += [("SIS Login ID", login.split("@")[0])] if "@" in login else []
    return keys + [("ID", student["ID"].lower())]


def match(roster: Roster, student: str, canvas_id: str | None) -> dict[str, str] | None:
    """The roster entry of a graded student: by SIS User ID, else SIS Login ID, else Canvas ID."""
    wanted = {"SIS User ID": {student.lower()}, "SIS Login ID": {student.lower()},
              "ID": {student.lower(), (canvas_id or "").lower()}}
    for field in ("SIS User ID", "SIS Login ID", "ID"):
        for entry in roster.students:
            if any(f == field and key and key in wanted[field] for f, key in _keys(entry)):
                return entry
    return None


def _warn(what: str, names: list[str], log) -> None:
    if names:
        shown = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        log(f"warning: {len(names)} {what}: {shown}", file=sys.stderr)


def _points(x: float) -> str:
    return f"{x:g}"


def scores_by_id(roster: Roster, rows, canvas_ids: dict[str, str | None], log=print) -> dict[str, str]:
    """Each roster student's cell (by Canvas ID): the total, or empty when not submitted or not graded.

    Args:
        rows: the graded rows (``report.Row``: student, total, problem).
        canvas_ids: the Canvas user id of each graded student, where the submission gave one.
    """
    cells: dict[str, str] = {}
    owner: dict[str, str] = {}
    unmatched, ungraded, doubled = [], [], []
    for row in rows:
        entry = match(roster, row.student, canvas_ids.get(row.student))
        if entry is None:
            unmatched.append(f"{row.student} ({row.problem or _points(row.total) + ' points'})")
            continue
        key = entry["ID"] or entry["SIS User ID"] or entry["Student"]
        if key in owner:
            doubled.append(f"{entry['Student']} (matched by {owner[key]} and {row.student})")
            cells[key] = ""
            continue
        owner[key] = row.student
        cells[key] = "" if row.problem else _points(row.total)
        if row.problem:
            ungraded.append(f"{row.student} ({row.problem})")
    missing = [s["Student"] for s in roster.students if (s["ID"] or s["SIS User ID"] or s["Student"]) not in owner]
    _warn("graded students are not in the roster, so canvas.csv has no grade for them (add them to Canvas or "
          "name their submission by SIS User ID, SIS Login ID or Canvas ID)", unmatched, log)
    _warn("roster students have no submission: their cells are left empty, so Canvas keeps their grades",
          missing, log)
    _warn("students' notebooks could not be graded: their cells are left empty (grade them by hand)", ungraded, log)
    _warn("roster students match two submissions: their cells are left empty (grade them by hand)", doubled, log)
    return cells


def _previous(path: Path, column: str, log) -> tuple[list[str], dict[str, str], dict[str, dict[str, str]]]:
    """The other lessons' columns of an existing canvas.csv, their points, and its rows by Canvas ID."""
    if not path.is_file():
        return [], {}, {}
    table = _read_table(path)
    header = [h.strip() for h in table[0]] if table else []
    if any(c not in header for c in IDENTITY):
        aside = path.with_name(path.name + ".old")
        path.replace(aside)
        log(f"warning: {path} is not a Canvas CSV; moved it to {aside} and wrote a new one", file=sys.stderr)
        return [], {}, {}
    rows = _dicts(header, table[1:])
    kept = [h for h in header if h not in IDENTITY and h != column]
    points = next((r for r in rows if r["Student"].strip() == POINTS), {})
    return kept, {h: points.get(h, "") for h in kept}, {r["ID"] or r["Student"]: r for r in rows if is_student(r)}


def write(path: Path, roster: Roster, max_points: float, cells: dict[str, str], log=print) -> None:
    """Write (or update) ``canvas.csv``: the roster's students, the columns of lessons written there
    before, this lesson's column, and a Points Possible row."""
    kept, kept_points, before = _previous(path, roster.column, log)
    header = [*IDENTITY, *kept, roster.column]
    lines = [header, [POINTS, "", "", "", "", *[kept_points[h] for h in kept], _points(max_points)]]
    seen = set()
    for s in roster.students:
        key = s["ID"] or s["SIS User ID"] or s["Student"]
        old = before.get(s["ID"] or s["Student"], {})
        seen.add(s["ID"] or s["Student"])
        lines.append([*(s[c] for c in IDENTITY), *(old.get(h, "") for h in kept), cells.get(key, "")])
    gone = [k for k in before if k not in seen]
    for k in gone:  # students of an earlier lesson's roster: their rows stay, with no grade for this lesson
        lines.append([*(before[k].get(c, "") for c in IDENTITY), *(before[k].get(h, "") for h in kept), ""])
    _warn(f"students of the earlier {path.name} are not in this roster (their rows are kept)",
          [before[k]["Student"] or k for k in gone], log)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(lines)


def export(path: Path, roster: Roster, max_points: float, rows, subs, log=print) -> None:
    """Match the graded rows to the roster and write ``canvas.csv`` (see :func:`write`).

    Args:
        rows: ``report.Row`` for each student graded or not gradable.
        subs: the ``layouts.Submission`` list, for the Canvas user ids an LMS zip gives.
    """
    cells = scores_by_id(roster, rows, {s.student: s.canvas_id for s in subs}, log)
    write(path, roster, max_points, cells, log)
    where = "its existing column" if roster.existing else "a new assignment column"
    log(f"Wrote {path}: {roster.column} ({where}) for {len(roster.students)} roster students; import it in "
        "Canvas with Grades > Import.")
