# Two commands on a fresh machine: `make train` and `make test` (each sets up .venv/ first).
# Pass flags with ARGS, e.g. make train ARGS="--env_id PongNoFrameskip-v4".
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements

.PHONY: setup train test bench clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10+ is needed (set PYTHON=python3.11)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

train: $(STAMP)
	$(PY) train_DQN_script.py $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests $(ARGS)

bench: $(STAMP)
	$(PY) bench/throughput.py $(ARGS)
	$(PY) bench/replay_memory.py
	$(PY) bench/fps_drift.py

clean-venv:
	rm -rf $(VENV)
