"""Build the lessons' reveal.js decks, which present with no network at all.

``slides/NN_topic.slides.html`` comes from ``solutions/NN_topic/NN_topic.ipynb`` (its
``slideshow.slide_type`` metadata) with nbconvert's SlidesExporter, and
``slides/index.html`` lists the decks. The decks are public, so they never show a
solution: skipped cells (setup, hints, graded tests) are left out, answer cells
show the student's stub, and the outputs of answer and check cells are cleared.

Every script, style sheet and font a deck loads is a relative URL into
``slides/vendor/``: reveal.js 5 (with its notes plugin), jQuery, require.js and
MathJax 2, pinned in package.json, and ``course/notebook.css``, nbconvert's notebook
styles written once for all decks (``write_stylesheet``) instead of inlined in each.
``vendor/`` is not committed; the build copies it from ``node_modules/`` (``npm ci``),
so after ``make slides`` the folder ``slides/`` can be copied anywhere and presented offline. The decks themselves are
committed and deterministic, and ``stale()`` says when one differs from its source.
"""

from __future__ import annotations

import ast
import copy
import html
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from nbgrader.preprocessors import ClearSolutions
from traitlets.config.loader import PyFileConfigLoader

from helpers.course.lessons import Lesson, ReleaseError, find_lessons, read_source

SLIDES_DIR = "slides"
VENDOR_DIR = "vendor"
TEMPLATES = Path(__file__).with_name("templates")
THEME = "white"  # its fonts ship with reveal.js ("simple" imports Google Fonts)
# What a deck loads, copied from node_modules/<package>/ into slides/vendor/<package>/.
VENDOR_FILES = {
    "reveal.js": ["LICENSE", "dist/reveal.js", "dist/reveal.css", f"dist/theme/{THEME}.css",
                  "dist/theme/fonts/source-sans-pro", "plugin/notes/notes.js"],
    "jquery": ["LICENSE.txt", "dist/jquery.min.js"],
    "requirejs": ["require.js"],
    "mathjax": ["LICENSE", "MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js", "extensions",
                "jax/input/TeX", "jax/output/CommonHTML", "jax/element", "fonts/HTML-CSS/TeX/woff",
                "localization/en"],
}
URLS = {  # relative to the deck, so slides/ works wherever it is copied
    "reveal_url_prefix": f"{VENDOR_DIR}/reveal.js",
    "jquery_url": f"{VENDOR_DIR}/jquery/dist/jquery.min.js",
    "require_js_url": f"{VENDOR_DIR}/requirejs/require.js",
    "mathjax_url": f"{VENDOR_DIR}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
    "mermaid_js_url": "",  # the course template loads no mermaid
    "mermaid_layout_elk_js_url": "",
    "jupyter_widgets_base_url": f"{VENDOR_DIR}/",
}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("<p><em>An interactive control: run this cell in JupyterLab or Colab "
               "(or present the live notebook with RISE) to use it.</em></p>")
SECRETS = ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS")


class SlidesError(ReleaseError):
    """A deck cannot be built; the message says what to do."""


@dataclass(frozen=True)
class Deck:
    """One built deck: its lesson, title, file name and number of slides."""

    lesson: str
    title: str
    slides: int

    @property
    def filename(self) -> str:
        return f"{self.lesson}.slides.html"


def deck_path(lesson: Lesson) -> Path:
    return lesson.root / SLIDES_DIR / f"{lesson.name}.slides.html"


def _slide_type(cell) -> str:
    return cell.metadata.get("slideshow", {}).get("slide_type", "-") or "-"


def _is_hidden(cell) -> bool:
    grading = cell.metadata.get("nbgrader", {})
    return (_slide_type(cell) == "skip" or grading.get("grade") or grading.get("task")
            or "### BEGIN HIDDEN TESTS" in cell.source)


def _clear_solutions(root: Path) -> ClearSolutions:
    """nbgrader's own stub writer, with the course's stubs from nbgrader_config.py."""
    config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    return ClearSolutions(config=config)


