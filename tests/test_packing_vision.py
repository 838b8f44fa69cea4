"""Vision-language episodes read as one sequence (learner.packing) read what one row per turn reads.

For each family the learner trains (LLaVA: placeholders expanded to feature tokens, pixels
independent of the text; Mllama: a text-aligned cross-attention mask; Qwen2-VL: expanded
placeholders and M-RoPE positions from the ids and image grids) the packed and the per-turn
layouts must give the same answer log-probs, entropies and values (fp32), the same PPO loss
and the same gradients. Episodes are grown as rollout workers grow them (the chat template's
opening with the images, each next prompt = prompt + answer as sampled + feedback) and their
image inputs built as the learner builds them (VisionInputs.expand, real processors). One
episode shows two images, one a single image, one gets a second image with a later feedback
(it moves where Mllama's first image stops being seen), and one opens without an image and
gets one later. Those two pack for LLaVA and Qwen2-VL; Mllama reads them per turn, since its
tokens before the first image attend to every image of the row (model_inputs.vision,
CrossAttention.reads_as_prefix). Episodes whose images are not the last turn's first ones
fall back, and say so.
"""

from __future__ import annotations

import dataclasses
import random
import zlib
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from contracts.episode import Observation
from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch
from learner.batch import MicroBatch, Turns, collate_turns, turns_from_record_batches
from learner.model import PolicyValueModel, ValueHead, text_config
from learner.packing import NOT_EXTENDING, VISION, Unit, collate_units, plan_units, read_stats
from learner.vision import VisionInputs
from model_inputs.dialogue import DialogueTokens
from model_inputs.vision import placeholder_ids
from rollout_workers.tiny_models.build import build_model
from tests.test_packing import TEMPERATURE, _loss, layout_errors

torch.set_num_threads(1)
KINDS = ("vlm", "mllama", "qwen2vl")
"""The tiny LLaVA, Mllama and Qwen2-VL."""
ADDED_IMAGE_FALLS_BACK = {"mllama"}
"""Families whose episodes that add an image after the first turn are read per turn."""


def render(ref: str) -> Image.Image:
    """A GeneralPoints-hand-sized image (56 x 140) of noise seeded by its reference."""
    rng = np.random.default_rng(zlib.crc32(ref.encode()))
    return Image.fromarray(rng.integers(0, 256, (56, 140, 3), dtype=np.uint8))


@dataclasses.dataclass
class Family:
    kind: str
    model: PolicyValueModel
    processor: Any
    dialogue: DialogueTokens
    image_ids: list[int]
    """The ids one image adds to a user message (its placeholder, as the template writes it)."""
    vocab: list[int]
    """Ids an answer is drawn from: plain text, never a placeholder."""


@pytest.fixture(scope="module", params=KINDS)
def family(request: pytest.FixtureRequest) -> Family:
    return make_family(request.param)


def make_family(kind: str) -> Family:
    """The tiny model of `kind` in fp32 with a value head, and its real processor."""
    backbone, processor = build_model(kind, "0.5m", seed=0)
    head = ValueHead(text_config(backbone.config).hidden_size, 64)
    torch.nn.init.normal_(head.net[-1].weight, std=0.5)  # values worth comparing
    model = PolicyValueModel(backbone.float(), head, excluded_token_ids=placeholder_ids(processor))
    dialogue = DialogueTokens.from_tokenizer(processor.tokenizer, processor)
    text = "Cards?"
    shown = dialogue.opening(Observation(text=text, images=(render("a"),), image_refs=("a",)))
    plain = dialogue.opening(Observation(text=text))
    head_len = next(i for i, (a, b) in enumerate(zip(shown, plain, strict=False)) if a != b)
    image_ids = shown[head_len : head_len + len(shown) - len(plain)]
    assert shown == plain[:head_len] + image_ids + plain[head_len:]
    vocab = sorted(set(dialogue.encode("abcdefghijklmnopqrstuvwxyz0123456789+-*/()= ")))
    assert not set(vocab) & set(placeholder_ids(processor))
    return Family(kind, model.eval(), processor, dialogue, image_ids, vocab)


