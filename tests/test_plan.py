"""`revisor plan`: the paper configs fit one node of 8 x 80 GB, an unshardable 11B learner is
refused with the allocation that does not fit, and the estimates agree with what DeepSpeed and
vLLM really allocate for a tiny model on CPU. Nothing here starts Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cluster.cli import main as cli_main
from cluster.plan.planner import plan_experiment
from cluster.settings.experiment import ExperimentConfig
from cluster.settings.loading import load_settings
from rollout_workers.tiny_models import save_tiny_model

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = sorted((ROOT / "configs" / "paper").glob("*.yaml"))
MLLAMA_11B = ROOT / "configs" / "models" / "llama-3.2-11b-vision-instruct"

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model("lm", "5m", tmp_path_factory.mktemp("lm5m"))


def test_the_shipped_architecture_is_llama_3_2_11b_vision() -> None:
    from transformers import AutoConfig, MllamaConfig

    config = AutoConfig.from_pretrained(MLLAMA_11B)
    assert isinstance(config, MllamaConfig)
    text, vision = config.text_config, config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads,
            text.num_key_value_heads, text.intermediate_size, text.vocab_size) == (
        4096, 40, 32, 8, 14336, 128256)
    assert text.cross_attention_layers == [3, 8, 13, 18, 23, 28, 33, 38]
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_global_layers,
            vision.image_size, vision.patch_size, vision.max_num_tiles) == (1280, 32, 8, 560, 14, 4)
    assert not any(MLLAMA_11B.glob("*.safetensors"))  # architecture only
    plan = plan_experiment(load_settings(ExperimentConfig, PAPER_CONFIGS[0]))
    assert plan.model.parameters == pytest.approx(10.67e9, rel=0.01)  # meta-device count


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_configs_fit_one_node_of_eight_gpus_without_overlap(path: Path) -> None:
    config = load_settings(ExperimentConfig, path)
    assert config.model == "configs/models/llama-3.2-11b-vision-instruct"
    assert config.rollout.sampling.temperature == config.learner.ppo.temperature == 0.2
    assert config.evaluation.episodes == 234 and config.evaluation.temperature == 0.0
    plan = plan_experiment(config)
    assert plan.fits, plan.problems
    held = [gpu for process in plan.placement.processes for gpu in process.gpus]
    assert len(held) == len(set(held)) == 8, "every process on GPUs of its own"
    assert {(gpu.node, gpu.gpu) for gpu in held} == {(0, i) for i in range(8)}
    assert len(plan.placement.learner) == 4 and len(plan.placement.rollout) == 4
    assert plan.rollout_engine == "hf"  # vLLM cannot serve Mllama
    assert all(load.bytes <= load.capacity_bytes for load in plan.gpu_loads)


def test_fractional_requests_share_a_gpu_and_whole_ones_do_not() -> None:
    from cluster.plan.placement import GpuRef, describe_gpus, place

    placement = place([("learner", 0, 1), ("learner", 1, 1), ("rollout", 0, 0.5),
                       ("rollout", 1, 0.5), ("rollout", 2, 0.5), ("rollout", 3, 2)],
                      gpus_per_node=4, nodes=1)
    assert [p.gpus for p in placement.rollout] == [
        [GpuRef(node=0, gpu=2)], [GpuRef(node=0, gpu=2)], [GpuRef(node=0, gpu=3)],
        [GpuRef(node=1, gpu=0), GpuRef(node=1, gpu=1)]]
    assert len(placement.gpus_used) == 6 > placement.gpus_available
    assert describe_gpus(placement.gpus_used) == "node 0 GPU 0-3, node 1 GPU 0-1"


def test_an_unsharded_11b_learner_on_one_gpu_is_refused(capsys: pytest.CaptureFixture) -> None:
    code = cli_main(["plan", "--config", str(PAPER_CONFIGS[0]), "learner.num_ranks=1",
                     "learner.engine.zero_stage=0", "cluster.rollout_workers=1"])
    out = capsys.readouterr().out
    assert code == 1
    problem = next(line for line in out.splitlines()
                   if line.startswith("  - learner rank does not fit its GPU"))
    assert "GiB over" in problem and "optimizer states" in problem and "gradients" in problem
    assert "raise learner.engine.zero_stage to 3 (now 0) with learner.num_ranks >= " in problem


def test_cli_prints_the_placement_and_rejects_a_bad_field(capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["plan", "--config", str(ROOT / "configs" / "paper" / "gp-l.yaml")]) == 0
    out = capsys.readouterr().out
    assert "learner ranks: 4 on node 0 GPU 0-3 (1 GPU each)" in out
    assert "rollout workers: 4 on node 0 GPU 4-7 (1 GPU each)" in out
    assert "fits: every process fits its memory" in out
    code = cli_main(["plan", "--config", str(PAPER_CONFIGS[0]), "learner.engine.zero_stage=7"])
    assert code == 2
    error = capsys.readouterr().err
    assert "learner.engine.zero_stage: Input should be less than or equal to 3" in error


def _tiny_config(model: Path, stage: int) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "model": str(model), "rollout": {"sampling": {"temperature": 0.2}},
        "engine": {"kv_cache_bytes": 64 << 20, "max_model_len": 1024},
        "learner": {"engine": {"zero_stage": stage, "dtype": "float32"}}})


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("stage", [0, 2])
def test_learner_estimates_match_deepspeed_on_cpu(tiny_lm: Path, stage: int) -> None:
    """One real DeepSpeed step (world size 1, gloo, fp32) of the 5M tiny LM with its value
    head. Measured: parameter bytes, gradient bytes after backward (ZeRO 0: param.grad), and
    optimizer state bytes (Adam's tensors in engine.optimizer.state, plus at ZeRO 2 the fp32
    master partition DeepSpeed keeps). Tolerance: 2% (the estimates are exact arithmetic on
    the parameter count; the slack covers DeepSpeed's alignment padding of flat partitions)."""
    from learner.config import ModelConfig
    from learner.engine import TrainEngine
    from learner.model import load_policy

    estimate = plan_experiment(_tiny_config(tiny_lm, stage)).learner
    policy = load_policy(ModelConfig(path=str(tiny_lm)))
    engine = TrainEngine(policy, _tiny_config(tiny_lm, stage).learner.optim,
                         _tiny_config(tiny_lm, stage).learner.engine)
    backbone = list(engine.module.backbone.parameters())
    head = sum(p.numel() for p in engine.module.value_head.parameters())
    ids = torch.randint(0, 100, (2, 16))
    logprobs, _, values = engine(ids, torch.ones_like(ids), torch.tensor([0, 1]),
                                 torch.tensor([3, 4]), torch.tensor([5, 6]),
                                 value_index=torch.tensor([2, 2]))
    engine.backward(-logprobs.mean() + values.pow(2).mean())
    measured = {"weights": _bytes(backbone)}
    if stage == 0:
        measured["gradients"] = _bytes(p.grad for p in backbone)
    engine.step()
    optimizer = engine.ds.optimizer
    inner = getattr(optimizer, "optimizer", optimizer)
    states = _bytes(t for state in inner.state.values() for t in state.values()
                    if isinstance(t, torch.Tensor) and t.dim() > 0)
    states += _bytes(getattr(optimizer, "single_partition_of_fp32_groups", []))
    optim_per_param = 8 if stage == 0 else 12
    measured["optimizer states"] = states - head * optim_per_param  # the backbone's share
    for name, value in measured.items():
        assert estimate.bytes_of(name) == pytest.approx(value, rel=0.02), name
    assert estimate.bytes_of("value head") == head * (8 + optim_per_param)
    print(json.dumps({f"stage{stage}": {name: [estimate.bytes_of(name), value]
                                        for name, value in measured.items()}}))


VLLM_BLOCKS = """
import json, sys
from contracts.engine_config import RolloutEngineConfig
from rollout_workers.engine.vllm_engine import VLLMEngine
with VLLMEngine(RolloutEngineConfig.model_validate_json(sys.argv[1])) as engine:
    cache = engine._llm.llm_engine.vllm_config.cache_config  # what vLLM allocated
    print("BLOCKS", json.dumps([cache.num_gpu_blocks, cache.block_size]))
"""


def test_kv_tokens_match_what_vllm_allocates(tiny_lm: Path) -> None:
    """The plan's KV tokens for engine.kv_cache_bytes against a real vLLM engine (CPU build,
    in-process in a child process, so that its process group never meets DeepSpeed's; no Ray)
    given the same bytes, and its per-token bytes against vLLM's own FullAttentionSpec.
    Tolerance: vLLM allocates whole blocks, so it may hold up to one block (block_size
    tokens) fewer than the plan."""
    from vllm.v1.kv_cache_interface import FullAttentionSpec

    config = _tiny_config(tiny_lm, 0)
    plan = plan_experiment(config)
    shape = plan.model
    child = subprocess.run([sys.executable, "-c", VLLM_BLOCKS, config.engine.model_dump_json()],
                           capture_output=True, text=True, timeout=240, cwd=ROOT)
    line = next((ln for ln in child.stdout.splitlines() if ln.startswith("BLOCKS ")), None)
    assert line is not None, child.stderr[-3000:]
    blocks, block_size = json.loads(line.removeprefix("BLOCKS "))
    spec = FullAttentionSpec(block_size=block_size, num_kv_heads=shape.kv_heads,
                             head_size=shape.head_dim, dtype=torch.float32)
    assert shape.kv_bytes_per_token(4) == spec.page_size_bytes * shape.self_attention_layers // block_size
    vllm_tokens = blocks * block_size
    assert 0 <= plan.rollout.kv_tokens - vllm_tokens < block_size
    print(json.dumps({"kv_tokens": [plan.rollout.kv_tokens, vllm_tokens]}))
