# The two commands that set up everything on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
CRM := $(VENV)/bin/crm
STAMP := $(VENV)/.installed

.PHONY: install run demo test lint bench clean doc-screenshots

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Creates the database, loads the demo Sales CRM (once) and serves it at http://127.0.0.1:8000.
run: install
	$(CRM) init
	$(CRM) demo --if-empty
	$(CRM) serve --host 127.0.0.1 --port 8000

test: install
	$(VENV)/bin/pytest

# Runs the designer's browser test and writes the pictures docs/designer.md shows into docs/images/.
doc-screenshots: install
	CRM_DOC_SCREENSHOTS=1 $(VENV)/bin/pytest -q tests/browser/test_designer.py

lint: install
	$(VENV)/bin/ruff check engine tests

bench: install
	$(PY) bench/import_bench.py
	$(PY) bench/list_bench.py
	$(PY) bench/render_bench.py
	$(PY) bench/workflow_bench.py

clean:
	rm -rf $(VENV) crm.db crm.db-wal crm.db-shm .pytest_cache .hypothesis
