# The course's commands. The first run creates .venv (about two minutes) and
# unpacks the data; later runs reuse both.
#
#   make lab              open the course in JupyterLab (HEADLESS=1 on a server; NOTEBOOKS=dir serves another folder)
#   make lab-instructor   the instructor's JupyterLab on the whole course, with nbgrader's create-assignment and formgrader
#   make test             run every test (what CI runs)
#   make execute          run the solution notebooks (full mode) and save their outputs
#   make release          regenerate the student notebooks from solutions/ (LESSONS="01 02" for some),
#                         with their Colab badge and setup written from pyproject.toml [tool.course]
#   make slides           build slides/NN_topic.slides.html and slides/index.html from solutions/, and copy
#                         reveal.js & co. (pinned in package-lock.json) into slides/vendor/: presents offline
#   make data             unpack / download the data sets into data/
#   make lint             ruff on helpers, tests and the solution notebooks
#   make grade LESSON=01 SUBMISSIONS=path/ [OUT=grades] [JOBS=2] [DUE=2026-12-01T23:59] [CANVAS=roster.csv]
#                         grade a class: OUT/grades.csv, OUT/feedback/<student>/<lesson>.html, a summary
#                         (and OUT/canvas.csv for Canvas's gradebook import, from its exported gradebook)
#   make bundle           dist/student-bundle.zip: what students receive (no solutions, no hidden tests)
#   make gradescope LESSON=01
#                         dist/gradescope/<lesson>.zip: the lesson's Gradescope autograder (instructor-only)
#   make bench            every benchmark, printing figures against the targets (about 15 minutes on 2 cores):
#                         bench-lessons: lessons 04-06 against two peer recipes (BENCH_LESSONS_ARGS=--quick);
#                         bench-notebooks: each notebook top to bottom, full and fast mode;
#                         bench-grading: class grading against plain nbgrader autograde;
#                         bench-distributed: lesson 07's DDP run with 1 and 2 CPU processes (and every GPU)

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.course-installed
NODE_STAMP := node_modules/.course-installed
HOST ?= 127.0.0.1
PORT ?= 8888
HEADLESS ?=
LAB_ARGS ?=
NOTEBOOKS ?= notebooks
PYTEST_ARGS ?= -n 2 --maxschedchunk=1
LESSON ?=
SUBMISSIONS ?=
OUT ?= grades
JOBS ?= 2
DUE ?=
CANVAS ?=
BENCH_GRADING_ARGS ?=
BENCH_LESSONS_ARGS ?=
BENCH_NOTEBOOKS_ARGS ?=
BENCH_DISTRIBUTED_ARGS ?=

.PHONY: env data lab lab-instructor test execute release check-release slides lint clean-env grade bundle gradescope bench bench-grading bench-lessons bench-notebooks bench-distributed

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found. Install Python 3.11 (sudo apt-get install -y python3.11 python3.11-venv) or run: make PYTHON=/path/to/python3.11 ..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@# jsonschema's optional IRI check (rfc3987-syntax, pulled in by jupyter-events) compiles 38
	@# grammars whenever nbformat, nbgrader or Jupyter starts: 3.5 s of CPU per process here.
	@# Nothing in the course validates IRIs, so it goes (jsonschema simply skips that format).
	$(PY) -m pip uninstall --quiet --yes rfc3987-syntax
	touch $@

data: env
	$(PY) -m helpers.data prepare

LAB_FLAGS = --ip=$(HOST) --port=$(PORT) $(if $(HEADLESS),--no-browser,) $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

# The learners' lab: jupyter/learner/ turns off nbgrader's instructor tools (create assignment, formgrader,
# course and assignment lists) and keeps its Validate button.
# RISE's slideshow loads every lab extension it is given, and nbgrader's and notebook's fail there
# (module federation errors: they need JupyterLab's own shell): it gets only what a slideshow uses.
RISE_EXTENSIONS := jupyterlab-rise jupyterlab_pygments @jupyter-widgets/jupyterlab-manager @jupyterlab/mathjax3-extension
RISE_LABEXT := $(VENV)/rise-labextensions

lab: env data
	@rm -rf "$(RISE_LABEXT)" && for ext in $(RISE_EXTENSIONS); do mkdir -p "$(RISE_LABEXT)/$$(dirname $$ext)" && \
	  ln -s "$(abspath $(VENV))/share/jupyter/labextensions/$$ext" "$(RISE_LABEXT)/$$ext"; done
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter/learner$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH),)" \
	  $(VENV)/bin/jupyter lab "$(NOTEBOOKS)" --RiseApp.labextensions_path="$(abspath $(RISE_LABEXT))" $(LAB_FLAGS)

# The instructor's lab, on the whole course: nbgrader's create-assignment toolbar and formgrader as well.
lab-instructor: env data
	$(VENV)/bin/jupyter lab "$(CURDIR)" $(LAB_FLAGS)

test: env data $(NODE_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

execute: env data
	$(PY) -m helpers.course execute $(LESSONS)

release: env
	$(PY) -m helpers.course release $(LESSONS)

check-release: env
	$(PY) -m helpers.course check

# The JavaScript the decks load (reveal.js, jQuery, require.js, MathJax 2), exactly as package-lock.json pins it.
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: npm not found. Install it (sudo apt-get install -y npm), then run make again." >&2; exit 1; }
	npm ci --no-audit --no-fund
	touch $@

slides: env $(NODE_STAMP)
	$(PY) -m helpers.course slides $(LESSONS)

lint: env
	$(VENV)/bin/ruff check helpers tests solutions

grade: env data
	@test -n "$(LESSON)" && test -n "$(SUBMISSIONS)" || { echo "usage: make grade LESSON=01 SUBMISSIONS=path/ [OUT=grades] [JOBS=2] [DUE=2026-12-01T23:59] [CANVAS=roster.csv]" >&2; exit 2; }
	$(PY) -m helpers.grading grade $(LESSON) "$(SUBMISSIONS)" --out "$(OUT)" --jobs $(JOBS) $(if $(DUE),--due $(DUE),) $(if $(CANVAS),--canvas "$(CANVAS)",)

bundle: env
	$(PY) -m helpers.grading bundle --out dist/student-bundle.zip

gradescope: env
	@test -n "$(LESSON)" || { echo "usage: make gradescope LESSON=01" >&2; exit 2; }
	$(PY) -m helpers.grading gradescope $(LESSON) --out dist/gradescope

bench: bench-lessons bench-notebooks bench-grading bench-distributed

bench-grading: env data
	$(PY) -m benchmarks.grading $(BENCH_GRADING_ARGS)

bench-lessons: env data
	$(PY) -m benchmarks.lessons $(BENCH_LESSONS_ARGS)

bench-notebooks: env data
	$(PY) -m benchmarks.notebooks $(BENCH_NOTEBOOKS_ARGS)

bench-distributed: env
	$(PY) -m benchmarks.distributed $(BENCH_DISTRIBUTED_ARGS)

clean-env:
	rm -rf $(VENV)
