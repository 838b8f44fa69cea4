"""Headings and turns: compass names, relative turns across north, landmark sides."""

import pytest

from envs.virl import compass, relative_action
from envs.virl.geometry import bearing, distance_m, offset, side_of, signed_turn


@pytest.mark.parametrize(("start", "end", "expected"), [
    (350, 10, "slightly right"),
    (10, 350, "slightly left"),
    (0, 180, "right"),
    (180, 0, "right"),
    (0, 90, "right"),
    (0, 270, "left"),
    (300, 30, "right"),
    (30, 300, "left"),
    (0, 45, "slightly right"),
    (0, 46, "right"),
    (0, 315, "slightly left"),
    (0, 314, "left"),
    (90, 90, "slightly right"),
    (359.5, 0.5, "slightly right"),
])
def test_relative_action_wraps_around_north(start, end, expected):
    assert relative_action(start, end) == expected


def test_half_turn_is_never_slight():
    for start in range(0, 360, 7):
        assert not relative_action(start, start + 180).startswith("slightly")


def test_signed_turn_range():
    for a in range(0, 360, 13):
        for b in range(0, 360, 17):
            turn = signed_turn(a, b)
            assert -180 < turn <= 180
            assert (a + turn - b) % 360 == pytest.approx(0)


@pytest.mark.parametrize(("heading", "name"), [
    (0, "north"), (358, "north"), (22, "north"), (23, "northeast"), (89, "east"),
    (154, "southeast"), (180, "south"), (225, "southwest"), (270, "west"), (315, "northwest"),
])
def test_compass(heading, name):
    assert compass(heading) == name


def test_sides():
    assert side_of(0) == "front"
    assert side_of(-90) == "left"
    assert side_of(135) == "right back"
    assert side_of(-45) == "left front"


def test_flat_offsets_agree_with_great_circle():
    origin = (51.5, -0.12)
    north = offset(origin, 0, 100)
    east = offset(origin, 100, 0)
    assert distance_m(origin, north) == pytest.approx(100, rel=1e-3)
    assert distance_m(origin, east) == pytest.approx(100, rel=1e-3)
    assert bearing(origin, north) == pytest.approx(0, abs=0.1)
    assert bearing(origin, east) == pytest.approx(90, abs=0.1)
