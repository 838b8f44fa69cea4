"""Live control of a running job through its run directory.

`revisor scale RUN_DIR N` writes the wanted number of rollout workers into
RUN_DIR/control.json; the driver reads it between learner updates and starts or retires
workers to match. A file rather than an RPC: it works the same for an embedded run on a
laptop and a job submitted to a cluster whose driver the user cannot reach, and it leaves a
record of what was asked.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONTROL_FILE = "control.json"


class Control(BaseModel):
    """What a person asked of a running job."""

    model_config = ConfigDict(extra="forbid")

    rollout_workers: int | None = Field(None, ge=1)


def read_control(run_dir: Path) -> Control:
    """The latest request; an unreadable or invalid file is reported and ignored, never fatal."""
    path = run_dir / CONTROL_FILE
    if not path.exists():
        return Control()
    try:
        return Control.model_validate_json(path.read_text())
    except (OSError, ValidationError) as error:
        print(f"revisor: ignoring {path}: {error}")
        return Control()


def write_control(run_dir: Path, control: Control) -> None:
    """Replace the control file atomically, so the driver never reads half a file."""
    path = run_dir / CONTROL_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(control.model_dump(exclude_none=True)))
    os.replace(temporary, path)


def scale_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="revisor scale", description="Set the number of rollout workers of a running job.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("workers", type=int)
    args = parser.parse_args(argv)
    if not (args.run_dir / "config.yaml").exists():
        parser.error(f"{args.run_dir} is not a Revisor run directory (no config.yaml)")
    if args.workers < 1:
        parser.error("the number of rollout workers must be at least 1")
    write_control(args.run_dir, Control(rollout_workers=args.workers))
    print(f"asked {args.run_dir} for {args.workers} rollout workers")
    return 0


main = scale_main
