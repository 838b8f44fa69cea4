"""Settings are light: loading any shipped configuration imports neither torch nor
transformers, so `revisor plan`, `--help` and a bad setting answer in a blink, and a driver
that only validates settings never pays for the learner's stack."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.jobs import ROOT

HEAVY = ("torch", "transformers", "vllm", "deepspeed", "ray")

LOAD_EVERY_CONFIG = f"""
import json, sys
from pathlib import Path
from cluster.settings.loading.study import load_experiment
names = []
for path in sorted(Path("configs").rglob("*.yaml")):
    load_experiment(path, [])
    names.append(str(path))
print(json.dumps({{"loaded": names, "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_loading_every_shipped_config_imports_no_heavy_package():
    out = subprocess.run([sys.executable, "-c", LOAD_EVERY_CONFIG], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    result = json.loads(out.splitlines()[-1])
    assert len(result["loaded"]) >= 10  # every experiment, study and paper file
    assert result["heavy"] == [], f"loading settings imported {result['heavy']}"
