"""The route data model, in the shape of the public V-IRL route files, and its strict loader.

A route file is a JSON list `[routes, count]`. Each route names a start and a destination
place, lists the key points it passes (start, intersections, destination) as geocodes, and
carries `milestone_info`: one string of pseudo-JSON blocks, one per key point, each ending
with a trailing comma. Revisor reads that string with its own tolerant block reader and then
validates everything strictly, so a malformed file fails at load time with an error naming
the file, the route and the field instead of confusing an episode later.

The file and Revisor's `Route` say the same things in different places. In the file (as the
public V-IRL collector writes it, tools/tasks/collect_benchmark/collect_vln_routes.py) the walk
starts at `start_place.relocated_geocode`, `geocode_list` holds the points after the start, and
block i describes the leg INTO point i: `to_next_intersection_heading` is that leg's heading,
`human_heading` the previous leg's (the start heading for block 1), and the landmark sides are
relative to the leg's heading, the way the walker faces on arrival. A `Route` instead has one
key point and one milestone per position where the walker decides, the start included, and
each milestone holds the heading on arrival (`human_heading`) and the heading out
(`to_next_heading`). `load_routes` and `save_routes` convert between the two exactly.

Revisor never unpickles data files. The original project shipped its GPS-to-panorama map as a
pickle; envs/virl/README.md shows the one-off conversion to JSON that a user runs knowingly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    model_validator,
)

from contracts.episode import TaskInputError
from envs.virl.geometry import SIDES, VIRL_SIDES, bearing, compass
from envs.virl.geometry import distance_m as metres_between

Side = Literal[SIDES]  # type: ignore[valid-type]


def _check_geocode(value: tuple[float, float]) -> tuple[float, float]:
    lat, lng = value
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise ValueError(f"latitude {lat} is outside [-90, 90]")
    if not (math.isfinite(lng) and -180.0 <= lng <= 180.0):
        raise ValueError(f"longitude {lng} is outside [-180, 180]")
    return value


Geocode = Annotated[tuple[StrictFloat, StrictFloat], AfterValidator(_check_geocode)]
"""(latitude, longitude) in degrees; numbers only (strings and booleans are errors in a file)."""
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Heading = Annotated[StrictInt, Field(ge=0, lt=360)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Place(_Model):
    """A named place with a position (start, destination or landmark)."""

    name: Name
    geocode: Geocode
    place_types: tuple[str, ...] = ()


class Landmark(Place):
    """A place along the route, with where the walker sees it when passing."""

    spatial_relation: str = ""
    expression: str = ""


class RouteResults(_Model):
    """The key points of the route (start, intersections, destination) and their landmarks."""

    geocode_list: tuple[Geocode, ...] = Field(min_length=2)
    distance_list: tuple[Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)], ...] = ()
    """One entry per key point: as `Milestone.distance_m`."""
    landmark_list: tuple[Landmark | None, ...] = ()
    """One entry per key point but the last; null where the collector found no landmark."""


class Sighting(_Model):
    """One landmark a milestone describes: its name and its side relative to `human_heading`."""

    name: Name
    side: Side
    is_destination: bool = False


class Milestone(_Model):
    """What the walker meets at one key point, parsed from one `milestone_info` block."""

    intersection_idx: StrictInt = Field(ge=1)
    landmarks: tuple[Sighting, ...] = ()
    distance_m: StrictFloat = Field(ge=0, allow_inf_nan=False)
    """Metres walked from the previous key point (from the start place for the first one)."""
    human_heading: Heading
    """The walker's heading on arrival (the start heading, 0 if random, for the first one),
    which the landmark sides are relative to."""
    to_next_heading: Heading
    """The heading from this key point to the next (to the destination place for the last)."""


class ImageRef(_Model):
    """A street-level photo taken at a position, looking along a heading."""

    geocode: Geocode
    heading: StrictFloat = Field(ge=0, le=360, allow_inf_nan=False)
    path: Name
    """Absolute, or relative to the route file's folder."""


