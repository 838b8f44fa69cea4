"""Reading experiment settings: a YAML file plus dotted `key=value` overrides, validated.

Errors name every offending field by its dotted path and say what was expected, before any
actor starts, so a typo on the command line costs seconds rather than a cluster allocation.
"""

from __future__ import annotations

import difflib
import typing
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
        raise SettingsError(describe(error, source=str(path) if path else "settings",
                                     overrides=overrides, model=model)) from None


def describe(error: ValidationError, source: str, overrides: list[str] = (),
             model: type[BaseModel] | None = None) -> str:
    """One line per problem: the dotted field, what is wrong, and the value given. An unknown
    key is blamed on the override that set it (not on the file) and gets the nearest known
    setting as a suggestion, so a typo is one edit away."""
    problems = _without_copies(error.errors(), model)
    if len(problems) == 1 and problems[0]["type"] == "extra_forbidden":
        return unknown_key(problems[0], source, overrides, model)
    also = " and the overrides" if overrides else ""
    lines = [f"{source}{also}: {len(problems)} invalid setting(s)"]
    for problem in problems:
        if problem["type"] == "extra_forbidden":
            lines.append("  " + unknown_key(problem, source, overrides, model))
            continue
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        given = problem.get("input")
        shown = "" if isinstance(given, dict) else f" (given: {given!r})"
        lines.append(f"  {field}: {problem['msg']}{shown}")
    return "\n".join(lines)


def _without_copies(problems: list[dict], model: type[BaseModel] | None) -> list[dict]:
    """An unknown key in a section that is copied elsewhere (`task` into `sft.task`) shows
    up at both places; the copy's report says nothing new."""
    unknown = {dotted(p["loc"], model) for p in problems if p["type"] == "extra_forbidden"}
    return [p for p in problems if p["type"] != "extra_forbidden"
            or not any(dotted(p["loc"], model).endswith("." + other) for other in unknown)]


def unknown_key(problem: dict[str, Any], source: str, overrides: list[str],
                model: type[BaseModel] | None) -> str:
    """`override trainig.updates=3: unknown setting 'trainig' (did you mean 'training'?)`."""
    field = dotted(problem["loc"], model)
    keys = [o.partition("=")[0].strip() for o in overrides]
    override = next((o for o, key in zip(overrides, keys, strict=True)
                     if key == field or key.startswith(field + ".")), None)
    where = f"override {override}" if override else source
    typed = override.partition("=")[0].strip() if override else field
    near = difflib.get_close_matches(typed, field_paths(model) if model else [], n=1, cutoff=0.6)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return f"{where}: unknown setting '{field}'{hint}"


def dotted(loc: tuple, model: type[BaseModel] | None) -> str:
    """A problem's location as the dotted key a user writes: the tag pydantic puts in the
    location of a tagged union member (`task.gp.rule`) is left out (`task.rule`)."""
    parts, models, keyed = [], [model] if model else [], []
    for index, part in enumerate(map(str, loc)):
        if keyed:  # a key of a mapping of settings (evaluation.splits.<name>)
            parts.append(part)
            models, keyed = keyed, []
            continue
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if models and not fields and index < len(loc) - 1:
            continue
        parts.append(part)
        models = [m for info in fields for m in _models_in(info.annotation)]
        keyed = [m for info in fields for m in _mapped_models(info.annotation)]
    return ".".join(parts)


def _mapped_models(annotation: Any) -> list[type[BaseModel]]:
    """The settings models a `dict[str, X]` field maps its keys to."""
    if typing.get_origin(annotation) is dict:
        return _models_in(typing.get_args(annotation)[1])
    return [m for arg in typing.get_args(annotation) for m in _mapped_models(arg)]


def field_paths(model: type[BaseModel], prefix: str = "", depth: int = 0) -> list[str]:
    """Every dotted setting of `model`, nested settings models included (the names a
    "did you mean" can offer)."""
    paths = []
    for name, info in model.model_fields.items():
        path = prefix + name
        paths.append(path)
        if depth < 6:
            for nested in _models_in(info.annotation):
                paths += field_paths(nested, path + ".", depth + 1)
    return list(dict.fromkeys(paths))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The settings models an annotation holds directly (X, X | None, Annotated[A | B, ...]);
    models inside lists and dicts are left out: their keys are not fixed names."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (list, dict, tuple, set) or origin is None:
        return []
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def dump_settings(settings: BaseModel, path: Path) -> None:
    """Write the resolved settings, every default filled in, as YAML."""
    path.write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))
