"""Whole jobs under control: live rescaling, an interrupted and resumed run, bounded staleness,
the on-policy job against a plain synchronous loop, batches lost with their worker, and a worker
lost during a weight publication.

The jobs run as `python -m cluster.main` subprocesses (tests/jobs.py) with small pinned
settings; what they did is read back from the run directory, as a user would.
"""

from __future__ import annotations

import time

import pytest

from cluster.job.control import scale_main
from cluster.results.evaluations import read_evaluations, read_training_log
from cluster.settings.experiment import ClusterConfig, TrainingConfig
from contracts.tasks import GPConfig
from tests.jobs import (
    assert_every_episode_trained_once,
    finish,
    interrupt,
    logged_steps,
    process_title,
    run_job,
    small_job,
    start_job,
    summary,
    wait_for,
)

PER_UPDATE = 8
BROKER_TRAINING = TrainingConfig(episodes_per_update=4, queue_capacity=8, seed=100, updates=1000)
"""A broker of 4 episodes per batch for the tests that drive one by hand."""
PPO_STATS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
             "mean_reward", "success_rate", "tokens", "turns", "episodes")
"""Per-update numbers the learner reports that two identical runs must agree on."""


def _assert_same_updates(rows: list[dict], others: list[dict], keys: tuple[str, ...]) -> None:
    """Update by update the same numbers, up to float reduction order (printed: how close)."""
    assert len(rows) == len(others)
    gap = max(abs(row[key] - other[key]) / max(abs(row[key]), 1e-6)
              for row, other in zip(rows, others, strict=True) for key in keys)
    print(f"largest relative difference over {len(rows)} updates: {gap:.2e}")
    for row, other in zip(rows, others, strict=True):
        for key in keys:
            assert row[key] == pytest.approx(other[key], rel=1e-4, abs=1e-6), (
                row.get("step"), key, row[key], other[key])


def _collapsed(values: list[int]) -> list[int]:
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


@pytest.mark.slow
def test_live_scaling_one_two_one_loses_and_repeats_no_episode(tmp_path):
    """`revisor scale` while the job trains: 1 -> 2 -> 1 rollout workers, each change taking
    effect at an update boundary; the retired worker is kept until its batches are trained on,
    so no episode has to be replayed."""
    run, log, updates = tmp_path / "run", tmp_path / "job.log", 8
    job = start_job(small_job(run, "scaletest", "cluster.rollout_workers=1",
                              f"training.updates={updates}", "training.checkpoint_every=0"), log)
    try:
        wait_for(lambda: len(logged_steps(run)) >= 2, job, log, "two updates")
        assert scale_main([str(run), "2"]) == 0
        wait_for(lambda: any(r["workers"] == 2 for r in read_training_log(run)), job, log,
                 "an update with two workers")
        assert scale_main([str(run), "1"]) == 0
        finish(job, log)
    finally:
        interrupt(job)
    workers = [row["workers"] for row in read_training_log(run)]
    assert _collapsed(workers) == [1, 2, 1], workers
    episodes = assert_every_episode_trained_once(run, updates, PER_UPDATE)
    assert episodes["reissued"] == 0 and episodes["issued"] == updates * PER_UPDATE, episodes
    assert summary(run)["worker_restarts"] == 0


RESUME_UPDATES, RESUME_EVERY = 6, 2
RESUME_SETTINGS = [f"training.updates={RESUME_UPDATES}", f"training.checkpoint_every={RESUME_EVERY}",
                   "cluster.rollout_workers=1"]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """A run of 6 updates, never interrupted: what every resumed run must end as."""
    root = tmp_path_factory.mktemp("straight")
    run_job(small_job(root / "a", "resume-a", *RESUME_SETTINGS), root / "a.log")
    return root / "a"


@pytest.mark.slow
@pytest.mark.timeout(2400)  # three jobs one after another
def test_an_interrupted_and_resumed_run_matches_an_uninterrupted_one(tmp_path, straight_run):
    """Run B is stopped with SIGTERM right after logging update 3 (checkpoint 2 on disk), then
    resumed with --resume: the updates after the checkpoint are done again, and the run ends
    exactly as the straight run did."""
    run_b, log_b = tmp_path / "b", tmp_path / "b.log"
    job = start_job(small_job(run_b, "resume-b", *RESUME_SETTINGS), log_b)
    try:
        wait_for(lambda: len(logged_steps(run_b)) >= 3, job, log_b, "update 3")
    finally:
        code = interrupt(job)
    assert code != 0 and not (run_b / "summary.json").exists()
    logged = logged_steps(run_b)
    saved = sorted(p.name for p in (run_b / "checkpoints").iterdir())
    print(f"interrupted with updates {logged} logged and checkpoints {saved}")
    run_job(["--resume", str(run_b)], tmp_path / "b-resume.log")
    _assert_resumed_exactly(straight_run, run_b)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_dead_learner_rank_ends_the_job_naming_it_and_resume_goes_on_exactly(tmp_path, straight_run):
    """The learner rank's process is killed after update 3: the job ends at once (exit 1) with
    one line naming the rank and the last complete checkpoint, and --resume finishes the run
    exactly as the straight run."""
    import psutil

    run, log = tmp_path / "c", tmp_path / "c.log"
    job = start_job(small_job(run, "rank-lost", *RESUME_SETTINGS), log)
    try:
        wait_for(lambda: len(logged_steps(run)) >= 3, job, log, "update 3")
        ranks = [p for p in psutil.Process(job.pid).children(recursive=True)
                 if process_title(p) == "ray::RankActor"]
        assert len(ranks) == 1, ranks
        ranks[0].kill()
        code = job.wait(timeout=300)
    finally:
        interrupt(job)
    said = log.read_text()
    assert code == 1, said[-3000:]
    assert "revisor: learner rank 0 died" in said and "Traceback" not in said, said[-3000:]
    assert f"{run / 'checkpoints'}/version-" in said and f"--resume {run}" in said, said[-3000:]
    run_job(["--resume", str(run)], tmp_path / "c-resume.log")
    _assert_resumed_exactly(straight_run, run)


