"""Colab: the badge and the setup cell come from pyproject.toml, and the setup cell's Colab branch
installs the helpers (and nothing else) into an environment that already has torch.

The widgets work with ipywidgets 8 (the course's) and 7.7 (Colab's), in a real kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

import helpers
from helpers.course import colab
from helpers.course.lessons import Lesson, ReleaseError, find_lessons
from helpers.course.release import release
from tests.conftest import ROOT

LESSONS = [lesson.name for lesson in find_lessons(ROOT)]
COURSE = colab.CourseSettings("https://github.com/hands-on-pytorch/course", "0.1.0")
LEGACY_SETUP = '''# Setup: run this cell first.
import sys

if "google.colab" in sys.modules:
    %pip install -q "pytorch-course-helpers[mnist-subset] @ git+https://github.com/old/place@v0.0.1"

import torch

print(torch.__version__)'''


def _notebook(setup_source: str = LEGACY_SETUP):
    nb = nbformat.v4.new_notebook()
    title = nbformat.v4.new_markdown_cell("# Lesson 99: A demo")
    setup = nbformat.v4.new_code_cell(setup_source)
    setup.metadata["tags"] = ["setup"]
    nb.cells = [title, setup, nbformat.v4.new_code_cell("x = 1")]
    return nb


def _setup_cell(nb):
    return next(c for c in nb.cells if "setup" in c.metadata.get("tags", []))


def test_settings_come_from_pyproject_and_the_package_version(root):
    course = colab.settings(root)
    assert course.repository == "https://github.com/hands-on-pytorch/course"
    assert course.version == helpers.__version__ and course.tag == f"v{helpers.__version__}"
    assert course.colab_url("01_tensors_autograd") == (
        "https://colab.research.google.com/github/hands-on-pytorch/course/blob/"
        f"v{helpers.__version__}/notebooks/01_tensors_autograd/01_tensors_autograd.ipynb")
    assert course.helpers_spec() == ("pytorch-course-helpers[mnist-subset] @ "
                                     f"git+https://github.com/hands-on-pytorch/course@v{helpers.__version__}")


def test_package_version_is_helpers_version(root):
    """The version is set in one place: pyproject.toml reads helpers.__version__."""
    import tomllib

    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert "version" in pyproject["project"]["dynamic"] and "version" not in pyproject["project"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "helpers.__version__"}


@pytest.mark.parametrize("text, message", [
    ("", "needs a [tool.course] table"),
    ('[tool.course]\nrepository = "https://gitlab.com/a/b"\n', "must look like https://github.com/<org>/<repo>"),
])
def test_bad_settings_say_what_to_write(tmp_path, text, message):
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ReleaseError, match=message.replace("[", r"\[").replace("]", r"\]")):
        colab.settings(tmp_path)


def test_refresh_adds_the_badge_and_replaces_a_hand_written_colab_block():
    nb = _notebook()
    assert colab.refresh(nb, COURSE, "99_demo") is True
    badge = nb.cells[0]
    assert badge.cell_type == "markdown" and badge.id == colab.BADGE_ID
    assert badge.metadata["slideshow"]["slide_type"] == "skip"  # never in the decks
    assert f"({COURSE.colab_url('99_demo')})" in badge.source and "colab-badge.svg" in badge.source
    setup = _setup_cell(nb).source
    assert setup.count('if "google.colab" in sys.modules') == 1 and "%pip" not in setup and "old/place" not in setup
    assert colab.COLAB_BEGIN in setup and colab.COLAB_END in setup and COURSE.helpers_spec() in setup
    assert setup.startswith("# Setup: run this cell first.\n")
    assert setup.endswith("import torch\n\nprint(torch.__version__)")
    assert colab.refresh(nb, COURSE, "99_demo") is False  # idempotent


def test_refresh_follows_a_new_version_and_keeps_the_rest_of_the_cell():
    nb = _notebook()
    colab.refresh(nb, COURSE, "99_demo")
    before = _setup_cell(nb).source
    newer = colab.CourseSettings("https://github.com/someone/fork", "0.2.0")
    assert colab.refresh(nb, newer, "99_demo") is True
    after = _setup_cell(nb).source
    assert "someone/fork@v0.2.0" in after and "blob/v0.2.0/notebooks/99_demo/99_demo.ipynb" in nb.cells[0].source
    assert after.split(colab.COLAB_END)[1] == before.split(colab.COLAB_END)[1]
    assert sum(colab.BADGE_TAG in c.metadata.get("tags", []) for c in nb.cells) == 1


def test_a_setup_cell_without_a_colab_part_gets_a_clear_error():
    nb = _notebook("import torch")
    with pytest.raises(ReleaseError, match="has no Colab part.*make release"):
        colab.refresh(nb, COURSE, "99_demo")
    nb = _notebook()
    _setup_cell(nb).metadata["tags"] = []
    with pytest.raises(ReleaseError, match="exactly one code cell tagged 'setup'"):
        colab.refresh(nb, COURSE, "99_demo")


def test_generated_setup_passes_ruff(tmp_path):
    nb = _notebook()
    colab.refresh(nb, COURSE, "99_demo")
    script = tmp_path / "setup.py"
    script.write_text(_setup_cell(nb).source.replace("%pip", "# %pip") + "\n")
    ruff = Path(sys.executable).with_name("ruff")
    proc = subprocess.run([str(ruff), "check", "--config", str(ROOT / "pyproject.toml"), "--no-cache", str(script)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("lesson", LESSONS)
def test_source_badge_and_setup_are_up_to_date(root, lesson):
    """Fails when pyproject.toml or helpers.__version__ changed and `make release` was not run."""
    assert colab.stale_sources(root, [lesson]) == [], "run `make release` and commit the result"


@pytest.mark.parametrize("lesson", LESSONS)
def test_student_notebook_starts_with_the_colab_badge(root, lesson):
    nb = nbformat.read(root / "notebooks" / lesson / f"{lesson}.ipynb", as_version=4)
    course = colab.settings(root)
    assert nb.cells[0].source == colab.badge_source(course, lesson), "run `make release`"
    assert colab.colab_block(course) in _setup_cell(nb).source


@pytest.mark.slow
def test_release_writes_badge_and_setup_into_source_and_student(root, tmp_path):
    course = tmp_path / "course"
    (course / "solutions").mkdir(parents=True)
    for name in ("nbgrader_config.py", "pyproject.toml"):
        (course / name).write_bytes((root / name).read_bytes())
    lesson = Lesson("99_demo", course)
    lesson.source_dir.mkdir()
    nb = _notebook()
    answer = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    answer.metadata["nbgrader"] = {"grade": False, "grade_id": "ex1_answer", "locked": False, "schema_version": 3,
                                   "solution": True, "task": False}
    graded = nbformat.v4.new_code_cell("assert f() == 1")
    graded.metadata["nbgrader"] = {"grade": True, "grade_id": "ex1_test", "locked": True, "points": 1,
                                   "schema_version": 3, "solution": False, "task": False}
    nb.cells += [answer, graded]
    nbformat.write(nb, lesson.source)
    assert colab.stale_sources(course) != []
    release(course)
    assert colab.stale_sources(course) == []
    student = nbformat.read(lesson.student, as_version=4)
    assert student.cells[0].source == colab.badge_source(colab.settings(course), "99_demo")
    assert colab.COLAB_BEGIN in _setup_cell(student).source


# ---------------------------------------------------------------- the Colab branch, for real


def _site_without_helpers(tmp_path: Path) -> Path:
    """A folder that shows this environment's packages (torch included) except the course's helpers.

    Symbolic links, so nothing is copied and nothing of the real environment can be changed.
    """
    site = Path(sysconfig.get_paths()["purelib"])
    fake = tmp_path / "colab-site"
    fake.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if "pytorch_course_helpers" in name or name.startswith("__editable__") or name.endswith(".pth"):
            continue
        (fake / entry.name).symlink_to(entry)
    return fake


def _colab_like_python(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A fresh venv that sees torch & co. but not helpers, and a fake ``google.colab`` module.

    Returns (python, its own site-packages, the folder with the fake module).
    """
    venv = tmp_path / "colab-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    (own_site / "colab-preinstalled.pth").write_text(f"{_site_without_helpers(tmp_path)}\n")
    fake = tmp_path / "fake-colab"
    (fake / "google" / "colab").mkdir(parents=True)  # no google/__init__.py: a namespace package
    (fake / "google" / "colab" / "__init__.py").write_text('"""Stands in for Colab in the tests."""\n')
    return python, own_site, fake


