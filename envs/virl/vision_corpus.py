"""A vision pretraining corpus for V-IRL-VL: street views and the landmarks in sight.

A tiny vision-language model starts from nothing: before SFT can teach V-IRL-VL's answer, the
base has to see which landmarks the 2x2 view grid shows, on which side, and whether the walker
stands at an intersection (what the verifier's detection check asks first, verifier/virl/
detection.py). Every document is one chat turn about one view grid, drawn exactly as a
V-IRL-VL episode draws it (its reference travels in `image_refs`), of one of two kinds:

- `detection`: the grid's layout sentence and a short question, what is in sight, answered
  with the task's own "current observation" field (`Step.scene()`'s words, the expert's);
- `step`: V-IRL-VL's own prompt at one route position, under the absolute (ID) or relative
  (OOD) action space by a share, answered with the expert's whole answer object (as the text
  corpus's step documents, envs/virl/corpus.py, but showing the views).

Both kinds are needed: GP-VL's picture corpus showed a base trained under its own question
alone reads every hand when asked that question and none under the task's prompt, whose
answer it never saw begin (envs/general_points/vision_corpus.py).

Routes are walked on cities from world seeds at or above `CORPUS_WORLD_SEEDS`, as the text
corpus's, so no evaluation city is in it (settings pointing a split at one are refused,
cluster/settings/pretrain.py); the benchmark cities (the visual-OOD split) are never drawn,
only the training city's style. Answers come from the environment's own functions
(`VIRLEpisode.expert_answer`, `Step.scene`), never a second copy of the rule.
"""

from __future__ import annotations

import json
import random
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from contracts.tasks import VIRLConfig, vision_unless_said
from envs.shares import check_shares, draw
from envs.virl.corpus import CORPUS_WORLD_SEEDS, Rule
from envs.virl.episode import VIRLEpisode, make_episode
from envs.virl.render import layout_sentence

VISION_CORPUS_VERSION = 1
"""Bump when the documents a config produces change, so cached base models are rebuilt."""
OBSERVATION = "current observation"
"""The answer field the detection check reads (the task's answer format names it so)."""
QUESTION = (f"{layout_sentence()} What is in sight here: which landmarks, on which side, and "
            f"are you at an intersection? Answer {{\"{OBSERVATION}\": \"what you see\"}}.")
"""The prompt of every detection document: the task's words for the image, then the question."""

VisionKind = Literal["detection", "step"]
TASK_PROMPT = VIRLConfig(vision=True, image_tile_px=64, image_style="signs", max_history_steps=2,
                         max_forward_steps=2, world={"min_intersections": 2,
                                                     "max_intersections": 2})
"""configs/tasks/virl_vl.yaml's task, the default wording and look."""


class VIRLVisionCorpusConfig(BaseModel):
    """What the V-IRL-VL picture corpus holds: documents of each kind, on which cities."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["virl"] = "virl"
    """The task it pretrains for (V-IRL-VL is the 'virl' task with `vision: true`)."""
    kind: Literal["vision"] = "vision"
    """Chooses this corpus over the text one (envs/corpora.py)."""
    documents: int = Field(20_000, ge=1)
    """Distinct documents; training passes over them in a seeded order."""
    shares: dict[VisionKind, float] = {"detection": 0.5, "step": 0.5}
    """Share of each kind of document."""
    rules: dict[Rule, float] = {"id": 0.5, "ood": 0.5}
    """Share of `step` documents under each action space: 'id' compass directions (the
    training rule), 'ood' relative turns."""
    world_seed_start: int = Field(CORPUS_WORLD_SEEDS, ge=CORPUS_WORLD_SEEDS)
    """The first corpus city's world seed; the corpus walks `cities` seeds from here."""
    cities: int = Field(32, ge=1, le=64)
    """How many cities (world seeds) the documents walk, in the training city's style. At
    most 64: every picture is painted again from its reference by building its city's route
    set, which envs/virl/world.py keeps for 64 cities (more would rebuild one per picture)."""
    routes_per_city: int = Field(32, ge=1, le=1000)
    """Routes per city (the route set a picture's reference names, envs/virl/episode.py's
    make_episode): small, so painting a picture again builds little."""
    prompt: Annotated[VIRLConfig, BeforeValidator(vision_unless_said)] = TASK_PROMPT
    """The task's wording and look: image_tile_px, image_style, history kept, forward steps,
    route shape, template. Match the task's so the base reads the task's pictures and prompts
    (checked: cluster/settings/pretrain.py). Its rule is drawn per document, its world seed
    and route count replaced by the corpus's."""
    seed: int = 0

    @field_validator("prompt")
    @classmethod
    def _prompt_shows_views(cls, prompt: VIRLConfig) -> VIRLConfig:
        if not prompt.vision or prompt.route_source != "synthetic-train" \
                or prompt.image_table is not None:
            raise ValueError("the corpus paints its own cities' views: the prompt needs vision: "
                             "true, route_source synthetic-train and no image_table")
        return prompt

    @model_validator(mode="after")
    def _valid_shares(self) -> VIRLVisionCorpusConfig:
        check_shares("shares", self.shares)
        check_shares("rules", self.rules)
        return self

    @property
    def world_seeds(self) -> range:
        """The world seeds of the corpus's cities."""
        return range(self.world_seed_start, self.world_seed_start + self.cities)


class VIRLVisionDocument(BaseModel):
    """One chat turn of the corpus: a view grid (by reference), a question and its answer."""

    model_config = ConfigDict(frozen=True)

    kind: VisionKind
    rule: Rule
    prompt: str
    answer: str
    image_refs: tuple[str, ...]
    world_seed: int
    """The corpus city whose route the document walks."""
    seed: int
    """The episode seed (which route of the city, and its start heading)."""
    position: int
    """The route position the views are seen from."""


def document(config: VIRLVisionCorpusConfig, index: int) -> VIRLVisionDocument:
    """The corpus's document `index`: the same config and index always give the same turn."""
    rng = random.Random(config.seed * 1_000_003 + index)
    kind = draw(rng, config.shares)
    rule = draw(rng, config.rules) if kind == "step" else "id"
    episode = position_episode(config, rng, rule)
    if kind == "detection":
        prompt, answer = QUESTION, detection_answer(episode)
    else:
        prompt, answer = episode.observe().text, episode.expert_answer()
    return VIRLVisionDocument(kind=kind, rule=rule, prompt=prompt, answer=answer,
                              image_refs=(episode.image_ref(),),
                              world_seed=episode.config.world_seed, seed=episode.seed,
                              position=episode.position)


def documents(config: VIRLVisionCorpusConfig) -> list[VIRLVisionDocument]:
    return [document(config, index) for index in range(config.documents)]


def position_episode(config: VIRLVisionCorpusConfig, rng: random.Random,
                     rule: Rule) -> VIRLEpisode:
    """A V-IRL-VL episode on a corpus city's route, moved to a random position. It is built by
    `make_episode`, as a reference is painted again, so its views are the episode's own."""
    world_seed = rng.choice(config.world_seeds)
    task = config.prompt.model_copy(update={"rule": rule, "world_seed": world_seed,
                                            "num_train_routes": config.routes_per_city})
    episode = make_episode(task, rng.randrange(1 << 30))
    episode.position = rng.randrange(len(episode.steps))
    return episode


def detection_answer(episode: VIRLEpisode) -> str:
    """The task's "current observation" field alone, in the expert's words."""
    step = episode.steps[episode.position]
    return json.dumps({OBSERVATION: step.scene()}, ensure_ascii=False)
