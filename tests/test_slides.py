"""`make slides`: every lesson has a deck, committed and up to date, that shows no solution and
loads nothing from the network. (tests/test_browser.py presents the decks in Chromium.)"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from helpers.course import slides
from helpers.course.lessons import Lesson, find_lessons
from tests.conftest import ROOT

LESSONS = [lesson.name for lesson in find_lessons(ROOT)]


def _secret_lines(source) -> list[str]:
    """The lines of every solution and hidden test in the instructor notebook (long enough to be telling)."""
    found, blocks = [], (("### BEGIN SOLUTION", "### END SOLUTION"), ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"))
    for cell in source.cells:
        for begin, end in blocks:
            for block in re.findall(re.escape(begin) + r"(.*?)" + re.escape(end), cell.source, re.S):
                found += [line.strip() for line in block.splitlines() if len(line.strip()) >= 12]
    return found


def _text(page_html: str) -> str:
    """The deck's visible text: tags dropped (code is split into highlighted spans), entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page_html))


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {name: slides.render(Lesson(name, ROOT))[0] for name in LESSONS}


@pytest.mark.parametrize("lesson", LESSONS)
def test_deck_shows_stubs_and_no_solution_or_hidden_test(lesson, rendered):
    source = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    text = _text(rendered[lesson])
    public = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / lesson / f"{lesson}.ipynb", 4).cells)
    secrets = [line for line in _secret_lines(source) if line not in public]  # not an ordinary line shown elsewhere
    assert secrets, "the lesson has no solutions to hide?"
    leaked = [line for line in secrets if line in text]
    assert not leaked, f"the deck shows solution or hidden-test lines: {leaked[:3]}"
    student = nbformat.read(ROOT / "notebooks" / lesson / f"{lesson}.ipynb", 4)
    stubs = [c.source for c in student.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert stubs and all(stub in text for stub in stubs), "an answer cell does not show the student's stub"
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_has_speaker_notes_in_its_deck(lesson, rendered):
    """Each lesson gives the presenter at least one note; each notes cell becomes a note in the deck
    (hidden on the slide, shown in the speaker view: tests/test_browser.py presses S)."""
    source = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    notes = [c.source for c in source.cells if c.metadata.get("slideshow", {}).get("slide_type") == "notes"]
    assert notes, "give the presenter at least one speaker-notes cell (slide type 'notes')"
    asides = re.findall(r'<aside class="notes">(.*?)</aside>', rendered[lesson], re.S)
    assert len(asides) == len(notes)
    for note, aside in zip(notes, asides, strict=True):
        assert _text(note.split("`")[0][:40]) in _text(aside), note[:60]


@pytest.mark.parametrize("lesson", LESSONS)
def test_deck_loads_nothing_from_the_network(lesson, rendered, tmp_path):
    page = rendered[lesson]
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page)
    urls += re.findall(r"""require\(\s*\{[^}]*\}\s*,\s*\[([^\]]*)\]""", page, re.S)
    urls += re.findall(r"""@import\s+url\(\s*["']?([^"')]+)""", page)
    remote = [u for u in urls if re.match(r"\s*(https?:)?//", u)]
    assert not remote, f"the deck refers to the network: {remote}"
    slides.vendor(ROOT, tmp_path)
    local = [u.split("?")[0] for u in re.findall(r"""(?:src|href)=["'](vendor/[^"']+)["']""", page)]
    local += [u for u in re.findall(r'"(vendor/[^"]+\.js)"', page)]
    assert local, "the deck loads nothing from vendor/?"
    missing = [u for u in local if not (tmp_path / u).is_file()]
    assert not missing, f"vendor/ lacks what the deck loads: {missing}"


def test_deck_is_deterministic():
    first = slides.render(Lesson(LESSONS[0], ROOT))[0]
    assert slides.render(Lesson(LESSONS[0], ROOT))[0] == first


@pytest.mark.slow
def test_committed_decks_are_up_to_date(root):
    """Fails when a lesson changed and `make slides` was forgotten (or a deck has no lesson)."""
    problems = slides.stale(root)
    assert not problems, "\n".join(problems) + "\nrun `make slides` and commit the result"


def test_index_lists_every_deck(root):
    index = (root / slides.SLIDES_DIR / "index.html").read_text()
    for lesson in LESSONS:
        assert f'href="{lesson}.slides.html"' in index
    assert "<script" not in index and "http" not in index


