# The two commands of the README (demo, test), plus study, docs and lint. Each does its own
# set-up (deploy/install.sh is a no-op when the environment is already installed).
SHELL := /bin/bash
export OMP_NUM_THREADS := 1
export DS_ACCELERATOR := cpu
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
VENV := .venv

.PHONY: demo rl-demo study test install lint docs

install:
	@bash deploy/install.sh

# The main job on this machine: the study's finding (configs/study/cpu-gp-l.yaml, seed 0):
# a base pretrained here (once; cached in runs/bases), then SFT and RL from one init at
# matched compute; the SFT-vs-RL figure leads the study directory's report/study.md.
demo: install
	$(VENV)/bin/python -m cluster.cli study --config configs/study/cpu-gp-l.yaml \
		study_dir=runs/demo-$$(date +%Y%m%d-%H%M%S)

# PPO with sequential revision on a tiny model warm-started by SFT (configs/cpu_demo.yaml).
rl-demo: install
	$(VENV)/bin/python -m cluster.cli run --config configs/cpu_demo.yaml run_dir=runs/cpu-demo-$$(date +%Y%m%d-%H%M%S)

# The study on this machine: a base model pretrained on the generated corpus (once; cached in
# runs/bases), then SFT and RL arms from one init at 3 matched compute points
# (configs/study/cpu-$(TASK).yaml: TASK=gp-l, the default, virl-l or gp-vl, whose report
# also draws card recognition against compute per arm and split); the figure is in the
# study directory's report/study.md.
TASK ?= gp-l
study: install
	$(VENV)/bin/python -m cluster.cli study --config configs/study/cpu-$(TASK).yaml \
		study_dir=runs/study-cpu-$(TASK)-$$(date +%Y%m%d-%H%M%S)

test: install
	@bash deploy/install-test-tools.sh || [ $$? = 2 ]  # 2: no root here; those tests say so
	$(VENV)/bin/python -m pytest -q

# The docs site (mkdocs.yml, docs/): the configuration reference regenerated from the settings
# models, then the site built strictly (a dead link or a missing page fails) into site/.
docs: install
	$(VENV)/bin/python docs/gen_config_reference.py
	$(VENV)/bin/mkdocs build --strict

lint: install
	$(VENV)/bin/python -m ruff check .
