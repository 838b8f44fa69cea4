"""The learner as Ray actors: data parallelism does not change the update, ZeRO-3 weight export
gives the full state dict, and trajectories reach the ranks only as object refs, each rank
only its own shard of them."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import ray
import torch
from transformers import AutoModelForCausalLM

from contracts.engine import SamplingSettings
from contracts.engine_config import RolloutEngineConfig
from contracts.rollout_config import RolloutConfig
from contracts.tasks import GPConfig
from learner.checkpoint_manifest import CheckpointError, model_mismatch, read_latest
from learner.config import DeepSpeedConfig, LearnerConfig, ModelConfig, OptimConfig, PPOConfig
from learner.group import LearnerGroup
from learner.model import meta_backbone, parameter_shapes
from learner.shard import split_batches
from rollout_workers.episodes.seeds import SeedRange
from rollout_workers.ray_runtime import local_cluster
from rollout_workers.tiny_models import save_tiny_model
from rollout_workers.worker import RolloutWorker
from weight_transport.packing import unpack_weights

pytestmark = pytest.mark.slow
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(num_cpus=2):
        yield


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("lm", "0.5m", tmp_path_factory.mktemp("lm"))


@pytest.fixture(scope="module")
def batch_refs(cluster, lm_path: Path) -> list[ray.ObjectRef]:
    """Real rollouts (two attempts per episode, three per hand), in the object store: the
    learner gets refs."""
    worker = RolloutWorker("w0", RolloutEngineConfig(kind="hf", model=lm_path), RolloutConfig(
        episodes_in_flight=9, episodes_per_batch=3,
        sampling=SamplingSettings(temperature=1.0, max_tokens=16, seed=5)))
    source = SeedRange(task=GPConfig(max_attempts=2), group_size=3)
    batches = list(worker.rollouts(source, max_episodes=9))
    return [ray.put(batch) for batch in batches]


def _config(path: Path, ranks: int, stage: int, advantage: str = "gae",
            weight_sync: str = "object_store") -> LearnerConfig:
    return LearnerConfig(
        model=ModelConfig(path=str(path)), optim=OptimConfig(lr=1e-3, value_head_lr_scale=10),
        engine=DeepSpeedConfig(zero_stage=stage, micro_batch_size=2),
        ppo=PPOConfig(ppo_epochs=3, num_minibatches=1, temperature=1.0, advantage=advantage),
        num_ranks=ranks, weight_sync=weight_sync)


def _weights(publication) -> dict[str, torch.Tensor]:
    packed = ray.get(publication.ref)
    assert packed.version == publication.version
    return dict(unpack_weights(packed))


def _update(config: LearnerConfig, refs: list[ray.ObjectRef]):
    group = LearnerGroup(config)
    try:
        result = group.update(refs)
        return result, _weights(result.weights)
    finally:
        group.shutdown()


BATCH_FACTS = ("episodes", "turns", "tokens", "mean_reward", "success_rate", "mean_staleness",
               "max_staleness", "tokens_read_per_answer_token", "packed_share",
               "pack_fallback_not_extending", "behaviour_logprob_gap",
               "behaviour_logprob_gap_max")
"""UpdateStats fields about the whole batch, which no rank holds alone any more."""
LOSS_STATS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")


@pytest.mark.parametrize("advantage", ["gae", "group"])
def test_two_zero2_ranks_update_like_one(lm_path: Path, batch_refs, advantage: str) -> None:
    """Ranks get whole groups: a group advantage sees the same group on one rank or two, the
    advantages are standardised over the whole batch, and the batch's facts are the whole
    batch's (one minibatch: both updates take the same full-batch steps)."""
    one, one_weights = _update(_config(lm_path, 1, 2, advantage), batch_refs)
    two, two_weights = _update(_config(lm_path, 2, 2, advantage), batch_refs)
    assert two.stats.episodes == one.stats.episodes == 9
    for key in BATCH_FACTS + LOSS_STATS:
        assert getattr(two.stats, key) == pytest.approx(getattr(one.stats, key), rel=1e-5,
                                                        abs=1e-7), key
    # the full-batch loss of every epoch (so after one and two optimizer steps too)
    assert two.stats.epoch_losses == pytest.approx(one.stats.epoch_losses, rel=1e-5)
    assert two.stats.value_loss == pytest.approx(one.stats.value_loss, rel=1e-5)
    assert two.stats.grad_norm == pytest.approx(one.stats.grad_norm, rel=1e-5)
    assert two.weights.version == one.weights.version == 1
    for name, value in one_weights.items():
        assert torch.allclose(two_weights[name], value, atol=1e-5), name


def test_each_rank_receives_exactly_its_shard(lm_path: Path, batch_refs) -> None:
    """The episode ids each rank says it trained on are the sharding function's cut of the
    batch: disjoint, together the whole batch; each rank fetched less than the batch."""
    result, _ = _update(_config(lm_path, 2, 2), batch_refs)
    expected = split_batches(ray.get(batch_refs), 2)
    received = [set(receipt.episode_ids) for receipt in result.shards]
    assert [receipt.rank for receipt in result.shards] == [0, 1]
    assert received == [set(s.rows.column("episode_id").to_pylist()) for s in expected]
    assert not received[0] & received[1] and all(received)
    assert len(received[0] | received[1]) == result.stats.episodes == 9
    assert sum(r.turns for r in result.shards) == result.stats.turns
    assert sum(r.tokens for r in result.shards) == result.stats.tokens
    assert all(r.nbytes < result.batch_bytes for r in result.shards)


