"""`revisor pretrain`: a base model from the generated corpus, cached by its settings; SFT is
still needed for the task's answer format (the study: RL from the raw base fails)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import load_settings
from cluster.settings.pretrain import BASE_RECORD, base_key, base_path
from envs.general_points import GPConfig, make_episode
from tests.jobs import ROOT, run_job
from verifier.general_points.parse import parse_answer

STUDY_EXPERIMENT = ROOT / "configs" / "pretrained_gp_l.yaml"
SHORT_PRETRAIN = ["pretrain.steps=240", "pretrain.corpus.documents=4000"]


def answers(model: Path, count: int = 12) -> list[str]:
    """Greedy answers of the checkpoint at `model` to the first prompts of the ID evaluation."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model).eval()
    config = GPConfig(rule="id", sorted_hand=True, prompt_template="compact.txt")
    texts = []
    for seed in range(count):
        prompt = make_episode(config, 10_000_000 + seed).observe().text
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                            add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)["input_ids"]
        with torch.no_grad():
            out = lm.generate(ids, max_new_tokens=80, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id)
        texts.append(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
    return texts


def in_task_format(text: str) -> bool:
    answer = parse_answer(text)
    return text.lstrip().startswith("{") and bool(answer.numbers) and bool(answer.formula)


@pytest.mark.slow
def test_the_base_is_cached_and_needs_sft_for_the_task_format(tmp_path: Path) -> None:
    cache = f"pretrain.cache_dir={tmp_path / 'bases'}"
    pretrain = ["--config", str(STUDY_EXPERIMENT), cache, *SHORT_PRETRAIN]
    run_job(pretrain, tmp_path / "pretrain.log", command=("cluster.cli", "pretrain"))
    base = Path((tmp_path / "pretrain.log").read_text().strip().splitlines()[-1])
    assert base.parent == tmp_path / "bases" and (base / "config.json").exists()
    assert not list((tmp_path / "bases").glob("*.partial")), "the work directory is removed"
    assert json.loads((base / BASE_RECORD).read_text())["pretrain"]["steps"] == 240

    run_job(pretrain, tmp_path / "again.log", command=("cluster.cli", "pretrain"))
    assert "pretrained base found" in (tmp_path / "again.log").read_text()

    base_answers = answers(base)
    assert sum(a.startswith(("numbers ", '{"hand"')) for a in base_answers) >= 10, base_answers
    assert not any(in_task_format(a) for a in base_answers), base_answers

    run = tmp_path / "sft"
    run_job(["--config", str(STUDY_EXPERIMENT), cache, *SHORT_PRETRAIN, f"run_dir={run}",
             "arm=sft", "sft.steps=80", "evaluation.episodes=4"], tmp_path / "sft.log")
    tuned = answers(run / "sft" / "step-80")
    assert sum(in_task_format(a) for a in tuned) >= 10, tuned


def test_the_cache_key_follows_every_setting_that_shapes_the_base(tmp_path: Path) -> None:
    config = load_settings(ExperimentConfig, STUDY_EXPERIMENT, [])
    pretrain, tiny = config.pretrain, config.tiny_model
    assert Path(config.model) == base_path(pretrain, tiny)
    assert config.sft.model.path == config.learner.model.path == config.model
    assert base_key(pretrain.model_copy(update={"cache_dir": tmp_path, "num_ranks": 1}), tiny) \
        == base_key(pretrain, tiny), "where it is kept and on how many ranks is not what it is"
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
