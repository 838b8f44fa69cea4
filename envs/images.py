"""Image references: what trajectories store instead of pixels, and the one registry that
turns a reference back into its picture.

An environment names every image it shows with a reference string '<kind>:<body>' that is
enough to paint the image again, and registers a renderer for its kind. The learner (and
anything else that needs the pixels of a stored turn) calls `render_image_ref`, so images
never travel through the object store and no consumer knows any environment's rendering.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from PIL import Image

ImageRenderer = Callable[[str], Image.Image]
"""The body of a reference (after '<kind>:') -> the image it names."""

_RENDERERS: dict[str, ImageRenderer] = {}


def register_image_kind(kind: str, renderer: ImageRenderer) -> None:
    """Make `render_image_ref` paint references '<kind>:...' with `renderer`."""
    if ":" in kind or not kind:
        raise ValueError(f"image kind {kind!r} must be a non-empty name without ':'")
    _RENDERERS[kind] = renderer


@lru_cache(maxsize=512)
def render_image_ref(ref: str) -> Image.Image:
    """The picture an environment named `ref`; the same reference always gives the same pixels."""
    kind, colon, body = ref.partition(":")
    if not colon or kind not in _RENDERERS:
        known = ", ".join(sorted(_RENDERERS)) or "none registered"
        raise ValueError(f"image reference {ref[:80]!r}: no renderer for kind {kind!r} "
                         f"(kinds: {known})")
    return _RENDERERS[kind](body)
