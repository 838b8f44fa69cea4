"""One sequence per episode (learner.packing) reads exactly what one row per turn reads.

For the same episodes the packed and the per-turn layouts must give the same answer log-probs,
entropies and values (fp32), the same PPO loss and the same gradients; every answer token
must sit once, unshifted, after exactly its turn's prompt; episodes that do not extend each
turn's prompt fall back to per-turn rows, and a batch mixing both trains. Dialogues are built
the way rollout workers build them (model_inputs.dialogue): the tiny Llama template, whose
end-of-turn token is the engine's stop token, and ChatML (SmolLM2), whose `<|im_end|>` is
followed by a newline the engine never emits: that newline opens the next prompt.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import torch

from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch
from learner.batch import MicroBatch, Turns, collate_turns, turns_from_record_batches
from learner.config import PPOConfig
from learner.model import PolicyValueModel, ValueHead
from learner.packing import (
    NOT_EXTENDING,
    VISION,
    collate_units,
    plan_units,
    read_stats,
    split_units,
)
from learner.ppo import PPOInputs, ppo_loss
from model_inputs.dialogue import DialogueTokens, Message, user_message
from rollout_workers.tiny_models.build import build_model

torch.set_num_threads(1)
TEMPERATURE = 0.7
IM_START, IM_END = 1, 2
"""ChatML special token ids of the test's ChatML encoder."""


def chatml_render(messages: list[Message], add_generation_prompt: bool) -> str:
    """SmolLM2's ChatML template: a system prompt, `<|im_end|>\\n` after every turn."""
    text = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    for message in messages:
        text += f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n"
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def chatml_encode(text: str) -> list[int]:
    """Special tokens as themselves, other characters one id each (within the tiny vocab)."""
    ids: list[int] = []
    for piece in re.split(r"(<\|im_start\|>|<\|im_end\|>)", text):
        special = {"<|im_start|>": IM_START, "<|im_end|>": IM_END}.get(piece)
        ids += [special] if special else [10 + ord(c) % 500 for c in piece]
    return ids


def dialogue_tokens(kind: str) -> DialogueTokens:
    if kind == "chatml":
        return DialogueTokens(chatml_render, chatml_encode)
    return DialogueTokens.from_tokenizer(build_model("lm", "0.5m")[1])


def episode(dialogue: DialogueTokens, name: str, turns: int, rng: random.Random,
            restart_after: int | None = None) -> EpisodeRecord:
    """An episode grown as a rollout worker grows it: each next prompt is the prompt + the
    response ids as sampled + dialogue.continuation (feedback as a user turn). The second
    response is cut at max_tokens (no end-of-turn id) to cover the whole-closing branch."""
    record = EpisodeRecord(name, "gp-l", "id", rng.randrange(10**6))
    opening = dialogue.encode(dialogue.render([user_message(f"Make 24 from {name}.")], True))
    prompt = opening
    for t in range(turns):
        truncated = t == 1
        response = [rng.randrange(20, 400) for _ in range(rng.randrange(3, 9))]
        response += [] if truncated else dialogue.close_ids[:1]
        last = t + 1 == turns
        record.turns.append(TurnRecord(
            prompt_ids=prompt, response_ids=response,
            response_logprobs=[-rng.random() for _ in response], policy_version=0,
            truncated=truncated, reward=5.0 if last and rng.random() < 0.5 else -1.0, done=last,
            success=False, outcome="x", feedback="", parsed_answer="", recognition_ok=None,
            restart=t == restart_after))
        if t == restart_after:
            prompt = opening  # V-IRL after a correct action: a fresh dialogue
        else:
            prompt = prompt + response + dialogue.continuation(response, f"Wrong, try {t}.")
    return record


def make_turns(kind: str, episodes: int = 3, turns: int = 5, restart: bool = False) -> Turns:
    rng, dialogue = random.Random(7), dialogue_tokens(kind)
    records = [episode(dialogue, f"ep{e}", turns, rng, 2 if restart and e == 0 else None)
               for e in range(episodes)]
    return turns_from_record_batches([to_record_batch(records, "w")])