def _assert_resumed_exactly(run_a, run_b) -> None:
    a, b = summary(run_a), summary(run_b)
    assert b["policy_version"] == a["policy_version"] == RESUME_UPDATES
    assert b["episodes"] == a["episodes"]
    assert b["tokens"] == a["tokens"]
    episodes = assert_every_episode_trained_once(run_b, RESUME_UPDATES, PER_UPDATE)
    assert episodes["reissued"] == 0
    # Sampling is seeded per episode and turn, minibatches per version: the resumed run
    # plays and learns exactly what the uninterrupted one did, update by update.
    _assert_same_updates(read_training_log(run_a), read_training_log(run_b),
                         ("success", "oldest_version", *PPO_STATS))
    phases = lambda run: sorted((p.phase, p.split, p.success) for p in read_evaluations(run))  # noqa: E731
    assert phases(run_b) == phases(run_a)


@pytest.mark.slow
def test_max_staleness_two_trains_on_stale_samples_but_never_older_than_two(tmp_path):
    """Workers run up to two versions ahead against a queue of two batches: some updates train
    on samples of older policies, none older than two versions."""
    run, updates = tmp_path / "run", 6
    run_job(small_job(run, "stale2", "learner.ppo.max_staleness=2", "training.queue_capacity=2",
                      "cluster.rollout_workers=2", f"training.updates={updates}",
                      "training.checkpoint_every=0"), tmp_path / "job.log")
    rows = read_training_log(run)
    lags = [row["step"] - 1 - row["oldest_version"] for row in rows]
    print(f"policy lag of the oldest sample per update: {lags}")
    assert all(0 <= lag <= 2 for lag in lags), lags
    assert max(lags) >= 1, lags
    assert_every_episode_trained_once(run, updates, PER_UPDATE)


GROUPS_ON_TWO_RANKS = ("learner.ppo.advantage=group", "training.group_size=2",
                       "learner.publish_every=2", "learner.num_ranks=2")
"""Group advantages, publishing every other update, and two learner ranks, each training on
its own shard of every update (whole groups, learner.shard)."""


@pytest.mark.slow
@pytest.mark.parametrize("settings", [(), GROUPS_ON_TWO_RANKS],
                         ids=["gae", "groups-publish-every-2-two-ranks"])
def test_an_on_policy_job_equals_the_synchronous_loop(tmp_path, settings):
    """max_staleness 0 with one rollout worker is synchronous PPO: the job and the plain loop
    of cluster/job/loop.py (play the ledger's next 8 episodes, update, publish when due) with
    the same seeds train on the same episodes and report the same numbers, update by update;
    with group advantages the loop's groups are the job's (one task instance per group), with
    publish_every 2 the updates between publications keep playing the old weights, and with
    two learner ranks both shard each update the same way."""
    from cluster.job.loop import synchronous_loop
    from cluster.settings.experiment import ExperimentConfig
    from cluster.settings.loading import load_settings
    from rollout_workers.ray_runtime import local_cluster
    from tests.jobs import DEMO

    run, updates = tmp_path / "run", 4
    args = small_job(run, "sync", f"training.updates={updates}", "training.checkpoint_every=0",
                     "cluster.rollout_workers=1", *settings)
    run_job(args, tmp_path / "job.log")
    job_rows = read_training_log(run)

    config = load_settings(ExperimentConfig, DEMO, args[2:])
    with local_cluster(4):
        history, points = synchronous_loop(config)
    loop_rows = [stats.model_dump() for stats in history]
    assert [row["step"] for row in job_rows] == [row["policy_version"] for row in loop_rows]
    if not settings:
        assert all(row["oldest_version"] == row["step"] - 1 for row in job_rows)
    _assert_same_updates(job_rows, loop_rows, PPO_STATS)
    episodes = summary(run)["episodes"]
    assert episodes["issued"] == episodes["completed"] == updates * config.training.episodes_per_update
    final = {p.split: p.success for p in read_evaluations(run) if p.phase == f"step-{updates}"}
    assert {p.split: p.success for p in points} == final  # the same weights, the same episodes


