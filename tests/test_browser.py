"""The course in a real browser (Debian's Chromium, driven by Playwright), with no network.

* JupyterLab, started with the README's command: the lesson 01 student notebook runs,
  its learning-rate slider redraws, nbgrader's Validate button and the RISE slideshow are there.
* Every lesson's deck in slides/ presents offline: nothing fails to load, nothing is
  fetched from outside the machine, no JavaScript error, the expected number of slides,
  and the arrow keys move through it. Speaker notes and fragments work.

Screenshots go to test-artifacts/. Without Chromium these tests fail and say how to
install it (see tests/browser_tools.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

from helpers.course import slides
from helpers.course.lessons import find_lessons
from tests import browser_tools
from tests.browser_tools import Traffic, artifact, chromium, launch
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
LESSONS = [lesson.name for lesson in find_lessons(ROOT)]
LESSON01 = "01_tensors_autograd"


@contextmanager
def browser():
    chromium()  # fails (or skips, where allowed) with how to install it
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = launch(pw)
        try:
            yield instance
        finally:
            instance.close()


def test_without_chromium_the_tests_fail_and_say_how_to_install_it(monkeypatch):
    monkeypatch.setattr(browser_tools.shutil, "which", lambda name: None)
    monkeypatch.setattr(browser_tools, "INSTALLED_AT", ())
    monkeypatch.delenv(browser_tools.CHROMIUM_ENV, raising=False)
    monkeypatch.delenv(browser_tools.ALLOW_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"sudo apt-get install -y chromium"):
        chromium()
    monkeypatch.setenv(browser_tools.ALLOW_ENV, "1")  # only where a person allows it explicitly
    with pytest.raises(pytest.skip.Exception, match=r"sudo apt-get install -y chromium"):
        chromium()


# ---------------------------------------------------------------- the slides


def expected_slides(source: Path) -> int:
    """Slides reveal.js should show, counted from the notebook's own slideshow metadata."""
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    kinds = [c.get("metadata", {}).get("slideshow", {}).get("slide_type", "-") for c in cells]
    kinds = [k for k in kinds if k not in ("skip", "notes")]
    return 1 + sum(k in ("slide", "subslide") for k in kinds[1:])


@pytest.fixture(scope="module")
def deck_dir(tmp_path_factory) -> Path:
    """The committed decks, next to a fresh copy of the JavaScript they load (from node_modules/)."""
    out = tmp_path_factory.mktemp("slides")
    for deck in (ROOT / slides.SLIDES_DIR).glob("*.html"):
        shutil.copy(deck, out / deck.name)
    try:
        slides.vendor(ROOT, out)
    except slides.SlidesError as err:
        pytest.fail(str(err), pytrace=False)
    return out


REVEAL = "window.__reveal"
GET_REVEAL = f"""() => new Promise(done => require(['{slides.URLS['reveal_url_prefix']}/dist/reveal.js'],
                                                   R => {{ {REVEAL} = R; done(R.getTotalSlides()); }}))"""
WALK = f"""() => {{
    const R = {REVEAL};
    // A vertical stack remembers the subslide last shown and is re-entered there: forget it,
    // so that next() starts every stack at its top and the walk visits every slide.
    document.querySelectorAll('section.stack').forEach(s => s.removeAttribute('data-previous-indexv'));
    R.slide(0, 0);
    const seen = new Set([R.getIndices().h + '/' + R.getIndices().v]);
    for (let i = 0; i < 2000 && !(R.isLastSlide() && !R.availableFragments().next); i++) {{
        R.next(); seen.add(R.getIndices().h + '/' + R.getIndices().v);
    }}
    return seen.size;
}}"""


