"""Headings, bearings and the two action vocabularies.

Every heading in Revisor's V-IRL is an integer number of degrees clockwise from north in
[0, 360). Route files state headings as integers, and the prompt shows them as integers, so the
expected action is computed from exactly the numbers the model can read.
"""

from __future__ import annotations

import math

COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
"""The absolute (in-distribution) action directions, 45 degrees apart starting at north."""
RELATIVE = ("left", "right", "slightly left", "slightly right")
"""The relative (out-of-distribution) action directions."""
SIDES = ("front", "right front", "right", "right back", "back", "left back", "left", "left front")
"""Where a landmark is relative to the walker, 45 degrees apart clockwise from straight ahead."""
VIRL_SIDES = ("front", "right front", "right", "right behind", "behind", "left behind", "left",
              "left front")
"""The side phrases the public V-IRL route collector writes, for the same bearings as SIDES.

The collector names the nearest of these to a landmark's bearing relative to the walker's
heading (0, 45, ..., 315 degrees). Route files are read with them and mapped onto SIDES.
"""

EARTH_RADIUS_M = 6_371_000.0
METRES_PER_DEGREE = math.pi * EARTH_RADIUS_M / 180.0


def wrap(angle: float) -> float:
    """The angle in [0, 360)."""
    return angle % 360.0


def signed_turn(from_heading: float, to_heading: float) -> float:
    """The clockwise turn from one heading to another, in (-180, 180]."""
    turn = wrap(to_heading - from_heading)
    return turn - 360.0 if turn > 180.0 else turn


def compass(heading: float) -> str:
    """The nearest of the 8 compass directions (sector edges belong to the clockwise side)."""
    return COMPASS[int(wrap(heading + 22.5) // 45.0) % 8]


def relative_action(from_heading: float, to_heading: float) -> str:
    """The relative direction for a turn: beyond 45 degrees 'left'/'right', else 'slightly'.

    The turn is wrapped to (-180, 180], so 350 -> 10 is a 20 degree turn to the right, not
    340 degrees to the left. A turn of exactly 180 degrees counts as 'right', and a zero
    turn as 'slightly right', so that every pair of headings has one answer.
    """
    turn = signed_turn(from_heading, to_heading)
    if turn < -45.0:
        return "left"
    if turn > 45.0:
        return "right"
    return "slightly left" if turn < 0.0 else "slightly right"


def side_of(relative_bearing: float) -> str:
    """The nearest of the 8 side names for a bearing relative to the walker's heading."""
    return SIDES[int(wrap(relative_bearing + 22.5) // 45.0) % 8]


def side_angle(side: str) -> int:
    """The relative bearing a side name stands for (front 0, right 90, left front 315)."""
    return SIDES.index(side) * 45


def bearing(origin: tuple[float, float], target: tuple[float, float]) -> float:
    """Initial great-circle bearing from one (lat, lng) to another, in [0, 360)."""
    lat1, lat2 = math.radians(origin[0]), math.radians(target[0])
    d_lng = math.radians(target[1] - origin[1])
    x = math.sin(d_lng) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(d_lng)
    return wrap(math.degrees(math.atan2(x, y)))


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in metres (haversine)."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    d_lat, d_lng = lat2 - lat1, math.radians(b[1] - a[1])
    h = math.sin(d_lat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(d_lng / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def offset(origin: tuple[float, float], east_m: float, north_m: float) -> tuple[float, float]:
    """The (lat, lng) some metres east and north of `origin` (flat-earth, fine for a city)."""
    lat = origin[0] + north_m / METRES_PER_DEGREE
    lng = origin[1] + east_m / (METRES_PER_DEGREE * math.cos(math.radians(origin[0])))
    return (lat, lng)


def interpolate(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    """The point a fraction `t` of the way from `a` to `b` (linear in degrees: short segments)."""
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