REVEALS_TAG = "reveals-answer"  # a cell whose output shows an exercise's answer in a way no rule finds


def value_answers(nb) -> dict[str, int]:
    """Names that answer cells assign a value to (``n_params = ...``), with the index of the cell:
    a value, not a function, is the answer itself, so what prints it gives the answer away."""
    found = {}
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        for node in _tree(cell.source).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, k)
    return found


def revealing_cells(nb) -> list[int]:
    """The cells (not answers) whose stored output a deck must not show: those after a value
    answer that use its name, and those tagged ``reveals-answer``."""
    values = value_answers(nb)
    found = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        names = {n.id for n in ast.walk(_tree(cell.source)) if isinstance(n, ast.Name)}
        if REVEALS_TAG in cell.metadata.get("tags", []) or any(values.get(n, k) < k for n in names):
            found.append(k)
    return found


def _tree(source: str) -> ast.Module:
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def public_notebook(lesson: Lesson):
    """The instructor notebook as a deck may show it: no hidden cells, stubs for answers."""
    nb = read_source(lesson.source)
    for k in revealing_cells(nb):  # they print or draw an exercise's answer
        nb.cells[k].outputs, nb.cells[k].execution_count = [], None
    nb.cells = [c for c in nb.cells if not _is_hidden(c)]
    try:
        nb, _ = _clear_solutions(lesson.root).preprocess(nb, {})
    except RuntimeError as err:  # nbgrader's: solution delimiters in a cell not marked as an answer
        raise SlidesError(f"{lesson.source}: {err}") from None
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if cell.metadata.get("nbgrader", {}).get("solution") or "check" in cell.metadata.get("tags", []):
            cell.outputs, cell.execution_count = [], None  # results of the solution
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):  # a live control has nothing to show in a deck
                output.data = {"text/html": WIDGET_NOTE, "text/plain": "(an interactive control)"}
    nb.metadata.pop("widgets", None)
    nb.cells = _timings_labelled(_outputs_after_asking(nb.cells))
    nb.metadata["title"] = lesson_title(nb, lesson.name).replace("`", "")
    leaked = [s for s in SECRETS if any(s in c.source for c in nb.cells)]
    if leaked:
        raise SlidesError(f"{lesson.source}: a cell shown in the slides still contains {leaked[0]!r}; "
                          "mark it as an nbgrader answer or graded cell, or set its slide type to skip.")
    if not nb.cells:
        raise SlidesError(f"{lesson.source}: every cell is skipped, so there is nothing to put in slides.")
    return nb


ASK_FIRST = re.compile(r"\bask the room\b", re.IGNORECASE)  # a speaker note that wants guesses first
OUTPUT_ONLY_TAG = "deck-output-only"  # shown without its code (nbconvert's TagRemovePreprocessor)


def _outputs_after_asking(cells: list) -> list:
    """Where a speaker note asks the room before the answer shows, the output of the code cell
    before the note comes as a fragment after that code, not with it."""
    cells = list(cells)
    for k in [k for k, c in enumerate(cells) if _slide_type(c) == "notes" and ASK_FIRST.search(c.source)]:
        code = next((j for j in range(k - 1, -1, -1) if cells[j].cell_type == "code"), None)
        if code is None or not cells[code].get("outputs"):
            continue
        shown = nbformat.from_dict(copy.deepcopy(dict(cells[code])))
        shown["id"] = f"{cells[code].get('id', 'cell')}-output"  # fixed, so the deck is the same every build
        shown.metadata["slideshow"] = {"slide_type": "fragment"}
        shown.metadata["tags"] = [*shown.metadata.get("tags", []), OUTPUT_ONLY_TAG]
        cells[code].outputs = []
        cells.insert(code + 1, shown)
    return cells


TIMING = re.compile(r"\b\d+(?:\.\d+)?\s?(?:s|ms|seconds)\b(?: per epoch)?")
TIMING_NOTE = ("<small><em>Times measured on the machine that last ran this notebook, "
               "not facts about PyTorch: yours will differ.</em></small>")


