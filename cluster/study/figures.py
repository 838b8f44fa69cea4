"""The study's figures: success and recognition against training GFLOPs (SFT against RL,
both starting from the init), and OOD gain against verification steps.

Each function returns the series it drew, so a test can check the figure holds the
study's numbers rather than only that a PNG was written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from cluster.study.compare import (  # noqa: E402
    MAIN_ARMS,
    Gain,
    arm_points,
    measure,
    measure_name,
    study_splits,
)
from cluster.study.results import StudyPoint, StudyResults  # noqa: E402

ARM_STYLE = {"sft": ("SFT", "tab:blue"), "rl": ("RL", "tab:red")}
INIT_COLOR = "black"
Series = dict[tuple[str, str], list[tuple[float, float]]]
"""(split, arm) -> [(GFLOPs, value in %)], the init first when the split has one."""
Value = Callable[[StudyPoint], tuple[float, float | None] | None]
"""A point's (value in %, error bar in % or None), or None when it has no such value."""


def _success(point: StudyPoint) -> tuple[float, float]:
    value, stderr, _ = measure(point)
    return 100 * value, 100 * stderr


def _recognition(point: StudyPoint) -> tuple[float, None] | None:
    accuracy = point.recognition_accuracy
    return None if accuracy is None else (100 * accuracy, None)


def _draw_split(ax: Axes, study: StudyResults, split: str, value: Value) -> Series:
    """Both arms on one panel, each line starting at the shared init marker."""
    init = study.init.get(split)
    start = value(init) if init is not None else None
    drawn: Series = {}
    for arm in MAIN_ARMS:
        points = [(p, v) for p in arm_points(study, arm, split) if (v := value(p)) is not None]
        if not points:
            continue
        if start is not None:
            points.insert(0, (init, start))
        label, color = ARM_STYLE[arm]
        xs, ys = [p.gflops for p, _ in points], [v[0] for _, v in points]
        errors = [v[1] for _, v in points]
        ax.errorbar(xs, ys, yerr=None if None in errors else errors, marker="o", capsize=3,
                    color=color, label=label)
        drawn[(split, arm)] = list(zip(xs, ys, strict=True))
    if start is not None:
        ax.errorbar([init.gflops], [start[0]], yerr=None if start[1] is None else [start[1]],
                    marker="D", markersize=8, color=INIT_COLOR, capsize=3, label="init",
                    zorder=5, linestyle="none")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return drawn


def _panels(study: StudyResults, splits: list[str], value: Value, ylabel: str,
            path: Path) -> Series:
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), squeeze=False)
    drawn: Series = {}
    for ax, split in zip(axes[0], splits, strict=True):
        drawn |= _draw_split(ax, study, split, value)
        ax.set(title=f"{study.task} · {split}", xlabel="training GFLOPs", ylabel=ylabel)
    fig.suptitle(f"Revisor study {study.name}: SFT vs RL from one init", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn


def plot_success_vs_compute(study: StudyResults, path: Path) -> Series:
    """The study's figure: one panel per split, SFT and RL success (per-step accuracy for
    V-IRL) against training GFLOPs with sqrt(p(1-p)/n) error bars."""
    splits = study_splits(study)
    points = [p for arm in MAIN_ARMS for p in study.arms.get(arm, [])] + list(study.init.values())
    ylabel = f"{measure_name(points[0]) if points else 'success'} (%)"
    return _panels(study, splits, _success, ylabel, path)


def plot_recognition_vs_compute(study: StudyResults, path: Path) -> Series:
    """Card/landmark recognition accuracy against GFLOPs, per split that measured it; draws
    nothing and returns {} when no point did."""
    splits = [split for split in study_splits(study)
              if any(p.recognition_accuracy is not None for p in _split_points(study, split))]
    if not splits:
        return {}
    return _panels(study, splits, _recognition, "recognition accuracy (%)", path)


def _split_points(study: StudyResults, split: str) -> list[StudyPoint]:
    init = [study.init[split]] if split in study.init else []
    return init + [p for arm in MAIN_ARMS for p in arm_points(study, arm, split)]


def plot_gain_vs_verification_steps(
        gains: dict[str, list[Gain]], path: Path) -> dict[str, list[tuple[int, float, float]]]:
    """OOD gain over the init (points) against the verification steps an RL arm trained
    with, one line per OOD split; returns split -> [(steps, gain, error bar)]."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    drawn: dict[str, list[tuple[int, float, float]]] = {}
    for split, row in gains.items():
        drawn[split] = [(g.steps, 100 * g.change.success, 100 * g.change.stderr) for g in row]
        steps, gain, bar = zip(*drawn[split], strict=True)
        ax.errorbar(steps, gain, yerr=bar, marker="o", capsize=3, label=split)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set(title="OOD gain of RL over init vs verification steps",
           xlabel="verification steps", ylabel="gain over init (points)")
    ax.set_xticks(sorted({g.steps for row in gains.values() for g in row}))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return drawn
