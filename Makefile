# Two commands matter: `make demo` (the end-to-end demo on SQLite) and `make test` (the suite on
# real PostgreSQL and Redis). Both create .venv and install what they need.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_ARGS ?=

.PHONY: demo test run lint test-fast schemathesis-full reliability-long load bench clean browsers test-e2e

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) manage.py demo

test: $(STAMP)
	$(PY) -m scripts.services -- $(PY) -m pytest -m "not slow" $(TEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

run: $(STAMP)
	$(PY) -m scripts.run

schemathesis-full: $(STAMP)
	$(PY) -m scripts.services -- $(PY) -m pytest -m slow tests/api/test_schemathesis_full.py $(TEST_ARGS)

reliability-long: $(STAMP)
	$(PY) -m scripts.services -- $(PY) -m pytest -m slow tests/reliability $(TEST_ARGS)

# Locust against gunicorn, alone and during a campaign send (docs/reliability.md); ~6 minutes.
load: $(STAMP)
	$(PY) -m scripts.services -- $(PY) benchmarks/load/run.py $(LOAD_ARGS)

clean:
	rm -rf out .embedded

# Debian's Chromium for the browser test (Playwright drives it; no browser download).
browsers:
	@command -v chromium >/dev/null 2>&1 || apt-get install -y chromium

test-e2e: $(STAMP) browsers
	$(PY) -m scripts.services -- $(PY) -m pytest tests/e2e $(TEST_ARGS)
