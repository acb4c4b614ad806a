# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test install lint bench-tiling bench-consensus bench-volunteers clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed, not " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps crowd-kit==1.4.2
	touch $@

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py load_demo
	VENV=$(VENV) platform/run-embedded

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

bench-tiling: install
	$(PY) -m bench.tiling

bench-consensus: install
	$(PY) -m bench.consensus

bench-volunteers: install
	$(PY) -m bench.volunteers

clean:
	rm -rf $(VENV) data
