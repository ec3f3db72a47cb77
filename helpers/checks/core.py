"""The machinery behind every instant check: outcomes, tensor-aware messages, staged hints.

An :class:`Exercise` is judged in two places that must never disagree: the learner's
instant check (``ex.check(answer)``, which shows a result) and the graded test cell
(``ex.grade(answer)``, which raises ``AssertionError`` with the same message). Both run
the same judge on the same visible cases; the graded cell adds hidden cases of its own.

Introduced in lesson 01.
"""

from __future__ import annotations

import html
import json
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import torch


class Outcome(str, Enum):
    """What a check concluded about an answer."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    NOT_ATTEMPTED = "not attempted"


class Mismatch(Exception):
    """Raised by a judge when the answer is wrong; the text is shown to the learner."""


class NotAttempted(Exception):
    """Raised when the answer is still the untouched stub."""


_STYLE = {
    Outcome.CORRECT: ("✅", "#1b7837", "#e7f4e4"),
    Outcome.INCORRECT: ("❌", "#b2182b", "#fbe9e7"),
    Outcome.NOT_ATTEMPTED: ("✏️", "#8c510a", "#fdf3e1"),
}


@dataclass(frozen=True)
class Result:
    """The verdict of one check: shown as a coloured box in Jupyter, as text elsewhere."""

    title: str
    outcome: Outcome
    message: str

    def __bool__(self) -> bool:
        return self.outcome is Outcome.CORRECT

    def __str__(self) -> str:
        icon = _STYLE[self.outcome][0]
        return f"{icon} {self.title}: {self.outcome.value}. {self.message}".rstrip()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        icon, fg, bg = _STYLE[self.outcome]
        return (
            f'<div style="border-left:4px solid {fg};background:{bg};padding:6px 10px;'
            f'color:#222">{icon} <b>{html.escape(self.title)}</b>: '
            f"<b style='color:{fg}'>{self.outcome.value}</b>. {html.escape(self.message)}</div>"
        )


@dataclass(frozen=True)
class Hint:
    """One staged hint, displayed like a :class:`Result`."""

    title: str
    level: int
    total: int
    text: str

    def __str__(self) -> str:
        # a skeleton (several lines of code with ____ blanks) starts on its own line
        text = f"\n{self.text}" if "\n" in self.text else self.text
        return f"💡 {self.title}, hint {self.level} of {self.total}: {text}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        text = html.escape(self.text)
        if "\n" in self.text:
            text = f'<pre style="margin:4px 0 0;background:none">{text}</pre>'
        return (
            '<div style="border-left:4px solid #2166ac;background:#eaf1fb;padding:6px 10px;'
            f'color:#222">💡 <b>{html.escape(self.title)}</b>, hint {self.level} of '
            f"{self.total}: {text}</div>"
        )


@dataclass(frozen=True)
class Solution:
    """An exercise's reference solution, shown by ``solution()`` in a practice release only."""

    title: str
    code: str

    def __str__(self) -> str:
        return f"📖 {self.title}, a solution (practice release):\n{self.code}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return ('<div style="border-left:4px solid #5e3c99;background:#f2eefa;padding:6px 10px;color:#222">'
                f"📖 <b>{html.escape(self.title)}</b>, a solution (practice release):"
                f'<pre style="margin:4px 0 0;background:none">{html.escape(self.code)}</pre></div>')


# How close a float must be to the expected value: the judges' default, and the drift check's
# (``make test`` calls shipped values stale only where a judge would tell the difference).
RTOL, ATOL = 1e-4, 1e-5
SOLUTIONS_FILE = "solutions.json"  # written next to the student notebook by a practice release only
NO_SOLUTIONS = ("{title}: this is a graded release, so it has no solutions. Use hint(1), hint(2) and "
                "hint(3), and ask your instructor. (Solutions come only with practice releases: "
                "[tool.course] practice = true in the course's pyproject.toml.)")


def _solutions_file(lesson: str | None) -> Path | None:
    """The practice release's solutions of ``lesson`` ("05"): next to the notebook (the kernel's working
    folder), else in the course checkout's notebooks/ folder."""
    if not lesson:
        return None
    candidates = [Path.cwd() / SOLUTIONS_FILE]
    candidates += sorted((Path(__file__).resolve().parents[2] / "notebooks").glob(f"{lesson}_*/{SOLUTIONS_FILE}"))
    for path in candidates:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and str(data.get("lesson", "")).startswith(f"{lesson}_"):
            return path
    return None