def policy(seed: int = 0) -> PolicyValueModel:
    """The tiny Llama with a value head that is not zero (so values are worth comparing)."""
    torch.manual_seed(seed)
    backbone, _ = build_model("lm", "0.5m", seed=seed)
    head = ValueHead(backbone.config.hidden_size, 64)
    torch.nn.init.normal_(head.net[-1].weight, std=0.5)
    return PolicyValueModel(backbone.float(), head).eval()


def forward(model: PolicyValueModel, micro: MicroBatch):
    return model(**micro.model_inputs(), temperature=TEMPERATURE)


def both_layouts(turns: Turns) -> tuple[MicroBatch, MicroBatch]:
    """(per-turn, packed) micro-batches of every turn, turns in the same order."""
    packed = collate_units(turns, plan_units(turns).units, pad_id=0)
    per_turn = collate_turns(turns, list(range(len(turns))), pad_id=0)
    assert packed.rows == per_turn.rows
    return per_turn, packed


def layout_errors(turns: Turns, micro: MicroBatch) -> list[str]:
    """Where the micro-batch's layout misplaces a token: each turn's answer must be exactly its
    response ids, each predicted one column before itself, and the value of each turn must
    be read at the last id of exactly its prompt."""
    errors = []
    read = micro.input_ids[micro.logit_rows, micro.logit_cols + 1]
    if not torch.equal(read, micro.targets):
        errors.append("a target is not the token after its logit position")
    answers = [t for row in micro.rows for t in turns.response_ids[row]]
    if micro.targets.tolist() != answers:
        errors.append("targets are not the turns' answers, once each, in order")
    value_rows = micro.value_rows if micro.value_rows is not None else torch.arange(len(micro.rows))
    for k, row in enumerate(micro.rows):
        prompt = turns.prompt_ids[row]
        seen = micro.input_ids[value_rows[k], : int(micro.value_index[k]) + 1].tolist()
        if seen != prompt:
            errors.append(f"turn {row}'s value is not read after exactly its prompt")
    return errors


@pytest.mark.parametrize("kind", ["llama", "chatml"])
def test_every_extending_episode_packs(kind: str) -> None:
    turns = make_turns(kind)
    plan = plan_units(turns)
    assert [len(u.rows) for u in plan.units] == [5, 5, 5] and all(u.packed for u in plan.units)
    stats = read_stats(turns, plan)
    per_turn = read_stats(turns, plan_units(turns, enabled=False))
    assert stats["packed_share"] == 1.0 and per_turn["packed_share"] == 0.0
    assert 1.0 < stats["tokens_read_per_answer_token"] < per_turn["tokens_read_per_answer_token"] / 2.5
    assert per_turn["pack_fallback_disabled"] == 3 and per_turn["pack_fallback_vision"] == 0


def test_chatml_newline_after_im_end_opens_the_next_prompt() -> None:
    """The engine stops at `<|im_end|>` (the response's last id); the template's newline after
    it is the next prompt's, so it is read as context and never trained on."""
    turns = make_turns("chatml", episodes=1)
    newline = chatml_encode("\n")
    assert dialogue_tokens("chatml").close_ids == [IM_END, *newline]
    for t in range(4):
        end = len(turns.prompt_ids[t]) + len(turns.response_ids[t])
        cut = t == 1  # cut at max_tokens: the next prompt closes the turn itself
        assert turns.response_ids[t][-1] != IM_END if cut else turns.response_ids[t][-1] == IM_END
        assert turns.prompt_ids[t + 1][end : end + 2 - (not cut)] == ([IM_END] if cut else []) + newline
    micro = collate_units(turns, plan_units(turns).units, pad_id=0)
    assert micro.input_ids.shape[0] == 1 and not layout_errors(turns, micro)


