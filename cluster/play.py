"""Play episodes of a task with a scripted policy and show the dialogue.

A quick way to see a task, its prompt, its verifier and its feedback without any model: the
'expert' policy answers with the expert's answer, the 'reviser' answers wrongly once and then
revises to the expert's answer after reading the feedback.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys

from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from contracts.episode import Episode
from contracts.tasks import TaskConfig
from envs.registry import make_episode

POLICIES = ("expert", "reviser")
TASK_NAMES = tuple(TypeAdapter(TaskConfig).json_schema()["discriminator"]["mapping"])
"""The tasks `--task` can name ('gp', 'virl')."""


def scripted_answer(episode: Episode, policy: str, attempt: int) -> str:
    """The answer a scripted policy gives at `attempt` (0-based) of the current step."""
    if policy == "reviser" and attempt == 0:
        return "I am not sure yet."
    return episode.expert_answer()


def play_episode(episode: Episode, policy: str, console: Console) -> dict:
    """Run one episode to its end, printing each turn; returns its summary."""
    console.print(Panel(escape(episode.observe().text), title=f"{episode.task} / {episode.variant}"))
    rewards, attempt = [], 0
    while not episode.done:
        response = scripted_answer(episode, policy, attempt)
        transition = episode.submit(response)
        verdict = transition.verdict
        rewards.append(verdict.reward)
        style = "green" if verdict.success else "red"
        console.print(f"[bold]answer:[/bold] {escape(response)}")
        console.print(f"[{style}]{verdict.outcome} ({verdict.reward:+g})[/{style}] {escape(verdict.feedback)}")
        attempt = 0 if transition.restart or verdict.success else attempt + 1
    return {"task": episode.task, "variant": episode.variant, "success": transition.success,
            "turns": len(rewards), "rewards": rewards, **episode.info()}


def positive(text: str) -> int:
    """An argparse type: a count of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a count of episodes: give 1 or more")
    return value


def read_task(text: str) -> TaskConfig:
    """--task as JSON task settings, or a bare task name (`gp`); anything else is refused in
    one line saying which tasks there are and what the JSON looks like."""
    names = list(TASK_NAMES)
    if not text.lstrip().startswith("{"):
        if text.strip() in names:
            return TypeAdapter(TaskConfig).validate_python({"task": text.strip()})
        near = difflib.get_close_matches(text.strip(), names, n=1, cutoff=0.3)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        raise TaskError(f"--task {text!r} is not a task{hint}: give a task name ("
                        f"{', '.join(names)}) or its settings as JSON, e.g. "
                        '\'{"task": "gp", "vision": true}\'')
    try:
        return TypeAdapter(TaskConfig).validate_json(text)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "the settings"
        raise TaskError(f"--task {text!r}: {field}: {problem['msg']} (tasks: "
                        f"{', '.join(names)})") from None


class TaskError(ValueError):
    """--task that names no task or holds invalid settings."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revisor play", description=__doc__)
    parser.add_argument("--task", default="gp",
                        help='a task name (gp, virl) or task settings as JSON, e.g. '
                             '\'{"task": "gp", "rule": "ood"}\'')
    parser.add_argument("--policy", choices=POLICIES, default="reviser")
    parser.add_argument("--episodes", type=positive, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        config = read_task(args.task)
    except TaskError as error:
        print(f"revisor play: {error}", file=sys.stderr)
        return 2
    console = Console()
    summaries = [play_episode(make_episode(config, args.seed + i), args.policy, console)
                 for i in range(args.episodes)]
    solved = sum(summary["success"] for summary in summaries)
    console.print(f"[bold]{solved}/{len(summaries)} episodes solved[/bold]")
    console.print_json(json.dumps(summaries))
    return 0
