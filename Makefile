# The two commands of the README. Both create .venv/ (pinned by constraints.txt) when missing.
PY := .venv/bin/python
STAMP := .venv/.installed
# Debian's headless chromium and its driver, for the page tests (installed when missing)
BROWSER := /usr/bin/chromedriver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test lint bench lock
demo: $(STAMP)  ## run the main job
	.venv/bin/volstream demo

test: $(STAMP) $(BROWSER)  ## run the whole test suite (what .ci/run runs), a test file per core
	$(PY) -m ruff check .
	$(PY) -m pytest -n 2 --dist loadfile --durations=12

bench: $(STAMP)  ## benchmarks against QuantLib (slow; not part of the tests)
	$(PY) bench/sabr.py
	$(PY) bench/stream.py
	$(PY) bench/heston.py
	$(PY) bench/wide.py

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade "pip>=24,<26"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	# the demo's and the tests' workers: no runbook warmed (352 s of a fresh 2-core install);
	# a production host runs `volstream compile` with its own worker's settings
	VOLSTREAM_WARM_RUNBOOK=0 .venv/bin/volstream compile
	touch $(STAMP)

$(BROWSER):
	$(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null \
	  || ($(SUDO) apt-get update -q >/dev/null && $(SUDO) apt-get install -y -q chromium chromium-driver >/dev/null)

lock: $(STAMP)  ## refresh constraints.txt from the current environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
