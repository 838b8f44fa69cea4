"""The GeneralPoints prompt and the expert's answer, both in the one answer format."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from string import Template

from contracts.tasks import GPConfig, Rule
from envs.general_points.cards import Card
from verifier.general_points.cards import card_value

FACE_ORDER = ("J", "Q", "K")
ANSWER_FORMAT = '{"cards": [card, ...], "numbers": [number, ...], "formula": "formula"}'


def render_prompt(config: GPConfig, hand: tuple[Card, ...]) -> str:
    """The episode's first message; it states the face-card rule, the target and the format."""
    return render_cards_prompt(config, hand, rule_faces(config.rule))


def rule_faces(rule: Rule) -> tuple[int, int, int]:
    """The numbers J, Q and K count as under one of the study's rules."""
    return tuple(card_value(rank, rule) for rank in FACE_ORDER)


def render_cards_prompt(config: GPConfig, hand: tuple[Card, ...], faces: tuple[int, ...]) -> str:
    """The prompt with J, Q and K counting as `faces` (the pretraining corpus states other
    rules than the study's two in the same words)."""
    if config.vision:
        cards = "Your four cards are shown in the image."
    else:
        ranks = [card.rank for card in hand]
        cards = f"Your cards are {', '.join(ranks[:-1])} and {ranks[-1]}."
    return _template(config.prompt_template).substitute(
        cards=cards,
        face_rule=face_rule_text(faces),
        target=config.target,
        answer_format=ANSWER_FORMAT,
    ).strip()


def face_rule_text(faces: tuple[int, ...]) -> str:
    """'J, Q and K are each 10' (the training rule's words) or 'J is 11, Q is 12 and K is 13'."""
    jack, queen, king = faces
    if jack == queen == king:
        return f"J, Q and K are each {jack}"
    return f"J is {jack}, Q is {queen} and K is {king}"


def format_answer(hand: tuple[Card, ...], numbers: list[int], formula: str) -> str:
    """An answer object in exactly the format the prompt asks for."""
    return json.dumps({"cards": [card.rank for card in hand], "numbers": numbers, "formula": formula})


@lru_cache(maxsize=8)
def _template(path: Path | None) -> Template:
    text = _template_text(path)
    template = Template(text)
    unknown = {m.group("named") or m.group("braced") for m in template.pattern.finditer(text)}
    unknown -= {None, "cards", "face_rule", "target", "answer_format"}
    if unknown:
        raise ValueError(f"prompt template {path}: unknown placeholders {sorted(unknown)}; "
                         "allowed: $cards, $face_rule, $target, $answer_format")
    return template


def _template_text(path: Path | None) -> str:
    """A file's text, or a built-in template's when no such file exists but one of that name
    ships with Revisor (so configs can name one on any machine: rollout actors start elsewhere)."""
    templates = resources.files("envs.general_points").joinpath("templates")
    if path is None:
        return templates.joinpath("prompt.txt").read_text()
    if Path(path).is_file():
        return Path(path).read_text()
    builtin = templates.joinpath(str(path))
    if Path(path).name == str(path) and builtin.is_file():
        return builtin.read_text()
    names = sorted(t.name for t in templates.iterdir() if t.name.endswith(".txt"))
    raise ValueError(f"prompt template {path}: no such file, and no built-in template of that "
                     f"name (built-in: {', '.join(names)})")
