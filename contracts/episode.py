"""The episode interface shared by every sequential-revision task.

A rollout worker drives any task through these few types: it shows the model an
Observation, submits the model's answer, and receives a Transition that says what the
verifier thought, whether the episode is over, and what the model sees next. The next
observation either continues the dialogue (feedback appended after the answer, as in
GeneralPoints) or replaces it with a freshly built prompt (as V-IRL does after a correct
action). Everything task-specific stays behind `Episode`.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.verdict import Verdict


class TaskInputError(ValueError):
    """A task input that cannot be read (a route file, a photo table, a photo): the same for
    every rollout worker, so the job ends naming it instead of replacing workers in vain."""


class Observation(BaseModel):
    """What the model is shown at one point of an episode."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    text: str
    images: tuple[Any, ...] = ()
    """PIL images, in the order the text refers to them."""
    image_refs: tuple[str, ...] = ()
    """Stable names of the images (enough to re-render or find them), stored in trajectories."""


class Transition(BaseModel):
    """The result of submitting one answer."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    done: bool
    success: bool
    """Episode-level success so far (final once `done`)."""
    next: Observation | None = None
    """What the model sees next; None once the episode is done."""
    restart: bool = False
    """True: `next` is a fresh prompt that replaces the dialogue. False: `next.text` is feedback
    appended to the dialogue after the model's answer."""


class Episode(ABC):
    """One sequential-revision episode; created by a task's `make_episode`."""

    task: str
    variant: str

    @abstractmethod
    def observe(self) -> Observation:
        """The initial prompt (the dialogue's first user message)."""

    @abstractmethod
    def submit(self, response: str) -> Transition:
        """Verify one model answer and advance the episode. Never raises on any string."""

    @abstractmethod
    def expert_answer(self) -> str:
        """The answer an expert gives now: the SFT target and a scripted-policy stand-in."""

    @abstractmethod
    def mistaken_answer(self, rng: random.Random) -> str:
        """A well-formed answer the verifier rejects, as a learner might give it now.

        Revision demonstrations open with such mistakes and their real feedback, so that SFT
        also shows the states that sequential revision reaches after a failed attempt (a
        model that has only seen opening prompts answers nonsense there)."""

    @property
    @abstractmethod
    def done(self) -> bool:
        """Whether the episode has ended."""

    def info(self) -> dict[str, Any]:
        """Task-specific facts about the episode (the hand, the route) for logs and data."""
        return {}

    def recall_keys(self) -> dict[str, Hashable]:
        """Names and keys under which a model could have memorised this instance, most
        specific first; empty when the task has no such notion.

        Evaluation instances that share a key with an SFT demonstration can be solved by
        recall rather than skill, the distinction the study is about (cluster/results/recall.py)."""
        return {}