class Route(_Model):
    """One navigation task: walk from the start place to the destination place.

    `route_results.geocode_list` starts at the walk's start position; milestone k describes key
    point k. (A route file lists the key points after the start; see the module docstring.)
    """

    route_id: Name
    city: str = ""
    start_place: Place
    dest_place: Place
    route_results: RouteResults
    init_heading: Heading | None = None
    """The walker's heading at the start; None means one drawn from the episode seed.

    A file gives it as `init_heading` or as the first block's `human_heading`; 0 in both (as
    in the published files) means random. See `_start_heading`."""
    milestones: tuple[Milestone, ...] = Field(min_length=2)
    images: tuple[ImageRef, ...] = ()

    @model_validator(mode="after")
    def _milestones_match_key_points(self) -> Route:
        n_points = len(self.route_results.geocode_list)
        if len(self.milestones) != n_points:
            raise ValueError(f"{len(self.milestones)} milestones but route_results.geocode_list "
                             f"has {n_points} key points")
        for k, milestone in enumerate(self.milestones):
            if milestone.intersection_idx != k + 1:
                raise ValueError(f"milestone {k + 1} has intersection_idx "
                                 f"{milestone.intersection_idx}, expected {k + 1}")
        return self

    @property
    def key_points(self) -> tuple[tuple[float, float], ...]:
        return self.route_results.geocode_list

    @property
    def landmark_names(self) -> tuple[str, ...]:
        """Every place a milestone mentions, in route order, without repeats."""
        names = (s.name for m in self.milestones for s in m.landmarks)
        return tuple(dict.fromkeys(names))


class _FilePlace(Place):
    relocated_geocode: Geocode | None = None
    """The street-view position beside the place; the walk starts at the start place's."""


class _FileResults(RouteResults):
    geocode_list: tuple[Geocode, ...] = Field(min_length=1)
    """The key points after the start: the end of every leg, the last at the destination."""


class _Extension(_Model):
    """Revisor's own `revisor` object: what the collector's shape has no place for.

    `save_routes` writes it, so that a route reads back exactly; without it the loader uses
    the defaults of `_from_file`, which describe a route as the collector made it.
    """

    start_landmarks: tuple[Sighting, ...] = ()
    """Landmarks seen at the start position, sides relative to the start heading."""
    start_distance: Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)] | None = None
    """Metres from the start place to the start position."""
    start_landmark: Landmark | None = None
    """The start position's entry of the route's landmark list."""
    dest_heading: Heading | None = None
    """The heading from the last key point to the destination place."""


class _FileRoute(_Model):
    """A route as the file states it, validated with the file's own field names and indexes."""

    start_place: _FilePlace
    dest_place: Place
    route_results: _FileResults
    init_heading: Heading | None = None
    milestones: tuple[Milestone, ...] = Field(min_length=1)
    revisor: _Extension = _Extension()
    images: tuple[ImageRef, ...] = ()

    @model_validator(mode="after")
    def _blocks_match_key_points(self) -> _FileRoute:
        n_points = len(self.route_results.geocode_list)
        if len(self.milestones) != n_points:
            raise ValueError(f"milestone_info has {len(self.milestones)} blocks but "
                             f"route_results.geocode_list has {n_points} key points")
        for k, block in enumerate(self.milestones):
            if block.intersection_idx != k + 1:
                raise ValueError(f"milestone_info block {k + 1} has intersection_idx "
                                 f"{block.intersection_idx}, expected {k + 1}")
        for k in range(1, len(self.milestones)):
            before, block = self.milestones[k - 1], self.milestones[k]
            if block.human_heading != before.to_next_heading:
                raise ValueError(
                    f"milestone_info block {k + 1}: field 'human_heading' {block.human_heading} "
                    f"is not block {k}'s to_next_intersection_heading {before.to_next_heading}; "
                    "the collector writes each leg's heading in both")
        return self


class RouteFileError(TaskInputError):
    """A route file that Revisor cannot use; the message names file, route and field."""