def _demo_course(tmp_path):
    course = tmp_path / "course"
    (course / "solutions" / "99_demo").mkdir(parents=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    nb = nbformat.v4.new_notebook()
    cells = [("markdown", "skip", "badge"), ("markdown", "-", "# Lesson 99: `torch` demo"), ("markdown", "notes", "n"),
             ("markdown", "fragment", "f"), ("markdown", "subslide", "s"), ("code", "skip", "hidden = 1"),
             ("markdown", "slide", "s2"), ("markdown", "subslide", "s3"), ("code", "skip", "assert hidden == 1")]
    for kind, slide_type, source in cells:
        cell = (nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell)(source)
        cell.metadata["slideshow"] = {"slide_type": slide_type}
        nb.cells.append(cell)
    nb.cells[-1].metadata["nbgrader"] = {"grade": True, "grade_id": "t", "locked": True, "points": 1,
                                         "schema_version": 3, "solution": False, "task": False}
    nbformat.write(nb, course / "solutions" / "99_demo" / "99_demo.ipynb")
    return course


def test_slides_are_counted_from_slide_and_subslide_metadata(tmp_path):
    course = _demo_course(tmp_path)
    nb = slides.public_notebook(Lesson("99_demo", course))
    assert [c.source for c in nb.cells][:2] == ["# Lesson 99: `torch` demo", "n"]  # skipped cells are gone
    assert slides.count_slides(nb) == 4  # the first visible cell starts one, then subslide, slide, subslide
    assert slides.lesson_title(nb, "x") == "Lesson 99: `torch` demo"


def test_cli_builds_decks_and_index_without_node_modules(tmp_path):
    course = _demo_course(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "helpers.course", "slides", "--root", str(course), "--no-vendor"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (course / "slides" / "99_demo.slides.html").is_file()
    index = (course / "slides" / "index.html").read_text()
    assert "<code>torch</code> demo" in index and "4 slides" in index
    assert slides.stale(course) == []
    (course / "slides" / "old.slides.html").write_text("x")
    assert slides.stale(course) == ["slides/old.slides.html is not generated from solutions/"]


def test_missing_node_modules_says_to_run_npm_ci(tmp_path):
    course = _demo_course(tmp_path)
    with pytest.raises(slides.SlidesError, match=r"run `npm ci`.*make slides"):
        slides.vendor(course, course / "slides")
    proc = subprocess.run([sys.executable, "-m", "helpers.course", "slides", "--root", str(course)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "npm ci" in proc.stderr and "Traceback" not in proc.stderr


def test_javascript_is_pinned_exactly(root):
    """package.json pins exact versions (reveal.js 4 or 5: 6 does not start under nbconvert's template)."""
    wanted = json.loads((root / "package.json").read_text())["dependencies"]
    lock = json.loads((root / "package-lock.json").read_text())["packages"]
    assert set(wanted) >= {"reveal.js", "jquery", "requirejs", "mathjax"}
    for name, version in wanted.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name}: pin an exact version, not {version!r}"
        assert lock[f"node_modules/{name}"]["version"] == version, f"package-lock.json disagrees on {name}"
    assert wanted["reveal.js"].split(".")[0] in ("4", "5") and wanted["mathjax"].startswith("2.")
    assert set(slides.VENDOR_FILES) <= set(wanted)


def _solution_values(source) -> dict:
    """What each value answer (``n_params = ...``) is in the reference solution."""
    values = {}
    for name, k in slides.value_answers(source).items():
        block = source.cells[k].source.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
        scope: dict = {}
        exec(block, {}, scope)  # the instructor's own literal answer: no imports, no side effects
        values[name] = scope[name]
    return values


def _forms(value) -> list[str]:
    """How a printed output could show the value (or a telling part of it)."""
    forms = [repr(value), str(value)]
    if isinstance(value, int):
        forms += [f"{value:,}"]
    if isinstance(value, (list, tuple)):
        forms += [str(v) for v in value if isinstance(v, tuple) and len(v) > 2]
    if isinstance(value, dict):  # the pairing is the answer (the choices themselves may be listed)
        for k, v in value.items():
            forms += [f"{k!r}: {v!r}", f"{k}: {v}", f"{k} -> {v}", f"{k} = {v}"]
    return forms


@pytest.mark.parametrize("lesson", LESSONS)
def test_decks_show_no_output_that_gives_an_answer_away(lesson):
    """An output that prints a value answer (a count, a list of shapes) or is tagged as revealing
    one (a plot of the counts) is not in the deck."""
    lesson = find_lessons(ROOT, [lesson])[0]
    source = nbformat.read(lesson.source, as_version=4)
    public = slides.public_notebook(lesson)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in public.cells if c.cell_type == "code" for o in c.outputs)
    for name, value in _solution_values(source).items():
        for form in _forms(value):
            assert form not in text, f"the deck of {lesson.name} prints {form!r}, the answer's {name}"
    revealing = {source.cells[k].source for k in slides.revealing_cells(source)}
    for cell in public.cells:
        if cell.cell_type == "code" and cell.source in revealing:
            assert not cell.outputs, cell.source[:200]


def test_lesson_02_prints_its_practice_answers_only_outside_the_deck():
    """The rule has teeth: the instructor notebook's stored outputs do print Exercise 3's count and
    Exercise 5's shapes (and the cell that plots the counts is tagged), which the deck leaves out."""
    source = nbformat.read(ROOT / "solutions" / "02_nn_module" / "02_nn_module.ipynb", as_version=4)
    stored = "\n".join(str(o.get("text", "")) for c in source.cells if c.cell_type == "code" for o in c.outputs)
    assert "535,818" in stored and "(8, 2048)" in stored
    assert any(slides.REVEALS_TAG in c.metadata.get("tags", []) and "plot_parameter_counts" in c.source
               for c in source.cells)


@pytest.mark.parametrize("lesson", LESSONS)
def test_each_exercise_starts_a_slide_of_its_own(lesson):
    source = nbformat.read(ROOT / "solutions" / lesson / f"{lesson}.ipynb", as_version=4)
    exercises = [c for c in source.cells if "exercise" in c.metadata.get("tags", [])]
    assert exercises, f"{lesson}: no cell tagged exercise"
    for cell in exercises:
        kind = cell.metadata.get("slideshow", {}).get("slide_type", "-")
        assert kind in ("slide", "subslide"), f"{lesson}: {cell.source[:60]!r} is a {kind!r}, not a new slide"


def test_decks_share_one_stylesheet_instead_of_inlining_nbconvert_css(tmp_path):
    index_css = next(p for p in slides.NBCONVERT_CSS if p.endswith("index.css"))
    sheet = slides.write_stylesheet(tmp_path / slides.DECK_CSS).read_text(encoding="utf-8")
    assert f"/* nbconvert {index_css} */" in sheet and "--jp-code-font-size: 19px" in sheet
    telling = [ln.strip() for ln in sheet.splitlines() if len(ln.strip()) > 60][:50]  # long, distinctive lines
    for lesson in LESSONS:
        deck = (ROOT / slides.SLIDES_DIR / f"{lesson}.slides.html").read_text(encoding="utf-8")
        assert f'<link href="{slides.VENDOR_DIR}/{slides.DECK_CSS}" rel="stylesheet"/>' in deck, lesson
        assert not [ln for ln in telling if ln in deck], f"{lesson}'s deck still inlines nbconvert's CSS"


def test_outputs_come_after_the_room_is_asked_and_timings_say_whose_they_are():
    asked = 0
    for lesson in find_lessons(ROOT):
        public = slides.public_notebook(lesson).cells
        for k, cell in enumerate(public):
            if slides._slide_type(cell) == "notes" and slides.ASK_FIRST.search(cell.source):
                code = max(j for j in range(k) if public[j].cell_type == "code")
                shown = public[code]  # the output-only fragment, right after its code
                assert slides.OUTPUT_ONLY_TAG in shown.metadata.get("tags", []), lesson.name
                assert slides._slide_type(shown) == "fragment" and shown.outputs, lesson.name
                assert public[code - 1].cell_type == "code" and not public[code - 1].outputs, lesson.name
                asked += 1
            if cell.cell_type == "code" and slides.TIMING.search(slides._output_text(cell)):
                assert public[k + 1].source == slides.TIMING_NOTE, (lesson.name, cell.source[:80])
    assert asked >= 1  # lesson 04's shape cell
