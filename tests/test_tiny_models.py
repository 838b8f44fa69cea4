"""Tiny models and their tokenizer: presets, checkpoints loadable by path, lossless tokenising."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    AutoProcessor,
    AutoTokenizer,
)

from contracts.tasks import GPConfig
from envs.general_points import make_episode
from model_inputs.vision import hf_vision_inputs
from rollout_workers.tiny_models import VISION_PRESETS, build_model, build_tokenizer, cli
from rollout_workers.tiny_models.build import count_parameters
from rollout_workers.tiny_models.vocabulary import gp_corpus
from tests.fixtures_models import save_model
from verifier.general_points import verify

NAVIGATION_TEXT = (
    "You are at an intersection facing northeast. Landmarks: Copper Kettle Cafe on your left, "
    "Lantern Books slightly right. Instruction 2: move forward until the next intersection. "
    'Answer: {"current observation": "...", "action": "turn_direction(southwest)"} forward() stop()'
)


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("models"), "lm")


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(tmp_path_factory.mktemp("models"), "vlm")


@pytest.mark.parametrize(("kind", "size", "low", "high"), [
    ("lm", "0.5m", 0.4e6, 0.6e6), ("lm", "5m", 4.5e6, 5.5e6),
    ("vlm", "0.5m", 0.5e6, 0.8e6), ("vlm", "5m", 5e6, 7e6),
    ("lm", "50m", 45e6, 55e6), ("vlm", "50m", 50e6, 60e6),
])
def test_presets_have_their_advertised_size(kind: str, size: str, low: float, high: float) -> None:
    model, _ = build_model(kind, size)
    assert low <= count_parameters(model) <= high


def test_lm_checkpoint_loads_by_path(lm_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    model = AutoModelForCausalLM.from_pretrained(lm_dir)
    assert model.config.vocab_size == len(tokenizer)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert tokenizer.chat_template and tokenizer.eos_token == "</s>"
    assert tokenizer.decode(tokenizer.encode("12*(3+4)")) == "12*(3+4)"


def test_vlm_checkpoint_loads_by_path_and_expands_images(vlm_dir: Path) -> None:
    processor = AutoProcessor.from_pretrained(vlm_dir)
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir)
    observation = make_episode(GPConfig(vision=True), 0).observe()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Cards?"}]}]
    prompt = processor.tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]
    ids, tensors = hf_vision_inputs(processor, prompt, observation.images)
    assert len(ids) == len(prompt) - 1 + VISION_PRESETS["0.5m"].tokens_per_image
    logits = model(input_ids=torch.tensor([ids]), **tensors).logits
    assert logits.shape == (1, len(ids), model.config.text_config.vocab_size)


def test_tokenizer_is_deterministic(tokenizer) -> None:
    assert build_tokenizer().get_vocab() == tokenizer.get_vocab()


def test_gp_and_navigation_text_round_trip_without_unknown_tokens(tokenizer) -> None:
    texts = list(gp_corpus(range(100, 130))) + [NAVIGATION_TEXT, string.printable]
    for text in texts:
        ids = tokenizer.encode(text)
        assert tokenizer.unk_token_id not in ids, text
        assert tokenizer.decode(ids) == text


def test_digits_and_operators_are_one_token_each(tokenizer) -> None:
    formula = "(10-4)*(13/13)+8"
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode(formula)) == list(formula)


def test_known_words_are_whole_tokens_and_unknown_words_are_spelled(tokenizer) -> None:
    tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode("Your cards are Zyx"))
    assert tokens == ["Your", " cards", " are", " ", "Z", "y", "x"]


@pytest.mark.parametrize("rule", ["id", "ood"])
def test_decoded_expert_answers_score_full_reward(tokenizer, rule: str) -> None:
    for seed in range(20):
        episode = make_episode(GPConfig(rule=rule), seed)
        messages = [{"role": "assistant", "content": episode.expert_answer()}]
        rendered = tokenizer.apply_chat_template(messages, return_assistant_tokens_mask=True)
        answer_ids = [i for i, m in zip(rendered["input_ids"], rendered["assistant_masks"],
                                        strict=True) if m]
        assert answer_ids[-1] == tokenizer.eos_token_id
        decoded = tokenizer.decode(answer_ids, skip_special_tokens=True)
        ranks = [card.rank for card in episode.hand]
        assert verify(decoded, ranks, rule=rule).reward == 5.0


def test_dialogue_ids_are_the_concatenated_turn_ids(tokenizer) -> None:
    """A rollout worker appends sampled answers and feedback turns without re-tokenising."""
    turns = [{"role": "user", "content": "Your cards are 1, 2, 3 and 4."},
             {"role": "assistant", "content": '{"formula": "1*2*3*4"}'},
             {"role": "user", "content": "Correct: the formula equals 24."}]
    whole = tokenizer.apply_chat_template(turns, add_generation_prompt=True)["input_ids"]
    first = tokenizer.apply_chat_template(turns[:1], add_generation_prompt=True)["input_ids"]
    answer = tokenizer.encode(turns[1]["content"]) + [tokenizer.eos_token_id]
    feedback = tokenizer.encode("<|user|>\n" + turns[2]["content"] + "</s><|assistant|>\n")
    assert whole == first + answer + feedback


def test_cli_writes_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--kind", "lm", "--size", "0.5m", "--out", str(tmp_path / "m")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameters"] > 0 and (tmp_path / "m" / "config.json").exists()
    assert AutoTokenizer.from_pretrained(tmp_path / "m").chat_template
