"""Episodes/s: Revisor's rollout worker vs the study's own rollout loop, same model and episodes.

The study's public code plays sequential-revision episodes with Hugging Face `generate`, one
episode at a time and one turn at a time, in one process: render the dialogue so far with the
chat template, `generate` (sampling), decode, hand the answer to the verifier, append the
answer and the feedback, repeat until the episode ends. `StudyLoop` is that loop, written out
plainly; it plays the project's own environment (EpisodeTable, GPConfig), so both sides play
the identical task, episode for episode (same specs: task config and seed).

Revisor's side is a RolloutWorker actor (vLLM engine) with `episodes_in_flight` episodes in
play, streaming them as Arrow record batches to this process, which validates every batch
(as a learner does). Processes: one each. The worker is one Ray actor (num_cpus=1, vLLM's
engine core in-process); the study's loop runs in its own Ray actor (num_cpus=1,
torch.set_num_threads(1)). The two take turns round by round (the worker plays a round, then
the study's loop plays the very same episodes), so a noisy shared machine affects both alike
and neither competes with the other for a core. A warmup round on other seeds comes first
and is not timed. Both times are wall time on this process, from the call to the last result.
Each side's CPU time is measured too (its process's user + system time, and for Revisor this
process's as well, since it receives and validates the batches): on a machine shared with
other work, wall time also counts the time a side waits for a core, and the slow side waits
longest; `speedup_cpu` (episodes per CPU-second, Revisor over study) does not.

Tokens are generated tokens (each answer's, the end-of-turn token included). The two sides
draw from different random streams, so their answers differ; an untrained model fails every
attempt on both sides (the same turns per episode) and mostly answers at full length (tokens
per episode within a few percent): the report gives both, and tokens/s besides episodes/s.
`speedup` = Revisor episodes/s / study episodes/s.

Usage: .venv/bin/python benchmarks/original_loop.py [--rounds 2] [--out runs/benchmarks/original_loop.json]
"""
# ruff: noqa: E402  (the checkout goes on sys.path, and one thread is set, before any import)

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import tempfile
import time
from typing import Any

import psutil
import pyarrow.compute as pc
import ray
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.cli import parse_settings
from benchmarks.rollout import _play as play_worker
from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.episode_spec import EpisodeSpec
from contracts.rollout_config import RolloutConfig
from contracts.rollout_messages import Answer
from contracts.tasks import GPConfig
from model_inputs.dialogue import user_message
from rollout_workers.env_pool import EpisodeTable
from rollout_workers.episodes.seeds import SeedList, SeedRange
from rollout_workers.ray_runtime import actor_runtime_env, local_cluster
from rollout_workers.tiny_models.build import save_tiny_model
from rollout_workers.worker import remote_worker


class OriginalLoopBenchmark(BaseModel):
    """What both sides play, and on which model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(2, ge=1)
    """Worker and study loop take turns this many times; their times are summed."""
    episodes_per_round: int = Field(32, ge=1)
    warmup_episodes: int = Field(4, ge=1)
    episodes_in_flight: int = Field(32, ge=1)
    """Revisor's side only: the study's loop plays one episode at a time."""
    attempts: int = Field(5, ge=1)
    max_tokens: int = Field(48, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    model_size: str = "5m"
    seed: int = 0
    out: Path = Path("runs/benchmarks/original_loop.json")


@ray.remote(num_cpus=1)
class StudyLoop:
    """The study's rollout scheme: one process, one thread, HF `generate`, one episode and
    one turn at a time."""

    def __init__(self, model: str, max_model_len: int, seed: int) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(seed)
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        self.max_model_len = max_model_len
        self.envs = EpisodeTable()

    def pid(self) -> int:
        """This actor's process, whose CPU time the driver reads."""
        return os.getpid()

    def play(self, specs: list[EpisodeSpec], sampling: SamplingSettings) -> dict[str, int]:
        """Play `specs` one after the other; counts of what was played."""
        counts = {"episodes": 0, "turns": 0, "tokens": 0, "successes": 0}
        for spec in specs:
            turns, tokens, success = self._episode(spec, sampling)
            counts["episodes"] += 1
            counts["turns"] += turns
            counts["tokens"] += tokens
            counts["successes"] += success
        return counts

    @torch.inference_mode()
    def _episode(self, spec: EpisodeSpec, sampling: SamplingSettings) -> tuple[int, int, bool]:
        """One episode, the study's way: each turn renders the whole dialogue so far with the
        chat template and tokenises it afresh (no cache kept across turns), as its code does.
        (turns, generated tokens, success)."""
        start = self.envs.start([spec])[0]
        messages = [user_message(start.observation.text)]
        turns = tokens = 0
        while True:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
            if ids.shape[1] + sampling.max_tokens > self.max_model_len:
                self.envs.release([spec.episode_id])  # as Revisor's runner: out of context
                return turns, tokens, False
            output = self.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=True,
                temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
                max_new_tokens=sampling.max_tokens,
            )
            response = output[0, ids.shape[1]:]
            answer = self.tokenizer.decode(response, skip_special_tokens=True)
            transition = self.envs.submit([Answer(episode_id=spec.episode_id, text=answer)])[0]
            turns, tokens = turns + 1, tokens + len(response)
            if transition.done:
                return turns, tokens, transition.success
            if transition.restart:
                messages = [user_message(transition.next.text)]
            else:
                messages += [{"role": "assistant", "content": answer},
                             user_message(transition.next.text)]


