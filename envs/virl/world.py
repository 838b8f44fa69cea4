"""Synthetic V-IRL worlds: street grids with named landmarks and routes through them.

Revisor cannot ship Street View routes, so it draws cities of its own and writes their routes
in the very data model the route-file loader produces: the episode cannot tell the two apart.
A city is a slightly irregular, tilted street grid; every intersection has a few named places
on its corners; a route starts in the middle of a block, turns at 2-6 intersections and ends
in the middle of a block beside its destination. Everything derives from one seed.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from functools import lru_cache

from contracts.tasks import WorldConfig
from envs.virl.cities import BENCHMARK_CITIES, TRAIN_CITY, CityStyle
from envs.virl.geometry import METRES_PER_DEGREE, offset, side_of, wrap
from envs.virl.routes import Landmark, Milestone, Place, Route, RouteResults, Sighting

GRID_SIZE = 16
"""Intersections per side of a city grid."""
_STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))
"""Grid steps along the city's 'north', 'east', 'south' and 'west' streets."""
_PLACE_SETBACK_M = 12.0
"""How far a start or destination place stands from the street's centre line."""


@dataclass(frozen=True)
class City:
    """A generated city: where its intersections are and which places stand at each."""

    style: CityStyle
    points: dict[tuple[int, int], tuple[float, float]]
    """Intersection -> (east, north) metres from the city's origin."""
    corners: dict[tuple[int, int], tuple[Landmark, ...]]
    """Intersection -> the named places on its corners."""
    names: tuple[str, ...]
    """The city's pool of distinct place names; corner places use the first ones."""

    def geocode(self, east_north: tuple[float, float]) -> tuple[float, float]:
        return offset(self.style.origin, *east_north)


def build_city(style: CityStyle, seed: int) -> City:
    """The street grid and corner places of one city, the same for the same (style, seed)."""
    rng = random.Random(f"city:{style.name}:{seed}")
    widths = [rng.uniform(*style.block_m) for _ in range(GRID_SIZE)]
    heights = [rng.uniform(*style.block_m) for _ in range(GRID_SIZE)]
    xs, ys = list(itertools.accumulate(widths)), list(itertools.accumulate(heights))
    theta = math.radians(style.rotation_deg)
    points, corners = {}, {}
    names = _name_pool(style, rng)
    name_iter = iter(names)
    for i, j in itertools.product(range(GRID_SIZE), repeat=2):
        jx, jy = (rng.uniform(-1, 1) * style.jitter * style.block_m[0] for _ in range(2))
        points[i, j] = _rotate(xs[i] + jx, ys[j] + jy, theta)
    for node, (east, north) in points.items():
        places = []
        for qx, qy in rng.sample([(1, 1), (1, -1), (-1, 1), (-1, -1)], rng.randint(1, 2)):
            dx, dy = (q * rng.uniform(0.1, 0.35) * style.block_m[0] for q in (qx, qy))
            ex, ny = _rotate(dx, dy, theta)
            position = offset(style.origin, east + ex, north + ny)
            places.append(Landmark(name=next(name_iter), geocode=position,
                                   place_types=("point_of_interest",)))
        corners[node] = tuple(places)
    return City(style=style, points=points, corners=corners, names=names)


def _name_pool(style: CityStyle, rng: random.Random) -> tuple[str, ...]:
    combos = [style.pattern.format(a=a, b=b, k=k)
              for a, b, k in itertools.product(style.a_words, style.b_words, style.kinds)]
    rng.shuffle(combos)
    return tuple(dict.fromkeys(combos))


def _rotate(x: float, y: float, theta: float) -> tuple[float, float]:
    """Grid coordinates to (east, north): the grid's y axis points along heading theta."""
    return (x * math.cos(theta) + y * math.sin(theta), -x * math.sin(theta) + y * math.cos(theta))


def _heading(a: tuple[float, float], b: tuple[float, float]) -> int:
    """Whole-degree heading from one (east, north) point to another."""
    return round(wrap(math.degrees(math.atan2(b[0] - a[0], b[1] - a[1])))) % 360


def _distance(a: tuple[float, float], b: tuple[float, float]) -> int:
    return round(math.hypot(b[0] - a[0], b[1] - a[1]))


# ---------------------------------------------------------------------------- routes

