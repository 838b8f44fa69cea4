"""Episodes played and trained per second: Revisor's loop vs the study's own, same model,
episodes and PPO settings.

The study's public code plays sequential-revision episodes with Hugging Face `generate`, one
episode at a time and one turn at a time, in one process: render the dialogue so far with the
chat template, `generate` (sampling), decode, hand the answer to the verifier, append the
answer and the feedback, repeat until the episode ends; then a PPO update on the turns played,
each turn its own row (its prompt re-read in full). `StudyLoop` is that loop, written out
plainly, in one Ray actor (num_cpus=1, torch.set_num_threads(1)): it plays the project's own
environment (EpisodeTable, GPConfig), so both sides play the identical task, episode for
episode (same specs: task config and seed), and it trains with the project's own learner
(learner.rank.LearnerRank, DeepSpeed on CPU) with `learner.ppo.pack_episodes: false`,
generating with the very model it trains (the learner's backbone: no weights to send).

Revisor's side is its synchronous loop (cluster/job/loop.py): a RolloutWorker actor (vLLM
engine, `episodes_in_flight` episodes in play) streams the episodes as Arrow record batches
to this process, which validates every batch (as a learner does); then a LearnerGroup of one
rank actor (num_cpus=1) runs one PPO update with episodes packed (the default: an episode
whose turns extend each other is read once, learner.packing) and publishes the new weights,
which the worker loads before it plays again. Same model, seed, PPO settings (epochs,
minibatches, micro-batch size, learning rate) on both sides; only the layout differs.

The study's turns go into the same trajectory format (contracts.trajectory: EpisodeRecord,
TurnRecord, to_record_batch), so the same learner code trains both. Its prompts are the
re-rendered, re-tokenised dialogue, so a turn's prompt need not start with the previous
prompt + answer (an answer decodes and re-encodes to other ids, special tokens drop out):
where it does not, the turn is recorded with `restart` (the format's flag for a next prompt
that does not extend), and the learner could not pack that episode anyway.
`study_packable_share` says how many of the study's episodes do extend throughout; for
those, packing off is what makes the update per turn. With the tiny models' untrained policy
none does (its answers are random ids, which never survive decode and re-encode: word pieces
merge, special tokens drop), so the study's update is per turn by its own data as well as by
`pack_episodes: false`; `tokens_read_per_answer_token` gives what each side's update reads.

Rounds: a warmup round on other seeds (play and update, both sides) is not timed. Then each
round Revisor plays and trains, then the study plays and trains, on the same episodes: the
two take turns, so a noisy shared machine affects both alike and neither competes with the
other for a core. Times are wall time on this process, from the call to the last result:
play (the last episode received) and train (the update, and for Revisor the weights loaded
by the worker). Episodes/s over the whole loop = episodes / (play + train) seconds;
`whole_loop_speedup` = Revisor's over the study's. Each side's CPU time is measured too (its
processes' user + system time; Revisor's includes this process, which receives and validates
the batches and drives the learner): on a machine shared with other work, wall time also
counts the time a side waits for a core (the learner's cut of each batch into shards runs
in a Ray task whose process is not counted: Revisor's CPU time is a little low).

Rollout only: `speedup` = Revisor play episodes/s over the study's, `speedup_cpu` the same
per CPU-second. Tokens are generated tokens (each answer's, the end-of-turn token included).
The two sides draw from different random streams, so their answers differ; an untrained
model fails every attempt on both sides (the same turns per episode) and mostly answers at
full length (tokens per episode within a few percent): the report gives both.

Usage: DS_ACCELERATOR=cpu .venv/bin/python benchmarks/original_loop.py [--rounds 2] [--out runs/benchmarks/original_loop.json]
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
from functools import partial
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.compute as pc
import ray
import torch
from pydantic import BaseModel, ConfigDict, Field
from transformers import AutoTokenizer

from benchmarks.cli import parse_settings
from benchmarks.learner import ppo_seconds
from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.episode_spec import EpisodeSpec
from contracts.rollout_config import RolloutConfig
from contracts.rollout_messages import Answer
from contracts.tasks import GPConfig
from contracts.trajectory import EpisodeRecord, TurnRecord, to_record_batch, validate_trajectories
from learner.batch import turns_from_record_batches
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, OptimConfig, PPOConfig
from learner.engine import prepare_environment
from learner.group import LearnerGroup, rank_runtime_env
from learner.packing import plan_units, read_stats
from learner.rank import LearnerRank
from model_inputs.dialogue import user_message
from rollout_workers.env_pool import EpisodeTable
from rollout_workers.episodes.seeds import SeedList, SeedRange
from rollout_workers.ray_runtime import local_cluster
from rollout_workers.tiny_models.build import save_tiny_model
from rollout_workers.worker import remote_worker


class OriginalLoopBenchmark(BaseModel):
    """What both sides play and train, and on which model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rounds: int = Field(2, ge=1)
    """Revisor's loop and the study's take turns this many times; their times are summed."""
    episodes_per_round: int = Field(32, ge=1)
    """Episodes played, then trained on by one PPO update, per round and side."""
    warmup_episodes: int = Field(4, ge=1)
    episodes_in_flight: int = Field(32, ge=1)
    """Revisor's side only: the study's loop plays one episode at a time."""
    attempts: int = Field(5, ge=1)
    max_tokens: int = Field(48, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    ppo_epochs: int = Field(2, ge=1)
    """PPO settings of both sides: those of configs/cpu_demo.yaml (2 epochs of 2 minibatches,
    micro-batches of 16)."""
    num_minibatches: int = Field(2, ge=1)
    micro_batch_size: int = Field(16, ge=1)
    """At most this many turns a forward, packed or not (as benchmarks/learner.py)."""
    lr: float = Field(1e-5, gt=0.0)
    model_size: str = "5m"
    seed: int = 0
    out: Path = Path("runs/benchmarks/original_loop.json")


def learner_config(bench: OriginalLoopBenchmark, model: str, pack: bool) -> LearnerConfig:
    """Both sides' learner: the same settings, episodes packed (Revisor) or one row per turn."""
    return LearnerConfig(
        model=ModelConfig(path=model), seed=bench.seed, optim=OptimConfig(lr=bench.lr),
        engine=DeepSpeedConfig(micro_batch_size=bench.micro_batch_size),
        ppo=PPOConfig(ppo_epochs=bench.ppo_epochs, num_minibatches=bench.num_minibatches,
                      temperature=bench.temperature, pack_episodes=pack))


@ray.remote(num_cpus=1)
class StudyLoop:
    """The study's scheme: one process, one thread, HF `generate`, one episode and one turn at
    a time, then a PPO update reading every turn as its own row, with the model it samples."""

    def __init__(self, model: str, max_model_len: int, config: LearnerConfig) -> None:
        prepare_environment()
        torch.set_num_threads(1)
        self.learner = LearnerRank(config)  # seeds torch with config.seed
        self.model = self.learner.engine.module.backbone
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos])
        self.max_model_len = max_model_len
        self.envs = EpisodeTable()
        self.batch: pa.RecordBatch | None = None

    def pid(self) -> int:
        """This actor's process, whose CPU time the driver reads."""
        return os.getpid()

    def play(self, specs: list[EpisodeSpec], sampling: SamplingSettings) -> pa.RecordBatch:
        """Play `specs` one after the other; their trajectories (kept for `train`)."""
        self.batch = to_record_batch([self._episode(spec, sampling) for spec in specs], "study")
        return self.batch

    def train(self) -> float:
        """One PPO update on the episodes just played, one row per turn; its seconds."""
        updates = self.learner.state.updates
        seconds = ppo_seconds(self.learner, self.batch, pack=False)
        if self.learner.state.updates == updates:
            raise RuntimeError("the study's update was refused (sync guard): nothing trained")
        return seconds

    @torch.inference_mode()
    def _episode(self, spec: EpisodeSpec, sampling: SamplingSettings) -> EpisodeRecord:
        """One episode, the study's way: each turn renders the whole dialogue so far with the
        chat template and tokenises it afresh (no cache kept across turns), as its code does."""
        start = self.envs.start([spec])[0]
        record = EpisodeRecord(spec.episode_id, start.task, start.variant, spec.seed)
        messages = [user_message(start.observation.text)]
        while True:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
            if ids.shape[1] + sampling.max_tokens > self.max_model_len:
                self.envs.release([spec.episode_id])  # as Revisor's runner: out of context
                record.turns[-1].done = record.turns[-1].out_of_context = True
                return _mark_restarts(record)
            response, logprobs = self._generate(ids, sampling)
            answer = self.tokenizer.decode(response, skip_special_tokens=True)
            transition = self.envs.submit([Answer(episode_id=spec.episode_id, text=answer)])[0]
            record.turns.append(self._turn(ids[0].tolist(), response, logprobs, transition))
            if transition.done:
                return _mark_restarts(record)
            if transition.restart:
                messages = [user_message(transition.next.text)]
            else:
                messages += [{"role": "assistant", "content": answer},
                             user_message(transition.next.text)]

    def _generate(self, ids: torch.Tensor, sampling: SamplingSettings) -> tuple[list[int], list[float]]:
        """Sample an answer; its ids and their log-probs under the sampling distribution."""
        output = self.model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=True,
            temperature=sampling.temperature, top_p=sampling.top_p, top_k=0,
            max_new_tokens=sampling.max_tokens, output_scores=True, return_dict_in_generate=True,
        )
        response = output.sequences[0, ids.shape[1]:]
        scores = torch.stack(output.scores)[:, 0].float().log_softmax(-1)
        logprobs = scores.gather(-1, response.view(-1, 1)).view(-1)
        return response.tolist(), logprobs.tolist()

    def _turn(self, prompt: list[int], response: list[int], logprobs: list[float],
              transition: Any) -> TurnRecord:
        verdict = transition.verdict
        return TurnRecord(
            prompt_ids=prompt, response_ids=response, response_logprobs=logprobs,
            policy_version=self.learner.state.policy_version,
            truncated=response[-1] not in self.eos, reward=verdict.reward,
            done=transition.done, success=transition.success, outcome=verdict.outcome,
            feedback=verdict.feedback, parsed_answer=verdict.parsed_answer,
            recognition_ok=verdict.recognition_ok, restart=transition.restart)


