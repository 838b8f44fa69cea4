"""Whether the answer length the engines allow holds the expert's answers.

An answer cut off at `max_tokens` loses what comes last, and a task's answer object ends with
its action (V-IRL) or formula (GeneralPoints). A cap below the expert's own answers scores a
policy that imitates the expert perfectly as wrong wherever the expert writes long, which
looks like forgetting: SFT learns the expert's length and is cut off, RL learns to fit. On
V-IRL-L the expert's answer at an intersection with several landmarks in sight runs to
106 tokens of the tiny tokenizer, past an 80-token cap. Checked before any actor starts, by
playing a few episodes of every task with the expert's answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from cluster.settings.experiment import ExperimentConfig
from contracts.tasks import TaskConfig
from envs.registry import make_episode

_EPISODES = 8
"""Episodes per task played with the expert's answers (their first seeds)."""
_MAX_POSITIONS = 64
"""At most this many answers per episode (every shipped task ends well before)."""


def answer_room_warnings(config: ExperimentConfig) -> list[str]:
    """answer_room_problems with the tokenizer of the checkpoint at `config.model`. Warnings,
    not errors: a short cap is a fair choice for a test or a smoke run, only not for a
    measurement."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model)
    except (OSError, ValueError):  # advice only: the engines load it and say what is wrong
        return []
    return list(answer_room_problems(
        config, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])))


def expert_answer_lengths(task: TaskConfig, count: Callable[[str], int]) -> list[int]:
    """The length (by `count`) of every expert answer in the first episodes of `task`."""
    lengths = []
    for seed in range(_EPISODES):
        episode = make_episode(task, seed)
        for _ in range(_MAX_POSITIONS):
            if episode.done:
                break
            answer = episode.expert_answer()
            lengths.append(count(answer))
            episode.submit(answer)
    return lengths


def answer_room_problems(config: ExperimentConfig, count: Callable[[str], int]) -> Iterator[str]:
    """A line for every task whose expert answers `max_tokens` would cut off: the rollout's
    for the task the job plays and imitates, the evaluation's for its splits."""
    rollout = config.rollout.sampling.max_tokens
    evaluation_field = "evaluation.max_tokens" if config.evaluation.max_tokens else \
        "rollout.sampling.max_tokens"
    evaluation_cap = config.evaluation.max_tokens or rollout
    caps: list[tuple[str, str, int, TaskConfig]] = [
        ("task", "rollout.sampling.max_tokens", rollout, config.task),
        *((f"evaluation.splits.{name}", evaluation_field, evaluation_cap, split)
          for name, split in config.evaluation.splits.items())]
    for where, field, cap, task in caps:
        lengths = expert_answer_lengths(task, count)
        over = sum(length > cap for length in lengths)
        if over:
            yield (f"{field} ({cap}) cuts off the expert's answer at {over} of {len(lengths)} "
                   f"positions of {where} (longest {max(lengths)} tokens): a policy that "
                   f"answers as the expert does is scored wrong there; raise {field}")
