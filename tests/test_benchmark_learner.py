"""The learner benchmark's model FLOPs and real-size shape: what its MFU figure rests on."""

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM

from benchmarks.learner import REAL_SHAPES, LearnerBenchmark, forward_flops, peak_flops
from rollout_workers.tiny_models.build import build_model


def test_model_flops_are_torchs_count_with_the_causal_half_of_attention():
    model, _ = build_model("lm", "0.5m")
    model.config._attn_implementation = "eager"  # attention as plain matmuls, which torch counts
    length = 48
    with FlopCounterMode(display=False) as counter:
        model(input_ids=torch.randint(10, 100, (1, length)))
    config = model.config
    masked_half = 2 * config.num_hidden_layers * config.hidden_size * length**2
    assert counter.get_total_flops() == forward_flops(model, [length]) + masked_half


def test_llama_3_2_1b_shape_has_the_published_parameter_count():
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**REAL_SHAPES["llama-3.2-1b"]))
    assert sum(p.numel() for p in model.parameters()) == 1_235_814_400


def test_mfu_peak_comes_from_the_setting_and_is_unknown_on_cpu():
    assert peak_flops(LearnerBenchmark(peak_tflops=989.4)) == 989.4e12
    if not torch.cuda.is_available():
        assert peak_flops(LearnerBenchmark()) is None
