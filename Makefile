# lmdistill: `make demo` and `make test` work on a fresh clone with nothing installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= $(abspath ../shared/data)
export LMDISTILL_DATA ?= $(DATA)
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_VERBOSITY ?= error
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test test-fast bench clean

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -c constraints-cpu.txt torch 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q -c constraints-cpu.txt -e '.[test,sre,paraphrase,torchao]' 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import lmdistill, torch, transformers, accelerate"
	touch $@

venv: $(VENV)/.installed

# --resume: a second `make demo`, or one after a kill, keeps every finished training step
# (a finished run is not retrained) and evaluates, quantizes and times again.
demo: venv
	$(PY) -m lmdistill demo --data-dir $(LMDISTILL_DATA) --resume

test: venv
	$(PY) -m pytest -q -x --durations=15

test-fast: venv
	$(PY) -m pytest -q -x -m "not slow"

clean:
	rm -rf $(VENV) runs