@dataclass(frozen=True)
class Note:
    """A line that says the lesson goes on without an exercise that is not solved yet."""

    title: str
    text: str

    def __str__(self) -> str:
        return f"⏭️ {self.title}: {self.text}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return (
            '<div style="border-left:4px solid #762a83;background:#f3eef6;padding:6px 10px;'
            f'color:#222">⏭️ <b>{html.escape(self.title)}</b>: {html.escape(self.text)}</div>'
        )


def _show(note: Note) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python: print it
        print(note)
    else:
        display(note)


# --------------------------------------------------------------------------- messages


def describe(value: Any) -> str:
    """A short, learner-friendly description of ``value``: its type, with the value itself for a number or a
    short string ("the numpy int64 3", "the string 'cuda'", "a numpy array of shape (2, 3)", "None")."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    module = type(value).__module__.split(".")[0]
    name = type(value).__name__
    if module == "numpy":
        if getattr(value, "ndim", None) == 0 and not isinstance(value, type):  # a numpy scalar, e.g. np.int64(3)
            return f"the numpy {name} {value.item()!r}"
        if hasattr(value, "shape"):
            return f"a numpy array of shape {tuple(value.shape)}"
        return f"{_article(name)} numpy {name}"
    if isinstance(value, torch.Size):
        return f"the torch.Size {tuple(value)}"
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40):
        return f"the {'string' if isinstance(value, str) else name} {value!r}"
    return f"{_article(name)} {name}"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def expect_tensor(got: Any, *, name: str = "your result") -> torch.Tensor:
    """Fail with a message unless ``got`` is a tensor; say how to get one."""
    if isinstance(got, torch.Tensor):
        return got
    if got is None:
        advice = "did you forget `return`?"
    elif type(got).__module__.split(".")[0] == "numpy":
        advice = "convert it with torch.from_numpy(...) or stay in torch throughout"
    elif isinstance(got, list):
        advice = "build a tensor with torch.tensor(...) or torch.stack(...)"
    elif isinstance(got, tuple):
        advice = "return a single tensor, not a tuple"
    elif isinstance(got, (int, float)) and not isinstance(got, bool):
        advice = "keep the result a tensor (don't call .item())"
    else:
        advice = "return a torch.Tensor"
    raise Mismatch(f"{name} should be a torch.Tensor, got {describe(got)}: {advice}.")


def shape_text(shape: Sequence[int]) -> str:
    """``(64, 784)`` for a shape, as PyTorch users write it."""
    dims = tuple(int(d) for d in shape)
    return "(" + ", ".join(map(str, dims)) + ("," if len(dims) == 1 else "") + ")"


def expect_shape(got: torch.Tensor, shape: Sequence[int], *, name: str = "your result",
                 advice: Callable[[tuple, tuple], str | None] | None = None) -> None:
    """Fail unless ``got.shape == shape``; ``advice(got, expected)`` may explain the mistake."""
    want, have = tuple(shape), tuple(got.shape)
    if have == want:
        return
    extra = advice(have, want) if advice else None
    msg = f"expected {name} to have shape {shape_text(want)}, got {shape_text(have)}"
    raise Mismatch(msg + (f": {extra}" if extra else "."))


def expect_dtype(got: torch.Tensor, dtype: torch.dtype, *, name: str = "your result",
                 advice: str | None = None) -> None:
    """Fail unless ``got.dtype == dtype``."""
    if got.dtype == dtype:
        return
    msg = f"expected {name} to have dtype {dtype}, got {got.dtype}"
    raise Mismatch(msg + (f": {advice}" if advice else "."))


def values_close(got: torch.Tensor, expected: torch.Tensor, *, rtol: float = RTOL,
                 atol: float = ATOL) -> bool:
    """True when the values agree within tolerance (shapes must already match)."""
    got = got.detach().to("cpu", torch.float64)
    expected = expected.detach().to("cpu", torch.float64)
    return bool(torch.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True))


def expect_close(got: torch.Tensor, expected: torch.Tensor, *, name: str = "your result",
                 rtol: float = RTOL, atol: float = ATOL, advice: str | None = None) -> None:
    """Fail unless the values match; report how many differ, never the expected values."""
    if values_close(got, expected, rtol=rtol, atol=atol):
        return
    g = got.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    bad = ~torch.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
    msg = f"{name} has the right shape and dtype but wrong values: {int(bad.sum())} of {bad.numel()} elements differ"
    raise Mismatch(msg + (f"; {advice}" if advice else "."))


def expect_tensor_like(got: Any, expected: torch.Tensor, *, name: str = "your result",
                       shape_advice: Callable[[tuple, tuple], str | None] | None = None,
                       dtype_advice: str | None = None, value_advice: str | None = None,
                       rtol: float = RTOL, atol: float = ATOL) -> torch.Tensor:
    """Type, then shape, then dtype, then values: the order every check reports in."""
    got = expect_tensor(got, name=name)
    expect_shape(got, expected.shape, name=name, advice=shape_advice)
    expect_dtype(got, expected.dtype, name=name, advice=dtype_advice)
    expect_close(got, expected, name=name, rtol=rtol, atol=atol, advice=value_advice)
    return got


def call_answer(fn: Callable, *args: Any, name: str,
                explain: Callable[[str], str | None] | None = None) -> Any:
    """Call the learner's function on copies of ``args``; turn its failures into messages.

    Args:
        explain: maps the error's text to advice about the likely mistake, or None.
    """
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        # Warnings from the learner's code go nowhere: nbgrader scores a test cell that
        # wrote to stderr as failed, and the check's own message says what matters.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*copies)
    except NotImplementedError as err:
        raise NotAttempted() from err
    except Exception as err:  # the learner's code failed: explain, don't crash the check
        text = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else ""
        msg = f"calling {name}(...) raised {type(err).__name__}: {text}"
        extra = explain(f"{type(err).__name__}: {err}") if explain else None
        raise Mismatch(f"{msg}. {extra}" if extra else msg) from None


# --------------------------------------------------------------------------- exercises


_NOT_ATTEMPTED_MSG = (
    "Replace `raise NotImplementedError()` in the answer cell with your code, run that cell, "
    "then run this check again."
)


class Exercise:
    """One auto-graded exercise: visible cases, a judge, staged hints and its points.

    Args:
        number: the exercise's number in its lesson ("Exercise 3").
        answer_name: the name the learner defines (a function), used in messages.
        points: the points its graded test cell is worth (kept equal to nbgrader's).
        judge: ``judge(answer, case)`` raises :class:`Mismatch` or :class:`NotAttempted`.
        cases: a function returning the visible cases (built lazily, not on import).
        hints: the staged hints, most general first.
        needs_callable: False for answers that are values (a dict, a number, a tensor)
            rather than a function or class.
        observe: for a check that needs the right answer's result: ``observe(answer, case)`` runs an
            answer on one case and returns what the judge compares. ``make release`` ships its value for
            the instructor's solution on each visible case (:mod:`helpers.checks.shipped`), and the judge
            is then ``judge(answer, case, expected)``. Hidden cases take their expected values from a
            reference answer that the hidden test passes to :meth:`grade`.
    """

    def __init__(self, number: int, answer_name: str, *, points: int,
                 judge: Callable[..., None],
                 cases: Callable[[], Iterable[Any]], hints: Sequence[str],
                 needs_callable: bool = True, observe: Callable[[Any, Any], Any] | None = None):
        if not hints:
            raise ValueError("every exercise needs at least one hint")
        self.number = number
        self.answer_name = answer_name
        self.points = points
        shown = answer_name[1:-1] if answer_name.startswith("(") and answer_name.endswith(")") else answer_name
        self.title = f"Exercise {number} ({shown})"  # "Exercise 1 (make_mlp, MLP)" for a tuple of answers
        self._judge = judge
        self._cases = cases
        self._hints = tuple(hints)
        self._hints_shown = 0
        self._needs_callable = needs_callable
        self.observe = observe
        # the lesson ("05") of the checks module that made this exercise, for solution()
        found = re.search(r"lesson(\d\d)$", sys._getframe(1).f_globals.get("__name__", ""))
        self.lesson = found.group(1) if found else None

    def __repr__(self) -> str:
        return f"<{self.title}, {self.points} points: .check({self.answer_name}), .hint(1)>"

    def _require_callable(self, answer: Any) -> None:
        if callable(answer) or not self._needs_callable:
            return
        raise TypeError(
            f"{self.title}: check() takes your function {self.answer_name} itself, but got "
            f"{describe(answer)}. Write check({self.answer_name}) without the parentheses "
            f"after {self.answer_name}."
        )

    def _run(self, answer: Callable, cases: Iterable[Any], expected: Sequence[Any] | None = None) -> Result:
        self._require_callable(answer)
        ran = 0
        try:
            for i, case in enumerate(cases):
                if self.observe is None:
                    self._judge(answer, case)
                else:
                    self._judge(answer, case, expected[i])
                ran += 1
        except NotAttempted:
            return Result(self.title, Outcome.NOT_ATTEMPTED, _NOT_ATTEMPTED_MSG)
        except Mismatch as err:
            return Result(self.title, Outcome.INCORRECT, str(err))
        if ran == 0:  # a check that checked nothing must never pass
            raise RuntimeError(f"{self.title}: no test case ran; this is a bug in the course")
        return Result(self.title, Outcome.CORRECT, "Well done.")

    def visible_cases(self) -> list:
        """The cases the instant check judges (the release ships their expected values)."""
        return list(self._cases())

    def _visible(self, answer: Callable) -> Result:
        cases = self.visible_cases()
        expected = None
        if self.observe is not None:
            from helpers.checks import shipped

            expected = shipped.expected(self.lesson, self.number, len(cases))
        return self._run(answer, cases, expected)

    def check(self, answer: Callable) -> Result:
        """The learner's instant check on the visible cases; the result displays itself."""
        return self._visible(answer)

    def grade(self, answer: Callable, cases: Iterable[Any] | None = None, *, reference: Any = None) -> None:
        """For graded test cells: silent when correct, ``AssertionError`` otherwise.

        Args:
            answer: the learner's function.
            cases: hidden cases to judge instead of the visible ones.
            reference: for an exercise with ``observe``, with hidden cases: the reference answer, written in
                the hidden test, whose results on those cases are the expected values.
        """
        if cases is None:
            result = self._visible(answer)  # not check(), which an exercise may extend (lesson 04's build_cnn)
        else:
            cases = list(cases)
            expected = None
            if self.observe is not None:
                if reference is None:
                    raise TypeError(f"{self.title}: grade() with hidden cases needs reference=, the reference "
                                    "answer written in the hidden test (its results are the expected values).")
                expected = [self.observe(reference, case) for case in cases]
            result = self._run(answer, cases, expected)
        if not result:
            raise AssertionError(str(result))

    def solved(self, answer: Any, *, skipping: str = "the part of this cell that needs it") -> bool:
        """True when ``answer`` passes the instant check. Otherwise it shows a note saying that the lesson
        skips ``skipping`` for now, so that an unsolved exercise never stops the cells after it.

        Example: ``if checks.ex4.solved(predict): ...``
        """
        if self._passes(answer):
            return True
        _show(Note(self.title, f"not solved yet, so this skips {skipping}. Solve it, then run this cell again."))
        return False

    def yours_or(self, answer: Any, stand_in: Any, *, stand_in_is: str) -> Any:
        """``answer`` when it passes the instant check, else the course's ``stand_in`` (which is not an answer
        to the exercise: ``stand_in_is`` says what it does instead), with a note saying so. The cells after an
        unsolved exercise still run.
        """
        if self._passes(answer):
            return answer
        _show(Note(self.title, f"not solved yet, so the rest of the lesson uses the course's stand-in: "
                               f"{stand_in_is}. Solve it, then run this cell again to use yours."))
        return stand_in

    def _passes(self, answer: Any) -> bool:
        try:
            return bool(self.check(answer))  # the instant check: build_cnn's also judges the blocks it calls
        except TypeError:  # not even callable
            return False

    def solution(self) -> Solution:
        """The reference solution, in a practice release (``[tool.course] practice = true``) only.

        Raises:
            LookupError: in a graded release, which never holds solutions.
        """
        path = _solutions_file(self.lesson)
        code = None
        if path is not None:
            code = json.loads(path.read_text(encoding="utf-8")).get("exercises", {}).get(str(self.number))
        if not code:
            raise LookupError(NO_SOLUTIONS.format(title=self.title))
        return Solution(self.title, code)

    def hint(self, level: int | None = None) -> Hint:
        """Hint ``level`` (1 is the most general); with no level, the next one not yet shown."""
        total = len(self._hints)
        if level is None:
            level = min(self._hints_shown + 1, total)
        if not isinstance(level, int) or not 1 <= level <= total:
            raise ValueError(f"{self.title} has hints 1 to {total}; ask for hint(1) first.")
        self._hints_shown = max(self._hints_shown, level)
        return Hint(self.title, level, total, self._hints[level - 1])
