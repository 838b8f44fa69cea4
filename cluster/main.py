"""The training job: `revisor run --config configs/X.yaml [dotted.key=value ...]`.

`python -m cluster.main` is the same command, for `ray job submit` on a GPU cluster; both run
embedded on a laptop or in CI too. A job: validate the settings, prepare the run directory,
(build a tiny model,) SFT warm start, RL with periodic evaluation and checkpoints, final
evaluation, report (cluster/job/run.py). `--resume RUN_DIR` continues an interrupted RL phase
from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None, prog: str = "revisor run") -> argparse.Namespace:
    """The job's arguments; a job without settings says which argument gives them."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="experiment settings (YAML)")
    source.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value settings")
    args = parser.parse_args(argv)
    if args.config is None and args.resume is None:
        parser.error("give --config FILE.yaml (the experiment's settings, e.g. "
                     "configs/cpu_demo.yaml) or --resume RUN_DIR")
    return args


def main(argv: list[str] | None = None, prog: str = "revisor run") -> int:
    args = parse_args(argv, prog)
    # Imported after parsing: the job pulls in torch, Ray and vLLM (seconds), --help must not.
    from cluster.job.run import job
    from cluster.job.runtime import run_command

    code, summary = run_command("revisor", lambda: job(args))
    if summary is not None:
        from rich.console import Console

        Console().print_json(json.dumps(summary))
    return code


if __name__ == "__main__":
    sys.exit(main(prog="python -m cluster.main"))
