"""The sync-divergence guard: a learner that refuses a batch sampled with other weights, workers
whose weight fingerprints give away a skipped or damaged load (real Ray, real transports, the
test-only fault of `rollout.test_fault`), the driver's rule of two trips in a row, and the
settings that bound it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cluster.job.sync_guard import SyncGuard
from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from contracts.tasks import GPConfig
from contracts.trajectory import BatchMeta
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, PPOConfig
from tests.fixtures_models import save_model
from tests.process_group import own_process_group  # noqa: F401

TWO_ATTEMPTS = GPConfig(max_attempts=2)


def _meta(worker: str, version: int, fingerprint: str | None, publication: int = 0) -> BatchMeta:
    return BatchMeta(worker=worker, episode_ids=["e"], oldest_version=version,
                     newest_version=version, turns=1, loaded_version=version,
                     loaded_fingerprint=fingerprint, loaded_publication=publication)


def test_gap_limits_default_by_dtype_and_refuse_bad_values() -> None:
    model = ModelConfig(path="unused")
    assert LearnerConfig(model=model).gap_limits == (1e-3, 0.05)
    assert LearnerConfig(model=model, gpus_per_rank=1).gap_limits == (0.1, 8.0)
    assert LearnerConfig(model=model, max_behaviour_gap={"mean": 0.02}).gap_limits == (0.02, 0.05)
    assert LearnerConfig(model=model, max_behaviour_gap=None).gap_limits is None
    with pytest.raises(ValueError, match="max_behaviour_gap.max"):
        LearnerConfig(model=model, max_behaviour_gap={"max": 0})
    with pytest.raises(ValueError, match="weight_sync_timeout_s"):
        LearnerConfig(model=model, weight_sync_timeout_s=-1)


def test_the_guard_ends_the_job_only_on_two_trips_in_a_row() -> None:
    guard = SyncGuard((1e-3, 0.05))
    guard.published(3, "aaaa", publication=3)
    assert guard.check_fingerprints([_meta("rollout-0", 3, "aaaa"),
                                     _meta("rollout-1", 2, "zzzz"),  # version rank 0 never sent
                                     _meta("rollout-1", 3, None)]) is None  # not fingerprinted
    trip = guard.check_fingerprints([_meta("rollout-0", 3, "aaaa", 3),
                                     _meta("rollout-1", 3, "bbbb", 3)])
    assert trip is not None and trip.workers == ["rollout-1"] and trip.version == 3
    assert trip.publication == 3
    assert guard.record(trip) is None  # the first: publish again, go on
    guard.published(3, "aaaa", publication=4)
    assert guard.record(None) is None and guard.trips == 1  # a clean update clears it
    assert guard.record(trip) is None
    guard.published(3, "aaaa", publication=5)  # the re-publication
    again = guard.check_fingerprints([_meta("rollout-1", 3, "bbbb", 5)])
    assert again is not None and guard.record(again) == trip  # the job ends with again.line()
    assert again.line().startswith("rollout worker(s) rollout-1 do not sample with the "
                                   "learner's weights version 3: weights fingerprint bbbb where "
                                   "learner rank 0 published aaaa")
    assert SyncGuard(None).check_fingerprints([_meta("rollout-1", 3, "bbbb")]) is None


def test_batches_shipped_before_the_republication_do_not_end_the_job() -> None:
    """A trip, the re-publication, then batches that waited in the queue through it (stamped
    with an older publication): refused and replayed again, not a second trip in a row. A
    bad batch shipped after the re-publication that followed them ends the job."""
    guard = SyncGuard((1e-3, 0.05))
    guard.published(3, "aaaa", publication=3)
    first = guard.check_fingerprints([_meta("rollout-1", 3, "bbbb", 3)])
    assert first is not None and guard.record(first) is None
    guard.published(3, "aaaa", publication=4)
    queued = guard.check_fingerprints([_meta("rollout-1", 3, "bbbb", 3)])
    assert queued is not None and guard.record(queued) is None and guard.trips == 2
    guard.published(3, "aaaa", publication=5)
    assert guard.check_fingerprints([_meta("rollout-1", 3, "aaaa", 5)]) is None  # repaired
    late = guard.check_fingerprints([_meta("rollout-1", 3, "bbbb", 5)])
    assert late is not None and guard.record(late) == queued


@pytest.mark.slow
def test_a_batch_sampled_with_damaged_weights_is_not_trained_on(tmp_path: Path) -> None:
    """An engine on damaged weights (the test fault's damage) plays at the learner's version:
    the learner scores its batch, finds the gap far past the float32 limit and takes no
    optimiser step; a batch from the learner's own weights then trains as usual."""
    from learner.rank import LearnerRank
    from rollout_workers.episodes.seeds import SeedRange
    from rollout_workers.faults import damaged
    from rollout_workers.worker import RolloutWorker

    model = save_model(tmp_path)
    worker = RolloutWorker("w", RolloutEngineConfig(kind="hf", model=model), RolloutConfig(
        episodes_in_flight=4, episodes_per_batch=4,
        sampling=SamplingSettings(temperature=1.0, max_tokens=16, seed=0)))
    learner = LearnerRank(LearnerConfig(
        model=ModelConfig(path=str(model)), engine=DeepSpeedConfig(zero_stage=0),
        ppo=PPOConfig(temperature=1.0, ppo_epochs=1, num_minibatches=1)))
    clean = list(worker.rollouts(SeedRange(task=TWO_ATTEMPTS), max_episodes=4))
    before = {name: t.clone() for name, t in learner.export_weights().items()}
    worker.update_weights([(name, damaged(t)) for name, t in before.items()], version=0)
    bad = list(worker.rollouts(SeedRange(task=TWO_ATTEMPTS, start=50), max_episodes=4))

    refused = learner.update(bad)
    print(f"guard gap of the damaged batch: mean {refused.guard_gap:.3g}, "
          f"max {refused.guard_gap_max:.3g} nats")
    assert refused.skipped == "gap" and refused.optimizer_steps == 0
    assert refused.policy_version == 0 and learner.state.policy_version == 0
    assert refused.guard_gap > 1e-3 and refused.guard_turns == refused.turns
    after = learner.export_weights()
    assert all(after[name].equal(tensor) for name, tensor in before.items())

    trained = learner.update(clean)
    print(f"guard gap of the clean batch: mean {trained.guard_gap:.3g}, "
          f"max {trained.guard_gap_max:.3g} nats")
    assert trained.skipped is None and trained.policy_version == 1
    assert trained.optimizer_steps == 1 and trained.guard_gap_max < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("weight_sync", ["object_store", "shared_memory"])
def test_workers_that_mishandle_a_load_are_named_by_their_fingerprints(
        tmp_path: Path, weight_sync: str) -> None:
    """Three serving workers: rollout-1 skips its loads, rollout-2 loads damaged bytes; a
    publication through the real transport. The first batches each worker ships on the new
    version (what the driver checks before its next update) name rollout-1 and rollout-2,
    and rollout-0's agree with learner rank 0's fingerprint."""
    import ray
    import torch
    from safetensors.torch import load_file

    from cluster.job.broker import RolloutBroker
    from cluster.job.fleet import WorkerFleet
    from cluster.settings.experiment import ClusterConfig, TrainingConfig
    from rollout_workers.ray_runtime import actor_runtime_env, local_cluster
    from weight_transport.keeper import WeightKeeper

    model = save_model(tmp_path)
    weights = {name: t + 0.01 * torch.randn_like(t) if t.is_floating_point() else t
               for name, t in load_file(str(model / "model.safetensors")).items()}
    training = TrainingConfig(episodes_per_update=4, queue_capacity=8, seed=0, updates=100)
    workers = {"rollout-0", "rollout-1", "rollout-2"}
    with local_cluster(4):
        broker = ray.remote(RolloutBroker).options(
            num_cpus=0, max_concurrency=8, runtime_env=actor_runtime_env()).remote(
            TWO_ATTEMPTS, training, max_staleness=0, publish_every=1)
        rollout = RolloutConfig(episodes_in_flight=2, episodes_per_batch=2,
                                sampling=SamplingSettings(max_tokens=16, seed=0),
                                test_faults={"rollout-1": "skip_load", "rollout-2": "corrupt"})
        fleet = WorkerFleet(broker, ClusterConfig(cpus_per_worker=0.0),
                            RolloutEngineConfig(kind="hf", model=model), rollout,
                            weight_sync=weight_sync, name_prefix="guard")
        try:
            fleet.scale_to(3)
            keeper = WeightKeeper(weight_sync)  # this process stands in for learner rank 0
            packed = keeper.keep(weights, version=1)
            export = keeper.export(ray.get_runtime_context().get_node_id())
            ref = ray.put(packed) if keeper.ships_weights else None
            publication = fleet.transport.publication(export, ref, sender=None).model_copy(
                update={"fingerprint": export.fingerprint})
            guard = SyncGuard((1e-3, 0.05))
            guard.published(1, publication.fingerprint)
            ray.get(broker.set_version.remote(1))
            fleet.publish(publication)
            metas = _first_batches_after(broker, version=1, workers=workers)
            trip = guard.check_fingerprints(metas)
            assert trip is not None and trip.workers == ["rollout-1", "rollout-2"]
            assert trip.version == 1
            healthy = [m for m in metas if m.worker == "rollout-0"]
            assert healthy and guard.check_fingerprints(healthy) is None
            print(trip.line())
        finally:
            fleet.shutdown()


def _first_batches_after(broker, version: int, workers: set[str]) -> list[BatchMeta]:
    """The batches stamped with `version`, taken an update (4 episodes) at a time until every
    worker has shipped one."""
    import ray

    metas: list[BatchMeta] = []
    deadline = time.monotonic() + 600
    while {m.worker for m in metas} != workers:
        assert time.monotonic() < deadline, f"batches came only from {metas}"
        taken = ray.get(broker.take_batches.remote(4, 10.0))
        metas += [meta for meta, _ in taken.batches if meta.loaded_version == version]
    return metas


@pytest.mark.slow
def test_a_job_whose_worker_skips_its_loads_ends_in_one_line_naming_it(tmp_path: Path) -> None:
    """A whole job (tests/jobs.py) with one worker skipping every load: update 1 trains, the
    next is refused and its episodes replayed after a second publication, and the one after
    that ends the job (exit 1) with the guard's line; training.jsonl shows the refusal."""
    from cluster.results.evaluations import read_training_log
    from tests.jobs import interrupt, small_job, start_job

    run, log = tmp_path / "run", tmp_path / "job.log"
    job = start_job(small_job(run, "guard", "training.updates=3", "cluster.rollout_workers=1",
                              "learner.weight_sync=shared_memory",
                              "rollout.test_faults={rollout-0: skip_load}"), log)
    try:
        code = job.wait(timeout=840)
    finally:
        interrupt(job)
    said = " ".join(log.read_text().split())  # the console wraps long lines
    assert code == 1, said[-3000:]
    assert ("revisor: rollout worker(s) rollout-0 do not sample with the learner's weights "
            "version 1: weights fingerprint") in said and "Traceback" not in said, said[-3000:]
    rows = read_training_log(run)
    assert [(row["step"], row["skipped"], row["guard_trips"]) for row in rows] == [
        (1, None, 0), (1, "fingerprint", 1)]


@pytest.mark.slow
def test_a_job_whose_worker_skips_one_load_recovers_and_trains_on(tmp_path: Path) -> None:
    """A whole job with one worker skipping only its first load (a transient fault): the
    update after it is refused, the weights are published again, the refused episodes are
    replayed with the weights just loaded, and the job trains its three updates and ends well."""
    from cluster.results.evaluations import read_training_log
    from tests.jobs import run_job, small_job

    run, log = tmp_path / "run", tmp_path / "job.log"
    run_job(small_job(run, "guard-once", "training.updates=3", "cluster.rollout_workers=1",
                      "learner.weight_sync=shared_memory",
                      "rollout.test_faults={rollout-0: skip_first_load}"), log)
    said = " ".join(log.read_text().split())
    assert "sync-divergence guard (fingerprint): update not trained on" in said, said[-3000:]
    rows = read_training_log(run)
    assert [(row["step"], row["skipped"], row["guard_trips"]) for row in rows] == [
        (1, None, 0), (1, "fingerprint", 1), (2, None, 1), (3, None, 1)]
