"""A pretraining corpus for V-IRL-L: reading route instructions and turning the right way.

The study's largest gap between SFT and RL is on V-IRL-L, where the OOD rule swaps compass
turns for relative ones (left, right, slightly left, slightly right). A base model that
cannot read a heading difference cannot show that gap, so this corpus gives Revisor's tiny
models the navigation skills first (`revisor pretrain`). Every document is a chat turn, under
the absolute (compass, the ID rule) or the relative (the OOD rule) action space, each with a
configurable share:

- `step`: the task's own prompt at one position of a route and the expert's answer object,
  exactly as a V-IRL-L episode shows and wants them, so a base can answer the task;
- `facing`: "You are facing east (93 degrees). To face north (2 degrees) ..." answered with
  the turn under the document's action space, on headings drawn uniformly or (`facing_headings:
  streets`) from the turns that routes through the corpus's cities make, so that a base
  meets the pairs of headings a city's streets give, not only arbitrary ones;
- `difference`: two headings and the turn between them in words ("91 degrees to the left:
  left"), the relative rule's arithmetic spelled out.

Routes are walked on cities drawn from world seeds at or above `CORPUS_WORLD_SEEDS`, a range
no evaluation split uses (settings that point a split at one are refused,
cluster/settings/pretrain.py). Every turn's answer comes from the environment's own
functions (`Step.action`, `relative_action`), never from a second copy of the rule.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.tasks import VIRLConfig
from envs.shares import check_shares, draw
from envs.virl.cities import TRAIN_CITY
from envs.virl.episode import VIRLEpisode
from envs.virl.geometry import RELATIVE, compass, relative_action, signed_turn
from envs.virl.path import Step, initial_heading, walk
from envs.virl.prompt import heading_text
from envs.virl.routes import Route
from envs.virl.world import City, build_city, make_route

CORPUS_VERSION = 1
"""Bump when the documents a config produces change, so cached base models are rebuilt."""
CORPUS_WORLD_SEEDS = 1_000_000
"""The lowest world seed the corpus walks. envs/virl's built-in route sets take their cities
from `world_seed` (the shipped settings use 0 to train and 1 to evaluate); the corpus keeps
to seeds from here up, so its cities are never an evaluation's."""

DocumentKind = Literal["step", "facing", "difference"]
FacingHeadings = Literal["uniform", "streets"]
Rule = Literal["id", "ood"]
_TURN_WORDS = {"id": "which compass direction do you turn to",
               "ood": f"do you turn {', '.join(RELATIVE[:-1])} or {RELATIVE[-1]}"}


class VIRLCorpusConfig(BaseModel):
    """What the V-IRL pretraining corpus holds: documents of each kind, under which rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["virl"] = "virl"
    """Which task's corpus (envs/corpora.py chooses by it)."""
    documents: int = Field(20_000, ge=1)
    """Distinct documents; training passes over them in a seeded order."""
    shares: dict[DocumentKind, float] = {"step": 0.6, "facing": 0.25, "difference": 0.15}
    """Share of each kind of document."""
    rules: dict[Rule, float] = {"id": 0.5, "ood": 0.5}
    """Share of `step` and `facing` documents under each action space: 'id' compass
    directions, 'ood' relative turns (`difference` documents are always relative)."""
    facing_headings: FacingHeadings = "uniform"
    """Where `facing` documents take their two headings: 'uniform' draws any two whole
    degrees; 'streets' takes a turn of a route through a corpus city (the heading walked in
    and the street's heading out), the pairs an evaluation's turns are made of."""
    turn_share: float | None = Field(None, ge=0.0, le=1.0)
    """Share of `step` documents placed at a turning position (None: every position of the
    route alike, about a third of them turns). Turns are where the rules differ; forward
    steps read the same under both."""
    world_seed_start: int = Field(CORPUS_WORLD_SEEDS, ge=CORPUS_WORLD_SEEDS)
    """The first corpus city's world seed; the corpus walks `cities` seeds from here."""
    cities: int = Field(64, ge=1, le=100_000)
    """How many cities (world seeds) `step` documents walk, in the training city's style."""
    prompt: VIRLConfig = VIRLConfig()
    """The prompt settings of `step` documents (history kept, forward steps, route shape,
    template); match the task's so the base reads the task's prompts. Its rule is drawn per
    document and its world seed replaced by the corpus's."""
    seed: int = 0

    @model_validator(mode="after")
    def _valid(self) -> VIRLCorpusConfig:
        check_shares("shares", self.shares)
        check_shares("rules", self.rules)
        if self.prompt.vision or self.prompt.route_source != "synthetic-train":
            raise ValueError("prompt must be a text task (vision false) on synthetic-train "
                             "routes: the corpus draws its own cities and shows no images")
        return self

    @property
    def world_seeds(self) -> range:
        """The world seeds of the corpus's cities."""
        return range(self.world_seed_start, self.world_seed_start + self.cities)