def main() -> None:
    bench = parse_settings(OriginalLoopBenchmark, __doc__)
    sampling = SamplingSettings(temperature=bench.temperature, max_tokens=bench.max_tokens,
                                seed=bench.seed)
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as model_dir, local_cluster(num_cpus=2):
        engine_config = RolloutEngineConfig(kind="vllm", seed=bench.seed, kv_cache_bytes=128 << 20,
                                     model=save_tiny_model("lm", bench.model_size, model_dir))
        rollout_config = RolloutConfig(episodes_in_flight=bench.episodes_in_flight,
                                       episodes_per_batch=8, sampling=sampling)
        worker = remote_worker("bench-0", engine_config, rollout_config)
        study = StudyLoop.options(runtime_env=actor_runtime_env()).remote(
            str(engine_config.model), engine_config.max_model_len, bench.seed)
        try:
            rounds = _measure(bench, worker, study, sampling)
        finally:
            ray.get(worker.shutdown.remote())
    report = _report(bench, rounds)
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("rounds", "settings")}))
    print(f"written to {bench.out}")


def _measure(bench: OriginalLoopBenchmark, worker: Any, study: Any,
             sampling: SamplingSettings) -> list[dict[str, Any]]:
    """Warm both up on other seeds, then alternate: the worker plays a round's episodes, the
    study's loop plays the same ones."""
    task = GPConfig(max_attempts=bench.attempts)
    warmup = SeedRange(task=task, start=10**6, count=bench.warmup_episodes).take(bench.warmup_episodes)
    play_worker(worker, SeedList(specs=warmup))
    ray.get(study.play.remote(warmup, sampling))
    worker_process = psutil.Process(ray.get(worker.stats.remote()).pid)
    study_process = psutil.Process(ray.get(study.pid.remote()))
    rounds = []
    for index in range(bench.rounds):
        count = bench.episodes_per_round
        specs = SeedRange(task=task, start=index * count, count=count).take(count)
        began, cpu = time.perf_counter(), _cpu_seconds(worker_process) + time.process_time()
        table = play_worker(worker, SeedList(specs=specs))
        worker_seconds = time.perf_counter() - began
        worker_cpu = _cpu_seconds(worker_process) + time.process_time() - cpu
        began, cpu = time.perf_counter(), _cpu_seconds(study_process)
        study_counts = ray.get(study.play.remote(specs, sampling))
        study_seconds = time.perf_counter() - began
        study_cpu = _cpu_seconds(study_process) - cpu
        finals = table.filter(table.column("done"))
        rounds.append({
            "revisor": {"episodes": finals.num_rows, "turns": table.num_rows,
                        "tokens": pc.sum(pc.list_value_length(table.column("response_ids"))).as_py(),
                        "successes": pc.sum(finals.column("success").cast("int64")).as_py() or 0,
                        "seconds": worker_seconds, "cpu_seconds": worker_cpu},
            "study": {**study_counts, "seconds": study_seconds, "cpu_seconds": study_cpu},
        })
    return rounds


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system time of a process on this machine, all its threads."""
    times = process.cpu_times()
    return times.user + times.system


def _side(rounds: list[dict[str, Any]], side: str) -> dict[str, Any]:
    """One side's totals over the rounds and its rates."""
    total = {key: sum(r[side][key] for r in rounds) for key in rounds[0][side]}
    seconds = total["seconds"]
    return {
        "episodes_per_s": round(total["episodes"] / seconds, 3),
        "tokens_per_s": round(total["tokens"] / seconds, 1),
        "episodes_per_cpu_s": round(total["episodes"] / total["cpu_seconds"], 3),
        "tokens_per_cpu_s": round(total["tokens"] / total["cpu_seconds"], 1),
        "turns_per_episode": round(total["turns"] / total["episodes"], 2),
        "tokens_per_episode": round(total["tokens"] / total["episodes"], 1),
        **{key: round(value, 3) for key, value in total.items()},
    }


def _report(bench: OriginalLoopBenchmark, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    revisor, study = _side(rounds, "revisor"), _side(rounds, "study")
    return {
        "revisor_episodes_per_s": revisor["episodes_per_s"],
        "study_episodes_per_s": study["episodes_per_s"],
        "speedup": round(revisor["episodes_per_s"] / study["episodes_per_s"], 2),
        "speedup_cpu": round(revisor["episodes_per_cpu_s"] / study["episodes_per_cpu_s"], 2),
        "revisor_tokens_per_s": revisor["tokens_per_s"],
        "study_tokens_per_s": study["tokens_per_s"],
        "revisor": revisor,
        "study": study,
        "rounds": rounds,
        "settings": bench.model_dump(mode="json"),
    }


if __name__ == "__main__":
    main()