@pytest.mark.parametrize("kind", ["llama", "chatml"])
def test_packed_rows_place_every_token_once_unshifted(kind: str) -> None:
    turns = make_turns(kind)
    per_turn, packed = both_layouts(turns)
    assert layout_errors(turns, per_turn) == [] and layout_errors(turns, packed) == []
    # The check catches a shifted, a dropped and a duplicated token.
    shifted = MicroBatch(**{**packed.__dict__, "logit_cols": packed.logit_cols - 1})
    assert layout_errors(turns, shifted)
    for targets in (packed.targets[1:], torch.cat([packed.targets[:1], packed.targets])):
        assert layout_errors(turns, MicroBatch(**{**packed.__dict__, "targets": targets,
                                                  "logit_rows": packed.logit_rows[: len(targets)],
                                                  "logit_cols": packed.logit_cols[: len(targets)]}))


@pytest.mark.parametrize("kind", ["llama", "chatml"])
def test_packed_and_per_turn_give_the_same_logprobs_and_values(kind: str) -> None:
    turns, model = make_turns(kind), policy()
    per_turn, packed = both_layouts(turns)
    with torch.no_grad():
        a, b = forward(model, per_turn), forward(model, packed)
    assert packed.input_ids.numel() < per_turn.input_ids.numel() / 2
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and (x - y).abs().max() < 1e-5
    assert a[2].abs().max() > 0.01  # values that are not all zero


def _loss(model: PolicyValueModel, micro: MicroBatch, turns: Turns, seed: int):
    """The PPO loss of the micro-batch with fixed per-turn targets (same for both layouts)."""
    logprobs, entropy, values = forward(model, micro)
    g = torch.Generator().manual_seed(seed)
    n, b = len(logprobs), len(micro.rows)
    noise = lambda k, s=0.1: torch.randn(k, generator=g) * s  # noqa: E731
    inputs = PPOInputs(
        new_logprobs=logprobs, entropy=entropy, values=values,
        old_logprobs=logprobs.detach() + noise(n), behaviour_logprobs=logprobs.detach() + noise(n),
        old_values=values.detach() + noise(b), returns=noise(b, 1.0), advantages=noise(b, 1.0),
        token_turn=micro.token_turn, turn_weight=micro.turn_weight,
        ref_logprobs=logprobs.detach() + noise(n))
    config = PPOConfig(temperature=TEMPERATURE, kl_coef=0.1, entropy_coef=0.01, max_staleness=1)
    loss, _ = ppo_loss(inputs, config, float(n), float(b))
    return loss


@pytest.mark.parametrize("kind", ["llama", "chatml"])
def test_packed_and_per_turn_give_the_same_loss_and_gradients(kind: str) -> None:
    turns, model = make_turns(kind), policy(1)
    grads, losses = [], []
    for micro in both_layouts(turns):
        model.zero_grad()
        loss = _loss(model, micro, turns, seed=3)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert abs(losses[0] - losses[1]) < 1e-5
    cosine = torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)
    assert cosine > 0.99999 and grads[0].norm() > 0


