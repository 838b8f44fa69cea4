"""One GeneralPoints episode: a hand, up to `max_attempts` answers, feedback after each."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

from contracts.episode import Episode, Observation, Transition
from contracts.tasks import GPConfig
from envs.general_points.cards import Card
from envs.general_points.prompt import format_answer, render_prompt
from envs.general_points.render import hand_ref, render_hand
from envs.general_points.sampler import sample_hand
from envs.general_points.solver import solve
from verifier.general_points import GPVerdict, verify

MISTAKE_TRIES = 20
_OPERATORS = "+-*/"
_SHAPES = ("{0}{o0}{1}{o1}{2}{o2}{3}", "({0}{o0}{1}){o1}({2}{o2}{3})",
           "({0}{o0}{1}{o1}{2}){o2}{3}", "{0}{o0}({1}{o1}{2}{o2}{3})")


def random_formula(numbers: list[int], rng: random.Random) -> str:
    """Every number once, in a random order, with random operators and bracket shape."""
    order = rng.sample(numbers, len(numbers))
    operators = {f"o{i}": rng.choice(_OPERATORS) for i in range(len(numbers) - 1)}
    if len(numbers) != 4:
        return "".join(f"{n}{operators.get(f'o{i}', '')}" for i, n in enumerate(order))
    return rng.choice(_SHAPES).format(*order, **operators)


class GPEpisode(Episode):
    """Sequential revision on one hand: the dialogue grows by (answer, feedback) per attempt."""

    def __init__(self, config: GPConfig, hand: tuple[Card, ...], seed: int | None = None) -> None:
        self.config = config
        self.hand = hand
        self.seed = seed
        self.task = config.task_name
        self.variant = config.variant
        self.attempts = 0
        self.solved = False

    @property
    def done(self) -> bool:
        return self.solved or self.attempts >= self.config.max_attempts

    @property
    def numbers(self) -> list[int]:
        return [card.value(self.config.rule) for card in self.hand]

    def observe(self) -> Observation:
        text = render_prompt(self.config, self.hand)
        if not self.config.vision:
            return Observation(text=text)
        image = self.config.image
        return Observation(text=text, images=(render_hand(self.hand, image),),
                           image_refs=(hand_ref(self.hand, image),))

    def submit(self, response: str) -> Transition:
        if self.done:
            raise RuntimeError("this episode has ended; start a new one")
        self.attempts += 1
        verdict = self._verify(response)
        self.solved = verdict.success
        if not self.solved and self.done:
            verdict = self._out_of_attempts(verdict)
        next_observation = None if self.done else Observation(text=verdict.feedback)
        return Transition(verdict=verdict, done=self.done, success=self.solved, next=next_observation)

    def expert_answer(self) -> str:
        formulas = solve(self.numbers, self.config.target, limit=1)
        return format_answer(self.hand, self.numbers, formulas[0])

    def mistaken_answer(self, rng: random.Random) -> str:
        """A legal formula over the hand's numbers that misses the target (or, for the rare
        hand where every tried shape hits it, one number off)."""
        numbers = self.numbers
        for _ in range(MISTAKE_TRIES):
            answer = format_answer(self.hand, numbers, random_formula(numbers, rng))
            if not self._verify(answer).success:
                return answer
        wrong = [numbers[0] + 1, *numbers[1:]]
        return format_answer(self.hand, wrong, random_formula(wrong, rng))

    def info(self) -> dict[str, Any]:
        return {"cards": [card.ref() for card in self.hand], "seed": self.seed,
                "attempts": self.attempts, "rule": self.config.rule, "target": self.config.target}

    def recall_keys(self) -> dict[str, Hashable]:
        """The numbers in the order shown, then the same numbers in any order: a model that
        cannot abstract from order recalls only the first, one that can, the second."""
        target = self.config.target
        return {"same order": (target, tuple(self.numbers)),
                "same numbers": (target, tuple(sorted(self.numbers)))}

    def _verify(self, response: str) -> GPVerdict:
        c = self.config
        ranks = [card.rank for card in self.hand]
        return verify(response, ranks, rule=c.rule, target=c.target, vision=c.vision,
                      rewards=c.rewards)

    def _out_of_attempts(self, verdict: GPVerdict) -> GPVerdict:
        """The last allowed attempt failed: one outcome, the step-limit row of the table."""
        return verdict.model_copy(update={
            "outcome": "step_limit",
            "reward": self.config.rewards.step_limit,
            "feedback": f"{verdict.feedback} No attempts are left.",
        })


def make_episode(config: GPConfig, seed: int) -> GPEpisode:
    """A new episode on the hand that `seed` draws under `config`."""
    return GPEpisode(config, sample_hand(config, seed), seed=seed)
