"""Can a tiny tower's input tell V-IRL-VL's landmarks apart? Sign boards read back by template
match, as benchmarks/card_reading.py reads GP-VL's cards.

A landmark shows as a sign board bearing its name, over a street scene ('street' style,
envs/virl/render.py) or filling the view ('signs', envs/virl/signs.py). For each of `names`
place names of the training city and each style, the grid is drawn with that one landmark
straight ahead (the same street behind it), goes through a tiny LLaVA's image processor, and
the front view of what the tower gets is read back by the nearest of all the names' views,
under Gaussian pixel noise of `noise` grey levels. `accuracy_all` chooses among every name;
`accuracy_route` among groups of `route_names` (a route's landmarks: the prompt's
instructions name them, so detection is choosing among a route's few names, chance
1/route_names). `separation`: the least L2 distance, in grey levels, between two names' views.

Usage: .venv/bin/python benchmarks/sign_reading.py [--view-px 64] [--noise 128]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools
import json
import math

import numpy as np
from PIL import Image, ImageChops, ImageStat
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.cli import parse_settings
from contracts.tasks import ViewStyle
from envs.virl.cities import TRAIN_CITY
from envs.virl.path import Step
from envs.virl.render import render_grid, tile_box
from envs.virl.routes import Sighting
from envs.virl.world import build_city
from rollout_workers.tiny_models import build
from rollout_workers.tiny_models.presets import SIZES, VISION_PRESETS
from rollout_workers.tiny_models.seen import tower_view


class SignBenchmark(BaseModel):
    """What is measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    view_px: int = Field(64, ge=16)
    """Side of one view (task.image_tile_px; configs/tasks/virl_vl.yaml uses 64)."""
    names: int = Field(40, ge=2)
    route_names: int = Field(6, ge=2)
    noise: float = Field(128.0, ge=0)
    draws: int = Field(3, ge=1)
    """Noisy readings per name."""


STYLES: tuple[ViewStyle, ...] = ("street", "signs")


def sign_grid(name: str, px: int, style: ViewStyle) -> Image.Image:
    """The 2x2 grid of a position between intersections with `name` straight ahead."""
    step = Step(geocode=(0.0, 0.0), heading=0, key_index=None, at_intersection=False,
                sightings=(Sighting(name=name, side="front"),), bearings=(0.0,),
                kind="forward", target_heading=None, instruction=0)
    return render_grid(step, TRAIN_CITY.region, px, ref="benchmark", style=style)


def squared(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).sum2)


def measure(b: SignBenchmark, size: str, style: ViewStyle) -> dict:
    processor = build.image_processor(VISION_PRESETS[size])
    names = build_city(TRAIN_CITY, 0).names[: b.names]
    views = {}
    for name in names:
        source = sign_grid(name, b.view_px, style)
        seen = tower_view(processor, source)
        scale = seen.width / source.width
        views[name] = seen.crop(tuple(round(v * scale) for v in tile_box("front", b.view_px)))
    rng = np.random.default_rng(0)
    right_all = right_route = total = 0
    for i, name in enumerate(names):
        group_start = i // b.route_names * b.route_names
        group = names[group_start : group_start + b.route_names]
        for _ in range(b.draws):
            pixels = np.asarray(views[name], dtype=np.float32)
            pixels = pixels + rng.normal(0.0, b.noise, pixels.shape)
            noisy = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
            distances = {other: squared(noisy, views[other]) for other in names}
            right_all += min(distances, key=distances.get) == name
            right_route += min(group, key=distances.get) == name
            total += 1
    least = min(squared(views[a], views[c]) for i, a in enumerate(names) for c in names[i + 1 :])
    return {"tower": VISION_PRESETS[size].image_size, "view": views[names[0]].width,
            "accuracy_all": round(right_all / total, 3),
            "accuracy_route": round(right_route / total, 3), "separation": round(math.sqrt(least))}


def main() -> None:
    b = parse_settings(SignBenchmark, __doc__)
    for style, size in itertools.product(STYLES, SIZES):
        print(json.dumps({"style": style, "size": size, "view_px": b.view_px,
                          **measure(b, size, style)}), flush=True)


if __name__ == "__main__":
    main()