@pytest.mark.slow
def test_batches_lost_with_their_worker_after_taking_are_replayed_under_the_same_ids():
    """A worker dies after its batch was taken and before the learner read it: the learner's
    read (the cut into rank shards, learner.shard_task) fails with the error the driver
    catches, the driver gives the batch back, and the broker replays exactly its episodes,
    each counted once."""
    import ray

    from cluster.job.broker import RolloutBroker
    from cluster.job.driver import LOST_DATA, give_back_lost
    from learner.shard_task import cut
    from rollout_workers.ray_runtime import actor_runtime_env, local_cluster
    from tests.jobs import BatchMaker

    with local_cluster(2):
        options = {"num_cpus": 0, "runtime_env": actor_runtime_env()}
        broker = ray.remote(RolloutBroker).options(max_concurrency=8, **options).remote(
            GPConfig(), BROKER_TRAINING, max_staleness=0, publish_every=1)
        maker = ray.remote(BatchMaker).options(**options)
        doomed, survivor = maker.remote("doomed"), maker.remote("survivor")
        lost_ids = ray.get(doomed.play.remote(broker, 2))
        kept_ids = ray.get(survivor.play.remote(broker, 2))
        taken = ray.get(broker.take_batches.remote(4, 10.0))
        assert taken.episodes == 4
        ray.kill(doomed, no_restart=True)
        # The owner's objects go a moment after it dies: wait until the driver sees them gone
        doomed_refs = [refs for meta, refs in taken.batches if meta.episode_ids == lost_ids][0]
        _wait_until_lost(doomed_refs, LOST_DATA)
        refs = [ref for _, batch_refs in taken.batches for ref in batch_refs]
        with pytest.raises(LOST_DATA):
            cut(refs, world_size=2)

        assert give_back_lost(broker, taken) == lost_ids
        assert [meta.episode_ids for meta, _ in taken.batches] == [kept_ids]
        replayed = ray.get(survivor.play.remote(broker, 4))
        assert replayed == lost_ids  # the same episodes (ids and seeds) again, nothing new
        again = ray.get(broker.take_batches.remote(2, 10.0))
        assert [meta.episode_ids for meta, _ in again.batches] == [lost_ids]
        ledger = ray.get(broker.stats.remote()).ledger.model_dump()
        assert ledger == {"issued": 6, "completed": 4, "reissued": 2, "duplicates_rejected": 0,
                          "dropped_stale": 0}
        ray.kill(survivor)


def _wait_until_lost(refs: list, lost: tuple[type[Exception], ...], within_s: float = 60) -> None:
    import ray

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            ray.get(refs)
        except lost:
            return
        time.sleep(0.2)
    raise AssertionError(f"the data of a dead worker was still readable after {within_s} s")


@pytest.mark.slow
def test_a_worker_that_dies_while_weights_are_published_is_replaced_on_the_new_weights(tmp_path):
    """A publication must not fail because one worker died during it (a node lost, a kill):
    the others load the weights, and the replacement starts on them."""
    import ray
    from safetensors.torch import load_file

    from cluster.job.broker import RolloutBroker
    from cluster.job.fleet import WorkerFleet
    from contracts.engine_config import RolloutEngineConfig
    from contracts.rollout_config import RolloutConfig
    from contracts.tasks import GPConfig
    from rollout_workers.ray_runtime import actor_runtime_env, local_cluster
    from tests.fixtures_models import save_model
    from weight_transport.object_store import ObjectStorePublication
    from weight_transport.packing import pack_weights

    model = save_model(tmp_path)
    weights = pack_weights(load_file(str(model / "model.safetensors")), version=7)
    with local_cluster(2):
        options = {"num_cpus": 0, "runtime_env": actor_runtime_env()}
        broker = ray.remote(RolloutBroker).options(max_concurrency=8, **options).remote(
            GPConfig(), BROKER_TRAINING, max_staleness=0, publish_every=1)
        fleet = WorkerFleet(broker, ClusterConfig(cpus_per_worker=0.0),
                            RolloutEngineConfig(kind="hf", model=model),
                            RolloutConfig(episodes_in_flight=2, episodes_per_batch=2),
                            weight_sync="object_store", name_prefix="revisor")
        fleet.scale_to(2)
        doomed = next(iter(fleet.members.values()))
        ray.kill(doomed.handle, no_restart=True)
        fleet.publish(ObjectStorePublication(version=7, ref=ray.put(weights),
                                            num_tensors=len(weights.entries),
                                            num_bytes=weights.nbytes))
        restarted, deadline = [], time.monotonic() + 120
        while not restarted and time.monotonic() < deadline:
            restarted = fleet.check().restarted
            time.sleep(0.2)
        assert restarted == [doomed.worker_id] and len(fleet.members) == 2
        versions = [ray.get(m.handle.stats.remote()).policy_version for m in fleet.members.values()]
        assert versions == [7, 7]
        fleet.shutdown()
