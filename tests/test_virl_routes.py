"""Route files in the published shape: reading, writing, and clear errors for bad input."""

import copy
import json
import math
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.tasks import VIRLConfig
from envs.virl import (
    RouteFileError,
    VIRLEpisode,
    load_routes,
    parse_milestone_info,
    save_routes,
    training_routes,
)
from envs.virl.geometry import (
    SIDES,
    VIRL_SIDES,
    bearing,
    compass,
    relative_action,
    side_angle,
    side_of,
    signed_turn,
)
from envs.virl.path import initial_heading
from envs.virl.routes import parse_sightings
from envs.virl.world import benchmark_routes

# Invented routes in the published shape, written before Revisor read headings as the collector
# means them: their headings do not match their geocodes (the loader does not check that), so
# they test the shape, the phrases and the errors, not the geometry.
EXAMPLE = Path(__file__).parent / "data" / "virl_routes_example.json"
PUBLISHED_SIDES = Path(__file__).parent / "data" / "virl_routes_published_sides.json"
REAL = Path(__file__).parent / "data" / "virl_routes_collector_real.json"
"""Two real routes of the public V-IRL repository (VIRL-Platform/VIRL at 55a5cb0,
data/tourist/route_infos_sf_apple.json and route_infos_ny_moma.json) as its collector wrote
them, as a `[routes, count]` file and trimmed to the fields a route file uses; values unchanged."""
BLOCK_KEYS = ("intersection_idx", "landmarks", "distance", "human_heading",
              "to_next_intersection_heading")


def test_example_file_loads():
    routes = load_routes(EXAMPLE)
    assert len(routes) == 2
    first = routes[0]
    assert first.start_place.name == "Lantern Books"
    assert first.dest_place.name == "Copper Kettle Cafe"
    assert first.init_heading is None  # 0 in the file means random
    # the start place's street-view position, then the file's three key points
    assert first.key_points == ((51.50011000000001, -0.12011), (51.5002, -0.12),
                                (51.5011, -0.12005), (51.50112, -0.118))
    assert len(first.milestones) == 4 and first.milestones[0].landmarks == ()
    third = first.milestones[2]  # file block 2: the leg into the second point, heading 89
    assert (third.distance_m, third.human_heading, third.to_next_heading) == (100, 89, 54)
    assert third.landmarks[0].name == "Tidewater Bank"
    assert third.landmarks[0].side == "left front"
    last = first.milestones[-1].landmarks[0]
    assert last.is_destination and last.name == "Copper Kettle Cafe"


def test_milestone_blocks_tolerate_trailing_commas_and_bare_numbers():
    text = '{"intersection_idx": 1, "landmarks": "A is on your front left; and B is on your back",' \
           ' "distance": 12, "human_heading": "360", "to_next_intersection_heading": "90",}'
    (milestone,) = parse_milestone_info(text + "\n" + text.replace('": 1,', '": 2,'))[:1]
    assert milestone.distance_m == 12 and milestone.human_heading == 0
    assert [(s.name, s.side) for s in milestone.landmarks] == [("A", "left front"), ("B", "back")]


@pytest.mark.parametrize("text", ["", "None", "  ", "No landmark nearby", "no landmarks nearby"])
def test_no_landmarks(text):
    assert parse_sightings(text) == ()


def test_synthetic_routes_round_trip_through_the_file_shape(tmp_path):
    routes = training_routes(20) + benchmark_routes()
    path = tmp_path / "routes.json"
    save_routes(routes, path)
    data = json.loads(path.read_text())
    assert isinstance(data, list) and data[1] == len(routes)
    assert isinstance(data[0][0]["milestone_info"], str)
    loaded = load_routes(path)
    for original, again in zip(routes, loaded, strict=True):
        assert again.model_dump(exclude={"route_id"}) == original.model_dump(exclude={"route_id"})