def episode(family: Family, name: str, turns: int, rng: random.Random, opening: tuple[str, ...],
            added: dict[int, tuple[str, ...]] | None = None) -> EpisodeRecord:
    """An episode grown as a rollout worker grows it, showing the images `opening` first and
    those of added[t] with the feedback after turn t. The second answer is cut at max_tokens."""
    record = EpisodeRecord(name, "gp-vl", "id", rng.randrange(10**6))
    dialogue, refs = family.dialogue, opening
    prompt = dialogue.opening(Observation(text=f"Make 24 from {name}.",
                                          images=tuple(render(r) for r in refs), image_refs=refs))
    for t in range(turns):
        response = [rng.choice(family.vocab) for _ in range(rng.randrange(3, 9))]
        response += [] if t == 1 else dialogue.close_ids[:1]
        record.turns.append(TurnRecord(
            prompt_ids=prompt, response_ids=response,
            response_logprobs=[-rng.random() for _ in response], policy_version=0,
            truncated=t == 1, reward=5.0 if t + 1 == turns else -1.0, done=t + 1 == turns,
            success=False, outcome="x", feedback="", parsed_answer="", recognition_ok=None,
            restart=False, image_refs=refs))
        new = (added or {}).get(t, ())
        feedback = dialogue.continuation(response, f"Wrong, try {t}.")
        if new:  # the feedback's user message opens with its images, as the template writes them
            at = len(feedback) - len(dialogue.encode(f"Wrong, try {t}.")) - len(dialogue.user_close_ids)
            feedback = feedback[:at] + family.image_ids * len(new) + feedback[at:]
            refs = refs + new
        prompt = prompt + response + feedback
    return record


def expand(family: Family, records: list[EpisodeRecord]) -> Turns:
    """The turns with their image inputs, as the learner builds them from image references."""
    turns = turns_from_record_batches([to_record_batch(records, "w")])
    return VisionInputs("", resolver=render, processor=family.processor).expand(turns)


def make_turns(family: Family) -> Turns:
    rng = random.Random(5)
    return expand(family, [
        episode(family, "ep0", 4, rng, ("hand-0", "hand-1")),
        episode(family, "ep1", 4, rng, ("hand-2",), added={1: ("hand-3",)}),
        episode(family, "ep2", 3, rng, (), added={0: ("hand-4",)}),
        episode(family, "ep3", 3, rng, ("hand-5",))])


def expected_fallback(family: Family) -> dict[str, int]:
    return {VISION: 2} if family.kind in ADDED_IMAGE_FALLS_BACK else {}


def both_layouts(family: Family, turns: Turns) -> tuple[MicroBatch, MicroBatch]:
    """(per-turn, packed) micro-batches of every turn, turns in the same order."""
    plan = plan_units(turns)
    assert plan.fallback == expected_fallback(family)
    assert sum(u.packed for u in plan.units) == 4 - sum(plan.fallback.values())
    packed = collate_units(turns, plan.units, pad_id=0)
    per_turn = collate_turns(turns, list(range(len(turns))), pad_id=0)
    assert packed.rows == per_turn.rows and packed.input_ids.shape[0] < len(turns)
    return per_turn, packed


def forward(model: PolicyValueModel, micro: MicroBatch):
    return model(**micro.model_inputs(), temperature=TEMPERATURE)


def test_vision_episodes_pack_and_place_each_token_once(family: Family) -> None:
    turns = make_turns(family)
    assert turns.image_refs[5] != turns.image_refs[6]  # ep1 shows its second image from turn 2
    per_turn, packed = both_layouts(family, turns)
    assert layout_errors(turns, per_turn) == [] and layout_errors(turns, packed) == []
    assert packed.input_ids.numel() < per_turn.input_ids.numel()
    stats = read_stats(turns, plan_units(turns))
    vision = expected_fallback(family).get(VISION, 0)
    assert stats["packed_share"] == 1 - vision / 4 and stats["pack_fallback_vision"] == vision
    # The check catches a shifted, a dropped and a duplicated token.
    assert layout_errors(turns, MicroBatch(**{**packed.__dict__, "logit_cols": packed.logit_cols - 1}))
    for keep in (slice(1, None), [0, *range(len(packed.targets))]):
        assert layout_errors(turns, MicroBatch(**{
            **packed.__dict__, "targets": packed.targets[keep],
            "logit_rows": packed.logit_rows[keep], "logit_cols": packed.logit_cols[keep]}))