# ---------------------------------------------------------------------------- milestone_info

_BLOCK = re.compile(r"\{.*?\}", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_SIDE_WORDS = ({" ".join(reversed(s.split())): s for s in SIDES if " " in s} | {s: s for s in SIDES}
               | dict(zip(VIRL_SIDES, SIDES, strict=True)))
"""Every accepted side phrase and the side it means: Revisor's own words (also "front left"
for "left front") and the published collector's ("behind" is "back"); nothing else."""
_SIGHTING = re.compile(
    r"\s*(?:and\s+)?(?P<name>.+?)\s+is\s+(?:on\s+)?(?:your|the)\s+(?P<side>"
    + "|".join(r"\s+".join(w.split()) for w in sorted(_SIDE_WORDS, key=len, reverse=True))
    + r")\b\s*[.,;]?",
    re.IGNORECASE,
)
_DESTINATION = re.compile(r"^the\s+destination\s+", re.IGNORECASE)
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:\(\s*[a-z ]*\)|m|meters?|metres?)?\s*$",
                     re.IGNORECASE)
_NO_LANDMARKS = {"", "none", "n/a", "null", "no landmark nearby", "no landmarks nearby"}
"""What a block says when no landmark is in sight (the collector writes "No landmark nearby")."""
_FILE_KEYS = {"distance_m": "distance", "to_next_heading": "to_next_intersection_heading"}


def parse_milestone_info(text: object) -> tuple[Milestone, ...]:
    """Read the `milestone_info` string: pseudo-JSON blocks, each with a trailing comma.

    Raises ValueError naming the block and key at the first problem.
    """
    if not isinstance(text, str):
        raise ValueError(f"milestone_info must be a string of blocks, got {type(text).__name__}")
    blocks = _BLOCK.findall(text)
    if not blocks:
        raise ValueError("milestone_info holds no {...} blocks")
    return tuple(_parse_block(block, k + 1) for k, block in enumerate(blocks))


def _parse_block(block: str, number: int) -> Milestone:
    where = f"milestone_info block {number}"
    try:
        fields = json.loads(_TRAILING_COMMA.sub(r"\1", block))
    except json.JSONDecodeError as error:
        raise ValueError(f"{where} is not a readable block: {error.msg}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{where} is not a block of key/value pairs")

    def field(key: str) -> Any:
        if key not in fields:
            raise ValueError(f"{where}: field '{key}' is missing")
        return fields[key]

    values = {
        "intersection_idx": _number(field("intersection_idx"), where, "intersection_idx"),
        "landmarks": parse_sightings(field("landmarks"), where),
        "distance_m": _number(field("distance"), where, "distance"),
        "human_heading": _heading(field("human_heading"), where, "human_heading"),
        "to_next_heading": _heading(field("to_next_intersection_heading"), where,
                                    "to_next_intersection_heading"),
    }
    try:
        return Milestone(**values)
    except ValidationError as error:
        first = error.errors()[0]
        key = _FILE_KEYS.get(str(first["loc"][0]), first["loc"][0])
        raise ValueError(f"{where}: field '{key}': {first['msg']}") from None