def test_a_rank_without_groups_pads_along_under_zero3(lm_path: Path, batch_refs) -> None:
    """One task instance, two ranks: rank 1's shard is empty; it runs zero-weight forwards
    and backwards on the filler turn, in step with rank 0's gathers, and the update is rank
    0's group alone, like on one rank."""
    table = pa.Table.from_batches(ray.get(batch_refs))
    group = table.filter(pc.equal(table.column("seed"), table.column("seed")[0]))
    refs = [ray.put(batch) for batch in group.to_batches()]
    one, _ = _update(_config(lm_path, 1, 3), refs)
    two, _ = _update(_config(lm_path, 2, 3), refs)
    assert [r.turns for r in two.shards] == [group.num_rows, 0]
    assert two.stats.episodes == one.stats.episodes == 3
    assert two.stats.epoch_losses == pytest.approx(one.stats.epoch_losses, rel=1e-5)


def test_zero3_export_is_the_full_state_dict_and_survives_a_checkpoint(
        lm_path: Path, batch_refs, tmp_path: Path) -> None:
    reference = AutoModelForCausalLM.from_pretrained(lm_path)
    # every name of every parameter: a tied output layer is named too (engines load by name)
    expected = dict(reference.named_parameters(remove_duplicate=False))
    assert "lm_head.weight" in expected
    group = LearnerGroup(_config(lm_path, ranks=2, stage=3))
    try:
        initial = group.publish()
        weights = _weights(initial)
        assert initial.version == 0
        assert set(weights) == set(expected)  # the backbone in its own naming, no value head
        # ... but its bytes travel once
        assert initial.num_bytes == sum(p.numel() * 4 for p in reference.parameters())
        for name, param in expected.items():
            assert torch.equal(weights[name], param.detach()), name
        updated = group.update(batch_refs).weights
        new_weights = _weights(updated)
        assert updated.version == 1 == group.state().policy_version
        metrics = urllib.request.urlopen(f"http://{group.metrics_endpoint}/metrics").read().decode()
        assert "revisor_learner_policy_version 1.0" in metrics
        assert "revisor_ppo_entropy" in metrics and "revisor_weight_publish_bytes_total" in metrics
        assert all(new_weights[n].shape == p.shape for n, p in expected.items())
        assert not torch.equal(new_weights["model.embed_tokens.weight"],
                               weights["model.embed_tokens.weight"])
        # rank 0 packed the update into the first publication's buffers; the first
        # publication's object kept its own values all the same
        for name, param in expected.items():
            assert torch.equal(_weights(initial)[name], param.detach()), name
        group.save(tmp_path / "ckpt", extra={"next_seed": 9})
    finally:
        group.shutdown()
    # the full shapes were recorded from the shards: the driver's check of a resume agrees
    assert read_latest(tmp_path / "ckpt") == "version-1"
    assert model_mismatch(tmp_path / "ckpt" / "version-1",
                          parameter_shapes(meta_backbone(ModelConfig(path=str(lm_path)))),
                          str(lm_path)) is None
    # a new group resumes from the sharded checkpoint: same version, same full weights
    resumed = LearnerGroup(_config(lm_path, ranks=2, stage=3))
    try:
        state = resumed.load(tmp_path / "ckpt")
        assert state.policy_version == 1 and state.extra == {"next_seed": 9}
        restored = _weights(resumed.publish())
        for name, value in new_weights.items():
            assert torch.equal(restored[name], value), name
    finally:
        resumed.shutdown()


def test_shared_memory_publications_reach_an_engine_on_the_learners_node(
        lm_path: Path, batch_refs) -> None:
    """weight_sync='shared_memory': an engine on rank 0's node loads each version from rank
    0's segment, the same segment rewritten by the next publication: after an update the
    engine holds the new weights (those rank 0 keeps), not the old ones."""
    from contracts.packed_weights import WeightLayout
    from rollout_workers.engine import make_engine
    from weight_transport import make_transport
    from weight_transport.shared_memory import map_segment

    group = LearnerGroup(_config(lm_path, ranks=1, stage=2, weight_sync="shared_memory"))
    engine = make_engine(RolloutEngineConfig(kind="hf", model=lm_path))
    transport = make_transport("shared_memory")
    try:
        first = group.publish()
        reference = AutoModelForCausalLM.from_pretrained(lm_path).state_dict()
        assert first.node_id == ray.get_runtime_context().get_node_id()  # so it maps the segment
        mapped = unpack_weights(map_segment(first.segment, WeightLayout.from_dict(first.layout), 0))
        assert all(torch.equal(tensor, reference[name]) for name, tensor in mapped)
        transport.receive(engine, first)
        for name, param in engine.model.state_dict().items():
            assert torch.equal(param, reference[name]), name
        second = group.update(batch_refs).weights
        assert second.segment == first.segment and second.version == 1
        transport.receive(engine, second)
        kept = dict(unpack_weights(ray.get(second.sender.latest_weights.remote())))
        for name, param in engine.model.state_dict().items():
            assert torch.equal(param, kept[name]), name
        embed = "model.embed_tokens.weight"
        assert not torch.equal(engine.model.state_dict()[embed], reference[embed])
    finally:
        engine.shutdown()
        group.shutdown()


def test_loading_a_checkpoint_of_another_model_fails_in_one_line_on_the_driver(
        cluster, lm_path: Path, tmp_path: Path) -> None:
    """The rank's error comes back as the CheckpointError itself, not a Ray traceback."""
    group = LearnerGroup(_config(lm_path, ranks=1, stage=2))
    try:
        group.save(tmp_path / "ckpt")
    finally:
        group.shutdown()
    bigger = LearnerGroup(_config(save_tiny_model("lm", "5m", tmp_path / "lm5m"), ranks=1, stage=2))
    try:
        with pytest.raises(CheckpointError, match="holds another model") as error:
            bigger.load(tmp_path / "ckpt")
    finally:
        bigger.shutdown()
    assert "\n" not in str(error.value) and "version-0" in str(error.value)
