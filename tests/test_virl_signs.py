"""V-IRL-VL's 'signs' views: readable by a tiny tower, true to the route, named by their
references; the street views unchanged.

Readable means the renderer's own inverse (benchmarks/sign_reading.py: the nearest of the
names' views after the tiny processor's resize) reads every landmark back: a bar for the
pixels, not a claim that any model learns to read them.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import ValidationError

from benchmarks.sign_reading import SignBenchmark, measure
from contracts.tasks import VIRLConfig
from envs.images import render_image_ref
from envs.virl import SIGN_BOARD, VIEWS, make_episode, render_grid, tile_box, view_of
from envs.virl.cities import TRAIN_CITY

PX = 64
STREET_SHA256 = "171ff8f95c005735f1632a212e9056be8d58d70da165eb5ddfab9507e1525fcc"
"""sha256 of the street grid of seed 0, position 0, 64-pixel views, with main's renderer."""


def _tile_colours(image, view):
    return set(image.crop(tile_box(view, PX)).getdata())


def test_boards_stand_in_the_views_of_their_landmarks_and_crossings_at_intersections():
    config = VIRLConfig(vision=True, image_tile_px=PX, image_style="signs")
    boards = crossings = 0
    for seed in range(0, 1000, 100):
        episode = make_episode(config, seed)
        for step in episode.steps:
            image = render_grid(step, episode.route.city, PX, style="signs")
            sighted = {view_of(b) for b in step.bearings}
            for view in VIEWS:
                colours = _tile_colours(image, view)
                assert (SIGN_BOARD in colours) == (view in sighted), (view, step)
                assert (TRAIN_CITY.palette.marking in colours) == step.at_intersection
            boards += len(sighted)
            crossings += step.at_intersection
    assert boards > 20 and crossings > 10


def test_every_landmark_is_read_back_from_the_smallest_tower_under_noise():
    settings = SignBenchmark(names=24, draws=2)
    signs = measure(settings, "0.5m", "signs")
    street = measure(settings, "0.5m", "street")
    assert signs["accuracy_all"] == 1.0 and signs["view"] == 32
    assert street["accuracy_all"] < 0.5 and signs["separation"] > 5 * street["separation"]


def test_the_street_views_render_as_before():
    episode = make_episode(VIRLConfig(vision=True, image_tile_px=PX), 0)
    ref, image = episode.view()
    assert ref == 'virl:{"config":{"image_tile_px":64},"position":0,"seed":0}'
    assert hashlib.sha256(image.tobytes()).hexdigest() == STREET_SHA256
    assert render_image_ref(ref).tobytes() == image.tobytes()


def test_references_carry_the_style():
    episode = make_episode(VIRLConfig(vision=True, image_tile_px=PX, image_style="signs"), 4)
    observation = episode.observe()
    ref = observation.image_refs[0]
    assert json.loads(ref.removeprefix("virl:"))["config"]["image_style"] == "signs"
    assert render_image_ref(ref).tobytes() == observation.images[0].tobytes()


def test_photos_with_signs_are_refused_naming_the_setting(tmp_path):
    table = tmp_path / "photos.json"
    table.write_text("[]")
    with pytest.raises(ValidationError, match="image_style"):
        VIRLConfig(vision=True, image_style="signs", image_table=table)
    with pytest.raises(ValidationError) as caught:
        VIRLConfig(image_style="billboards")
    assert [e["loc"] for e in caught.value.errors()] == [("image_style",)]
