"""The route data model, in the shape of the public V-IRL route files, and its strict loader.

A route file is a JSON list `[routes, count]`. Each route names a start and a destination
place, lists the key points it passes (start, intersections, destination) as geocodes, and
carries `milestone_info`: one string of pseudo-JSON blocks, one per key point, each ending
with a trailing comma. Revisor reads that string with its own tolerant block reader and then
validates everything strictly, so a malformed file fails at load time with an error naming
the file, the route and the field instead of confusing an episode later.

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

from envs.virl.geometry import SIDES, VIRL_SIDES, compass

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
    """The key points of the route and the landmarks along it."""

    geocode_list: tuple[Geocode, ...] = Field(min_length=2)
    distance_list: tuple[Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)], ...] = ()
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
    """The walker's heading on arrival, which the landmark sides are relative to."""
    to_next_heading: Heading
    """The heading from this key point to the next (to the destination place for the last)."""


class ImageRef(_Model):
    """A street-level photo taken at a position, looking along a heading."""

    geocode: Geocode
    heading: StrictFloat = Field(ge=0, le=360, allow_inf_nan=False)
    path: Name
    """Absolute, or relative to the route file's folder."""


class Route(_Model):
    """One navigation task: walk from the start place to the destination place."""

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
            raise ValueError(f"milestone_info has {len(self.milestones)} blocks but "
                             f"route_results.geocode_list has {n_points} key points")
        for k, milestone in enumerate(self.milestones):
            if milestone.intersection_idx != k + 1:
                raise ValueError(f"milestone_info block {k + 1} has intersection_idx "
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


class RouteFileError(ValueError):
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
    if (isinstance(data, list) and len(data) == 2 and isinstance(data[0], list)
            and not isinstance(data[1], (list, dict))):
        routes, count = data
        if not isinstance(count, int) or isinstance(count, bool) or count != len(routes):
            raise RouteFileError(f"{path}: the route count {count!r} after the route list does "
                                 f"not match its {len(routes)} routes")
        return routes
    if isinstance(data, list):
        return data
    raise RouteFileError(f"{path}: expected a JSON list [routes, count] or a list of routes, "
                         f"got {type(data).__name__}")


def _route(raw: object, index: int, path: Path) -> Route:
    if not isinstance(raw, dict):
        raise RouteFileError(f"{path}: route {index}: expected an object, got {type(raw).__name__}")
    where = f"{path}: route {index} ({_place_name(raw, 'start_place')} -> " \
            f"{_place_name(raw, 'dest_place')})"
    try:
        milestones = parse_milestone_info(raw.get("milestone_info"))
    except ValueError as error:
        raise RouteFileError(f"{where}: {error}") from None
    try:
        init_heading = _start_heading(raw.get("init_heading", 0), milestones[0].human_heading)
    except ValueError as error:
        raise RouteFileError(f"{where}: {error}") from None
    fields = {
        "route_id": f"{path.stem}:{index}",
        "city": _region(raw),
        **{key: raw[key] for key in ("start_place", "dest_place", "route_results") if key in raw},
        "init_heading": init_heading,
        "milestones": milestones,
        "images": _resolve_images(raw.get("images", ()), path.parent),
    }
    try:
        route = Route.model_validate(fields)
    except ValidationError as error:
        raise RouteFileError(f"{where}: {describe_error(error)}") from None
    _check_images_exist(route, where)
    return route


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
    """The route in the published file shape, `milestone_info` string included."""
    data = route.model_dump(mode="json", exclude={"route_id", "city", "milestones", "images"})
    data["init_heading"] = route.init_heading or 0
    data["start_place"]["region"] = route.city
    data["dest_place"]["region"] = route.city
    data["milestone_info"] = "".join(_milestone_block(m) for m in route.milestones) + "\n"
    if route.images:
        data["images"] = [image.model_dump(mode="json") for image in route.images]
    return data


def save_routes(routes: Sequence[Route], path: str | Path) -> None:
    """Write routes as a `[routes, count]` file that `load_routes` (and V-IRL tools) read."""
    records = [route_to_file_dict(route) for route in routes]
    Path(path).write_text(json.dumps([records, len(records)], indent=1), encoding="utf-8")


def sighting_text(sighting: Sighting, side: str | None = None) -> str:
    """"X is on your left" (with "The destination " before the destination's name)."""
    prefix = "The destination " if sighting.is_destination else ""
    return f"{prefix}{sighting.name} is on your {side or sighting.side}"


def _milestone_block(m: Milestone) -> str:
    fields = {
        "intersection_idx": str(m.intersection_idx),
        "landmarks": ", ".join(sighting_text(s) for s in m.landmarks),
        "distance": f"{m.distance_m:g} meters",
        "human_heading": str(m.human_heading),
        "to_next_intersection_heading": f"{m.to_next_heading} ({compass(m.to_next_heading)})",
    }
    lines = "".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},\n"
                    for k, v in fields.items())
    return "\n{\n" + lines + "}\n"
