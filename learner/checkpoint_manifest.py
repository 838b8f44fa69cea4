"""Which learner checkpoints are complete, and which one a resumed run starts from.

A checkpoint is written by every rank at once, and a job can be killed (preempted, OOM,
`ray job stop`) at any moment of that. So a new checkpoint is committed in two steps, after
every rank has finished writing: first a manifest (`complete.json`: the version, every file
with its byte size, the model's parameter shapes), then `latest` naming it, each written to a
temporary file and moved into place (`os.replace` is atomic), so neither is ever half written.

A resume checks the checkpoint `latest` names against its manifest: a missing manifest, a
missing file or a size that differs (a file truncated by a full disk, say) makes it torn,
and the run resumes from the newest complete checkpoint instead, saying so. The model shapes
let a resume of a checkpoint with another model fail in one line, before any rank loads it.

This protects against a killed process, not a lost machine: DeepSpeed's files are not
fsync'ed (the manifest and `latest` are).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

MANIFEST = "complete.json"
LATEST = "latest"
TAG = re.compile(r"version-(\d+)")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names it and says why."""


class CheckpointChoice(BaseModel):
    """The checkpoint a resume loads and, when it is not the one `latest` names, why."""

    model_config = ConfigDict(frozen=True)

    directory: str
    tag: str
    version: int
    torn: str | None = None
    """The tag `latest` named when it was torn (None when `latest` was complete or missing)."""
    note: str | None = None
    """One line for the user when the run does not resume from `latest` as it stands."""


def write_manifest(tag_dir: Path, version: int, shapes: dict[str, list[int]]) -> None:
    """Record what a complete checkpoint holds; call only once every rank has written."""
    files = {str(path.relative_to(tag_dir)): path.stat().st_size
             for path in sorted(tag_dir.rglob("*"))
             if path.is_file() and path.name != MANIFEST and not path.name.endswith(".tmp")}
    manifest = {"version": version, "files": files, "model": {"shapes": shapes}}
    write_atomically(tag_dir / MANIFEST, json.dumps(manifest, indent=1))


def commit_latest(directory: Path, tag: str) -> None:
    """Point `latest` at `tag`: after its manifest, so `latest` never names a partial one."""
    write_atomically(directory / LATEST, tag)


def begin_rewrite(directory: Path, tag: str) -> None:
    """Before a tag's directory is written (again): drop its old manifest, so an interrupted
    rewrite is not taken for the complete checkpoint it replaces; and when `latest` names it
    (a resume fell back past it), remove `latest`, which would name a partial checkpoint."""
    (directory / tag / MANIFEST).unlink(missing_ok=True)
    if read_latest(directory) == tag:
        (directory / LATEST).unlink(missing_ok=True)


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old content or the new, never a part (write aside, flush to disk,
    then rename), even when the writer is killed while writing. The one writer of the
    project's small state files (checkpoint manifests, a study's stored points)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def read_latest(directory: Path) -> str | None:
    """The tag `latest` names, or None when there is no `latest`."""
    latest = directory / LATEST
    if not latest.is_file():
        return None
    return latest.read_text().strip() or None


def read_manifest(tag_dir: Path) -> dict[str, Any] | None:
    """The manifest, or None when there is none or it is not one (damaged after the fact)."""
    try:
        manifest = json.loads((tag_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) \
        else None


def manifest_problem(tag_dir: Path, named_by_latest: bool = False) -> str | None:
    """Why the checkpoint in `tag_dir` is incomplete, or None when it is complete.

    Checkpoints written before manifests existed have none. DeepSpeed wrote their `latest`
    only after every file, so a manifest-less checkpoint that `latest` names is taken as
    complete (new saves never leave `latest` naming a tag without a manifest: see
    begin_rewrite); any other manifest-less one may be a save cut short and is torn."""
    if not tag_dir.is_dir():
        return "its directory is missing"
    if not (tag_dir / MANIFEST).exists():
        return None if named_by_latest else f"it has no {MANIFEST} (its save did not finish)"
    manifest = read_manifest(tag_dir)
    if manifest is None:
        return f"its {MANIFEST} is unreadable"
    for name, size in manifest["files"].items():
        path = tag_dir / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size:,} bytes, {size:,} were written"
    return None


def versions(directory: Path) -> list[tuple[int, str]]:
    """(version, tag) of every checkpoint directory, newest first."""
    found = [(int(match.group(1)), path.name) for path in directory.glob("version-*")
             if path.is_dir() and (match := TAG.fullmatch(path.name))]
    return sorted(found, reverse=True)


def choose_checkpoint(directory: str | Path) -> CheckpointChoice:
    """The checkpoint to resume from: the one `latest` names when it is complete, else the
    newest complete one (with a note naming both). CheckpointError when none is complete."""
    directory = Path(directory)
    tags = versions(directory) if directory.is_dir() else []
    if not tags:
        raise CheckpointError(f"no learner checkpoint in {directory}")
    latest = read_latest(directory)
    problem = None
    if latest:
        problem = (manifest_problem(directory / latest, named_by_latest=True)
                   if TAG.fullmatch(latest) else "not a version-N tag")
    if latest and problem is None:
        return CheckpointChoice(directory=str(directory), tag=latest, version=_version(latest))
    fallback = next((tag for version, tag in tags
                     if tag != latest and manifest_problem(directory / tag) is None), None)
    why = (f"checkpoint {directory / latest} is torn ({problem})" if latest
           else f"{directory / LATEST} is missing")
    if fallback is None:
        raise CheckpointError(f"no complete learner checkpoint in {directory}: {why}, and no "
                              f"other is complete ({', '.join(tag for _, tag in tags)} checked)")
    return CheckpointChoice(directory=str(directory), tag=fallback, version=_version(fallback),
                            torn=latest, note=f"{why}: resuming from {fallback} instead")


def _version(tag: str) -> int:
    match = TAG.fullmatch(tag)
    if match is None:
        raise CheckpointError(f"checkpoint tag {tag!r} is not of the form version-N")
    return int(match.group(1))


def model_mismatch(tag_dir: Path, shapes: dict[str, list[int]], model: str) -> str | None:
    """One line saying how the checkpoint's model differs from `shapes` (the configured
    model's parameter shapes), or None when they agree or the checkpoint predates manifests."""
    manifest = read_manifest(tag_dir)
    saved = (manifest or {}).get("model", {}).get("shapes")
    if saved is None or saved == shapes:
        return None
    name = next(n for n in sorted(saved.keys() | shapes.keys()) if saved.get(n) != shapes.get(n))
    return (f"checkpoint {tag_dir} holds another model than {model}: "
            f"{_count(saved):,} parameters ({name}: {saved.get(name, 'absent')}) in the "
            f"checkpoint, {_count(shapes):,} ({name}: {shapes.get(name, 'absent')}) configured")


def _count(shapes: dict[str, list[int]]) -> int:
    return sum(math.prod(shape) for shape in shapes.values())
