"""GP-VL pictures: the tiles layout is readable at the tiny towers' sizes, the study's layout is
unchanged, references carry the layout, and bad settings name their field.

Readable means the renderer's own inverse (envs/general_points/reading.py) reads every card
back from what the tiny model's processor hands its tower: a bar for the pixels, not a claim
that any model learns to see them.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from contracts.tasks import CardImage, ColourSet, GPConfig
from envs.general_points import make_episode
from envs.general_points.cards import Card
from envs.general_points.reading import HAND_SIZE, CardReader, deck
from envs.general_points.render import hand_ref, render_hand
from envs.images import render_image_ref
from rollout_workers.tiny_models import build, mllama, qwen2vl
from rollout_workers.tiny_models.presets import MLLAMA_PRESETS, VISION_PRESETS
from rollout_workers.tiny_models.seen import tower_view

HAND = tuple(Card(rank=r, suit=s) for r, s in
             (("A", "spades"), ("7", "clubs"), ("10", "hearts"), ("K", "diamonds")))
STUDY_SHA256 = "e855a79c0fafcf224dfef969ddd374921572c179f0f4c515c87b51fea4e3d7c8"
"""sha256 of the study layout's pixels for HAND, computed with main's renderer (105b69b)."""
COLOURS: tuple[ColourSet, ...] = ("black", "red", "mixed")


def processors() -> dict[str, object]:
    """The 0.5m presets' image processors: the smallest views the tiny models get."""
    return {"llava": build.image_processor(VISION_PRESETS["0.5m"]),
            "mllama": mllama.image_processor(MLLAMA_PRESETS["0.5m"].vision),
            "qwen2vl": qwen2vl.image_processor(qwen2vl.QWEN2VL_VISION_PRESETS["0.5m"])}


@pytest.mark.parametrize("colours", COLOURS)
@pytest.mark.parametrize("family", ["llava", "mllama", "qwen2vl"])
def test_every_card_is_read_back_from_what_the_smallest_towers_see(family, colours):
    processor = processors()[family]
    reader = CardReader(CardImage(), colours, lambda picture: tower_view(processor, picture))
    cards, rng = deck(colours), random.Random(0)
    shuffled = rng.sample(cards, len(cards))
    hands = [tuple(shuffled[i:i + HAND_SIZE]) for i in range(0, len(cards), HAND_SIZE)]
    hands[-1] = (hands[-1] + tuple(shuffled))[:HAND_SIZE]  # 26 cards: the last hand is topped up
    for hand in hands:
        assert reader.read_hand(hand) == hand
    assert {card for hand in hands for card in hand} == set(cards)


def test_under_pixel_noise_the_tiles_still_read_where_the_study_strip_fails():
    """Gaussian noise of 128 grey levels on the 0.5m LLaVA tower's 64x64 view: every card of
    the tiles is read back, the study's strip (13x52 pixels a card) loses about one in five."""
    processor = processors()["llava"]
    rng = np.random.default_rng(0)
    for look, least, most in ((CardImage(), 1.0, 1.0), (CardImage(layout="study"), 0.5, 0.95)):
        reader = CardReader(look, "mixed", lambda picture: tower_view(processor, picture))
        right = 0
        for index, card in enumerate(reader.cards):
            hand = tuple(card if i == index % HAND_SIZE else reader.cards[(index + 13 * i) % 52]
                         for i in range(HAND_SIZE))
            source = render_hand(hand, look)
            pixels = np.asarray(tower_view(processor, source), dtype=np.float32)
            noisy = np.clip(np.rint(pixels + rng.normal(0, 128, pixels.shape)), 0, 255)
            distances = reader.distances(Image.fromarray(noisy.astype(np.uint8)), index % 4, source)
            right += reader.cards[distances.index(min(distances))] == card
        assert least <= right / len(reader.cards) <= most, (look.layout, right)


def test_the_tiles_fill_the_llava_towers_patches_one_card_each():
    for size in ("0.5m", "5m"):
        vision = VISION_PRESETS[size]
        view = tower_view(build.image_processor(vision), render_hand(HAND))
        assert view.size == (vision.image_size,) * 2 and vision.tokens_per_image == HAND_SIZE


def test_the_study_layout_renders_as_before():
    image = render_hand(HAND, CardImage(layout="study"))
    assert image.size == (480, 172)
    assert hashlib.sha256(image.tobytes()).hexdigest() == STUDY_SHA256


@pytest.mark.parametrize("look", [CardImage(layout="study"), CardImage(),
                                  CardImage(layout="tiles", tile_px=40)])
def test_references_carry_the_layout(look):
    ref = hand_ref(HAND, look)
    assert render_image_ref(ref).tobytes() == render_hand(HAND, look).tobytes()


def test_references_stored_before_layouts_name_the_study_picture():
    old = "gp:A-spades,7-clubs,10-hearts,K-diamonds"
    assert hand_ref(HAND, CardImage(layout="study")) == old
    assert hashlib.sha256(render_image_ref(old).tobytes()).hexdigest() == STUDY_SHA256
    assert hand_ref(HAND) == "gp:tiles/64:A-spades,7-clubs,10-hearts,K-diamonds"


def test_episodes_show_and_name_their_configured_picture():
    config = GPConfig(vision=True, image=CardImage(layout="tiles", tile_px=32))
    observation = make_episode(config, 3).observe()
    assert observation.images[0].size == (64, 64)
    assert observation.image_refs[0].startswith("gp:tiles/32:")
    assert render_image_ref(observation.image_refs[0]).tobytes() == observation.images[0].tobytes()


@pytest.mark.parametrize(("image", "field"), [({"layout": "grid"}, "image.layout"),
                                              ({"tile_px": 8}, "image.tile_px"),
                                              ({"tiles": 4}, "image.tiles")])
def test_bad_image_settings_name_their_field(image, field):
    with pytest.raises(ValidationError) as caught:
        GPConfig(vision=True, image=image)
    assert [".".join(map(str, e["loc"])) for e in caught.value.errors()] == [field]