def test_generation_is_fast_and_deterministic():
    training_routes.cache_clear()
    start = time.perf_counter()
    routes = training_routes(1000, seed=0)
    elapsed = time.perf_counter() - start
    assert len(routes) == 1000 and elapsed < 3.0
    training_routes.cache_clear()
    assert training_routes(1000, seed=0) == routes
    assert training_routes(10, seed=0) == routes[:10]
    assert training_routes(10, seed=1) != routes[:10]


def test_built_in_sets_have_the_study_shape():
    routes = training_routes()
    assert len({r.city for r in routes}) == 1
    assert all(2 <= len(r.milestones) - 2 <= 6 for r in routes)
    bench = benchmark_routes()
    cities = {r.city for r in bench}
    assert len(bench) == 18 and len(cities) == 9 and routes[0].city not in cities
    for route in routes[:50] + bench:
        names = route.landmark_names
        assert len(names) == len(set(names)) == len(route.milestones)


def test_unreadable_files(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[[{]")
    with pytest.raises(RouteFileError, match="bad.json: not valid JSON"):
        load_routes(bad_json)
    with pytest.raises(RouteFileError, match="missing.json"):
        load_routes(tmp_path / "missing.json")
    wrong_count = tmp_path / "count.json"
    routes, _ = json.loads(EXAMPLE.read_text())
    wrong_count.write_text(json.dumps([routes, 1]))
    with pytest.raises(RouteFileError, match="route count 1 after the route list is below its 2"):
        load_routes(wrong_count)
    # the collector counts every destination it tried, kept or not
    tried_more = tmp_path / "tried.json"
    tried_more.write_text(json.dumps([routes, 5]))
    assert len(load_routes(tried_more)) == 2
    # a single route object, as the collector's per-task files hold one
    single = tmp_path / "single.json"
    single.write_text(json.dumps(routes[0]))
    assert load_routes(single)[0].milestones == load_routes(EXAMPLE)[0].milestones
    empty = tmp_path / "empty.json"
    empty.write_text("[[], 0]")
    with pytest.raises(RouteFileError, match="no routes"):
        load_routes(empty)


# ---------------------------------------------------------------------------- mutations

BAD_NAMES = [None, 3, "", "   ", [], {}]
BAD_PLACES = ["x", 3, None, [], True]
BAD_GEOCODES = ["abc", None, [1.0], [1.0, 2.0, 3.0], [91.0, 0.0], [0.0, 181.0], ["a", 1.0],
                {}, [math.nan, 0.0], [True, 1.0]]
BAD_DISTANCES = ["abc", None, -1, [], {}, "12"]
BAD_HEADINGS = ["abc", -5, 400, 12.5, [], {}, True, "90"]
BAD_MILESTONE_INFO = [3, None, [], {}, "", "no blocks here"]
BAD_BLOCK_VALUES = {
    "intersection_idx": ["x", "0", "9", "1.5"],
    "landmarks": [3, "Blue Door Bakery is nearby", "is on your left", None],
    "distance": ["far", "", "-3 meters", None],
    "human_heading": ["400", "north", "", "-1", "12.5"],
    "to_next_intersection_heading": ["abc (north)", "361 (north)", "", []],
}
# (path in the route object, what the error must name, bad values)
FIELD_MUTATIONS = [
    (("start_place",), "start_place", BAD_PLACES),
    (("dest_place",), "dest_place", BAD_PLACES),
    (("start_place", "name"), "start_place.name", BAD_NAMES),
    (("dest_place", "name"), "dest_place.name", BAD_NAMES),
    (("start_place", "geocode"), "start_place.geocode", BAD_GEOCODES),
    (("dest_place", "geocode"), "dest_place.geocode", BAD_GEOCODES),
    (("route_results",), "route_results", BAD_PLACES),
    (("route_results", "geocode_list"), "route_results.geocode_list", [None, "x", [], {}]),
    (("route_results", "geocode_list", 1), "route_results.geocode_list[1]", BAD_GEOCODES),
    (("route_results", "distance_list", 0), "route_results.distance_list[0]", BAD_DISTANCES),
    (("route_results", "landmark_list", 0, "name"), "landmark_list[0].name", BAD_NAMES),
    (("route_results", "landmark_list", 1, "geocode"), "landmark_list[1].geocode", BAD_GEOCODES),
    (("init_heading",), "init_heading", BAD_HEADINGS),
    (("milestone_info",), "milestone_info", BAD_MILESTONE_INFO),
]
REQUIRED = [("start_place",), ("dest_place",), ("route_results",), ("milestone_info",),
            ("start_place", "name"), ("start_place", "geocode"), ("dest_place", "geocode"),
            ("route_results", "geocode_list"), ("route_results", "landmark_list", 0, "name")]


def _blocks(text):
    return [json.loads(b.replace(",\n}", "\n}")) for b in text.split("\n\n") if b.strip()]


def _unblocks(blocks):
    """Blocks back in the published style: one key per line, a trailing comma in each."""
    return "".join("\n{\n" + "".join(f"{json.dumps(k)}: {json.dumps(v)},\n" for k, v in b.items())
                   + "}\n" for b in blocks)


def _set(obj, path, value):
    for key in path[:-1]:
        obj = obj[key]
    if value is _DELETE:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


_DELETE = object()


def _write(tmp_path, routes):
    path = tmp_path / "mutated_routes.json"
    path.write_text(json.dumps([routes, len(routes)]))
    return path


def _expect_error(tmp_path, routes, route_index, *names):
    with pytest.raises(RouteFileError) as error:
        load_routes(_write(tmp_path, routes))
    message = str(error.value)
    assert "mutated_routes.json" in message
    assert f"route {route_index}" in message
    for name in names:
        assert name in message, (name, message)


mutation = st.sampled_from(FIELD_MUTATIONS).flatmap(
    lambda m: st.tuples(st.just(m[0]), st.just(m[1]), st.sampled_from(m[2])))
settings_ = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings_
@given(route_index=st.integers(0, 1), change=mutation)
def test_field_mutations_are_rejected_naming_the_field(tmp_path, route_index, change):
    path, name, value = change
    routes = json.loads(EXAMPLE.read_text())[0]
    _set(routes[route_index], path, copy.deepcopy(value))
    _expect_error(tmp_path, routes, route_index, name)


@settings_
@given(route_index=st.integers(0, 1), path=st.sampled_from(REQUIRED))
def test_missing_fields_are_rejected_naming_the_field(tmp_path, route_index, path):
    routes = json.loads(EXAMPLE.read_text())[0]
    _set(routes[route_index], path, _DELETE)
    _expect_error(tmp_path, routes, route_index, path[-1])


@settings_
@given(route_index=st.integers(0, 1), block=st.integers(0, 2),
       key=st.sampled_from(BLOCK_KEYS), data=st.data())
def test_milestone_block_mutations_are_rejected_naming_block_and_key(tmp_path, route_index, block,
                                                                     key, data):
    routes = json.loads(EXAMPLE.read_text())[0]
    blocks = _blocks(routes[route_index]["milestone_info"])
    if data.draw(st.booleans(), label="delete"):
        del blocks[block][key]
    else:
        blocks[block][key] = data.draw(st.sampled_from(BAD_BLOCK_VALUES[key]), label="value")
    routes[route_index]["milestone_info"] = _unblocks(blocks)
    _expect_error(tmp_path, routes, route_index, "milestone_info", key)


@settings_
@given(route_index=st.integers(0, 1), block=st.integers(0, 2))
def test_block_count_must_match_key_points(tmp_path, route_index, block):
    routes = json.loads(EXAMPLE.read_text())[0]
    blocks = _blocks(routes[route_index]["milestone_info"])
    del blocks[block]
    for later in blocks[block:]:
        later["intersection_idx"] = str(int(later["intersection_idx"]) - 1)
    routes[route_index]["milestone_info"] = _unblocks(blocks)
    _expect_error(tmp_path, routes, route_index, "milestone_info", "geocode_list")


def test_mutation_helpers_preserve_a_valid_file(tmp_path):
    routes = json.loads(EXAMPLE.read_text())[0]
    for route in routes:
        route["milestone_info"] = _unblocks(_blocks(route["milestone_info"]))
        route["unknown_extra_field"] = {"ignored": True}
    assert load_routes(_write(tmp_path, routes)) == tuple(
        r.model_copy(update={"route_id": r.route_id.replace("virl_routes_example",
                                                             "mutated_routes")})
        for r in load_routes(EXAMPLE))


def test_missing_image_files_are_named(tmp_path):
    routes = json.loads(EXAMPLE.read_text())[0]
    routes[1]["images"] = [{"geocode": [51.49905, -0.11495], "heading": 0, "path": "nope.jpg"}]
    _expect_error(tmp_path, routes, 1, "images[0].path", "nope.jpg")


# ---------------------------------------------------------------------------- published sides

# The V-IRL collector's phrase for each bearing relative to the walker (virl/utils/geocode_utils.py)
PHRASE_SIDE_BEARING = [("front", "front", 0), ("right front", "right front", 45),
                       ("right", "right", 90), ("right behind", "right back", 135),
                       ("behind", "back", 180), ("left behind", "left back", 225),
                       ("left", "left", 270), ("left front", "left front", 315)]


def test_the_collectors_phrases_are_known():
    assert [phrase for phrase, _, _ in PHRASE_SIDE_BEARING] == list(VIRL_SIDES)
    assert [side for _, side, _ in PHRASE_SIDE_BEARING] == list(SIDES)


@pytest.mark.parametrize(("phrase", "side", "bearing"), PHRASE_SIDE_BEARING)
def test_each_published_phrase_reads_as_its_side(phrase, side, bearing):
    (sighting,) = parse_sightings(f"The destination Fig Tree is on your {phrase}")
    assert (sighting.name, sighting.side, sighting.is_destination) == ("Fig Tree", side, True)
    assert side_angle(sighting.side) == bearing


def test_a_file_with_every_published_phrase_loads():
    raw_routes = json.loads(PUBLISHED_SIDES.read_text())[0]
    written = [b["landmarks"] for r in raw_routes for b in _blocks(r["milestone_info"])]
    assert {text.rsplit(" is on your ", 1)[-1] for text in written} == {*VIRL_SIDES,
                                                                        "No landmark nearby"}
    sightings = [[(s.name, s.side, s.is_destination) for s in m.landmarks]
                 for route in load_routes(PUBLISHED_SIDES) for m in route.milestones]
    assert sightings == [
        [], [("Acorn Deli", "front", False)], [("Birch Tailor", "right front", False)],
        [("Cobble Shoes", "right", False)], [("Dune Florist", "right back", False)],
        [("Saltmarsh Gallery", "back", True)],
        [], [("Maple Pharmacy", "left back", False)], [],
        [("Orchard Bakery", "left", False)], [("Lighthouse Hall", "left front", True)]]


@pytest.mark.parametrize("side", ["slightly left", "behind left", "back behind", "up", "rear",
                                  "left-behind", "left behindd", "behind the bank", ""])
@pytest.mark.parametrize(("route_index", "block"), [(0, 3), (1, 0)])
def test_unknown_sides_are_rejected_naming_file_route_and_field(tmp_path, side, route_index,
                                                                 block):
    routes = json.loads(PUBLISHED_SIDES.read_text())[0]
    blocks = _blocks(routes[route_index]["milestone_info"])
    blocks[block]["landmarks"] = f"Dune Florist is on your {side}"
    routes[route_index]["milestone_info"] = _unblocks(blocks)
    _expect_error(tmp_path, routes, route_index, f"milestone_info block {block + 1}",
                  "field 'landmarks'", "right behind")


def test_a_file_given_start_heading_is_kept():
    random_start, own_start = load_routes(PUBLISHED_SIDES)
    assert random_start.init_heading is None
    assert own_start.init_heading == 135
    assert {initial_heading(own_start, seed) for seed in range(20)} == {135}
    assert len({initial_heading(random_start, seed) for seed in range(20)}) > 1
    episode = VIRLEpisode(VIRLConfig(), own_start, seed=7)
    assert episode.steps[0].heading == 135


@pytest.mark.parametrize(("init_heading", "human_heading", "expected"),
                         [(0, "200", 200), (_DELETE, "200", 200), (0, "0", None),
                          (_DELETE, "0", None), (200, "0", 200), (200, "200", 200)])
def test_the_start_heading_comes_from_either_place(tmp_path, init_heading, human_heading,
                                                   expected):
    routes = json.loads(PUBLISHED_SIDES.read_text())[0]
    _set(routes[1], ("init_heading",), init_heading)
    blocks = _blocks(routes[1]["milestone_info"])
    blocks[0]["human_heading"] = human_heading
    routes[1]["milestone_info"] = _unblocks(blocks)
    assert load_routes(_write(tmp_path, routes))[1].init_heading == expected


def test_two_different_start_headings_are_an_error(tmp_path):
    routes = json.loads(PUBLISHED_SIDES.read_text())[0]
    routes[1]["init_heading"] = 90
    _expect_error(tmp_path, routes, 1, "init_heading", "block 1 human_heading 135")


# ---------------------------------------------------------------------------- the collector's headings

def _sightings_with_geocodes(route):
    """(key point, milestone, sighting, the landmark's geocode as the file gives it)."""
    for k, milestone in enumerate(route.milestones):
        for sighting in milestone.landmarks:
            if sighting.is_destination:
                geocode = route.dest_place.geocode
            else:
                landmark = route.route_results.landmark_list[k]
                assert landmark.name == sighting.name
                geocode = landmark.geocode
            yield k, milestone, sighting, geocode


def test_real_routes_state_sides_relative_to_the_heading_on_arrival():
    checked = []
    for route in load_routes(REAL):
        for k, milestone, sighting, geocode in _sightings_with_geocodes(route):
            relative = bearing(route.key_points[k], geocode) - milestone.human_heading
            assert side_of(relative) == sighting.side, (sighting, relative)
            checked.append((sighting.name, sighting.side))
    assert checked == [("Starbucks", "left back"), ("Apple Union Square", "right"),
                       ("Prince St", "front"), ("Aritzia", "left front"),
                       ("MoMA Design Store", "left")]


def test_real_routes_walk_the_legs_the_file_states():
    raw_routes = json.loads(REAL.read_text())[0]
    for route, raw in zip(load_routes(REAL), raw_routes, strict=True):
        points, milestones = route.key_points, route.milestones
        # the walk starts where the collector's route starts: at the start place's street view
        assert points == (tuple(raw["start_place"]["relocated_geocode"]),
                          *map(tuple, raw["route_results"]["geocode_list"]))
        for k in range(len(points) - 1):
            leg = int(bearing(points[k], points[k + 1]))  # the collector truncates headings
            assert milestones[k].to_next_heading == milestones[k + 1].human_heading == leg
        # Google's directions for the same legs: "Head west on ...", then "Turn left ..."
        directions = raw["route_results"]["instructions"]
        assert f"Head <b>{compass(milestones[0].to_next_heading)}</b>" in directions[0]
        for k, text in enumerate(directions[1:], start=1):
            turn = relative_action(milestones[k].human_heading, milestones[k].to_next_heading)
            assert re.search(rf"\bTurn <b>{turn}</b>", text), (turn, text)
        episode = VIRLEpisode(VIRLConfig(), route, seed=0)
        assert episode.steps[0].geocode == points[0] and not episode.steps[0].sightings
        arrivals = [s for s in episode.steps if s.key_index and s.kind in ("turn", "stop")]
        assert [s.key_index for s in arrivals] == list(range(1, len(points)))
        for step in arrivals:  # on arrival the walker sees the sides the file states
            assert step.heading == milestones[step.key_index].human_heading
            assert step.sightings == milestones[step.key_index].landmarks


def test_real_routes_are_written_back_as_the_collector_wrote_them(tmp_path):
    routes = load_routes(REAL)
    path = tmp_path / "again.json"
    save_routes(routes, path)
    assert load_routes(path) == tuple(r.model_copy(update={"route_id": r.route_id.replace(
        "virl_routes_collector_real", "again")}) for r in routes)
    for original, written in zip(json.loads(REAL.read_text())[0], json.loads(path.read_text())[0],
                                 strict=True):
        assert written["milestone_info"] == original["milestone_info"]
        assert written["init_heading"] == original["init_heading"]
        assert written["start_place"]["relocated_geocode"] == \
            original["start_place"]["relocated_geocode"]
        for key in ("geocode_list", "distance_list"):
            assert written["route_results"][key] == original["route_results"][key]
        assert [landmark and landmark["name"] for landmark in
                written["route_results"]["landmark_list"]] == \
            [landmark and landmark["name"] for landmark in
             original["route_results"]["landmark_list"]]


def test_saved_synthetic_routes_state_the_collectors_headings(tmp_path):
    path = tmp_path / "synthetic.json"
    save_routes(benchmark_routes(), path)
    checked = 0
    for record in json.loads(path.read_text())[0]:
        results = record["route_results"]
        points = [record["start_place"]["relocated_geocode"], *results["geocode_list"]]
        blocks = _blocks(record["milestone_info"])
        assert len(blocks) == len(points) - 1 == len(results["distance_list"])
        heading_before = record["init_heading"]
        for i, block in enumerate(blocks):  # block i + 1: the leg into points[i + 1]
            heading = int(block["to_next_intersection_heading"].split()[0])
            assert abs(signed_turn(bearing(points[i], points[i + 1]), heading)) < 1
            assert int(block["human_heading"]) == heading_before
            heading_before = heading
            for sighting in parse_sightings(block["landmarks"]):
                geocode = record["dest_place"]["geocode"] if sighting.is_destination else \
                    results["landmark_list"][i]["geocode"]
                relative = bearing(points[i + 1], geocode) - heading
                assert abs(signed_turn(side_angle(sighting.side), relative)) <= 22.5 + 1
                checked += 1
    assert checked >= 18 * 3


def test_a_human_heading_that_is_not_the_previous_leg_is_an_error(tmp_path):
    routes = json.loads(REAL.read_text())[0]
    blocks = _blocks(routes[1]["milestone_info"])
    blocks[2]["human_heading"] = "298"
    routes[1]["milestone_info"] = _unblocks(blocks)
    _expect_error(tmp_path, routes, 1, "milestone_info block 3", "'human_heading' 298",
                  "to_next_intersection_heading 212")


def test_routes_the_file_shape_cannot_hold_are_refused(tmp_path):
    route = benchmark_routes()[0]
    milestones = list(route.milestones)
    milestones[1] = milestones[1].model_copy(
        update={"to_next_heading": (milestones[1].to_next_heading + 90) % 360})
    bad = route.model_copy(update={"milestones": tuple(milestones)})
    with pytest.raises(ValueError, match=re.escape("milestones[1].to_next_heading")):
        save_routes([route, bad], tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_a_file_without_a_start_relocation_starts_at_the_start_place(tmp_path):
    routes = json.loads(REAL.read_text())[0]
    del routes[0]["start_place"]["relocated_geocode"]
    route = load_routes(_write(tmp_path, routes))[0]
    assert route.key_points[0] == tuple(routes[0]["start_place"]["geocode"])
    assert route.milestones[0].distance_m == 0