def parse_sightings(text: object, where: str = "milestone") -> tuple[Sighting, ...]:
    """Read "X is on your left, The destination Y is on your right front" into sightings."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: field 'landmarks' must be a string")
    if text.strip().lower() in _NO_LANDMARKS:
        return ()
    sightings, position = [], 0
    while position < len(text) and text[position:].strip():
        match = _SIGHTING.match(text, position)
        if match is None:
            raise ValueError(f"{where}: field 'landmarks': cannot read {text[position:]!r}; "
                             f"expected '<name> is on your <side>' with <side> one of "
                             f"{', '.join(sorted(_SIDE_WORDS))}")
        name = match.group("name").strip()
        destination = _DESTINATION.match(name)
        side = _SIDE_WORDS[" ".join(match.group("side").lower().split())]
        sightings.append(Sighting(name=name[destination.end():] if destination else name,
                                  side=side, is_destination=bool(destination)))
        position = match.end()
    return tuple(sightings)


def _number(value: object, where: str, key: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    match = _NUMBER.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{where}: field '{key}' must be a number, got {value!r}")
    number = float(match.group(1))
    return int(number) if number.is_integer() else number


def _heading(value: object, where: str, key: str) -> int:
    number = _number(value, where, key)
    if not (0 <= number <= 360) or number != int(number):
        raise ValueError(f"{where}: field '{key}' must be whole degrees in [0, 360], got {value!r}")
    return int(number) % 360


# ---------------------------------------------------------------------------- loading

def load_routes(path: str | Path) -> tuple[Route, ...]:
    """Every route of a JSON route file (`[routes, count]` as published, or a plain list)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RouteFileError(f"{path}: cannot read the route file: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RouteFileError(f"{path}: not valid JSON: {error}") from None
    raw_routes = _route_list(data, path)
    routes = tuple(_route(raw, i, path) for i, raw in enumerate(raw_routes))
    if not routes:
        raise RouteFileError(f"{path}: the file holds no routes")
    return routes


def _route_list(data: object, path: Path) -> list[Any]:
    """The routes of a file: `[routes, count]`, a plain list of routes, or one route object
    (how the collector's per-task files hold a single route). The collector's count is the
    number of destinations it tried, so it may exceed the routes it kept, never fall short."""
    if isinstance(data, dict):
        return [data]
    if (isinstance(data, list) and len(data) == 2 and isinstance(data[0], list)
            and not isinstance(data[1], (list, dict))):
        routes, count = data
        if not isinstance(count, int) or isinstance(count, bool) or count < len(routes):
            raise RouteFileError(f"{path}: the route count {count!r} after the route list is "
                                 f"below its {len(routes)} routes")
        return routes
    if isinstance(data, list):
        return data
    raise RouteFileError(f"{path}: expected a JSON list [routes, count], a list of routes or "
                         f"one route object, got {type(data).__name__}")


def _route(raw: object, index: int, path: Path) -> Route:
    if not isinstance(raw, dict):
        raise RouteFileError(f"{path}: route {index}: expected an object, got {type(raw).__name__}")
    where = f"{path}: route {index} ({_place_name(raw, 'start_place')} -> " \
            f"{_place_name(raw, 'dest_place')})"
    try:
        route = route_from_file_dict(raw, f"{path.stem}:{index}", path.parent)
    except ValueError as error:
        raise RouteFileError(f"{where}: {error}") from None
    _check_images_exist(route, where)
    return route


def route_from_file_dict(raw: dict[str, Any], route_id: str, folder: Path | None = None) -> Route:
    """One route of a file, read in the collector's meaning (see the module docstring).

    Image paths are taken relative to `folder` when one is given. Raises ValueError naming the
    field, and the block of `milestone_info`, at the first problem.
    """
    blocks = parse_milestone_info(raw.get("milestone_info"))
    images = raw.get("images", ())
    fields = {
        **{key: raw[key] for key in ("start_place", "dest_place", "route_results") if key in raw},
        "init_heading": _start_heading(raw.get("init_heading", 0), blocks[0].human_heading),
        "milestones": blocks,
        "revisor": _extension(raw.get("revisor", {})),
        "images": _resolve_images(images, folder) if folder is not None else images,
    }
    try:
        file_route = _FileRoute.model_validate(fields)
    except ValidationError as error:
        raise ValueError(describe_error(error)) from None
    return _from_file(file_route, route_id, _region(raw))


def _extension(raw: object) -> object:
    """The `revisor` object with its landmark string read into sightings."""
    if not isinstance(raw, dict):
        raise ValueError(f"field revisor must be an object, got {type(raw).__name__}")
    if "start_landmarks" not in raw:
        return raw
    return {**raw, "start_landmarks": parse_sightings(raw["start_landmarks"],
                                                      "revisor.start_landmarks")}


def _from_file(file: _FileRoute, route_id: str, city: str) -> Route:
    """Revisor's route for a file's: the start becomes key point 0, every heading moves one leg.

    File block i is the leg into file point i, so it becomes milestone i (milestone 0 is the
    start): its `to_next_intersection_heading` is the heading on arrival (`human_heading`, which
    its sides are relative to) and the previous milestone's heading out. The last milestone's
    heading out, to the destination place, is the bearing to it, truncated like the collector's
    headings. What the file cannot say (landmarks at the start) comes from `revisor`.
    """
    blocks, extension, results = file.milestones, file.revisor, file.route_results
    start = file.start_place.relocated_geocode or file.start_place.geocode
    points = (start, *results.geocode_list)
    start_distance = extension.start_distance
    if start_distance is None:
        start_distance = round(metres_between(file.start_place.geocode, start))
    dest_heading = extension.dest_heading
    if dest_heading is None:
        dest_heading = int(bearing(points[-1], file.dest_place.geocode)) % 360
    headings_out = [block.to_next_heading for block in blocks] + [dest_heading]
    first = Milestone(intersection_idx=1, landmarks=extension.start_landmarks,
                      distance_m=start_distance, human_heading=file.init_heading or 0,
                      to_next_heading=headings_out[0])
    later = [Milestone(intersection_idx=k + 2, landmarks=block.landmarks,
                       distance_m=block.distance_m, human_heading=block.to_next_heading,
                       to_next_heading=headings_out[k + 1])
             for k, block in enumerate(blocks)]
    return Route(
        route_id=route_id, city=city,
        start_place=Place.model_validate(file.start_place.model_dump(exclude={"relocated_geocode"})),
        dest_place=file.dest_place,
        route_results=RouteResults(
            geocode_list=points,
            distance_list=(start_distance, *results.distance_list) if results.distance_list else (),
            landmark_list=((extension.start_landmark, *results.landmark_list)
                           if results.landmark_list else ())),
        init_heading=file.init_heading, milestones=(first, *later), images=file.images)


def _start_heading(init_heading: object, first_human_heading: int) -> object:
    """The route's own start heading, or None for one drawn per episode.

    The V-IRL collector writes its start heading twice: as `init_heading` and as the first
    block's `human_heading`. The published files hold 0 in both, which V-IRL's environment
    reads as "draw one at random". So a nonzero value in either place is the route's own
    heading, and two different nonzero values are an error. An `init_heading` that is not a
    heading at all is returned as it is, for the Route model to reject with its field named.
    """
    if isinstance(init_heading, float) and init_heading.is_integer():
        init_heading = int(init_heading)
    if init_heading == 0 and not isinstance(init_heading, bool):
        return first_human_heading or None
    if (isinstance(init_heading, int) and not isinstance(init_heading, bool)
            and first_human_heading and init_heading != first_human_heading):
        raise ValueError(f"field init_heading: {init_heading} disagrees with milestone_info "
                         f"block 1 human_heading {first_human_heading}; both are the start "
                         "heading (0 in either means 'not given')")
    return init_heading


def describe_error(error: ValidationError) -> str:
    """The first problem of a validation error as 'field a.b[2].c: message'."""
    first = error.errors()[0]
    location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
    location = location.lstrip(".")
    if not location:
        return first["msg"].removeprefix("Value error, ")
    return f"field {location}: {first['msg']}"


def _place_name(raw: dict[str, Any], key: str) -> str:
    place = raw.get(key)
    name = place.get("name") if isinstance(place, dict) else None
    return name if isinstance(name, str) and name.strip() else "?"


def _region(raw: dict[str, Any]) -> str:
    place = raw.get("start_place")
    region = place.get("region") if isinstance(place, dict) else None
    return region if isinstance(region, str) else ""


def _resolve_images(images: object, folder: Path) -> object:
    if not isinstance(images, list):
        return images
    resolved = []
    for image in images:
        if isinstance(image, dict) and isinstance(image.get("path"), str) and image["path"]:
            image = {**image, "path": str(folder / image["path"])}
        resolved.append(image)
    return resolved


def _check_images_exist(route: Route, where: str) -> None:
    for i, image in enumerate(route.images):
        if not Path(image.path).is_file():
            raise RouteFileError(f"{where}: field images[{i}].path: no such file {image.path}")


# ---------------------------------------------------------------------------- writing

def route_to_file_dict(route: Route) -> dict[str, Any]:
    """The route in the published file shape and the collector's meaning (`milestone_info`
    string included): the inverse of `route_from_file_dict`, see `_from_file`."""
    milestones = route.milestones
    data = route.model_dump(mode="json", include={"start_place", "dest_place"})
    data["start_place"]["relocated_geocode"] = list(route.key_points[0])
    data["start_place"]["region"] = data["dest_place"]["region"] = route.city
    results = route.route_results.model_dump(mode="json")
    data["route_results"] = {key: results[key][1:]
                             for key in ("geocode_list", "distance_list", "landmark_list")}
    data["init_heading"] = route.init_heading or 0
    data["milestone_info"] = "".join(
        _milestone_block(k, m, milestones[k - 1].human_heading)
        for k, m in enumerate(milestones) if k)
    data["revisor"] = {
        "start_landmarks": _landmarks_text(milestones[0].landmarks),
        "start_distance": milestones[0].distance_m,
        "start_landmark": results["landmark_list"][0] if results["landmark_list"] else None,
        "dest_heading": milestones[-1].to_next_heading,
    }
    if route.images:
        data["images"] = [image.model_dump(mode="json") for image in route.images]
    return data


def save_routes(routes: Sequence[Route], path: str | Path) -> None:
    """Write routes as a `[routes, count]` file that `load_routes` (and V-IRL tools) read.

    Every route is read back before anything is written, and a route the file shape cannot hold
    exactly raises ValueError naming the first field that would change: chiefly one whose
    heading out of a key point is not the heading on arrival at the next (the file states each
    leg's heading once), or whose first milestone's `human_heading` is not its start heading.
    """
    records = []
    for route in routes:
        record = route_to_file_dict(route)
        again = route_from_file_dict(json.loads(json.dumps(record)), route.route_id)
        if again != route:
            where = _first_difference(route.model_dump(), again.model_dump())
            raise ValueError(f"route {route.route_id}: the route file shape cannot hold its "
                             f"{where} exactly")
        records.append(record)
    Path(path).write_text(json.dumps([records, len(records)], indent=1), encoding="utf-8")


def _first_difference(a: object, b: object, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a:
            if a[key] != b.get(key):
                return _first_difference(a[key], b.get(key), f"{where}.{key}".lstrip("."))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return where


def sighting_text(sighting: Sighting, side: str | None = None) -> str:
    """"X is on your left" (with "The destination " before the destination's name)."""
    prefix = "The destination " if sighting.is_destination else ""
    return f"{prefix}{sighting.name} is on your {side or sighting.side}"


def _landmarks_text(sightings: Sequence[Sighting]) -> str:
    """A block's `landmarks` in the collector's words ("left behind", "No landmark nearby")."""
    phrases = dict(zip(SIDES, VIRL_SIDES, strict=True))
    return ", ".join(sighting_text(s, phrases[s.side]) for s in sightings) or "No landmark nearby"


def _milestone_block(number: int, m: Milestone, heading_before: int) -> str:
    """Block `number` of `milestone_info` for the leg into key point `number` (milestone m)."""
    fields = {
        "intersection_idx": str(number),
        "landmarks": _landmarks_text(m.landmarks),
        "distance": f"{m.distance_m:g} meters",
        "human_heading": str(heading_before),
        "to_next_intersection_heading": f"{m.human_heading} ({compass(m.human_heading)})",
    }
    lines = "".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n"
                    for k, v in fields.items())
    return "\n{\n" + lines + "}\n"
