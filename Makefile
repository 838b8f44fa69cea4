# The two commands of the README. Each does its own set-up (deploy/install.sh is a no-op
# when the environment is already installed).
SHELL := /bin/bash
export OMP_NUM_THREADS := 1
export DS_ACCELERATOR := cpu
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
VENV := .venv

.PHONY: demo test install lint

install:
	@bash deploy/install.sh

demo: install
	$(VENV)/bin/python -m cluster.main --config configs/cpu_demo.yaml run_dir=runs/cpu-demo-$$(date +%Y%m%d-%H%M%S)

test: install
	@bash deploy/install-test-tools.sh || [ $$? = 2 ]  # 2: no root here; those tests say so
	$(VENV)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/python -m ruff check .
