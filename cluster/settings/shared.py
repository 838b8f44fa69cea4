"""Settings two components both need, written once.

The rollout engines and the learner each carry their own copy of a few settings (the model
path, the sampling temperature, the context length, the RL phase's length for the learning
rate schedule), because each component is also usable on its own. In a job they are one
setting: a copy left unset is filled in from its source before validation, a copy that
disagrees with its source is an error naming both fields, and a stored job config holds the
setting once (a copy equal to its source is left out of dumps, so editing the source of a
stored config, as a resume override or a study arm does, cannot leave a stale copy behind).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

MISSING = object()


@dataclass(frozen=True)
class Link:
    """`copy` is the same setting as `source` (dotted paths in the job config)."""

    source: str
    copy: str
    why: str
    relation: Literal["equal", "at_most"] = "equal"
    """'at_most': the copy may be set lower than its source, never higher."""
    both_ways: bool = False
    """A given copy fills its source when only the copy is set."""


LINKS = (
    Link("model", "engine.model", "the rollout engines sample from the model the learner trains"),
    Link("model", "learner.model.path", "the learner trains the model the engines sample from"),
    Link("model", "sft.model.path", "the SFT warm start trains the model RL continues from"),
    Link("learner.ppo.temperature", "rollout.sampling.temperature",
         "PPO's ratios compare log-probs of the distribution that sampled", both_ways=True),
    Link("training.updates", "learner.total_updates",
         "the learning-rate schedule spans the RL phase's updates"),
    Link("engine.max_model_len", "rollout.max_dialogue_tokens",
         "a dialogue longer than the engine's context cannot be played", relation="at_most"),
)


def given(node: Any, path: str) -> Any:
    """The value set at `path` in raw settings (dicts or models), MISSING when unset."""
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part, MISSING)
        elif isinstance(node, BaseModel):
            node = getattr(node, part) if part in node.model_fields_set else MISSING
        else:
            return MISSING
        if node is MISSING:
            return MISSING
    return node


def default_of(model: type[BaseModel], path: str) -> Any:
    """The default at `path` of `model`'s fields; MISSING where a field on the way is required."""
    value, have = None, False
    for part in path.split("."):
        if have:
            value = getattr(value, part, MISSING) if value is not None else MISSING
            continue
        field = model.model_fields[part]
        if field.is_required():
            model = field.annotation
            continue
        value, have = field.get_default(call_default_factory=True), True
    return value if have else MISSING


def resolved(data: Any, model: type[BaseModel], path: str) -> Any:
    value = given(data, path)
    return default_of(model, path) if value is MISSING else value


def with_value(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `data` with `path` set; models on the way become dicts of their set fields."""
    head, _, rest = path.partition(".")
    data = dict(data)
    if not rest:
        data[head] = value
        return data
    child = data.get(head)
    if isinstance(child, BaseModel):
        child = {name: getattr(child, name) for name in child.model_fields_set}
    data[head] = with_value(dict(child or {}), rest, value)
    return data


def has_place(data: dict[str, Any], model: type[BaseModel], path: str) -> bool:
    """Whether the part holding `path` is present (an unset optional part, SFT, is not)."""
    parents = path.split(".")[:-1]
    for end in range(1, len(parents) + 1):
        prefix = ".".join(parents[:end])
        value = given(data, prefix)
        if value is None or (value is MISSING and default_of(model, prefix) is None):
            return False
    return True


def fill_copies(data: dict[str, Any], model: type[BaseModel]) -> tuple[dict[str, Any], set[str]]:
    """Fill each unset copy (or, for two-way links, unset source) from the other side;
    returns the new settings and the paths filled."""
    filled: set[str] = set()
    for link in LINKS:
        if not has_place(data, model, link.copy):
            continue
        if given(data, link.copy) is MISSING:
            value = resolved(data, model, link.source)
            if value is not MISSING:
                data = with_value(data, link.copy, value)
                filled.add(link.copy)
        elif link.both_ways and given(data, link.source) is MISSING:
            data = with_value(data, link.source, given(data, link.copy))
            filled.add(link.source)
    return data, filled


def attribute(config: BaseModel, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part) if value is not None else None
    return value


def same(a: Any, b: Any) -> bool:
    if isinstance(a, str | Path) and isinstance(b, str | Path):
        return Path(a) == Path(b)
    return a == b


def disagreements(config: BaseModel) -> list[InitErrorDetails]:
    """One error per copy that disagrees with its source, at the copy's field."""
    errors: list[InitErrorDetails] = []
    for link in LINKS:
        source, copy = attribute(config, link.source), attribute(config, link.copy)
        if source is None or copy is None:
            continue
        if link.relation == "at_most" and copy > source:
            template = "{copy} ({copy_value}) exceeds {source} ({source_value}): {why}"
        elif link.relation == "equal" and not same(source, copy):
            template = ("{copy} ({copy_value}) disagrees with {source} ({source_value}): {why}; "
                        "leave {copy} unset or set both alike")
        else:
            continue
        context = {"copy": link.copy, "copy_value": str(copy), "source": link.source,
                   "source_value": str(source), "why": link.why}
        errors.append(InitErrorDetails(
            type=PydanticCustomError("shared_setting", template, context),
            loc=tuple(link.copy.split(".")),
            input=str(copy) if isinstance(copy, Path) else copy))
    return errors


def explain_filled(error: ValidationError, filled: set[str]) -> list[InitErrorDetails]:
    """The errors of settings validated with filled copies: an error at a filled field is
    said to come from its source, or dropped where the source has its own error."""
    by_loc = {".".join(str(p) for p in e["loc"]) for e in error.errors()}
    sources = {link.copy: link.source for link in LINKS} | {
        link.source: link.copy for link in LINKS if link.both_ways}
    details: list[InitErrorDetails] = []
    for problem in error.errors():
        place = ".".join(str(p) for p in problem["loc"])
        message = problem["msg"]
        if place in filled:
            if sources[place] in by_loc:
                continue
            message = f"{message} (filled in from {sources[place]}, which sets it)"
        details.append(InitErrorDetails(
            type=PydanticCustomError(problem["type"], message),
            loc=problem["loc"], input=problem["input"]))
    return details


def without_copies(dumped: dict[str, Any]) -> dict[str, Any]:
    """A dump with every copy equal to its source left out: each setting stored once."""
    for link in LINKS:
        source, copy = given(dumped, link.source), given(dumped, link.copy)
        if source is MISSING or copy is MISSING or not same(source, copy):
            continue
        *parents, leaf = link.copy.split(".")
        node = dumped
        for part in parents:
            node = node[part]
        del node[leaf]
    return dumped
