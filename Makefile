# The README's two commands: `make demo` (the main job) and `make test` (the suite).
# Both run scripts/setup.sh first; on a set-up machine it only checks, in seconds.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup check-build test demo bench bench-peers device-pack

setup:
	@bash scripts/setup.sh

# Rerun `horovodrun --check-build` even when set-up is up to date.
check-build:
	@FORCE_CHECK=1 bash scripts/setup.sh

# ruff (pyflakes and import order, ruff.toml) first; pytest exits 5 when a selection holds no test: say so instead of failing.
test: setup
	@$(VENV)/bin/ruff check . && echo "ruff: clean"
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest: no tests selected"; exit 0; fi; exit $$rc

demo: setup
	@bash scripts/demo.sh

bench: setup
	@bash scripts/bench.sh

# This project against its peers (timm's LARS, a bare Horovod loop, torch DDP), alternating repetitions.
bench-peers: setup
	@bash scripts/bench_peers.sh

# The Horovod sdist and a small wheelhouse into .device/ (gitignored), for scripts/device_check.sh on a
# GPU machine without network: carry .device with the tree.
device-pack:
	@bash scripts/device_check.sh --pack
