"""V-IRL-VL images: signs in the view the route says, visible intersections, stated layout."""

import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from contracts.tasks import VIRLConfig
from envs.virl import (
    SIGN_BOARD,
    VIEWS,
    layout_sentence,
    make_episode,
    render_grid,
    routes_for,
    tile_box,
    view_of,
)
from envs.virl.cities import TRAIN_CITY
from envs.virl.geometry import side_angle, signed_turn
from envs.virl.render import GRID_CELLS

EXAMPLE = str(Path(__file__).parent / "data" / "virl_routes_example.json")
PX = 96


def _count(image, view, colour):
    tile = image.crop(tile_box(view, PX))
    return sum(1 for pixel in tile.getdata() if pixel == colour)


def _sign_columns(image, view):
    tile = image.crop(tile_box(view, PX))
    return [x for i, pixel in enumerate(tile.getdata()) if pixel == SIGN_BOARD for x in [i % PX]]


def _episodes():
    for source in ("synthetic-benchmark", EXAMPLE):
        config = VIRLConfig(vision=True, route_source=source, image_tile_px=PX)
        for seed in range(len(routes_for(config))):
            yield make_episode(config, seed)
    config = VIRLConfig(vision=True, image_tile_px=PX)
    for seed in range(0, 1000, 125):
        yield make_episode(config, seed)


def test_signs_appear_in_the_view_of_the_landmarks_heading():
    checked = 0
    for episode in _episodes():
        for step in episode.steps:
            if step.key_index is None and not step.sightings:
                continue
            image = render_grid(step, episode.route.city, PX, ref="test")
            milestone = episode.route.milestones[step.key_index]
            expected = set()
            for stated in milestone.landmarks:
                # the route states the side on arrival: the sign goes in the view looking that way
                absolute = milestone.human_heading + side_angle(stated.side)
                view = min(VIEWS, key=lambda v: abs(signed_turn(
                    step.heading + 90 * VIEWS.index(v), absolute)) + 0.1 * (v in ("left", "right")))
                expected.add(view)
                checked += 1
            for view in VIEWS:
                assert (_count(image, view, SIGN_BOARD) > 0) == (view in expected), (view, step)
    assert checked > 100


@pytest.mark.parametrize(("bearing", "view", "where"), [
    (0, "front", "middle"), (315, "front", "left"), (45, "front", "right"), (30, "front", "right"),
    (60, "right", "left"), (90, "right", "middle"), (135, "back", "left"),
    (225, "back", "right"), (180, "back", "middle"), (270, "left", "middle"), (300, "left", "right"),
])
def test_sign_position_within_its_view(bearing, view, where):
    assert view_of(bearing) == view
    episode = make_episode(VIRLConfig(vision=True, route_source=EXAMPLE, image_tile_px=PX), 0)
    step = next(step for step in episode.steps if len(step.sightings) == 1)
    step = dataclasses.replace(step, bearings=(bearing,))
    columns = _sign_columns(render_grid(step, "", PX), view)
    centre = sum(columns) / len(columns) / PX
    assert {"left": centre < 0.4, "middle": 0.4 <= centre <= 0.6, "right": centre > 0.6}[where]


def _road_share(image, view, palette):
    tile = image.crop(tile_box(view, PX))
    horizon = int(PX * 0.45)
    row = horizon + ((PX - horizon) // 5 + (PX - horizon) // 3) // 2
    return sum(tile.getpixel((x, row)) == palette.road for x in range(PX)) / PX


def test_intersections_are_visible_as_such():
    episode = make_episode(VIRLConfig(vision=True, image_tile_px=PX), 3)
    palette = TRAIN_CITY.palette
    seen = {True: 0, False: 0}
    for step in episode.steps:
        image = render_grid(step, episode.route.city, PX, ref="x")
        shares = [_road_share(image, view, palette) for view in VIEWS]
        if step.at_intersection:
            assert min(shares) > 0.9, shares
        else:
            assert max(shares) < 0.6 and shares[1] == shares[3] == 0, shares
        seen[step.at_intersection] += 1
    assert seen[True] and seen[False]


def test_layout_sentence_states_the_grid():
    sentence = layout_sentence()
    assert "top left: front" in sentence and "top right: right" in sentence
    assert "bottom right: back" in sentence and "bottom left: left" in sentence
    assert GRID_CELLS == {"front": (0, 0), "right": (1, 0), "back": (1, 1), "left": (0, 1)}
    episode = make_episode(VIRLConfig(vision=True, image_tile_px=PX), 0)
    assert sentence in episode.observe().text


def test_rendering_is_deterministic():
    a = make_episode(VIRLConfig(vision=True, image_tile_px=PX), 8).observe()
    b = make_episode(VIRLConfig(vision=True, image_tile_px=PX), 8).observe()
    assert a.image_refs == b.image_refs and a.images[0].tobytes() == b.images[0].tobytes()


COLOURS = {0: (255, 0, 0), 90: (0, 255, 0), 180: (0, 0, 255), 270: (255, 0, 255)}


def _photos(tmp_path, geocode):
    records = []
    for heading, colour in COLOURS.items():
        Image.new("RGB", (40, 30), colour).save(tmp_path / f"view_{heading}.png")
        records.append({"lat": geocode[0], "lng": geocode[1], "heading": heading,
                        "path": f"view_{heading}.png"})
    return records


def _photo_views(image):
    return {view: image.crop(tile_box(view, PX)).getpixel((PX // 2, PX // 2)) for view in VIEWS}


def test_photo_table_replaces_painting_where_it_covers_all_views(tmp_path):
    start = routes_for(VIRLConfig(route_source=EXAMPLE))[0].key_points[0]
    table = tmp_path / "photos.json"
    table.write_text(json.dumps(_photos(tmp_path, start)))
    config = VIRLConfig(vision=True, route_source=EXAMPLE, image_table=table, image_tile_px=PX)
    episode = make_episode(config, 0)
    heading = episode.steps[0].heading
    views = _photo_views(episode.observe().images[0])
    for i, view in enumerate(VIEWS):
        nearest = min(COLOURS, key=lambda h: abs(signed_turn(h, heading + 90 * i)))
        assert views[view] == COLOURS[nearest]
    far = episode.steps[-1]
    painted = render_grid(far, episode.route.city, PX, photos=episode.photos)
    assert set(_photo_views(painted).values()).isdisjoint(COLOURS.values())


def test_route_file_images_are_used(tmp_path):
    routes, count = json.loads(Path(EXAMPLE).read_text())
    routes[0]["images"] = [{"geocode": [r["lat"], r["lng"]], "heading": r["heading"],
                            "path": r["path"]}
                           for r in _photos(tmp_path, routes[0]["start_place"]["relocated_geocode"])]
    path = tmp_path / "routes.json"
    path.write_text(json.dumps([routes, count]))
    episode = make_episode(VIRLConfig(vision=True, route_source=str(path), image_tile_px=PX), 0)
    assert set(_photo_views(episode.observe().images[0]).values()) == set(COLOURS.values())