class Document(BaseModel):
    """One chat turn of the corpus: what the user says and what the model answers."""

    model_config = ConfigDict(frozen=True)

    kind: DocumentKind
    rule: Rule
    prompt: str
    answer: str
    world_seed: int | None = None
    """The city a `step` document walks (None: skill documents, which walk none)."""
    turn: tuple[int, int] | None = None
    """(heading faced, heading to face) of the turn the answer names (None: no turn)."""


def document(config: VIRLCorpusConfig, index: int) -> Document:
    """The corpus's document `index`: the same config and index always give the same text."""
    rng = random.Random(config.seed * 1_000_003 + index)
    kind = draw(rng, config.shares)
    if kind == "difference":
        return _difference(rng)
    rule = draw(rng, config.rules)
    if kind == "facing":
        return _facing(rule, _facing_turn(config, rng))
    return _step(config, rng, rule, index)


def documents(config: VIRLCorpusConfig) -> list[Document]:
    return [document(config, index) for index in range(config.documents)]


def _step(config: VIRLCorpusConfig, rng: random.Random, rule: Rule, index: int) -> Document:
    """The task's prompt at a random position of a fresh route, and the expert's answer."""
    world_seed = rng.choice(config.world_seeds)
    route = _route(world_seed, config, rng)
    task = config.prompt.model_copy(update={"rule": rule, "world_seed": world_seed})
    episode = VIRLEpisode(task, route, seed=index)
    episode.position = _position(config, rng, episode.steps)
    step = episode.steps[episode.position]
    turn = (step.heading, step.target_heading) if step.target_heading is not None else None
    return Document(kind="step", rule=rule, prompt=episode.observe().text,
                    answer=episode.expert_answer(), world_seed=world_seed, turn=turn)


def _position(config: VIRLCorpusConfig, rng: random.Random, steps: tuple[Step, ...]) -> int:
    """A position of the walk: a turn with probability `turn_share`, else any position."""
    if config.turn_share is not None:
        turning = rng.random() < config.turn_share
        return rng.choice([k for k, step in enumerate(steps) if (step.kind == "turn") == turning])
    return rng.randrange(len(steps))


def _facing_turn(config: VIRLCorpusConfig, rng: random.Random) -> tuple[int, int]:
    """The (heading faced, heading to face) of a `facing` document."""
    if config.facing_headings == "uniform":
        return _headings(rng)
    world_seed = rng.choice(config.world_seeds)
    route = _route(world_seed, config, rng)
    steps = walk(route, initial_heading(route, rng.randrange(1 << 30)),
                 config.prompt.forward_step_m, config.prompt.max_forward_steps)
    turn = rng.choice([step for step in steps if step.kind == "turn"])
    assert turn.target_heading is not None
    return turn.heading, turn.target_heading


def _route(world_seed: int, config: VIRLCorpusConfig, rng: random.Random) -> Route:
    """A route of the corpus city `world_seed`, drawn as the training set draws its own."""
    index = rng.randrange(config.prompt.num_train_routes)
    return make_route(_city(world_seed), index, config.prompt.world, rng)


@lru_cache(maxsize=256)
def _city(world_seed: int) -> City:
    return build_city(TRAIN_CITY, world_seed)


def _headings(rng: random.Random) -> tuple[int, int]:
    """Two whole-degree headings that differ (a zero turn has no direction to learn)."""
    heading = rng.randrange(360)
    return heading, (heading + rng.randrange(1, 360)) % 360


def _facing(rule: Rule, turn: tuple[int, int]) -> Document:
    """'Facing X, to face Y you turn Z' under `rule`'s action space."""
    heading, target = turn
    direction = compass(target) if rule == "id" else relative_action(heading, target)
    prompt = (f"You are facing {heading_text(heading)}. To face {heading_text(target)}, "
              f"{_TURN_WORDS[rule]}?")
    return Document(kind="facing", rule=rule, prompt=prompt,
                    answer=f"turn_direction({direction})", turn=(heading, target))


def _difference(rng: random.Random) -> Document:
    """The turn between two headings: how far, which way, and the relative action it is."""
    heading, target = _headings(rng)
    turn = signed_turn(heading, target)
    way = "right" if turn > 0 else "left"
    prompt = f"From {heading} degrees to {target} degrees: how far and which way do you turn?"
    answer = f"{abs(turn):g} degrees to the {way}: {relative_action(heading, target)}"
    return Document(kind="difference", rule="ood", prompt=prompt, answer=answer,
                    turn=(heading, target))