HEIGHTS = f"""() => {{
    const R = {REVEAL}, out = [];
    R.getHorizontalSlides().forEach((h, i) => {{
        const leaves = h.classList.contains('stack') ? Array.from(h.querySelectorAll(':scope > section')) : [h];
        leaves.forEach((s, j) => {{
            R.slide(i, j);  // shown, as presented: its rendered height in the deck's own units
            out.push([i, j, s.getBoundingClientRect().height / R.getScale(), R.getConfig().height,
                      (s.innerText || '').trim().slice(0, 60)]);
        }});
    }});
    return out;
}}"""
# Per slide, as presented: each code cell, output, plot or table that is clipped (its text scrolls
# inside it: the end of a long line is hidden) or reaches past the slide's right edge.
WIDE = f"""() => {{
    const R = {REVEAL}, out = [];
    R.getHorizontalSlides().forEach((h, i) => {{
        const leaves = h.classList.contains('stack') ? Array.from(h.querySelectorAll(':scope > section')) : [h];
        leaves.forEach((s, j) => {{
            R.slide(i, j);
            const box = s.getBoundingClientRect(), scale = R.getScale(), width = R.getConfig().width;
            s.querySelectorAll('pre, img, table, .jp-OutputArea-output').forEach(e => {{
                const right = (e.getBoundingClientRect().right - box.left) / scale;
                if (e.scrollWidth > e.clientWidth + 1 || right > width + 1) {{
                    const line = (e.innerText || '').split('\\n').reduce((a, b) => a.length >= b.length ? a : b, '');
                    out.push([i, j, e.tagName, e.scrollWidth, e.clientWidth, Math.round(right), width,
                              line.slice(0, 60)]);
                }}
            }});
        }});
    }});
    return out;
}}"""


def open_deck(instance, path: Path, traffic: Traffic):
    context = instance.new_context(viewport={"width": 1280, "height": 720})
    traffic.watch(context)
    page = context.new_page()
    page.goto(path.as_uri())
    page.wait_for_selector(".reveal.ready", timeout=20_000)
    total = page.evaluate(GET_REVEAL)
    return context, page, total


def indices(page) -> dict:
    return page.evaluate(f"{REVEAL}.getIndices()")


def press_until(page, key: str, axis: str, value: int, tries: int = 12) -> bool:
    """Press ``key`` (fragments first show one by one) until the slide index ``axis`` is ``value``."""
    for _ in range(tries):
        page.keyboard.press(key)
        page.wait_for_timeout(50)
        if indices(page)[axis] == value:
            return True
    return False


def assert_offline_and_clean(traffic: Traffic) -> None:
    assert traffic.outside == [], f"the deck tried to reach the network: {traffic.outside}"
    assert traffic.failed == [], f"requests that failed: {traffic.failed}"
    assert traffic.errors == [], f"JavaScript errors: {traffic.errors}"
    assert traffic.requests, "no request recorded: the traffic watcher is not attached"


@pytest.mark.parametrize("lesson", LESSONS)
def test_deck_presents_offline(lesson, deck_dir):
    deck = deck_dir / f"{lesson}.slides.html"
    assert deck.is_file(), f"slides/{deck.name} is missing: run `make slides` and commit it"
    expected = expected_slides(ROOT / "solutions" / lesson / f"{lesson}.ipynb")
    traffic = Traffic()
    with browser() as instance:
        context, page, total = open_deck(instance, deck, traffic)
        assert total == expected, f"{deck.name}: {total} slides, the notebook's metadata makes {expected}"
        assert indices(page)["h"] == 0
        assert press_until(page, "ArrowRight", "h", 1), "ArrowRight does not reach the second slide"
        vertical = page.evaluate(
            f"{REVEAL}.getHorizontalSlides().findIndex(s => s.querySelectorAll('section').length > 1)")
        if vertical >= 0:
            page.evaluate(f"{REVEAL}.slide({vertical}, 0)")
            assert press_until(page, "ArrowDown", "v", 1), f"ArrowDown does not reach the subslide below {vertical}"
        page.keyboard.press("ArrowLeft")
        assert page.evaluate(WALK) == expected  # every slide once, so everything it loads is loaded
        tall = [s for s in page.evaluate(HEIGHTS) if s[2] > s[3]]
        assert not tall, f"{deck.name}: slides higher than the deck (h, v, height, deck height, text): {tall}"
        wide = page.evaluate(WIDE)
        assert not wide, (f"{deck.name}: code or output cut off at the right, or past the slide's edge "
                          f"(h, v, element, content width, shown width, right edge, deck width, longest line): {wide}")
        page.evaluate(f"{REVEAL}.slide(0, 0)")
        page.wait_for_timeout(500)  # MathJax typesets after the slide change
        page.screenshot(path=artifact(f"slides-{lesson}.png"))
        context.close()
    assert_offline_and_clean(traffic)


