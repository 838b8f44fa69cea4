"""The job entry point: `python -m cluster.main --config configs/X.yaml [dotted.key=value ...]`.

The same entry point runs inside `ray job submit` on a GPU cluster and embedded on a laptop
or in CI. A job: validate the settings, prepare the run directory, (build a tiny model,) SFT
warm start, RL with periodic evaluation and checkpoints, final evaluation, report
(cluster/job/run.py). `--resume RUN_DIR` continues an interrupted RL phase from its last
checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from cluster.job.run import job
from cluster.job.runtime import run_command

console = Console()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster.main", description=__doc__)
    parser.add_argument("--config", type=Path, help="experiment settings (YAML)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value settings")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    code, summary = run_command("revisor", lambda: job(args))
    if summary is not None:
        console.print_json(json.dumps(summary))
    return code


if __name__ == "__main__":
    sys.exit(main())