def make_route(city: City, index: int, world: WorldConfig, rng: random.Random) -> Route:
    """One route of `city`: start mid-block, turn at intersections, stop beside the destination."""
    n_turns = rng.randint(world.min_intersections, world.max_intersections)
    nodes = None
    while nodes is None:  # a walk that runs into itself or off the grid is drawn again
        nodes = _walk(rng, n_turns + 2, world.straight_on_share)
    pts = [city.points[n] for n in nodes]
    start = _lerp(pts[0], pts[1], rng.uniform(0.35, 0.65))
    end = _lerp(pts[-2], pts[-1], rng.uniform(0.35, 0.65))
    keys = [start, *pts[1:-1], end]
    first = _heading(keys[0], keys[1])
    # facing across or back along the street; never exactly north, which the published file
    # shape would read as "random"
    init_heading = next(h for h in (wrap(first + d) for d in rng.sample((90, 180, 270), 3)) if h)
    start_place = _roadside_place(city, _pool_name(city, index, 0), start, keys[1], rng)
    dest_place = _roadside_place(city, _pool_name(city, index, 1), end, keys[-2], rng)
    corner_places = [rng.choice(city.corners[n]) for n in nodes[1:-1]]
    arrivals = [int(init_heading)] + [_heading(keys[k - 1], keys[k]) for k in range(1, len(keys))]
    sights = [start_place, *corner_places, dest_place]
    milestones, landmark_list = [], []
    for k, (key, place, arrival) in enumerate(zip(keys, sights, arrivals, strict=True)):
        east_north = _east_north(city, place.geocode)
        side = side_of(_heading(key, east_north) - arrival)
        sighting = Sighting(name=place.name, side=side, is_destination=k == len(keys) - 1)
        if k < len(keys) - 1:
            landmark_list.append(_as_landmark(place, sighting))
        following = keys[k + 1] if k + 1 < len(keys) else east_north
        previous = keys[k - 1] if k else east_north
        milestones.append(Milestone(
            intersection_idx=k + 1, landmarks=(sighting,), distance_m=_distance(previous, key),
            human_heading=arrival, to_next_heading=_heading(key, following)))
    return Route(
        route_id=f"{city.style.region}:{index}", city=city.style.region,
        start_place=start_place, dest_place=dest_place, init_heading=int(init_heading),
        route_results=RouteResults(
            geocode_list=tuple(city.geocode(k) for k in keys),
            distance_list=tuple(m.distance_m for m in milestones),
            landmark_list=tuple(landmark_list)),
        milestones=tuple(milestones))


def _walk(rng: random.Random, n_nodes: int, straight_share: float) -> list[tuple[int, int]] | None:
    """A self-avoiding grid walk of `n_nodes` intersections, or None when it gets stuck."""
    node = (rng.randrange(1, GRID_SIZE - 1), rng.randrange(1, GRID_SIZE - 1))
    direction = rng.randrange(4)
    nodes = [node]
    while len(nodes) < n_nodes:
        if len(nodes) >= 2:
            direction = _next_direction(rng, direction, straight_share)
        step = _STEPS[direction]
        node = (node[0] + step[0], node[1] + step[1])
        if not (0 <= node[0] < GRID_SIZE and 0 <= node[1] < GRID_SIZE) or node in nodes:
            return None
        nodes.append(node)
    return nodes


def _next_direction(rng: random.Random, direction: int, straight_share: float) -> int:
    if rng.random() < straight_share:
        return direction
    return (direction + rng.choice((1, 3))) % 4


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _pool_name(city: City, index: int, which: int) -> str:
    """A start (0) or destination (1) place name, disjoint from the corner places' names."""
    used = sum(len(places) for places in city.corners.values())
    free = len(city.names) - used
    n = 2 * index + which
    name = city.names[used + n % free]
    return name if n < free else f"{name} {n // free + 1}"


def _roadside_place(city: City, name: str, at: tuple[float, float], towards: tuple[float, float],
                    rng: random.Random) -> Place:
    """A place set back from the street at `at`, on a random side of it."""
    heading = math.radians(_heading(at, towards) + rng.choice((90, -90)))
    spot = (at[0] + _PLACE_SETBACK_M * math.sin(heading), at[1] + _PLACE_SETBACK_M * math.cos(heading))
    return Place(name=name, geocode=city.geocode(spot), place_types=("establishment",))


def _east_north(city: City, geocode: tuple[float, float]) -> tuple[float, float]:
    """The inverse of `City.geocode`."""
    lat0, lng0 = city.style.origin
    east = (geocode[1] - lng0) * METRES_PER_DEGREE * math.cos(math.radians(lat0))
    return (east, (geocode[0] - lat0) * METRES_PER_DEGREE)


def _as_landmark(place: Place, sighting: Sighting) -> Landmark:
    expression = f"{sighting.name} is on your {sighting.side}"
    return Landmark(name=place.name, geocode=place.geocode, place_types=place.place_types,
                    spatial_relation=sighting.side, expression=expression)


# ---------------------------------------------------------------------------- built-in sets

@lru_cache(maxsize=64)  # the V-IRL-VL picture corpus repaints views of up to 64 cities
def training_routes(n_routes: int = 1000, seed: int = 0,
                    world: WorldConfig | None = None) -> tuple[Route, ...]:
    """The training set: `n_routes` routes in the training city (the study used 1,000)."""
    world = world or WorldConfig()
    city = build_city(TRAIN_CITY, seed)
    rng = random.Random(f"routes:{TRAIN_CITY.name}:{seed}")
    return tuple(make_route(city, i, world, rng) for i in range(n_routes))


@lru_cache(maxsize=8)
def benchmark_routes(per_city: int = 2, seed: int = 0,
                     world: WorldConfig | None = None) -> tuple[Route, ...]:
    """The visual and location out-of-distribution benchmark: 9 cities x 2 routes."""
    world = world or WorldConfig()
    routes = []
    for style in BENCHMARK_CITIES:
        city = build_city(style, seed)
        rng = random.Random(f"routes:{style.name}:{seed}")
        routes.extend(make_route(city, i, world, rng) for i in range(per_city))
    return tuple(routes)

