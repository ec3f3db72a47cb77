"""Expected values that the instant checks compare against, shipped as data instead of reference code.

An exercise whose check needs the right answer's result declares an ``observe(answer, case)``: it runs
any answer on one case, deterministically (seeded weights, fixed inputs), and returns what the judge
compares. ``make release`` runs ``observe`` on the instructor notebook's solution for every visible
case and writes the results to ``helpers/checks/expected/lessonNN.json`` (produced and drift-checked
like the student notebooks). The learner's check runs ``observe`` on the learner's answer and compares
with those values, so the package that learners install holds the values of the visible cases, and no
code that computes them. The graded test cells judge hidden cases too: their reference lives inside
the instructor notebook's hidden tests (``grade(answer, cases=..., reference=...)``), which a learner
never receives.

Values are JSON: numbers, strings, None, lists, dicts with string keys, and tensors (kept with their
dtype and shape).

Introduced in lesson 02.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import torch

FOLDER = "expected"  # inside helpers/checks
_TENSOR = "__tensor__"


class NotShipped(RuntimeError):
    """The expected values of a lesson are missing or stale: the course needs ``make release`` again."""


def encode(value: Any) -> Any:
    """``value`` as plain JSON (tensors become ``{"__tensor__": dtype, "shape": [...], "values": [...]}``)."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        return {_TENSOR: str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                "values": t.reshape(-1).tolist()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return encode(value.item())
    raise TypeError(f"cannot ship {type(value).__name__} as an expected value: return tensors, numbers, lists "
                    "or dicts from observe()")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (tuples come back as lists)."""
    if isinstance(value, dict) and _TENSOR in value:
        return torch.tensor(value["values"], dtype=getattr(torch, value[_TENSOR])).reshape(value["shape"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    return value


def file_name(lesson: str) -> str:
    """``"02"`` -> ``"lesson02.json"``."""
    return f"lesson{lesson}.json"


@cache
def _load(lesson: str) -> dict:
    try:
        text = resources.files("helpers.checks").joinpath(FOLDER, file_name(lesson)).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as err:
        raise NotShipped(f"the expected values of lesson {lesson} are missing ({FOLDER}/{file_name(lesson)} in "
                         "helpers/checks): reinstall the course's helpers, or, in the course's checkout, run "
                         f"`make release LESSONS={lesson}`.") from err
    return json.loads(text)


def expected(lesson: str, number: int, n_cases: int) -> list:
    """The shipped expected values of exercise ``number``'s visible cases, one per case."""
    values = _load(lesson).get("exercises", {}).get(str(number))
    if not isinstance(values, list) or len(values) != n_cases:
        raise NotShipped(f"the expected values of lesson {lesson}, Exercise {number}, do not fit its checks "
                         f"({FOLDER}/{file_name(lesson)} is stale): in the course's checkout, run "
                         f"`make release LESSONS={lesson}`.")
    return [decode(v) for v in values]
