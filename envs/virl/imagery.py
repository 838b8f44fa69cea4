"""Street-view photos for V-IRL-VL, when a user has them: lookup by position and heading.

Revisor reads photo tables as JSON (a list of {"lat", "lng", "heading", "path"} records, or
{"geocode": [lat, lng], ...}) or Parquet (columns lat, lng, heading, path), never pickles.
The original project's GPS-to-panorama pickle can be converted once, knowingly, as described
in envs/virl/README.md. Relative paths are relative to the table's folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from envs.virl.geometry import distance_m, signed_turn
from envs.virl.routes import ImageRef, RouteFileError, describe_error

MAX_PHOTO_DISTANCE_M = 20.0
"""A photo farther than this from the walker does not show the walker's position."""
MAX_PHOTO_TURN_DEG = 45.0
"""A photo looking more than this away from a view's heading does not show that view."""


def load_image_table(path: str | Path) -> tuple[ImageRef, ...]:
    """Every photo record of a JSON or Parquet table; errors name the file, row and field."""
    path = Path(path)
    rows = _parquet_rows(path) if path.suffix == ".parquet" else _json_rows(path)
    photos = []
    for i, row in enumerate(rows):
        if isinstance(row, dict) and "geocode" not in row and {"lat", "lng"} <= row.keys():
            row = {**row, "geocode": (row["lat"], row["lng"])}
        if isinstance(row, dict) and isinstance(row.get("path"), str) and row["path"]:
            row = {**row, "path": str(path.parent / row["path"])}
        try:
            photos.append(ImageRef.model_validate(row))
        except ValidationError as error:
            raise RouteFileError(f"{path}: row {i}: {describe_error(error)}") from None
    return tuple(photos)


def _json_rows(path: Path) -> list[Any]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RouteFileError(f"{path}: cannot read the photo table: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RouteFileError(f"{path}: not valid JSON: {error}") from None
    if not isinstance(rows, list):
        raise RouteFileError(f"{path}: expected a JSON list of photo records")
    return rows


def _parquet_rows(path: Path) -> list[Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise RouteFileError(f"{path}: reading Parquet needs pyarrow installed") from None
    return pq.read_table(path, columns=["lat", "lng", "heading", "path"]).to_pylist()


def find_photo(photos: Sequence[ImageRef], geocode: tuple[float, float],
               heading: float) -> ImageRef | None:
    """The photo nearest to `geocode` that looks along `heading`, if one is close enough."""
    best, best_key = None, None
    for photo in photos:
        turn = abs(signed_turn(photo.heading, heading))
        if turn > MAX_PHOTO_TURN_DEG:
            continue
        distance = distance_m(photo.geocode, geocode)
        if distance <= MAX_PHOTO_DISTANCE_M and (best_key is None or (distance, turn) < best_key):
            best, best_key = photo, (distance, turn)
    return best
