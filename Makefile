# Every target creates .venv on first use, so each works on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

.PHONY: install run test test-slow lint bench
install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/compress run

# One test process per core: training uses one TensorFlow thread per process (compress.models.backend),
# so a single pytest process leaves the other cores idle.  A file's tests share a process, and
# so its fixtures.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow -n auto --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check compress tests benchmarks examples
	$(VENV)/bin/lint-imports --no-cache

bench: $(STAMP)
	$(PY) benchmarks/default_run.py