def _mark_restarts(record: EpisodeRecord) -> EpisodeRecord:
    """Flag `restart` on every turn whose next prompt (re-tokenised) does not start with its
    prompt + answer: the trajectory format's way of saying the next prompt does not extend."""
    for turn, following in zip(record.turns, record.turns[1:], strict=False):
        head = turn.prompt_ids + turn.response_ids
        turn.restart = turn.restart or following.prompt_ids[: len(head)] != head
    return record


def main() -> None:
    bench = parse_settings(OriginalLoopBenchmark, __doc__)
    sampling = SamplingSettings(temperature=bench.temperature, max_tokens=bench.max_tokens,
                                seed=bench.seed)
    # Three logical CPUs: worker, learner rank and study loop, one core each, taking turns.
    with tempfile.TemporaryDirectory(prefix="rv-bench-") as model_dir, local_cluster(num_cpus=3):
        engine_config = RolloutEngineConfig(kind="vllm", seed=bench.seed, kv_cache_bytes=128 << 20,
                                     model=save_tiny_model("lm", bench.model_size, model_dir))
        model = str(engine_config.model)
        rollout_config = RolloutConfig(episodes_in_flight=bench.episodes_in_flight,
                                       episodes_per_batch=8, sampling=sampling)
        learner = LearnerGroup(learner_config(bench, model, pack=True))
        worker = remote_worker("bench-0", engine_config, rollout_config,
                               weight_sync=learner.transport.kind)
        study_config = learner_config(bench, model, pack=False)
        study = StudyLoop.options(runtime_env=rank_runtime_env(study_config.gpus_per_rank)).remote(
            model, engine_config.max_model_len, study_config)
        try:
            rounds = _measure(bench, Revisor(worker, learner), study, sampling)
        finally:
            ray.get(worker.shutdown.remote())
            learner.shutdown()
    report = _report(bench, rounds)
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("rounds", "settings")}))
    print(f"written to {bench.out}")


