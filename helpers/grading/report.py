"""What grading produces: the grade sheet (CSV), one feedback page per student, and a summary.

Feedback shows each exercise's result and the check's own message (which never prints
the expected answer), never a test cell's source or traceback, so the hidden tests stay
hidden; a message that quotes the hidden tests is withheld.
"""

from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from helpers.grading.course import GradedCell
from helpers.grading.layouts import Problem, Submission

WITHHELD = "(message withheld: it quoted the graded test)"


@dataclass
class Row:
    """One student's grades for one lesson."""

    student: str
    scores: dict[str, float]
    messages: dict[str, str]
    problem: str = ""
    review: list[str] = field(default_factory=list)
    submitted_at: datetime | None = None
    late: bool = False

    @property
    def total(self) -> float:
        return sum(self.scores.values())


def _points(x: float) -> str:
    return f"{x:g}"


def scrub(message: str, cell: GradedCell) -> str:
    """The message, unless it contains a line of the cell's hidden tests."""
    lines = [ln.strip() for ln in cell.hidden.splitlines() if len(ln.strip()) >= 12]
    return WITHHELD if any(ln in message for ln in lines) else message


def build_rows(subs: list[Submission], results: dict[str, dict], problems: list[Problem], cells: list[GradedCell],
               due: datetime | None) -> list[Row]:
    """One row per student: those graded, and those whose submission could not be graded."""
    rows = {}
    for sub in subs:
        res = results.get(sub.student, {"problem": "not graded"})
        scores = {c.grade_id: float(res.get("scores", {}).get(c.grade_id, 0.0)) for c in cells}
        messages = {c.grade_id: scrub(res.get("messages", {}).get(c.grade_id, ""), c) for c in cells}
        late = bool(due and (sub.marked_late or (sub.submitted_at and sub.submitted_at > due)))
        review = list(res.get("flags", [])) + [f"undid {r}" for r in res.get("restored", [])]
        review += [cell_errors_note(res["cell_errors"])] if res.get("cell_errors") else []
        rows[sub.student] = Row(sub.student, scores, messages, res.get("problem", ""), review, sub.submitted_at, late)
    for p in problems:
        if p.student and p.student not in rows:
            rows[p.student] = Row(p.student, {c.grade_id: 0.0 for c in cells}, {}, f"{p.source} {p.message}")
    return [rows[k] for k in sorted(rows)]


CELL_ERRORS = "error in a cell with no points"  # how the review entry starts; the summary counts it


def cell_errors_note(errors: list[str]) -> str:
    """The review entry for errors in the lesson's cells that carry no points."""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{CELL_ERRORS}: {errors[0]}{more}"


