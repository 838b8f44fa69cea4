"""The text `revisor plan` prints: placement, each process's memory line by line, per-GPU
totals, then either 'fits' or every problem with what to change."""

from __future__ import annotations

from cluster.plan.memory import ProcessEstimate, count, gib
from cluster.plan.model_shape import COUNTED_FROM_CONFIG
from cluster.plan.outcome import Plan
from cluster.plan.placement import ProcessPlacement, describe_gpus


def render(plan: Plan) -> str:
    lines = [f"Revisor plan: {plan.name}", model_line(plan), ""]
    lines += placement_lines(plan) + [""]
    for estimate in (plan.learner, plan.sft_learner, plan.rollout):
        if estimate is not None:
            lines += estimate_lines(estimate) + [""]
        if estimate is plan.learner and plan.sft_as_learner:
            lines += ["SFT learner rank: sharded as the learner rank, no value head: needs no "
                      "more (same GPUs, before RL)", ""]
    if plan.gpu_loads:
        lines.append("per GPU (RL phase):")
        lines += [f"  {load.gpu}: {gib(load.bytes):>9} of {gib(load.capacity_bytes)}  "
                  f"{', '.join(load.processes)}" for load in plan.gpu_loads]
        lines.append("")
    if plan.fits:
        lines.append("fits: every process fits its memory")
    else:
        lines.append(f"does not fit ({len(plan.problems)} problem(s)):")
        lines += [f"  - {problem}" for problem in plan.problems]
    return "\n".join(lines)


def model_line(plan: Plan) -> str:
    m = plan.model
    cross = f" ({m.cross_attention_layers} cross-attention)" if m.cross_attention_layers else ""
    vision = ""
    if m.vision is not None:
        vision = (f"; vision tower {m.vision.layers} layers x {m.vision.hidden_size}, "
                  f"{m.vision.tokens_per_image} tokens an image")
    counted = "" if m.counted_by == COUNTED_FROM_CONFIG else f"; parameters counted {m.counted_by}"
    return (f"model: {plan.model_path} ({m.model_type}, {count(m.parameters)} parameters: "
            f"hidden {m.hidden_size}, {m.layers} layers{cross}, {m.kv_heads} KV heads x "
            f"{m.head_dim}, vocab {m.vocab_size}{vision}{counted})")


def placement_lines(plan: Plan) -> list[str]:
    p = plan.placement
    if not p.gpus_used:
        return ["placement: CPU only (no GPU asked for); memory below is host memory per process"]
    lines = [f"placement ({p.nodes} node(s) x {p.gpus_per_node} GPUs of "
             f"{gib(plan.gpu_memory_bytes)}; {len(p.gpus_used)} used):"]
    lines.append(f"  learner ranks: {group_line(p.learner)}")
    engine = "vLLM" if plan.rollout_engine == "vllm" else "HF engine"
    lines.append(f"  rollout workers: {group_line(p.rollout)}; {engine} "
                 f"({plan.rollout_engine_note})")
    return lines


def group_line(processes: list[ProcessPlacement]) -> str:
    if not processes:
        return "none"
    gpus = sorted({g for p in processes for g in p.gpus}, key=lambda g: (g.node, g.gpu))
    share = processes[0].share
    each = f"{share:g} GPU each" if share else "CPU"
    return f"{len(processes)} on {describe_gpus(gpus)} ({each})"


def estimate_lines(estimate: ProcessEstimate) -> list[str]:
    where = "per GPU" if estimate.device == "gpu" else "host memory"
    lines = [f"{estimate.role} ({where}):"]
    lines += [f"  {item.name:<18} {gib(item.bytes):>9}  {item.how}" for item in estimate.items]
    total = f"  {'total':<18} {gib(estimate.total_bytes):>9}"
    if estimate.limit_bytes is not None:
        verdict = "ok" if not estimate.over_bytes else f"{gib(estimate.over_bytes)} over"
        total += f"  of {gib(estimate.limit_bytes)}: {verdict}"
    lines.append(total)
    if estimate.kv_tokens is not None:
        lines.append(f"  KV cache holds {estimate.kv_tokens:,} tokens")
    lines += [f"  note: {note}" for note in estimate.notes]
    return lines