def test_packed_and_per_turn_give_the_same_logprobs_and_values(family: Family) -> None:
    turns = make_turns(family)
    per_turn, packed = both_layouts(family, turns)
    with torch.no_grad():
        a, b = forward(family.model, per_turn), forward(family.model, packed)
        shifted = forward(family.model, MicroBatch(**{**packed.__dict__,
                                                      "logit_cols": packed.logit_cols - 1}))
        blank = {k: torch.zeros_like(v) if k == "pixel_values" else v
                 for k, v in packed.vision_inputs.items()}
        unseen = forward(family.model, dataclasses.replace(packed, vision_inputs=blank))
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and (x - y).abs().max() < 1e-5
    assert a[2].abs().max() > 0.01  # values that are not all zero
    # The tolerance means something: a shift by one column, or other pixels, are far off.
    assert (shifted[0] - a[0]).abs().max() > 1e-2
    assert (unseen[0] - a[0]).abs().max() > 1e-4


def test_packed_and_per_turn_give_the_same_loss_and_gradients(family: Family) -> None:
    turns, model = make_turns(family), family.model
    grads, losses = [], []
    for micro in both_layouts(family, turns):
        model.zero_grad()
        loss = _loss(model, micro, turns, seed=3)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    model.zero_grad()
    assert abs(losses[0] - losses[1]) < 1e-5
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cosine > 0.99999 and grads[0].norm() > 0


def test_episodes_whose_images_are_not_the_last_turns_first_fall_back(family: Family) -> None:
    """Another image in place of the first (V-IRL's next view, were the dialogue kept), the
    images in another order are read per turn, and a restart (V-IRL after a correct action)
    one sequence per run of turns; the episodes that pack in the same batch still read as
    their own rows do."""
    rng = random.Random(9)
    records = [episode(family, f"ep{e}", 3, rng, ("hand-0", "hand-1")) for e in range(4)]
    swapped = {0: ("hand-5", "hand-1"), 1: ("hand-1", "hand-0")}
    for e, refs in swapped.items():
        records[e].turns[2].image_refs = refs
    records[2].turns[1].restart = True  # V-IRL's next position: a fresh dialogue
    records[2].turns[2].prompt_ids = records[2].turns[0].prompt_ids
    turns = expand(family, records)
    plan = plan_units(turns)
    assert plan.fallback == {VISION: 2, NOT_EXTENDING: 1}
    assert [(len(u.rows), u.packed, u.whole) for u in plan.units] == [
        (1, False, False)] * 6 + [(2, True, False), (1, False, False), (3, True, True)]
    assert read_stats(turns, plan)["pack_fallback_vision"] == 2
    micro = collate_units(turns, plan.units, pad_id=0)
    per_turn = collate_turns(turns, micro.rows, pad_id=0)
    with torch.no_grad():
        for x, y in zip(forward(family.model, micro), forward(family.model, per_turn), strict=True):
            assert (x - y).abs().max() < 1e-5


def test_mllama_falls_back_where_a_packed_row_would_read_otherwise(family: Family) -> None:
    """Mllama's tokens before the first image attend to every image of their row: packed
    anyway, an episode that adds an image later reads other numbers than its own rows. And
    its mask is text-aligned: an earlier turn that sees other images over its tokens than the
    last turn's mask shows there cannot read through the last turn's row."""
    if family.kind not in ADDED_IMAGE_FALLS_BACK:
        pytest.skip("only Mllama's image inputs are text-aligned")
    turns = make_turns(family)
    assert plan_units(turns).fallback == {VISION: 2}  # ep1 and ep2, which add an image
    forced = [Unit(tuple(rows), packed=True) for rows in turns.episodes().values()]
    with torch.no_grad():
        per_turn = forward(family.model, collate_turns(turns, list(range(len(turns))), pad_id=0))
        packed = forward(family.model, collate_units(turns, forced, pad_id=0))
    assert (per_turn[0] - packed[0]).abs().max() > 1e-3
    mask = turns.vision[0]["cross_attention_mask"].clone()
    mask[:, -1] = 0  # turn 0's last prompt token (and so its answer) sees no image
    turns.vision[0] = {**turns.vision[0], "cross_attention_mask": mask}
    assert plan_units(turns).fallback == {VISION: 3}