def test_index_links_every_deck_offline(deck_dir):
    traffic = Traffic()
    with browser() as instance:
        context = instance.new_context()
        traffic.watch(context)
        page = context.new_page()
        page.goto((deck_dir / "index.html").as_uri())
        links = page.eval_on_selector_all("a", "els => els.map(a => a.getAttribute('href'))")
        assert links == [f"{lesson}.slides.html" for lesson in LESSONS]
        page.click(f"a[href='{LESSONS[0]}.slides.html']")
        page.wait_for_selector(".reveal.ready", timeout=20_000)
        context.close()
    assert_offline_and_clean(traffic)


DEMO_CELLS = [
    ("markdown", "slide", "# Lesson 99: A demo\n\nThe title slide.", {}),
    ("markdown", "notes", "Say this aloud: NOTES-FOR-THE-SPEAKER", {}),
    ("markdown", "fragment", "A point that appears on a key press.", {}),
    ("markdown", "subslide", "## Maths\n\n$L(w) = (w - 3)^2$", {}),
    ("code", "-", "def answer(x):\n    ### BEGIN SOLUTION\n    return SECRET_ANSWER * x\n    ### END SOLUTION",
     {"grade": False, "grade_id": "ex1_answer", "locked": False, "schema_version": 3, "solution": True, "task": False}),
    ("code", "skip", "assert answer(1) == 2\n### BEGIN HIDDEN TESTS\nassert HIDDEN_CASE\n### END HIDDEN TESTS",
     {"grade": True, "grade_id": "ex1_test", "locked": True, "points": 1, "schema_version": 3, "solution": False,
      "task": False}),
    ("markdown", "slide", "## The end", {}),
]


@pytest.fixture(scope="module")
def demo_deck(tmp_path_factory) -> Path:
    """A deck built from a small notebook with speaker notes, a fragment, maths and an exercise."""
    course = tmp_path_factory.mktemp("demo-course")
    shutil.copy(ROOT / "nbgrader_config.py", course)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, slide_type, source, grading in DEMO_CELLS:
        cell = (nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell)(source)
        cell.metadata["slideshow"] = {"slide_type": slide_type}
        if grading:
            cell.metadata["nbgrader"] = grading
        nb.cells.append(cell)
    (course / "solutions" / "99_demo").mkdir(parents=True)
    nbformat.write(nb, course / "solutions" / "99_demo" / "99_demo.ipynb")
    out = course / "slides"
    slides.write_decks(course, out)
    slides.vendor(ROOT, out)
    return out / "99_demo.slides.html"


def test_speaker_notes_fragments_and_maths_work_offline(demo_deck):
    html = demo_deck.read_text()
    assert "SECRET_ANSWER" not in html and "HIDDEN_CASE" not in html and "NotImplementedError" in html
    traffic = Traffic()
    with browser() as instance:
        context, page, total = open_deck(instance, demo_deck, traffic)
        assert total == 3
        assert page.locator("aside.notes").count() == 1
        assert page.locator(".fragment.visible").count() == 0
        page.keyboard.press("ArrowRight")  # first the fragment, on the same slide
        page.wait_for_selector(".fragment.visible")
        assert indices(page)["h"] == 0 and indices(page)["f"] == 0
        with context.expect_page() as popup:
            page.keyboard.press("s")  # the notes plugin's speaker view
        speaker = popup.value
        speaker.wait_for_selector(".speaker-controls-notes .value", timeout=10_000)
        speaker.wait_for_function(
            "document.querySelector('.speaker-controls-notes .value').textContent.includes('NOTES-FOR-THE-SPEAKER')")
        speaker.screenshot(path=artifact("slides-speaker-view.png"))
        page.keyboard.press("ArrowDown")
        page.wait_for_selector(".reveal section.present mjx-container, .reveal section.present .MathJax_CHTML",
                               timeout=10_000)
        page.screenshot(path=artifact("slides-demo-maths.png"))
        context.close()
    assert_offline_and_clean(traffic)