def write_csv(path: Path, rows: list[Row], lesson: str, cells: list[GradedCell], due: datetime | None) -> None:
    """The grade sheet: student, lesson, points per exercise, total, max, [submitted_at, late], status, review."""
    header = ["student", "lesson", *[c.grade_id for c in cells], "total", "max"]
    header += ["submitted_at", "late"] if due else []
    header += ["status", "review"]
    max_points = sum(c.points for c in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        for r in rows:
            line = [r.student, lesson, *[_points(r.scores[c.grade_id]) for c in cells], _points(r.total),
                    _points(max_points)]
            if due:
                stamp = r.submitted_at.isoformat(timespec="seconds") if r.submitted_at else ""
                line += [stamp, "yes" if r.late else "no"]
            line += [r.problem or "graded", "; ".join(r.review)]
            out.writerow(line)


def write_sheets(out: Path, rows: list[Row], lesson: str, cells: list[GradedCell], due: datetime | None
                 ) -> list[Path]:
    """``OUT/grades.csv`` (the lesson just graded) and ``OUT/grades-<lesson>.csv``, which stays when the
    next lesson is graded into the same ``OUT``: no lesson's sheet is lost."""
    paths = [out / "grades.csv", out / f"grades-{lesson}.csv"]
    for path in paths:
        write_csv(path, rows, lesson, cells, due)
    return paths


def status(score: float, cell: GradedCell, message: str) -> str:
    if score >= cell.points:
        return "correct"
    if ": not attempted." in message:
        return "not attempted"
    if message.startswith("NotRun:"):
        return "not run"
    return "partly correct" if score > 0 else "incorrect"


_COLOURS = {"correct": "#1b7837", "partly correct": "#8c510a", "not attempted": "#8c510a"}


def feedback_html(row: Row, lesson: str, cells: list[GradedCell]) -> str:
    """A self-contained page: the total, then each exercise's points, result and message."""
    esc = html.escape
    max_points = sum(c.points for c in cells)
    items = []
    for c in cells:
        score, message = row.scores[c.grade_id], row.messages.get(c.grade_id, "")
        state = status(score, c, message)
        colour = _COLOURS.get(state, "#b2182b")
        note = f"<p>{esc(message)}</p>" if message and state != "correct" else ""
        items.append(f'<li style="border-left:4px solid {colour};padding:4px 10px;margin:8px 0">'
                     f"<b>{esc(c.title)}</b><br>{_points(score)} / {_points(c.points)} points: "
                     f'<b style="color:{colour}">{state}</b>{note}</li>')
    problem = f'<p style="color:#b2182b">Your notebook could not be graded: {esc(row.problem)}</p>' \
        if row.problem else ""
    late = "<p>Submitted after the due date.</p>" if row.late else ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(lesson)}: feedback for '
            f"{esc(row.student)}</title></head>\n<body style=\"font-family:sans-serif;max-width:48em;margin:2em auto\">"
            f"<h1>{esc(lesson)}</h1><p>Feedback for <b>{esc(row.student)}</b>: <b>{_points(row.total)} / "
            f"{_points(max_points)}</b> points.</p>{problem}{late}<ul style=\"list-style:none;padding:0\">"
            f"{''.join(items)}</ul></body></html>\n")


def safe_name(student: str) -> str:
    return re.sub(r"[^\w.-]", "_", student).strip(".") or "student"


def write_feedback(folder: Path, rows: list[Row], lesson: str, cells: list[GradedCell]) -> int:
    for r in rows:
        path = folder / safe_name(r.student) / f"{lesson}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(feedback_html(r, lesson, cells), encoding="utf-8")
    return len(rows)


def summary(rows: list[Row], problems: list[Problem], lesson: str, cells: list[GradedCell]) -> str:
    """Class mean, pass rate per exercise, the files that could not be graded, notebooks to review."""
    max_points = sum(c.points for c in cells)
    n = len(rows)
    graded = [r for r in rows if not r.problem]
    mean = sum(r.total for r in rows) / n if n else 0.0
    share = f" ({100 * mean / max_points:.0f}%)" if max_points else ""
    lines = [f"{lesson}: {n} students, {len(graded)} graded, {n - len(graded)} with problems; "
             f"class mean {mean:.2f} / {_points(max_points)}{share}"]
    width = max((len(c.grade_id) for c in cells), default=10)
    for c in cells:
        passed = sum(r.scores[c.grade_id] >= c.points for r in rows)
        rate = f"{100 * passed / n:.0f}%" if n else "-"
        lines.append(f"  {c.grade_id:<{width}}  {_points(c.points):>3} pt  pass rate {rate:>4} ({passed}/{n})")
    listed = [(p.source, p.message) for p in problems]
    listed += [(r.student, r.problem) for r in rows
               if r.problem and not any(r.problem.startswith(src) for src, _ in listed)]
    if listed:
        lines.append("Not graded:")
        lines += [f"  {src}: {msg}" for src, msg in listed]
    broken = sum(any(note.startswith(CELL_ERRORS) for note in r.review) for r in rows)
    if broken:
        lines.append(f"{broken} notebook(s) with errors in the lesson's cells that carry no points (see the "
                     "review column; the canary ran the reference solution without any)")
    review = [r for r in rows if r.review]
    if review:
        lines.append("To look at by hand (code aimed at the grading; 'undid' = put back before grading):")
        lines += [f"  {r.student}: {'; '.join(r.review)}" for r in review]
    return "\n".join(lines)
