# Two commands on a fresh machine: `make train` and `make test` (each sets up .venv/ first).
# Pass flags with ARGS, e.g. make train ARGS="--env_id PongNoFrameskip-v4".
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-requirements
PEER_VENV := .venv-sb3
PEER_STAMP := $(PEER_VENV)/.installed-requirements

.PHONY: setup train test bench bench-peer clean-venv

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
	$(PY) bench/throughput.py --num_envs 1,4,8 $(ARGS)
	$(PY) bench/update_profile.py
	$(PY) bench/replay_memory.py
	$(PY) bench/fps_drift.py
	$(PY) bench/on_policy_throughput.py

# Stable-Baselines3 side by side, in its own venv (never in this project's requirements); needs an idle machine.
$(PEER_STAMP): bench/peer_requirements.txt
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/peer_requirements.txt
	touch $(PEER_STAMP)

bench-peer: $(STAMP) $(PEER_STAMP)
	$(PY) bench/peer_sb3.py --peer_python $(PEER_VENV)/bin/python $(ARGS)

clean-venv:
	rm -rf $(VENV) $(PEER_VENV)