def test_an_episode_that_does_not_extend_is_read_one_sequence_per_run() -> None:
    turns = make_turns("llama", restart=True)  # episode 0 restarts its dialogue after turn 2
    plan = plan_units(turns)
    assert [(u.rows, u.packed, u.whole) for u in plan.units[:2]] == [
        ((0, 1, 2), True, False), ((3, 4), True, False)]  # the runs before and after the restart
    assert [(len(u.rows), u.whole) for u in plan.units[2:]] == [(5, True)] * 2
    assert plan.fallback == {NOT_EXTENDING: 1}
    assert not layout_errors(turns, collate_units(turns, plan.units, pad_id=0))
    model = policy(4)
    per_turn, packed = both_layouts(turns)
    with torch.no_grad():
        for x, y in zip(forward(model, per_turn), forward(model, packed), strict=True):
            assert x.shape == y.shape and (x - y).abs().max() < 1e-5
    assert read_stats(turns, plan)["packed_share"] == pytest.approx(2 / 3)
    # One id of an earlier answer re-tokenised differently in the next prompt: not packed.
    altered = make_turns("llama")
    at = len(altered.prompt_ids[1]) + 2
    altered.prompt_ids[2] = altered.prompt_ids[2][:at] + [999] + altered.prompt_ids[2][at + 1 :]
    assert plan_units(altered).fallback == {NOT_EXTENDING: 1}
    # Vision turns pack when each turn's images are the last turn's first ones (see
    # test_packing_vision); an episode whose first turn shows another image is read per turn.
    altered.vision = [{} for _ in range(len(altered))]
    assert plan_units(altered).fallback == {NOT_EXTENDING: 1}
    altered.image_refs[5] = ["another image"]
    assert plan_units(altered).fallback == {NOT_EXTENDING: 1, VISION: 1}
    assert read_stats(altered, plan_units(altered))["packed_share"] == pytest.approx(1 / 3)


def test_mixed_batch_splits_by_turns_and_keeps_per_turn_values() -> None:
    turns, model = make_turns("chatml", episodes=4, restart=True), policy(2)
    plan = plan_units(turns)
    chunks = split_units(turns, plan.units, size=6)
    assert all(sum(len(u.rows) for u in c) <= 6 or len(c) == 1 for c in chunks)
    assert sorted(r for c in chunks for u in c for r in u.rows) == list(range(len(turns)))
    per_turn = collate_turns(turns, list(range(len(turns))), pad_id=0)
    with torch.no_grad():
        expected = dict(zip(per_turn.rows, forward(model, per_turn)[2].tolist(), strict=True))
        for chunk in chunks:
            micro = collate_units(turns, chunk, pad_id=0)
            assert not layout_errors(turns, micro)
            values = forward(model, micro)[2]
            for row, value in zip(micro.rows, values.tolist(), strict=True):
                assert abs(value - expected[row]) < 1e-5


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures_models import save_model

    return save_model(tmp_path_factory.mktemp("packing"))


def _update(path: Path, batch, pack: bool):
    from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig
    from learner.rank import LearnerRank

    learner = LearnerRank(LearnerConfig(
        model=ModelConfig(path=str(path)), engine=DeepSpeedConfig(zero_stage=0, micro_batch_size=8),
        ppo=PPOConfig(temperature=TEMPERATURE, ppo_epochs=1, num_minibatches=1, pack_episodes=pack)))
    stats = learner.update([batch])
    weights = torch.cat([p.detach().flatten() for p in learner.engine.module.parameters()])
    return stats, weights


def test_a_mixed_batch_trains_as_the_per_turn_update_does(tiny_dir: Path) -> None:
    """A whole update (scoring, GAE, one PPO step) on packed + fallback episodes gives the
    per-turn update's loss and weights."""
    rng, dialogue = random.Random(3), dialogue_tokens("llama")
    records = [episode(dialogue, f"ep{e}", 4, rng, 1 if e == 0 else None) for e in range(3)]
    batch = to_record_batch(records, "w")
    packed, packed_weights = _update(tiny_dir, batch, pack=True)
    per_turn, per_turn_weights = _update(tiny_dir, batch, pack=False)
    assert packed.packed_share == pytest.approx(2 / 3) and packed.pack_fallback == {NOT_EXTENDING: 1}
    assert per_turn.packed_share == 0.0
    assert packed.tokens_read_per_answer_token < per_turn.tokens_read_per_answer_token
    for key in ("loss", "policy_loss", "value_loss", "entropy", "behaviour_logprob_gap"):
        assert abs(getattr(packed, key) - getattr(per_turn, key)) < 1e-5, key
    assert (packed_weights - per_turn_weights).abs().max() < 1e-5
