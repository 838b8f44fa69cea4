"""The ground-truth walk along a route: every position, what is seen there, the right action.

The walk turns at the start and at every intersection toward the next key point, moves
forward in steps of roughly `forward_step_m` between key points, and stops at the
destination. Landmark sides come from the route's milestones, which state them relative to
the heading on arrival; after a turn they are rotated, so the text, the image and the
instructions always agree.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from envs.virl.geometry import (
    compass,
    interpolate,
    relative_action,
    side_angle,
    side_of,
    signed_turn,
    wrap,
)
from envs.virl.routes import Route, Sighting

ActionKind = Literal["turn", "forward", "stop"]


@dataclass(frozen=True)
class Step:
    """One position of the walk: one decision, up to `max_attempts_per_position` answers."""

    geocode: tuple[float, float]
    heading: int
    """The walker's heading when deciding (whole degrees)."""
    key_index: int | None
    """Which key point the walker stands at, None between key points."""
    at_intersection: bool
    sightings: tuple[Sighting, ...]
    """Landmarks in sight, with sides (the nearest of 8) relative to `heading`."""
    bearings: tuple[float, ...]
    """The exact bearing of each sighting relative to `heading` (where the image puts it)."""
    kind: ActionKind
    target_heading: int | None
    """For a turn: the heading to face."""
    instruction: int
    """Index of the instruction being carried out."""

    def action(self, rule: str) -> str:
        """The right action, canonical, under the 'id' (absolute) or 'ood' (relative) rule."""
        if self.kind != "turn":
            return f"{self.kind}()"
        assert self.target_heading is not None
        direction = compass(self.target_heading) if rule == "id" else \
            relative_action(self.heading, self.target_heading)
        return f"turn_direction({direction})"

    def scene(self) -> str:
        """What the walker sees, in the words of the expert's 'current observation'."""
        parts = ["You are at an intersection."] if self.at_intersection else []
        parts += [f"{s.name} is on your {s.side}." for s in self.sightings]
        return " ".join(parts) or "No landmarks in sight."


def initial_heading(route: Route, seed: int) -> int:
    """The route's start heading, or for a random one (None) a seeded heading that needs a turn."""
    if route.init_heading is not None:
        return route.init_heading
    first = route.milestones[0].to_next_heading
    choices = [h for h in range(360) if abs(signed_turn(h, first)) >= 20]
    return random.Random(f"init-heading:{route.route_id}:{seed}").choice(choices)


def instructions(route: Route) -> tuple[str, ...]:
    """Numbered-list items: turn to face the next heading, then walk to the next key point."""
    lines = []
    last = len(route.milestones) - 1
    for k, milestone in enumerate(route.milestones[:-1]):
        heading = milestone.to_next_heading
        lines.append(f"Turn to face {compass(heading)} ({heading} degrees).")
        arrival = route.milestones[k + 1]
        where = " and ".join(f"{s.name} is on your {s.side}" for s in arrival.landmarks)
        if k + 1 == last:
            lines.append(f"Move forward until you reach the destination, where {where}."
                         if where else "Move forward until you reach the destination.")
        else:
            lines.append(f"Move forward until you reach the intersection where {where}."
                         if where else "Move forward until you reach the next intersection.")
    return tuple(lines)


def walk(route: Route, start_heading: int, step_m: float, max_steps: int) -> tuple[Step, ...]:
    """Every position of the ground-truth walk, ending with stop() at the destination."""
    points, milestones = route.key_points, route.milestones
    last = len(points) - 1
    steps: list[Step] = []
    heading = start_heading
    for k in range(last):
        target = milestones[k].to_next_heading
        steps.append(_at_key(route, k, heading, "turn", target, 2 * k))
        steps.append(_at_key(route, k, target, "forward", None, 2 * k + 1))
        n_between = min(max_steps - 1, max(0, round(milestones[k + 1].distance_m / step_m) - 1))
        for j in range(1, n_between + 1):
            geocode = interpolate(points[k], points[k + 1], j / (n_between + 1))
            steps.append(Step(geocode, target, None, False, (), (), "forward", None, 2 * k + 1))
        heading = target
    steps.append(_at_key(route, last, heading, "stop", None, 2 * last - 1))
    return tuple(steps)


def _at_key(route: Route, k: int, heading: int, kind: ActionKind, target: int | None,
            instruction: int) -> Step:
    milestone = route.milestones[k]
    bearings = tuple(wrap(side_angle(s.side) + milestone.human_heading - heading)
                     for s in milestone.landmarks)
    sightings = tuple(s.model_copy(update={"side": side_of(b)})
                      for s, b in zip(milestone.landmarks, bearings, strict=True))
    at_intersection = 0 < k < len(route.milestones) - 1
    return Step(route.key_points[k], heading, k, at_intersection, sightings, bearings, kind,
                target, instruction)