def _checkout_copy(root: Path, tmp_path: Path) -> Path:
    """What `pip install git+<repository>@<tag>` would fetch, as far as the package is concerned."""
    import shutil

    src = tmp_path / "checkout"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "helpers", src / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    return src


@pytest.mark.slow
def test_setup_cell_in_colab_installs_helpers_and_never_torch(root, tmp_path):
    student = nbformat.read(root / "notebooks" / "01_tensors_autograd" / "01_tensors_autograd.ipynb", as_version=4)
    setup = _setup_cell(student).source
    assert colab.COLAB_BEGIN in setup, "the student notebook has no generated Colab setup: run `make release`"
    python, own_site, fake = _colab_like_python(tmp_path)
    src = _checkout_copy(root, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "COURSE_"))}
    env.update(PYTHONPATH=str(fake), MPLBACKEND="Agg", COURSE_OFFLINE="1", COURSE_DATA_DIR=str(root / "data"),
               COURSE_FAST="1", PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
               **{colab.SPEC_ENV: f"pytorch-course-helpers[mnist-subset] @ {src.as_uri()}"})
    probe = "import importlib.util as u; print(u.find_spec('helpers') is None, u.find_spec('torch') is not None)"
    before = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert before.stdout.split() == ["True", "True"], before.stdout + before.stderr  # torch yes, helpers not yet
    site_before = {p.name for p in own_site.iterdir()}

    colab_kernel = "import google.colab  # Colab's kernel has imported it before any cell runs\n"
    check = ("\nimport helpers, torch\nfrom helpers.checks import lesson01\n"
             "print('HELPERS', helpers.__file__)\nprint('TORCH', torch.__file__)\n")
    proc = subprocess.run([str(python), "-c", colab_kernel + setup + check], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("HELPERS", "TORCH")))
    assert lines["HELPERS"].startswith(str(own_site)), lines  # installed by the cell, into the fresh venv
    assert not lines["TORCH"].startswith(str(own_site)), lines  # the torch that was already there
    new = {p.name for p in own_site.iterdir()} - site_before
    assert {n.split("-")[0] for n in new} == {"helpers", "pytorch_course_helpers"}, f"pip also installed: {new}"
    assert "Fashion-MNIST: ready" in proc.stdout, proc.stdout  # the data was prepared


