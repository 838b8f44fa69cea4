"""Reading experiment settings: a YAML file plus dotted `key=value` overrides, validated.

Errors name every offending field by its dotted path and say what was expected, before any
actor starts, so a typo on the command line costs seconds rather than a cluster allocation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class SettingsError(ValueError):
    """Settings that cannot be used; the message lists each problem with its field."""


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Set `a.b.c=value` inside nested dicts; the value is read as a YAML scalar or list."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise SettingsError(f"override {assignment!r} must look like dotted.key=value")
    *parents, leaf = key.strip().split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SettingsError(f"override {assignment!r}: {part!r} holds a value, not settings")
        node = child
    try:
        node[leaf] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise SettingsError(f"override {assignment!r}: the value is not valid YAML ({error})") from error


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as error:
        raise SettingsError(f"cannot read settings file {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise SettingsError(f"settings file {path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise SettingsError(f"settings file {path} must hold a mapping of settings")
    return data


def load_settings(model: type[Model], path: Path | None, overrides: list[str] = ()) -> Model:
    """Validate a YAML file (optional) plus overrides against `model`."""
    data = read_yaml(path) if path else {}
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SettingsError(describe(error, source=str(path) if path else "settings")) from None


def describe(error: ValidationError, source: str) -> str:
    """One line per problem: the dotted field, what is wrong, and the value given."""
    lines = [f"{source}: {error.error_count()} invalid setting(s)"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        given = problem.get("input")
        shown = "" if isinstance(given, dict) else f" (given: {given!r})"
        lines.append(f"  {field}: {problem['msg']}{shown}")
    return "\n".join(lines)


def dump_settings(settings: BaseModel, path: Path) -> None:
    """Write the resolved settings, every default filled in, as YAML."""
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
