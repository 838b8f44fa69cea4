"""`revisor pretrain`: a base model from the generated corpus, cached by its settings, that
answers the task's prompt in the task's format under a rule it never saw in that form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import load_settings
from cluster.settings.pretrain import BASE_RECORD, base_key, base_path
from contracts.tasks import GPConfig
from envs.general_points import sample_hand
from envs.general_points.corpus import FaceValues, documents, hand_numbers
from envs.general_points.prompt import render_cards_prompt, rule_faces
from tests.jobs import ROOT, run_job
from verifier.general_points.parse import parse_answer

STUDY_EXPERIMENT = ROOT / "configs" / "pretrained_gp_l.yaml"
SHORT_PRETRAIN = ["pretrain.steps=240", "pretrain.corpus.documents=4000",
                  "pretrain.probe_documents=32"]


def answers(model: Path, faces: FaceValues, count: int = 12) -> list[tuple[str, list[int]]]:
    """Greedy answers of the checkpoint at `model` to evaluation hands whose prompt states
    `faces`, each with the numbers the hand has under that rule."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model).eval()
    config = GPConfig(rule="id", sorted_hand=True, prompt_template="compact.txt")
    texts = []
    for seed in range(count):
        hand = sample_hand(config, 10_000_000 + seed)
        prompt = render_cards_prompt(config, hand, faces)
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                            add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)["input_ids"]
        with torch.no_grad():
            out = lm.generate(ids, max_new_tokens=80, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
        texts.append((tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True),
                      hand_numbers(hand, faces)))
    return texts


def unseen_task_rule(config: ExperimentConfig) -> FaceValues:
    """A face-card rule that no task-format document of the corpus states (nor a study rule)."""
    seen = {doc.faces for doc in documents(config.pretrain.corpus)
            if doc.answer.startswith('{"cards"')}
    seen |= {rule_faces("id"), rule_faces("ood")}
    return next((j, q, k) for j in range(1, 14) for q in range(13, 0, -1) for k in range(1, 14)
                if (j, q, k) not in seen)


def in_task_format(text: str) -> bool:
    answer = parse_answer(text)
    return text.lstrip().startswith("{") and bool(answer.numbers) and bool(answer.formula)


@pytest.mark.slow
def test_the_base_is_cached_and_answers_in_the_task_format_under_an_unseen_rule(
        tmp_path: Path) -> None:
    cache = f"pretrain.cache_dir={tmp_path / 'bases'}"
    pretrain = ["--config", str(STUDY_EXPERIMENT), cache, *SHORT_PRETRAIN]
    run_job(pretrain, tmp_path / "pretrain.log", command=("cluster.cli", "pretrain"))
    base = Path((tmp_path / "pretrain.log").read_text().strip().splitlines()[-1])
    assert base.parent == tmp_path / "bases" and (base / "config.json").exists()
    assert not list((tmp_path / "bases").glob("*.partial")), "the work directory is removed"
    record = json.loads((base / BASE_RECORD).read_text())
    assert record["pretrain"]["steps"] == 240
    # the run ends with the base's answers to held-out documents, per kind, in its record
    assert sum(row["total"] for row in record["probe"]) == 32
    assert {row["group"] for row in record["probe"]} <= {"solve", "numbers", "arithmetic"}
    assert "commonest answer" in (tmp_path / "pretrain.log").read_text()

    run_job(pretrain, tmp_path / "again.log", command=("cluster.cli", "pretrain"))
    assert "pretrained base found" in (tmp_path / "again.log").read_text()

    config = load_settings(ExperimentConfig, STUDY_EXPERIMENT, [cache, *SHORT_PRETRAIN])
    rule = unseen_task_rule(config)
    base_answers = answers(base, rule)
    in_format = [(text, numbers) for text, numbers in base_answers if in_task_format(text)]
    assert len(in_format) >= 8, (rule, base_answers)
    read_rule = sum(list(parse_answer(text).numbers) == [str(n) for n in numbers]
                    for text, numbers in in_format)
    assert read_rule >= len(in_format) // 2, (rule, in_format)


def test_the_cache_key_follows_every_setting_that_shapes_the_base(tmp_path: Path) -> None:
    config = load_settings(ExperimentConfig, STUDY_EXPERIMENT, [])
    pretrain, tiny = config.pretrain, config.tiny_model
    assert Path(config.model) == base_path(pretrain, tiny)
    assert config.sft.model.path == config.learner.model.path == config.model
    assert base_key(pretrain.model_copy(update={"cache_dir": tmp_path, "num_ranks": 1,
                                                "probe_documents": 0}), tiny) \
        == base_key(pretrain, tiny), "where it is kept, on how many ranks and how it is probed"
    for changed in (pretrain.model_copy(update={"steps": pretrain.steps + 1}),
                    pretrain.model_copy(update={"corpus": pretrain.corpus.model_copy(
                        update={"seed": 1})})):
        assert base_key(changed, tiny) != base_key(pretrain, tiny)
    assert base_key(pretrain, tiny.model_copy(update={"seed": 1})) != base_key(pretrain, tiny)


def test_a_model_path_holding_another_base_is_refused(tmp_path: Path) -> None:
    from cluster.job.pretrain import ensure_pretrained
    from cluster.settings.loading import SettingsError

    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / BASE_RECORD).write_text(json.dumps({"key": "0123456789ab"}))
    config = load_settings(ExperimentConfig, STUDY_EXPERIMENT, [f"model={other}"])
    with pytest.raises(SettingsError, match="did not make"):
        ensure_pretrained(config)


def test_pretrain_needs_a_tiny_model_to_train() -> None:
    with pytest.raises(ValueError, match="set tiny_model"):
        load_settings(ExperimentConfig, STUDY_EXPERIMENT, ["tiny_model=null"])