class Revisor:
    """Revisor's synchronous loop (cluster/job/loop.py): play on the worker, update on the
    learner group, the new weights loaded by the worker."""

    def __init__(self, worker: Any, learner: LearnerGroup) -> None:
        self.worker, self.learner = worker, learner
        self.processes = [psutil.Process(ray.get(worker.stats.remote()).pid),
                          psutil.Process(ray.get(learner.pool.ranks[0].__ray_call__.remote(
                              lambda _: os.getpid())))]
        self.refs: list[Any] = []

    def play(self, specs: list[EpisodeSpec]) -> pa.Table:
        """Consume the worker's stream the way a learner does: validating every batch."""
        self.refs = []
        for ref in self.worker.rollouts.remote(SeedList(specs=specs)):
            validate_trajectories(ray.get(ref))
            self.refs.append(ref)
        return pa.Table.from_batches(ray.get(self.refs))

    def train(self) -> None:
        """One PPO update on the episodes just played, and its weights onto the worker."""
        result = self.learner.update(self.refs)
        if result.stats.skipped:
            raise RuntimeError(f"Revisor's update was refused ({result.stats.skipped}): nothing trained")
        if result.weights is not None:
            ray.get(self.learner.transport.catch_up(result.weights, self.worker))

    def cpu_seconds(self) -> float:
        return sum(_cpu_seconds(p) for p in self.processes) + time.process_time()