def _output_text(cell) -> str:
    return "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))


def _timings_labelled(cells: list) -> list:
    """After each output that reports seconds, a line on the slide saying whose seconds they are."""
    out = []
    for cell in cells:
        out.append(cell)
        if cell.cell_type == "code" and TIMING.search(_output_text(cell)):
            note = nbformat.v4.new_markdown_cell(TIMING_NOTE, id=f"{cell.get('id', 'cell')}-timing")
            note.metadata["slideshow"] = {"slide_type": _slide_type(cell) if _slide_type(cell) == "fragment" else "-"}
            out.append(note)
    return out


def lesson_title(nb, fallback: str) -> str:
    """The first level-1 heading (``# Lesson 01: ...``), else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            found = re.search(r"^#\s+(.+?)\s*$", cell.source, re.MULTILINE)
            if found:
                return found.group(1)
    return fallback


def count_slides(nb) -> int:
    """How many slides reveal.js shows for ``nb``: every slide and subslide after skipped cells go.

    The first visible cell always starts a slide (as nbconvert does).
    """
    visible = [c for c in nb.cells if _slide_type(c) not in ("skip", "notes")]
    if not visible:
        return 0
    return 1 + sum(_slide_type(c) in ("slide", "subslide") for c in visible[1:])


def _exporter() -> SlidesExporter:
    exporter = SlidesExporter(template_name="course_reveal", extra_template_basedirs=[str(TEMPLATES)])
    for name, url in URLS.items():
        setattr(exporter, name, url)
    exporter.reveal_theme = THEME
    exporter.reveal_transition = "slide"
    exporter.reveal_number = "c/t"
    # A 16:9 deck in the units of a 1280x720 screen (reveal.js scales it to any other): 960x700,
    # nbconvert's default, leaves a code cell about 72 characters, and most lines of code are longer.
    exporter.reveal_width, exporter.reveal_height = "1280", "720"
    remove = TagRemovePreprocessor(remove_input_tags={OUTPUT_ONLY_TAG})
    exporter.register_preprocessor(remove, enabled=True)
    exporter.reveal_scroll = False  # no slide scrolls: long material is split, a tall cell shrunk (the template)
    return exporter


def render(lesson: Lesson) -> tuple[str, Deck]:
    """The deck's HTML for ``lesson`` and what the index says about it."""
    nb = public_notebook(lesson)
    body, _ = _exporter().from_notebook_node(nb, resources={"metadata": {"name": lesson.name}})
    body = "\n".join(line.rstrip() for line in body.splitlines()) + "\n"
    return body, Deck(lesson.name, lesson_title(nb, lesson.name), count_slides(nb))


def render_index(decks: list[Deck]) -> str:
    """``slides/index.html``: a plain page (no scripts, nothing fetched) linking every deck."""
    def title(text: str) -> str:  # markdown `code` in a heading becomes <code>
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))

    items = "\n".join(
        f'  <li><a href="{html.escape(d.filename)}">{title(d.title)}</a> '
        f'<span class="count">{d.slides} slides</span></li>' for d in decks)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Hands-on PyTorch: slides</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; }}
