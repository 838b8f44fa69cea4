"""One V-IRL episode: walk a route position by position, up to N answers per position."""

from __future__ import annotations

import json
import random
from collections.abc import Hashable
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from contracts.episode import Episode, Observation, Transition
from contracts.tasks import BUILT_IN_SOURCES, VIRLConfig
from envs.images import register_image_kind
from envs.virl.geometry import COMPASS, RELATIVE
from envs.virl.imagery import load_image_table
from envs.virl.path import Step, initial_heading, instructions, walk
from envs.virl.prompt import format_answer, render_prompt
from envs.virl.render import render_grid
from envs.virl.routes import ImageRef, Route, load_routes
from envs.virl.world import benchmark_routes, training_routes
from verifier.virl import StepTarget, VIRLVerdict, out_of_attempts, verify


class VIRLEpisode(Episode):
    """Sequential revision along a route.

    A correct answer moves the walker on and rebuilds the prompt with the longer history. A
    wrong answer gets one feedback sentence appended to the dialogue; when the position's
    attempts are used up the position counts as failed (so does the episode) and the walker
    is moved on along the true path anyway. The episode ends after stop() at the destination.
    """

    def __init__(self, config: VIRLConfig, route: Route, seed: int = 0,
                 photos: tuple[ImageRef, ...] = ()) -> None:
        self.config = config
        self.route = route
        self.seed = seed
        self.task = config.task_name
        self.variant = config.variant
        self.instructions = instructions(route)
        self.steps: tuple[Step, ...] = walk(route, initial_heading(route, seed),
                                            config.forward_step_m, config.max_forward_steps)
        self.photos = photos + route.images
        self.scene = _scene_settings(config) if config.vision else {}
        """The settings an image reference carries (see image_ref)."""
        self.position = 0
        self.attempts = 0
        self.answers = 0
        self.solved_positions = 0
        self.first_try_positions = 0
        self.failed_positions = 0

    @property
    def done(self) -> bool:
        return self.position >= len(self.steps)

    @property
    def success(self) -> bool:
        return self.failed_positions == 0

    def observe(self) -> Observation:
        if self.done:
            raise RuntimeError("this episode has ended; start a new one")
        text = render_prompt(self.config, self.instructions, self.steps, self.position)
        if not self.config.vision:
            return Observation(text=text)
        ref, image = self.view()
        return Observation(text=text, images=(image,), image_refs=(ref,))

    def submit(self, response: str) -> Transition:
        if self.done:
            raise RuntimeError("this episode has ended; start a new one")
        self.attempts += 1
        self.answers += 1
        verdict = verify(response, self.target(), vision=self.config.vision,
                         rewards=self.config.rewards)
        if verdict.success:
            self.solved_positions += 1
            self.first_try_positions += self.attempts == 1
            return self._move_on(verdict)
        if self.attempts < self.config.max_attempts_per_position:
            return Transition(verdict=verdict, done=False, success=self.success,
                              next=Observation(text=verdict.feedback), restart=False)
        self.failed_positions += 1
        return self._move_on(out_of_attempts(verdict, self.config.rewards))

    def expert_answer(self) -> str:
        step = self.steps[min(self.position, len(self.steps) - 1)]
        return format_answer(step, self.instructions[step.instruction], self.config.rule)

    def mistaken_answer(self, rng: random.Random) -> str:
        """The expert's observation and instruction with an action that is wrong here."""
        step = self.steps[min(self.position, len(self.steps) - 1)]
        right = step.action(self.config.rule)
        directions = COMPASS if self.config.rule == "id" else RELATIVE
        actions = ["forward()", "stop()", *(f"turn_direction({d})" for d in directions)]
        answer = json.loads(self.expert_answer())
        answer["action"] = rng.choice([a for a in actions if a != right])
        return json.dumps(answer, ensure_ascii=False)

    def target(self) -> StepTarget:
        """What the verifier checks at the current position."""
        step = self.steps[self.position]
        visible = tuple(s.name for s in step.sightings)
        return StepTarget(
            action=step.action(self.config.rule),
            directions=COMPASS if self.config.rule == "id" else RELATIVE,
            visible=visible,
            others=tuple(n for n in self.route.landmark_names if n not in visible),
            at_intersection=step.at_intersection)

    def view(self) -> tuple[str, Image.Image]:
        """The current 2x2 view grid and its image reference (which also seeds the painting)."""
        ref = self.image_ref()
        return ref, render_grid(self.steps[self.position], self.route.city,
                                self.config.image_tile_px, ref, self.photos,
                                self.config.image_style)

    def image_ref(self) -> str:
        """Names the current view well enough to paint it again anywhere (render_view_ref):
        the settings that shape the walk and its pictures, the seed and the position."""
        scene = {"config": self.scene, "seed": self.seed,
                 "position": min(self.position, len(self.steps) - 1)}
        return "virl:" + json.dumps(scene, sort_keys=True, separators=(",", ":"))

    def recall_keys(self) -> dict[str, Hashable]:
        """The route under this rule: SFT showed its expert actions, which recall can replay
        (the same route under the other rule asks for other actions). A route is named within
        its route set: route 7 of another synthetic world is another route."""
        routes = self.config.model_dump(mode="json", include=_ROUTE_SET)
        return {"same route": (self.config.rule, json.dumps(routes, sort_keys=True),
                               self.route.city, self.route.route_id)}

    def info(self) -> dict[str, Any]:
        """Route facts and per-position counts (per-step accuracy = solved / total positions)."""
        return {
            "route_id": self.route.route_id, "city": self.route.city, "seed": self.seed,
            "rule": self.config.rule, "vision": self.config.vision,
            "positions": len(self.steps), "position": self.position,
            "solved_positions": self.solved_positions,
            "first_try_positions": self.first_try_positions,
            "failed_positions": self.failed_positions, "answers": self.answers,
            "success": self.success,
        }

    def _move_on(self, verdict: VIRLVerdict) -> Transition:
        self.position += 1
        self.attempts = 0
        if self.done:
            return Transition(verdict=verdict, done=True, success=self.success)
        return Transition(verdict=verdict, done=False, success=self.success, next=self.observe(),
                          restart=True)


