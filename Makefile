# The two commands of the README. Each does its own set-up (deploy/install.sh is a no-op
# when the environment is already installed).
SHELL := /bin/bash
export OMP_NUM_THREADS := 1
export DS_ACCELERATOR := cpu
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
VENV := .venv

.PHONY: demo study test install lint

install:
	@bash deploy/install.sh

demo: install
	$(VENV)/bin/python -m cluster.cli run --config configs/cpu_demo.yaml run_dir=runs/cpu-demo-$$(date +%Y%m%d-%H%M%S)

# The study on this machine: a base model pretrained on the generated corpus (once; cached in
# runs/bases), then SFT and RL arms from one init at 3 matched compute points
# (configs/study/cpu-gp-l.yaml); the figure is in the study directory's report/study.md.
study: install
	$(VENV)/bin/python -m cluster.cli study --config configs/study/cpu-gp-l.yaml \
		study_dir=runs/study-cpu-gp-l-$$(date +%Y%m%d-%H%M%S)

test: install
	@bash deploy/install-test-tools.sh || [ $$? = 2 ]  # 2: no root here; those tests say so
	$(VENV)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/python -m ruff check .
