"""Play episodes of a task with a scripted policy and show the dialogue.

A quick way to see a task, its prompt, its verifier and its feedback without any model: the
'expert' policy answers with the expert's answer, the 'reviser' answers wrongly once and then
revises to the expert's answer after reading the feedback.
"""

from __future__ import annotations

import argparse
import json

from pydantic import TypeAdapter
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from contracts.episode import Episode
from contracts.tasks import TaskConfig
from envs.registry import make_episode

POLICIES = ("expert", "reviser")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revisor play", description=__doc__)
    parser.add_argument("--task", default='{"task": "gp"}',
                        help='task settings as JSON, e.g. \'{"task": "gp", "rule": "ood"}\'')
    parser.add_argument("--policy", choices=POLICIES, default="reviser")
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = TypeAdapter(TaskConfig).validate_json(args.task)
    console = Console()
    summaries = [play_episode(make_episode(config, args.seed + i), args.policy, console)
                 for i in range(args.episodes)]
    solved = sum(summary["success"] for summary in summaries)
    console.print(f"[bold]{solved}/{len(summaries)} episodes solved[/bold]")
    console.print_json(json.dumps(summaries))
    return 0