@pytest.mark.slow
def test_setup_cell_in_colab_shows_why_an_install_failed(root, tmp_path):
    python, _, fake = _colab_like_python(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "COURSE_"))}
    env.update(PYTHONPATH=str(fake), PIP_NO_INDEX="1",
               **{colab.SPEC_ENV: f"pytorch-course-helpers @ {(tmp_path / 'nowhere').as_uri()}"})
    code = "import google.colab\n" + colab.colab_block(colab.settings(root))
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "Installing the course's helpers failed (is the runtime online?)" in proc.stderr
    assert "nowhere" in proc.stderr  # pip's own message follows


# ---------------------------------------------------------------- ipywidgets 7.7 (Colab) and 8

DRIVE_WIDGET = r'''
import json
import sys

from jupyter_client.manager import start_new_kernel

km, kc = start_new_kernel(kernel_name="python3", cwd=sys.argv[1])
try:
    ids = {}
    def collect(msg):
        if msg["msg_type"] == "comm_open":
            state = msg["content"]["data"]["state"]
            ids.setdefault(state.get("_model_name"), msg["content"]["comm_id"])
    code = ("import ipywidgets\nfrom helpers.widgets.descent import LearningRateExplorer\n"
            "explorer = LearningRateExplorer(lr=0.3)\ndisplay(explorer)\nprint(ipywidgets.__version__)")
    reply = kc.execute_interactive(code, timeout=120, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    # What the browser sends when the learner lets go of the slider (the same in ipywidgets 7.7 and 8).
    data = {"method": "update", "state": {"value": 1.2}, "buffer_paths": []}
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": ids["FloatLogSliderModel"], "data": data}))
    out = []
    kc.execute_interactive("import json; print(json.dumps([ipywidgets.__version__, explorer.slider.value, "
                           "explorer.label.value]))", timeout=60,
                           output_hook=lambda m: m["msg_type"] == "stream" and out.append(m["content"]["text"]))
    print("RESULT", out[-1].strip())
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
'''


@pytest.fixture(scope="module")
def ipywidgets77(tmp_path_factory) -> Path:
    """ipywidgets 7.7 (what Colab ships) in a folder of its own, to put first on the path."""
    target = tmp_path_factory.mktemp("ipywidgets77")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(target), "ipywidgets==7.7.*", "ipython_genutils"],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"could not install ipywidgets 7.7 from PyPI for this test:\n{proc.stderr[-2000:]}", pytrace=False)
    return target


def _drive_widget(tmp_path: Path, extra_path: Path | None) -> list:
    """Show the lesson 01 slider in a real kernel, move it as the browser would; (version, value, label)."""
    env = dict(os.environ, MPLBACKEND="module://matplotlib_inline.backend_inline", PYTHONWARNINGS="ignore")
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", DRIVE_WIDGET, str(tmp_path)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.mark.slow
def test_learning_rate_slider_works_with_ipywidgets_7_7(ipywidgets77, tmp_path):
    version, value, label = _drive_widget(tmp_path, ipywidgets77)
    assert version.startswith("7.7."), version
    assert value == pytest.approx(1.2) and "lr = 1.200" in label and "diverges" in label


@pytest.mark.slow
def test_learning_rate_slider_works_with_ipywidgets_8(tmp_path):
    version, value, label = _drive_widget(tmp_path, None)
    assert version.startswith("8."), version
    assert value == pytest.approx(1.2) and "lr = 1.200" in label and "diverges" in label


@pytest.mark.slow
def test_every_widget_module_imports_with_ipywidgets_7_7(ipywidgets77):
    """No ipywidgets-8-only name at import time in any module of helpers/widgets/ (Colab has 7.7)."""
    modules = sorted("widgets" + ("" if p.stem == "__init__" else "." + p.stem)
                     for p in (ROOT / "helpers" / "widgets").glob("*.py"))
    assert len(modules) >= 7, modules  # the package, its base and a module per lesson topic
    code = ("import importlib, ipywidgets\nassert ipywidgets.__version__.startswith('7.7'), ipywidgets.__version__\n"
            f"for name in {modules!r}:\n    importlib.import_module('helpers.' + name)\nprint('OK')")
    env = dict(os.environ, PYTHONPATH=str(ipywidgets77), MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
