"""The policy with its value head, loaded by path from any Hugging Face causal LM or VLM.

The value of a state is read from the backbone's last hidden state at the last prompt token:
that token has seen the whole dialogue and nothing of the answer, so it is the state. Sharing
the backbone (the study's choice) costs one small MLP; a separate critic doubles memory and
compute but keeps value gradients out of the policy's features.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    PretrainedConfig,
    PreTrainedModel,
)

from contracts.multimodal import (
    EXCLUDED_LOGIT_BIAS,
    excluded_token_ids,
    token_type_inputs,
)
from learner.config import ModelConfig
from learner.logprobs import token_logprobs_and_entropy


class ValueHead(nn.Module):
    """A small MLP from one hidden state to one scalar; starts at 0 so early advantages are the
    rewards themselves rather than noise."""

    def __init__(self, hidden_size: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(hidden_size, width), nn.GELU(), nn.Linear(width, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.to(self.net[0].weight.dtype)).squeeze(-1)


class PolicyValueModel(nn.Module):
    """Scores chosen tokens and reads state values in one backbone pass."""

    def __init__(self, backbone: PreTrainedModel, value_head: ValueHead | None,
                 critic_backbone: nn.Module | None = None,
                 excluded_token_ids: list[int] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.value_head = value_head
        self.critic_backbone = critic_backbone
        self.excluded_token_ids = list(excluded_token_ids or [])
        """Tokens the engines never sample (image placeholders): scored with the same logit
        bias the engines add, so learner and sampler agree on the distribution."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                logit_rows: torch.Tensor, logit_cols: torch.Tensor, targets: torch.Tensor,
                value_index: torch.Tensor | None = None, temperature: float = 1.0,
                **vision_inputs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-probs and entropies of `targets` predicted at (logit_rows, logit_cols), and the
        values at (row, value_index[row]). Only the scored positions go through the output
        layer, so long dialogues with short answers stay cheap."""
        hidden = backbone_hidden(self.backbone, input_ids, attention_mask, **vision_inputs)
        logits = output_logits(self.backbone, hidden[logit_rows, logit_cols])
        if self.excluded_token_ids:
            logits = logits.float().index_add(
                -1, torch.tensor(self.excluded_token_ids, device=logits.device),
                torch.full((len(logits), len(self.excluded_token_ids)), EXCLUDED_LOGIT_BIAS,
                           device=logits.device))
        logprobs, entropy = token_logprobs_and_entropy(logits, targets, temperature)
        if value_index is None or self.value_head is None:
            return logprobs, entropy, None
        if self.critic_backbone is not None:
            types = token_type_inputs(self.critic_backbone, input_ids, vision_inputs)
            hidden = self.critic_backbone(input_ids=input_ids, attention_mask=attention_mask,
                                          use_cache=False, **vision_inputs,
                                          **types).last_hidden_state
        rows = torch.arange(len(value_index), device=hidden.device)
        return logprobs, entropy, self.value_head(hidden[rows, value_index])


def backbone_hidden(backbone: PreTrainedModel, input_ids: torch.Tensor,
                    attention_mask: torch.Tensor, **vision_inputs: Any) -> torch.Tensor:
    """The final-layer hidden states (after the last norm), shape (B, L, H)."""
    out = backbone.base_model(input_ids=input_ids, attention_mask=attention_mask,
                              use_cache=False, **vision_inputs,
                              **token_type_inputs(backbone, input_ids, vision_inputs))
    return out.last_hidden_state


def output_logits(backbone: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    logits = backbone.get_output_embeddings()(hidden)
    cap = getattr(text_config(backbone.config), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def text_config(config: PretrainedConfig) -> PretrainedConfig:
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def is_vision(config: ModelConfig, hf_config: PretrainedConfig) -> bool:
    if config.kind != "auto":
        return config.kind == "vision"
    return getattr(hf_config, "vision_config", None) is not None


def backbone_class(config: ModelConfig, hf_config: PretrainedConfig) -> type:
    """The Auto class a checkpoint loads with: AutoModelForImageTextToText for VLMs (LLaVA,
    Mllama, Qwen2-VL, ...), AutoModelForCausalLM otherwise."""
    return AutoModelForImageTextToText if is_vision(config, hf_config) else AutoModelForCausalLM


def count_parameters(config: ModelConfig) -> int:
    """Parameters of the checkpoint's model (tied weights once), without loading its weights."""
    return sum(p.numel() for p in meta_backbone(config).parameters())


def meta_backbone(config: ModelConfig) -> PreTrainedModel:
    """The checkpoint's backbone on the meta device: its structure, no weights allocated."""
    hf_config = AutoConfig.from_pretrained(config.path, trust_remote_code=config.trust_remote_code)
    with torch.device("meta"):
        return backbone_class(config, hf_config).from_config(
            hf_config, trust_remote_code=config.trust_remote_code)


def parameter_shapes(module: nn.Module) -> dict[str, list[int]]:
    """Every parameter's full shape by name: a learner checkpoint records its backbone's, so
    resuming it with another model fails in one line instead of deep inside a load. Under
    ZeRO-3 a rank holds a shard of each parameter; DeepSpeed keeps the full shape as ds_shape."""
    return {name: list(getattr(param, "ds_shape", param.shape))
            for name, param in module.named_parameters()}


def load_backbone(config: ModelConfig, dtype: torch.dtype) -> PreTrainedModel:
    """The policy network, of the class its checkpoint calls for (backbone_class)."""
    hf_config = AutoConfig.from_pretrained(config.path, trust_remote_code=config.trust_remote_code)
    model = backbone_class(config, hf_config).from_pretrained(
        config.path, dtype=dtype, trust_remote_code=config.trust_remote_code)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.config.use_cache = False
    return model


def load_policy(config: ModelConfig, dtype: torch.dtype = torch.float32) -> PolicyValueModel:
    """Policy + value head as configured (a fresh value head: SFT checkpoints have none)."""
    backbone = load_backbone(config, dtype)
    critic = None
    hidden = text_config(backbone.config).hidden_size
    if config.critic == "separate":
        critic = AutoModel.from_pretrained(config.critic_path or config.path, dtype=dtype,
                                           trust_remote_code=config.trust_remote_code)
        hidden = text_config(critic.config).hidden_size
    width = config.value_head_hidden or min(hidden, 1024)
    return PolicyValueModel(backbone, ValueHead(hidden, width).to(dtype), critic,
                            excluded_token_ids(config.path))


def load_reference(config: ModelConfig, dtype: torch.dtype = torch.float32) -> PolicyValueModel:
    """A frozen copy of the initial policy, for a KL term; built only when one is configured."""
    reference = PolicyValueModel(load_backbone(config, dtype), value_head=None,
                                 excluded_token_ids=excluded_token_ids(config.path))
    reference.requires_grad_(False)
    return reference.eval()
