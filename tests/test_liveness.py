"""Hung rollout workers: alive, silent, and found out within `worker_timeout_s`.

A worker process stopped with SIGSTOP answers nothing and never dies on its own; before
liveness pulses, one such worker stalled a whole job for minutes. These tests stop real
worker processes and check that every call the fleet makes still returns, the worker is
killed and replaced on the current weights, and its episodes go back in line.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from cluster.settings.experiment import ClusterConfig, TrainingConfig
from contracts.tasks import TaskConfig
from tests.jobs import process_gone

TIMEOUT_S = 10.0


def _broker(task: dict):
    """A RolloutBroker actor handing out episodes of `task` (4 per batch, 100 at most)."""
    import ray

    from cluster.job.broker import RolloutBroker
    from rollout_workers.ray_runtime import actor_runtime_env

    options = {"num_cpus": 0, "runtime_env": actor_runtime_env()}
    training = TrainingConfig(episodes_per_update=4, queue_capacity=8, seed=100, updates=1000)
    return ray.remote(RolloutBroker).options(max_concurrency=8, **options).remote(
        TypeAdapter(TaskConfig).validate_python(task), training, max_staleness=0, publish_every=1)


def _fleet(broker, model, **timeouts):
    """A fleet of hf-engine rollout workers of the tiny model (none started yet)."""
    from cluster.job.fleet import WorkerFleet
    from contracts.engine_config import RolloutEngineConfig
    from contracts.rollout_config import RolloutConfig

    cluster = ClusterConfig(cpus_per_worker=0.0, **{"worker_timeout_s": TIMEOUT_S, **timeouts})
    return WorkerFleet(broker, cluster, RolloutEngineConfig(kind="hf", model=model),
                       RolloutConfig(episodes_in_flight=2, episodes_per_batch=2),
                       weight_sync="object_store", name_prefix="revisor")


@pytest.fixture
def fleet_of_two(tmp_path):
    """Two serving rollout workers of the tiny model (hf engine) with a 10 s timeout."""
    from rollout_workers.ray_runtime import local_cluster
    from tests.fixtures_models import save_model

    model = save_model(tmp_path)
    with local_cluster(2):
        fleet = _fleet(_broker({"task": "gp"}), model)
        fleet.scale_to(2)
        try:
            yield fleet, model
        finally:
            fleet.shutdown()


def _stop_one(fleet) -> tuple[str, int]:
    import ray

    member = next(iter(fleet.members.values()))
    pid = ray.get(member.handle.stats.remote()).pid
    os.kill(pid, signal.SIGSTOP)
    return member.worker_id, pid


@pytest.mark.slow
def test_a_publication_does_not_wait_for_a_stopped_worker(fleet_of_two):
    """The publication returns about `worker_timeout_s` after it began; the stopped worker is
    killed, and its replacement serves the published version."""
    import ray
    from safetensors.torch import load_file

    from weight_transport.object_store import ObjectStorePublication
    from weight_transport.packing import pack_weights

    fleet, model = fleet_of_two
    stopped, pid = _stop_one(fleet)
    weights = pack_weights(load_file(str(model / "model.safetensors")), version=7)
    began = time.monotonic()
    fleet.publish(ObjectStorePublication(version=7, ref=ray.put(weights),
                                            num_tensors=len(weights.entries),
                                            num_bytes=weights.nbytes))
    took = time.monotonic() - began
    events = fleet.check()
    assert TIMEOUT_S <= took < TIMEOUT_S + 60, took
    assert stopped in events.hung and events.restarted == [stopped], events
    assert stopped not in fleet.members and len(fleet.members) == 2
    versions = [ray.get(m.handle.stats.remote()).policy_version for m in fleet.members.values()]
    assert versions == [7, 7]
    assert process_gone(pid), "the stopped worker's process was not killed"


@pytest.mark.slow
def test_a_stopped_worker_is_found_while_the_driver_waits_and_during_an_evaluation(fleet_of_two):
    """Found by `check` (what the driver calls while it waits for data), its held episodes
    replayed; and a worker stopped during an evaluation has its share played by its
    replacement, so every episode of the evaluation comes back."""
    from contracts.engine import SamplingSettings
    from contracts.episode_spec import EpisodeSpec
    from contracts.tasks import GPConfig

    fleet, _ = fleet_of_two
    stopped, pid = _stop_one(fleet)
    deadline, events = time.monotonic() + TIMEOUT_S + 60, None
    while time.monotonic() < deadline and not (events and events.restarted):
        events = fleet.check()
        time.sleep(1.0)
    assert events.restarted == [stopped] and stopped in events.hung, events
    assert process_gone(pid)

    fleet.pause()
    stopped, pid = _stop_one(fleet)
    specs = [EpisodeSpec(episode_id=f"eval-{i}", task=GPConfig(), seed=i) for i in range(6)]
    batches = fleet.evaluate(specs, SamplingSettings(temperature=0.0, max_tokens=8))
    played = sorted(i for batch in batches for i in set(batch.column("episode_id").to_pylist()))
    assert played == sorted(s.episode_id for s in specs)
    fleet.resume()
    assert stopped in fleet.check().hung and process_gone(pid)


@pytest.mark.slow
def test_a_route_file_gone_while_the_job_runs_ends_it_in_one_line(tmp_path):
    """A worker that fails on a task input ends the job naming the file: replacing it would
    fail the same way, max_worker_restarts times, and say nothing useful."""
    import shutil

    import ray

    from cluster.job.runtime import JobFailed
    from rollout_workers.ray_runtime import local_cluster
    from tests.fixtures_models import save_model

    routes = tmp_path / "routes.json"
    shutil.copy(Path(__file__).parent / "data" / "virl_routes_example.json", routes)
    model = save_model(tmp_path)
    with local_cluster(2):
        broker = _broker({"task": "virl", "route_source": str(routes)})
        ray.get(broker.stats.remote())  # it has read the task settings
        routes.unlink()
        fleet = _fleet(broker, model)
        fleet.scale_to(1)
        try:
            with pytest.raises(JobFailed, match=f"rollout worker rollout-0 cannot play the task: "
                                                f"task.virl.route_source: .*{routes}.* is neither"):
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    fleet.check()
                    time.sleep(0.5)
            assert fleet.restarts == 0
        finally:
            fleet.shutdown()


@pytest.mark.slow
def test_a_worker_still_loading_after_the_start_timeout_ends_the_job_naming_it(tmp_path):
    """A start-up that never ends (a model on a hung mount) must not stall the job: the fleet
    waits `worker_start_timeout_s` for the engine, then fails in one line."""
    from cluster.job.runtime import JobFailed
    from rollout_workers.ray_runtime import local_cluster
    from tests.fixtures_models import save_model

    model = save_model(tmp_path)
    with local_cluster(2):
        fleet = _fleet(_broker({"task": "gp"}), model, worker_start_timeout_s=0.2)
        began = time.monotonic()
        try:
            with pytest.raises(JobFailed, match=r"rollout worker rollout-0 did not load its "
                                                r"engine .* cluster.worker_start_timeout_s=0.2 s"):
                fleet.scale_to(1)
            assert time.monotonic() - began < 5  # a process and an engine take longer than that
        finally:
            fleet.shutdown()
