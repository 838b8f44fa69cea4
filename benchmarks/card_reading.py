"""Can a tiny tower's input tell the cards apart? GP-VL layouts read back by template match.

For each layout, model family and preset size, every card of each colour set is put in each
of the four places of a hand (the other three drawn at random from the same colour set), the
hand is drawn, passed through the tiny model's image processor (`tower_view`: the pixels the
tower gets), optionally given Gaussian pixel noise, and read back by the renderer's own
inverse (envs/general_points/reading.py: the nearest of the colour set's cards drawn alone
in that place). `accuracy` is the share of cards read right; `noisy_accuracy` the same with
noise of `noise` grey levels per pixel and channel, a stand-in for how exactly a learnt
tower must see; `separation` is the least L2 distance (grey levels) between two different
cards' templates in one place, `rank_separation` between two cards of different ranks (all
the GP-VL check asks for): the bigger, the more noise a reading survives. `card` is the size
of one card's box in the tower's view.

Usage: .venv/bin/python benchmarks/card_reading.py [--noise 64] [--seed 0]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import itertools
import json
import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageStat
from pydantic import BaseModel, ConfigDict, Field

from benchmarks.cli import parse_settings
from contracts.tasks import CardImage, ColourSet
from envs.general_points.reading import HAND_SIZE, CardReader, deck, slot_box
from envs.general_points.render import render_hand
from rollout_workers.tiny_models import build, mllama, qwen2vl
from rollout_workers.tiny_models.presets import MLLAMA_PRESETS, SIZES, VISION_PRESETS
from rollout_workers.tiny_models.seen import tower_view

LAYOUTS = {"study": CardImage(layout="study"), "tiles": CardImage(layout="tiles")}
COLOURS: tuple[ColourSet, ...] = ("black", "red", "mixed")


class ReadingBenchmark(BaseModel):
    """What is measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    noise: float = Field(128.0, ge=0)
    """Standard deviation of the Gaussian pixel noise of `noisy_accuracy`, in grey levels."""
    seed: int = 0


def image_processors() -> Iterator[tuple[str, str, Any]]:
    """(family, preset size, image processor) of every tiny vision model."""
    for size in SIZES:
        yield "llava", size, build.image_processor(VISION_PRESETS[size])
        yield "mllama", size, mllama.image_processor(MLLAMA_PRESETS[size].vision)
        yield "qwen2vl", size, qwen2vl.image_processor(qwen2vl.QWEN2VL_VISION_PRESETS[size])


def noisy(view: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    pixels = np.asarray(view, dtype=np.float32) + rng.normal(0.0, sigma, (view.height, view.width, 3))
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def separations(reader: CardReader) -> tuple[float, float]:
    """The least L2 distances, in grey levels, between two different cards' templates and
    between two templates of different ranks."""
    least = least_rank = math.inf
    for row in reader.templates:
        for (i, a), (j, b) in itertools.combinations(enumerate(row), 2):
            distance = sum(ImageStat.Stat(ImageChops.difference(a, b)).sum2)
            least = min(least, distance)
            if reader.cards[i].rank != reader.cards[j].rank:
                least_rank = min(least_rank, distance)
    return math.sqrt(least), math.sqrt(least_rank)


def measure(b: ReadingBenchmark, image: CardImage, colours: ColourSet, processor: Any) -> dict:
    reader = CardReader(image, colours, lambda picture: tower_view(processor, picture))
    cards, rng, noise_rng = deck(colours), random.Random(b.seed), np.random.default_rng(b.seed)
    right = noisy_right = total = 0
    box = (0, 0, 0, 0)
    for card, index in itertools.product(cards, range(HAND_SIZE)):
        hand = [rng.choice(cards) for _ in range(HAND_SIZE)]
        hand[index] = card
        source = render_hand(tuple(hand), image)
        view = tower_view(processor, source)
        box = slot_box(image, index, source, view)
        distances = reader.distances(view, index, source)
        right += cards[distances.index(min(distances))] == card
        distances = reader.distances(noisy(view, b.noise, noise_rng), index, source)
        noisy_right += cards[distances.index(min(distances))] == card
        total += 1
    separation, rank_separation = separations(reader)
    return {"view": "x".join(map(str, view.size)), "card": f"{box[2] - box[0]}x{box[3] - box[1]}",
            "accuracy": round(right / total, 4), "noisy_accuracy": round(noisy_right / total, 4),
            "separation": round(separation), "rank_separation": round(rank_separation),
            "cards_read": total}


def main() -> None:
    b = parse_settings(ReadingBenchmark, __doc__)
    for (family, size, processor), (name, image) in itertools.product(image_processors(),
                                                                      LAYOUTS.items()):
        for colours in COLOURS:
            row = measure(b, image, colours, processor)
            print(json.dumps({"layout": name, "family": family, "size": size,
                              "colours": colours, **row}), flush=True)


if __name__ == "__main__":
    main()