.count {{ color: #555; font-size: 0.9em; }}
kbd {{ border: 1px solid #999; border-radius: 3px; padding: 0 0.3em; }}
</style>
</head>
<body>
<h1>Hands-on PyTorch: slides</h1>
<ol>
{items}
</ol>
<p>Arrow keys move through a deck; <kbd>S</kbd> opens the speaker view with the notes,
<kbd>F</kbd> goes full screen, <kbd>Esc</kbd> shows an overview. Everything loads from
this folder: no network needed (run <code>make slides</code> once to fill <code>vendor/</code>).</p>
<p>Generated by <code>make slides</code> from <code>solutions/</code>; do not edit.</p>
</body>
</html>
"""


def write_decks(root: Path, out: Path, names: list[str] | None = None) -> list[Path]:
    """Write the decks (all, or those named) and the index of all decks into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    chosen = {lesson.name for lesson in find_lessons(root, names)}
    decks, written = [], []
    for lesson in find_lessons(root):
        if lesson.name in chosen:
            body, deck = render(lesson)
            (out / deck.filename).write_text(body, encoding="utf-8")
            written.append(out / deck.filename)
        else:
            nb = public_notebook(lesson)
            deck = Deck(lesson.name, lesson_title(nb, lesson.name), count_slides(nb))
        decks.append(deck)
    (out / "index.html").write_text(render_index(decks), encoding="utf-8")
    return [*written, out / "index.html"]


def vendor(root: Path, out: Path) -> Path:
    """Copy what the decks load from ``node_modules/`` into ``out/vendor/`` (replacing it)."""
    modules = root / "node_modules"
    target = out / VENDOR_DIR
    missing = [f"{pkg}/{rel}" for pkg, rels in VENDOR_FILES.items() for rel in rels
               if not (modules / pkg / rel).exists()]
    if missing:
        raise SlidesError(f"{modules} lacks {', '.join(missing[:3])}: run `npm ci` in {root} "
                          "(or `make slides`, which does) to install the pinned reveal.js, jQuery, "
                          "require.js and MathJax from package-lock.json.")
    if target.exists():
        shutil.rmtree(target)
    for pkg, rels in VENDOR_FILES.items():
        for rel in rels:
            src, dst = modules / pkg / rel, target / pkg / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
    write_stylesheet(target / DECK_CSS)
    return target


DECK_CSS = "course/notebook.css"  # under vendor/: the notebook styles every deck shares
# nbconvert's own style sheets, which its reveal template inlines into every deck (about 7,400 lines)
NBCONVERT_CSS = ("lab/static/index.css", "lab/static/theme-light.css", "reveal/static/custom_reveal.css")


def write_stylesheet(path: Path) -> Path:
    """The decks' shared stylesheet: nbconvert's notebook CSS once, with the course's deck template's
    sizes (``templates/course_reveal/deck.css``), instead of a copy inlined in each deck."""
    from jupyter_core.paths import jupyter_path

    parts = []
    for rel in NBCONVERT_CSS:
        found = next((Path(d) / rel for d in jupyter_path("nbconvert", "templates") if (Path(d) / rel).is_file()),
                     None)
        if found is None:
            raise SlidesError(f"nbconvert's {rel} is missing: reinstall nbconvert (`make env`).")
        parts.append(f"/* nbconvert {rel} */\n" + found.read_text(encoding="utf-8"))
    parts.append((TEMPLATES / "course_reveal" / "deck.css").read_text(encoding="utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def build(root: Path, names: list[str] | None = None, *, with_vendor: bool = True) -> list[Path]:
    """``make slides``: decks and index into ``slides/``, and (by default) the vendored JavaScript."""
    out = root / SLIDES_DIR
    written = write_decks(root, out, names)
    if with_vendor:
        vendor(root, out)
    return written


def stale(root: Path) -> list[str]:
    """Decks (and the index) that differ from what ``make slides`` would write now; empty when up to date."""
    committed = root / SLIDES_DIR
    with tempfile.TemporaryDirectory(prefix="course-slides-") as tmp:
        fresh = Path(tmp)
        write_decks(root, fresh)
        problems = []
        for path in sorted(fresh.iterdir()):
            mine = committed / path.name
            if not mine.is_file():
                problems.append(f"{SLIDES_DIR}/{path.name} is missing")
            elif mine.read_bytes() != path.read_bytes():
                problems.append(f"{SLIDES_DIR}/{path.name} is stale")
        expected = {p.name for p in fresh.iterdir()}
    if committed.is_dir():
        problems += [f"{SLIDES_DIR}/{p.name} is not generated from solutions/"
                     for p in sorted(committed.glob("*.html")) if p.name not in expected]
    return problems
