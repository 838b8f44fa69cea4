"""The V-IRL prompt and the expert's answer, both in the one answer format."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from string import Template

from contracts.tasks import VIRLConfig
from envs.virl.geometry import COMPASS, RELATIVE, compass
from envs.virl.path import Step
from envs.virl.render import layout_sentence

ANSWER_FORMAT = ('{"current observation": "what you see", "current instruction": '
                 '"the instruction you are carrying out", "action": "your action"}')
PLACEHOLDERS = ("instructions", "action_space", "history", "heading", "observation",
                "answer_format")
_ACTION_SPACES = {
    "id": f"forward(), stop(), turn_direction(x) with x one of {', '.join(COMPASS)}.",
    "ood": f"forward(), stop(), turn_direction(x) with x one of {', '.join(RELATIVE)}; a turn "
           "by more than 45 degrees is left or right, a smaller one slightly left or slightly "
           "right.",
}


def render_prompt(config: VIRLConfig, instructions: Sequence[str], steps: Sequence[Step],
                  position: int) -> str:
    """The prompt at `position`: instructions, the walk so far, and what is seen now."""
    step = steps[position]
    observation = layout_sentence() if config.vision else step.scene()
    return _template(config.prompt_template).substitute(
        instructions="\n".join(f"{i + 1}. {line}" for i, line in enumerate(instructions)),
        action_space=_ACTION_SPACES[config.rule],
        history=_history(config, steps, position),
        heading=heading_text(step.heading),
        observation=observation,
        answer_format=ANSWER_FORMAT,
    ).strip()


def heading_text(heading: int) -> str:
    return f"{compass(heading)} ({heading} degrees)"


def format_answer(step: Step, instruction: str, rule: str) -> str:
    """An answer object in exactly the format the prompt asks for."""
    return json.dumps({"current observation": step.scene(), "current instruction": instruction,
                       "action": step.action(rule)}, ensure_ascii=False)


def _history(config: VIRLConfig, steps: Sequence[Step], position: int) -> str:
    """One line per earlier position: heading, what was seen, the action that was taken."""
    first = 0 if config.max_history_steps is None else max(0, position - config.max_history_steps)
    lines = [f"{i + 1}. Facing {heading_text(steps[i].heading)}. {steps[i].scene()} "
             f"Action: {steps[i].action(config.rule)}" for i in range(first, position)]
    return "\n".join(lines) or "(nothing yet: this is the start)"


@lru_cache(maxsize=8)
def _template(path: Path | None) -> Template:
    if path is None:
        text = resources.files("envs.virl").joinpath("templates/prompt.txt").read_text()
    else:
        text = Path(path).read_text()
    template = Template(text)
    unknown = {m.group("named") or m.group("braced") for m in template.pattern.finditer(text)}
    unknown -= {None, *PLACEHOLDERS}
    if unknown:
        raise ValueError(f"prompt template {path}: unknown placeholders {sorted(unknown)}; "
                         f"allowed: {', '.join('$' + p for p in PLACEHOLDERS)}")
    return template