# ---------------------------------------------------------------- JupyterLab

LAB_SETTINGS = {  # a throwaway settings folder: no autosave, every cell in the page, no news prompt
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _lab_env(home: Path) -> dict[str, str]:
    env = dict(os.environ, COURSE_FAST="1", COURSE_OFFLINE="1", PYTHONWARNINGS="ignore")
    for var, sub in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("IPYTHONDIR", "ipython")]:
        env[var] = str(home / sub)
    for plugin, values in LAB_SETTINGS.items():
        path = home / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    return env


@contextmanager
def running_lab(tmp_path: Path, target: str = "lab"):
    """``make lab HEADLESS=1 ...`` (the README's command) on a copy of notebooks/, or ``make lab-instructor``
    on the course; yields (base URL, token)."""
    port, token = _free_port(), "course-browser-test"
    notebooks = tmp_path / "notebooks"
    if target == "lab":
        shutil.copytree(ROOT / "notebooks", notebooks)  # RISE saves the notebook: never the committed one
    log_path = artifact(f"{target}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", target, "HEADLESS=1", f"PORT={port}", f"NOTEBOOKS={notebooks}",
             f"LAB_ARGS=--IdentityProvider.token={token} --ServerApp.open_browser=False"],
            cwd=ROOT, env=_lab_env(tmp_path / "jupyter"), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"`make lab` did not start (exit {proc.poll()}):\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token
    finally:  # shut the server down through its API, so it stops its kernels too
        try:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST"),
                                   timeout=10)
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _run_cell(page, text: str):
    """Click the code cell whose source contains ``text`` and run it (Shift+Enter); returns the cell."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea", has_text=text)).first
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Shift+Enter")
    return cell


def _assert_instructor_tools(page, base: str, token: str, *, shown: bool) -> None:
    """nbgrader's instructor tools: its menu (Formgrader, course list), the Create Assignment sidebar and
    the formgrader's pages; the learner's Validate button is there either way."""
    menus = page.locator(".lm-MenuBar-itemLabel").all_inner_texts()
    tabs = [tab.get_attribute("title") or "" for tab in page.locator(".jp-SideBar .lm-TabBar-tab").all()]
    assert ("Nbgrader" in menus) is shown, menus
    assert any("Create Assignment" in title for title in tabs) is shown, tabs
    assert page.locator(".jp-NotebookPanel-toolbar .validate-button").first.is_visible()
    try:
        status = urllib.request.urlopen(f"{base}/formgrader?token={token}", timeout=30).status
    except urllib.error.HTTPError as err:
        status = err.code
    assert (status == 200) is shown, status


def test_instructor_lab_has_create_assignment_and_formgrader(tmp_path):
    """``make lab-instructor``: the same JupyterLab on the whole course, with nbgrader's tools."""
    chromium()
    with running_lab(tmp_path, "lab-instructor") as (base, token), browser() as instance:
        page = instance.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/lab/tree/solutions/{LESSON01}/{LESSON01}.ipynb?token={token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
        page.wait_for_selector(".jp-SideBar .lm-TabBar-tab[title*='Create Assignment']", timeout=60_000)
        page.screenshot(path=artifact("lab-instructor.png"))
        _assert_instructor_tools(page, base, token, shown=True)


def test_jupyterlab_runs_lesson01_with_widgets_validate_and_rise(tmp_path):
    chromium()
    committed = (ROOT / "notebooks" / LESSON01 / f"{LESSON01}.ipynb").read_bytes()
    traffic = Traffic()
    with running_lab(tmp_path) as (base, token), browser() as instance:
        traffic.allowed = (*traffic.allowed, base, base.replace("http", "ws"))
        context = instance.new_context(viewport={"width": 1400, "height": 900})
        traffic.watch(context)
        page = context.new_page()
        page.goto(f"{base}/lab/tree/{LESSON01}/{LESSON01}.ipynb?token={token}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=90_000)
        page.wait_for_selector(".jp-NotebookPanel-toolbar :text('Python 3 (ipykernel)')", timeout=60_000)
        page.screenshot(path=artifact("lab-1-opened.png"))

        setup = _run_cell(page, "# Setup: run this cell first")
        setup.locator(".jp-OutputArea-output").first.wait_for(timeout=120_000)
        assert "fast mode: True" in setup.locator(".jp-OutputArea").inner_text()
        first = _run_cell(page, "t = torch.tensor([[1, 2, 3], [4, 5, 6]])")
        first.locator(".jp-OutputArea-output").first.wait_for(timeout=60_000)
        assert "shape: torch.Size([2, 3])" in first.locator(".jp-OutputArea").inner_text()
        page.screenshot(path=artifact("lab-2-cells-ran.png"))

        explorer = _run_cell(page, "explorer = widgets.descent.LearningRateExplorer(lr=0.3)")
        label = explorer.locator(".widget-html-content").first
        label.wait_for(timeout=60_000)
        assert "lr = 0.300" in label.inner_text() and "converges" in label.inner_text()
        chart = _chart(explorer)
        readout = explorer.locator(".widget-readout").first  # the slider's editable value
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type("1.2")
        page.keyboard.press("Enter")
        page.wait_for_function("el => el.textContent.includes('lr = 1.200')", arg=label.element_handle(),
                               timeout=30_000)
        assert "diverges" in label.inner_text()
        _wait_for_redraw(page, explorer, chart)
        page.screenshot(path=artifact("lab-3-slider-moved.png"))

        validate = page.locator(".jp-NotebookPanel-toolbar .validate-button").first
        assert validate.is_visible() and "Validate" in validate.inner_text()
        _assert_instructor_tools(page, base, token, shown=False)  # the learner sees none of them

        explorer.locator(".jp-InputArea-prompt").click()  # RISE starts at the selected cell's slide
        _slider_in_rise(page, "explorer = widgets.descent.LearningRateExplorer", "1.2", "lr = 1.200", "lab-4-rise")
        context.close()
    _assert_clean_console(traffic, "lab")
    assert (ROOT / "notebooks" / LESSON01 / f"{LESSON01}.ipynb").read_bytes() == committed


# What the lab's console may say, each for a reason outside the course's hands: (pattern, why). Anything
# else fails the test.
CONSOLE_ALLOWED = [
    (r"^console: Failed to load resource: net::ERR_FAILED @ https://colab\.research\.google\.com/assets/"
     r"colab-badge\.svg$", "the Colab badge image in each notebook's first cell: the only request to the "
                            "outside the lab makes, refused here (offline)"),
    (r"Refused to apply style from '[^']+/files/(?:[^']*/)?rise\.css'",
     "RISE probes for an optional stylesheet rise.css next to the notebook; the course has none (404)"),
    (r"Refused to apply style from '[^']+/files/(?:[^']*/)?([^/']+)/\1\.css'",
     "... and for <notebook>.css, likewise absent"),
    (r"^console: RangeError: Maximum call stack size exceeded @ http://127\.0\.0\.1:\d+/static/rise/",
     "jupyterlab_rise 0.43.1's own bundle (its FAST web components) in its standalone slideshow app: "
     "upstream, and the slides and live widgets work regardless, as these tests show"),
]


def _allowed(error: str) -> bool:
    return any(re.search(pattern, error) for pattern, _ in CONSOLE_ALLOWED)


def _assert_clean_console(traffic: Traffic, name: str) -> None:
    artifact(f"{name}-console-errors.txt").write_text("\n".join(traffic.errors) + "\n")
    artifact(f"{name}-requests.json").write_text(json.dumps({"failed": traffic.failed, "outside": traffic.outside},
                                                            indent=1) + "\n")
    unexpected = [e for e in traffic.errors if not _allowed(e)]
    assert not unexpected, f"console errors outside the allowlist: {unexpected[:5]}"
    outside = [u for u in traffic.outside if not u.endswith("/colab-badge.svg")]
    assert not outside, f"the lab reached outside the machine: {outside}"


CHART = ".widget-output img"  # a widget's chart: the picture in its Output


def _chart(cell) -> str:
    """The source of the widget's chart, which must be there."""
    chart = cell.locator(CHART).first
    chart.wait_for(timeout=60_000)
    return chart.get_attribute("src") or ""


def _wait_for_redraw(page, cell, before: str) -> None:
    """Wait until the widget's chart is a new picture: the slider moved the chart too, and the screenshot
    that follows shows the new value in the chart as well as in the text."""
    page.wait_for_function("([root, css, old]) => { const img = root.querySelector(css); "
                           "return img !== null && img.getAttribute('src') !== old; }",
                           arg=[cell.element_handle(), CHART, before], timeout=30_000)


def _slider_in_rise(page, cell_text: str, value: str, then: str, shot: str) -> None:
    """Start RISE at the selected cell, run that cell in the slideshow, type ``value`` into its first
    slider's readout, and see the widget's text say ``then``."""
    page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='RISE-button'] button").click()
    rise = page.frame_locator("iframe[src*='/rise/']")
    rise.locator(".reveal .slides section.present").first.wait_for(timeout=60_000)
    cell = rise.locator(".jp-CodeCell", has=rise.locator(".jp-InputArea", has_text=cell_text)).first
    cell.wait_for(timeout=30_000)
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Control+Enter")
    cell.locator(".widget-slider").first.wait_for(timeout=60_000)  # a live slider, not the widget's repr
    label = cell.locator(".widget-html-content").first
    before, chart = label.inner_text(), _chart(cell)
    cell.locator(".widget-readout").first.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    page.wait_for_function("([el, want]) => el.textContent.includes(want)", arg=[label.element_handle(), then],
                           timeout=30_000)
    assert label.inner_text() != before
    _wait_for_redraw(page, cell, chart)
    page.screenshot(path=artifact(f"{shot}.png"))


def test_rise_presents_lesson_02_with_a_live_widget(tmp_path):
    """RISE on a later lesson: the dropout explorer's slider moves on its slide and its text follows."""
    chromium()
    lesson = "02_nn_module"
    traffic = Traffic()
    with running_lab(tmp_path) as (base, token), browser() as instance:
        traffic.allowed = (*traffic.allowed, base, base.replace("http", "ws"))
        context = instance.new_context(viewport={"width": 1400, "height": 900})
        traffic.watch(context)
        page = context.new_page()
        page.goto(f"{base}/lab/tree/{lesson}/{lesson}.ipynb?token={token}")
        page.wait_for_selector(".jp-NotebookPanel-toolbar :text('Python 3 (ipykernel)')", timeout=90_000)
        setup = _run_cell(page, "# Setup: run this cell first")
        setup.locator(".jp-OutputArea-output").first.wait_for(timeout=120_000)
        cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea", has_text="DropoutExplorer(p=0.5)")).first
        cell.scroll_into_view_if_needed()
        cell.locator(".jp-InputArea-prompt").click()
        _slider_in_rise(page, "DropoutExplorer(p=0.5)", "0.2", "p = 0.20", "rise-02-dropout")
        context.close()
    _assert_clean_console(traffic, "rise-02")


ROUND_TRIPS = {  # lesson: (exercise's first line, a correct answer, a typical wrong one, words of its message)
    LESSON01: ("def to_float_pixels(images):",
               "def to_float_pixels(images):\n    return images.float() / 255\n",
               "def to_float_pixels(images):\n    return images.float()\n", ["255"]),
    "03_losses": ("def softmax(logits, dim=-1):",
                  "def softmax(logits, dim=-1):\n    z = logits - logits.amax(dim=dim, keepdim=True)\n"
                  "    return z.exp() / z.exp().sum(dim=dim, keepdim=True)\n",
                  "def softmax(logits, dim=-1):\n    return logits.exp() / logits.exp().sum(dim=dim, keepdim=True)\n",
                  ["overflows", "nan"]),
}


def _type_into(page, cell, source: str) -> None:
    """Replace a cell's source as a learner does: click into it, select everything, type."""
    cell.scroll_into_view_if_needed()
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(source)
    page.keyboard.press("Escape")


def _run(page, cell) -> None:
    cell.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Control+Enter")


def _output(cell, word: str, timeout: int = 120_000) -> str:
    cell.locator(".jp-OutputArea-output", has_text=word).first.wait_for(timeout=timeout)
    return cell.locator(".jp-OutputArea").inner_text()


@pytest.mark.parametrize("lesson", list(ROUND_TRIPS))
def test_a_learners_round_trip_in_the_lab(lesson, tmp_path):
    """In Chromium, on the student notebook: a correct answer and its check (green), a typical wrong
    answer (the message names the mistake), hint 1, then Validate and nbgrader's verdict."""
    first_line, correct, wrong, words = ROUND_TRIPS[lesson]
    student = nbformat.read(ROOT / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    unsolved = sum(1 for c in student.cells if c.metadata.get("nbgrader", {}).get("points")) - 1
    chromium()
    with running_lab(tmp_path) as (base, token), browser() as instance:
        page = instance.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/lab/tree/{lesson}/{lesson}.ipynb?token={token}")
        page.wait_for_selector(".jp-NotebookPanel-toolbar :text('Python 3 (ipykernel)')", timeout=90_000)
        cells = page.locator(".jp-Notebook .jp-Cell")
        texts = cells.all_inner_texts()
        k = next(i for i, text in enumerate(texts) if first_line in text)
        answer, check, hint = cells.nth(k), cells.nth(k + 1), cells.nth(k + 2)
        answer.locator(".jp-InputArea-prompt").click()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Above Selected Cell").click()

        _type_into(page, answer, correct)
        _run(page, answer)
        _run(page, check)
        said = _output(check, "correct")
        assert "✅" in said and "incorrect" not in said, said
        assert check.locator("div[style*='border-left']").first.is_visible()  # the coloured verdict box
        page.screenshot(path=artifact(f"round-trip-{lesson[:2]}-1-correct.png"))

        _type_into(page, answer, wrong)
        _run(page, answer)
        _run(page, check)
        said = _output(check, "incorrect")
        assert all(w in said for w in words), said
        page.screenshot(path=artifact(f"round-trip-{lesson[:2]}-2-wrong.png"))

        _type_into(page, hint, "checks.ex1.hint(1)")
        _run(page, hint)
        assert "hint 1 of" in _output(hint, "hint 1 of")
        page.screenshot(path=artifact(f"round-trip-{lesson[:2]}-3-hint.png"))

        _type_into(page, answer, correct)  # back to the right answer, then validated as a whole
        _run(page, answer)
        # Validate saves the notebook itself. A Ctrl+S just before it raced with that save: under load, the
        # second save found the first one's newer file on disk and JupyterLab asked "File Changed" (that
        # dialog, waited for as "Validation Results", was the Validate step's "hang" in two CI runs).
        page.locator(".jp-NotebookPanel-toolbar .validate-button").first.click()
        dialog = page.locator(".jp-Dialog")  # any dialog: nbgrader also answers "Validation failed", "Version Mismatch"
        try:
            dialog.first.wait_for(timeout=300_000)
        finally:
            page.screenshot(path=artifact(f"round-trip-{lesson[:2]}-4-validate.png"))
        verdict = dialog.first.inner_text()
        assert "Validation Results" in verdict, verdict[:3000]
        # nbgrader's verdict: every graded cell but the one solved fails, each shown with its error
        assert dialog.first.locator(".validation-failed").count() == 1, verdict[:2000]
        assert verdict.count("The following cell failed:") == unsolved, verdict[:3000]
        assert "Exercise 1:" not in verdict, verdict[:3000]