def _measure(bench: OriginalLoopBenchmark, revisor: Revisor, study: Any,
             sampling: SamplingSettings) -> list[dict[str, Any]]:
    """Warm both loops up on other seeds (play and update), then alternate: Revisor plays a
    round's episodes and trains on them, then the study's loop does the same."""
    task = GPConfig(max_attempts=bench.attempts)
    warmup = SeedRange(task=task, start=10**6, count=bench.warmup_episodes).take(bench.warmup_episodes)
    revisor.play(warmup)
    revisor.train()
    ray.get(study.play.remote(warmup, sampling))
    ray.get(study.train.remote())
    study_process = psutil.Process(ray.get(study.pid.remote()))
    rounds = []
    for index in range(bench.rounds):
        count = bench.episodes_per_round
        specs = SeedRange(task=task, start=index * count, count=count).take(count)
        ours = _timed(revisor.cpu_seconds, partial(revisor.play, specs), revisor.train)
        theirs = _timed(partial(_cpu_seconds, study_process),
                        partial(_call, study.play, specs, sampling), partial(_call, study.train))
        rounds.append({"revisor": _counts(ours, pack=True), "study": _counts(theirs, pack=False)})
        print(f"round {index + 1}/{bench.rounds}: {json.dumps(rounds[-1])}", flush=True)
    return rounds


def _call(method: Any, *args: Any) -> Any:
    """An actor's method called and waited for."""
    return ray.get(method.remote(*args))


def _timed(cpu: Any, play: Any, train: Any) -> dict[str, Any]:
    """Wall and CPU seconds of playing and of training; the trajectories played."""
    began, cpu_began = time.perf_counter(), cpu()
    table = play()
    played, cpu_played = time.perf_counter(), cpu()
    train()
    return {"table": table, "play_seconds": played - began, "play_cpu_seconds": cpu_played - cpu_began,
            "train_seconds": time.perf_counter() - played, "train_cpu_seconds": cpu() - cpu_played}


def _counts(timed: dict[str, Any], pack: bool) -> dict[str, Any]:
    """What was played and how the learner read it (learner.packing's statistics)."""
    table = timed.pop("table")
    table = table if isinstance(table, pa.Table) else pa.Table.from_batches([table])
    finals = table.filter(table.column("done"))
    turns = turns_from_record_batches(table.to_batches())
    trained = read_stats(turns, plan_units(turns, pack))
    packable = read_stats(turns, plan_units(turns, True))
    tokens = pc.sum(pc.list_value_length(table.column("response_ids"))).as_py() or 0
    return {"episodes": finals.num_rows, "turns": table.num_rows, "tokens": tokens,
            "successes": pc.sum(finals.column("success").cast("int64")).as_py() or 0,
            "packable_episodes": round(packable["packed_share"] * finals.num_rows),
            "tokens_read": round(trained["tokens_read_per_answer_token"] * tokens), **timed}


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system time of a process on this machine, all its threads."""
    times = process.cpu_times()
    return times.user + times.system


def _side(rounds: list[dict[str, Any]], side: str) -> dict[str, Any]:
    """One side's totals over the rounds and its rates: rollout only, and the whole loop."""
    total = {key: sum(r[side][key] for r in rounds) for key in rounds[0][side]}
    play, train = total["play_seconds"], total["train_seconds"]
    play_cpu, cpu = total["play_cpu_seconds"], total["play_cpu_seconds"] + total["train_cpu_seconds"]
    return {
        "whole_loop_episodes_per_s": round(total["episodes"] / (play + train), 4),
        "whole_loop_episodes_per_cpu_s": round(total["episodes"] / cpu, 4),
        "play_episodes_per_s": round(total["episodes"] / play, 3),
        "play_tokens_per_s": round(total["tokens"] / play, 1),
        "play_episodes_per_cpu_s": round(total["episodes"] / play_cpu, 3),
        "train_share": round(train / (play + train), 3),
        "turns_per_episode": round(total["turns"] / total["episodes"], 2),
        "tokens_per_episode": round(total["tokens"] / total["episodes"], 1),
        "tokens_read_per_answer_token": round(total["tokens_read"] / total["tokens"], 2),
        **{key: round(value, 3) for key, value in total.items()},
    }


def _report(bench: OriginalLoopBenchmark, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    revisor, study = _side(rounds, "revisor"), _side(rounds, "study")
    ratio = lambda key: round(revisor[key] / study[key], 2)  # noqa: E731
    return {
        "whole_loop_speedup": ratio("whole_loop_episodes_per_s"),
        "whole_loop_speedup_cpu": ratio("whole_loop_episodes_per_cpu_s"),
        "speedup": ratio("play_episodes_per_s"),
        "speedup_cpu": ratio("play_episodes_per_cpu_s"),
        "train_speedup": round(study["train_seconds"] / revisor["train_seconds"], 2),
        "revisor_whole_loop_episodes_per_s": revisor["whole_loop_episodes_per_s"],
        "study_whole_loop_episodes_per_s": study["whole_loop_episodes_per_s"],
        "study_packable_share": round(study["packable_episodes"] / study["episodes"], 3),
        "revisor": revisor,
        "study": study,
        "rounds": rounds,
        "settings": bench.model_dump(mode="json"),
    }


if __name__ == "__main__":
    main()
