# The course's commands. The first run creates .venv (about two minutes) and
# unpacks the data; later runs reuse both.
#
#   make lab              open the course in JupyterLab (HEADLESS=1 on a server; NOTEBOOKS=dir serves another folder)
#   make test             run every test (what CI runs)
#   make execute          run the solution notebooks (full mode) and save their outputs
#   make release          regenerate the student notebooks from solutions/ (LESSONS="01 02" for some),
#                         with their Colab badge and setup written from pyproject.toml [tool.course]
#   make slides           build slides/NN_topic.slides.html and slides/index.html from solutions/, and copy
#                         reveal.js & co. (pinned in package-lock.json) into slides/vendor/: presents offline
#   make data             unpack / download the data sets into data/
#   make lint             ruff on helpers, tests and the solution notebooks

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
PYTEST_ARGS ?= -n 2

.PHONY: env data lab test execute release check-release slides lint clean-env

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found. Install Python 3.11 (sudo apt-get install -y python3.11 python3.11-venv) or run: make PYTHON=/path/to/python3.11 ..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

data: env
	$(PY) -m helpers.data prepare

lab: env data
	$(VENV)/bin/jupyter lab "$(NOTEBOOKS)" --ip=$(HOST) --port=$(PORT) $(if $(HEADLESS),--no-browser,) $(if $(filter 0,$(shell id -u)),--allow-root,) $(LAB_ARGS)

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

clean-env:
	rm -rf $(VENV)