_ROUTE_SET = {"route_source", "num_train_routes", "benchmark_routes_per_city", "world_seed", "world"}
"""The settings that decide which routes exist (a route id names a route within them)."""
_NOT_IN_PICTURE = {"task", "rule", "vision", "max_attempts_per_position", "max_history_steps",
                   "prompt_template", "rewards"}
"""Settings that change the prompt or the scoring but not the walk or its pictures: left out
of image references, so both rules of one route share their pictures."""


def _scene_settings(config: VIRLConfig) -> dict[str, Any]:
    """The settings an image reference carries, file paths made absolute (the learner may
    run in another directory)."""
    scene = config.model_dump(mode="json", exclude_defaults=True, exclude=_NOT_IN_PICTURE)
    if config.route_source not in BUILT_IN_SOURCES:
        scene["route_source"] = str(Path(config.route_source).resolve())
    if config.image_table is not None:
        scene["image_table"] = str(config.image_table.resolve())
    return scene


def render_view_ref(body: str) -> Image.Image:
    """The 2x2 view grid a V-IRL image reference's body names (see VIRLEpisode.image_ref)."""
    scene = json.loads(body)
    config = VIRLConfig.model_validate({**scene["config"], "vision": True})
    episode = make_episode(config, scene["seed"])
    episode.position = scene["position"]
    return episode.view()[1]


def routes_for(config: VIRLConfig) -> tuple[Route, ...]:
    """The routes `config` names: a built-in synthetic set or a route file (cached)."""
    if config.route_source == "synthetic-train":
        return training_routes(config.num_train_routes, config.world_seed, config.world)
    if config.route_source == "synthetic-benchmark":
        return benchmark_routes(config.benchmark_routes_per_city, config.world_seed, config.world)
    return _file_routes(Path(config.route_source).resolve())


@lru_cache(maxsize=8)
def _file_routes(path: Path) -> tuple[Route, ...]:
    return load_routes(path)


@lru_cache(maxsize=4)
def _photos(path: Path | None) -> tuple[ImageRef, ...]:
    return () if path is None else load_image_table(path)


def make_episode(config: VIRLConfig, seed: int) -> VIRLEpisode:
    """A new episode on route `seed mod n_routes`: seeds 0..n-1 visit every route once."""
    routes = routes_for(config)
    photos = _photos(config.image_table.resolve()) if config.image_table and config.vision else ()
    return VIRLEpisode(config, routes[seed % len(routes)], seed=seed, photos=photos)


register_image_kind("virl", render_view_ref)
