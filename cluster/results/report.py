"""`revisor report RUN_DIR [RUN_DIR ...]`: plots and a Markdown page a person can read.

Given several runs (say an SFT arm and an RL arm from the same checkpoint) it puts them side
by side: success against training GFLOPs for ID and each OOD split with sqrt(p(1-p)/n)
error bars, training curves, and success after 1, 2, ... verification steps.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from cluster.results.evaluations import (
    EVALUATIONS,
    TRAINING_LOG,
    EvalPoint,
    read_evaluations,
    read_training_log,
    success_change,
    success_stderr,
)
from cluster.results.recall import RecallGroup, read_run_settings, recall_splits


def _pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend, imported on first plot: it takes a
    second, which `--help` and a refused command must not wait for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_success_vs_compute(points: list[EvalPoint], path: Path) -> None:
    plt = _pyplot()
    panels = sorted({(p.task, p.split) for p in points})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (task, split) in zip(axes[0], panels, strict=True):
        by_arm: dict[str, list[EvalPoint]] = defaultdict(list)
        for point in points:
            if (point.task, point.split) == (task, split):
                by_arm[point.arm].append(point)
        for arm, series in sorted(by_arm.items()):
            series.sort(key=lambda p: p.gflops)
            ax.errorbar([p.gflops for p in series], [100 * p.success for p in series],
                        yerr=[100 * p.stderr for p in series], marker="o", capsize=3, label=arm)
        ax.set(title=f"{task} · {split}", xlabel="training GFLOPs", ylabel="success (%)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_training_curves(logs: dict[str, list[dict]], path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, rows in logs.items():
        steps = [row.get("step", i) for i, row in enumerate(rows)]
        for ax, key in zip(axes, ("mean_reward", "success"), strict=True):
            values = [row.get(key) for row in rows]
            if any(v is not None for v in values):
                ax.plot(steps, values, label=name)
    for ax, title in zip(axes, ("mean reward per turn", "episode success"), strict=True):
        ax.set(title=title, xlabel="update")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_success_by_turn(points: list[EvalPoint], path: Path) -> None:
    plt = _pyplot()
    latest = _latest_per_series(points)
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for point in latest:
        turns = range(1, len(point.success_by_turn) + 1)
        ax.plot(turns, [100 * s for s in point.success_by_turn], marker="o",
                label=f"{point.arm} {point.task} {point.split} ({point.phase})")
    ax.set(title="success within k verification steps", xlabel="k", ylabel="success (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _latest_per_series(points: list[EvalPoint]) -> list[EvalPoint]:
    latest: dict[tuple[str, str, str], EvalPoint] = {}
    for point in sorted(points, key=lambda p: p.gflops):
        latest[(point.arm, point.task, point.split)] = point
    return list(latest.values())


def markdown_table(points: list[EvalPoint]) -> str:
    """One row per point; per-step accuracy (V-IRL: all positions, turning ones, forward ones)
    and recognition accuracy (vision variants) get a column when some point has them."""
    extra = [(title, field) for title, field in (("step accuracy (%)", "step_accuracy"),
                                                  ("turn steps (%)", "turn_step_accuracy"),
                                                  ("forward steps (%)", "forward_step_accuracy"),
                                                  ("recognition (%)", "recognition_accuracy"))
             if any(getattr(p, field) is not None for p in points)]
    titles = ["arm", "phase", "task", "split", "T", "GFLOPs", "episodes", "success (%)", "±",
              *(title for title, _ in extra)]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for p in sorted(points, key=lambda p: (p.arm, p.task, p.split, p.gflops)):
        cells = [p.arm, p.phase, p.task, p.split, f"{p.temperature:g}", f"{p.gflops:.3g}",
                 str(p.episodes), f"{100 * p.success:.1f}", f"{100 * p.stderr:.1f}",
                 *(_percent(getattr(p, field)) for _, field in extra)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def changes_table(points: list[EvalPoint]) -> str:
    """The headline: each series' success at its last point against its first (for an RL run,
    after RL against the SFT init), with the error bar of the difference, so a reader can tell
    a real change from noise."""
    series: dict[tuple[str, str, str], list[EvalPoint]] = defaultdict(list)
    for point in points:
        series[(point.arm, point.task, point.split)].append(point)
    lines = ["| arm | task | split | from | to | success (%) | change (points) | ± | "
             "beyond 2 ± |", "|---|---|---|---|---|---|---|---|---|"]
    for (arm, task, split), run in sorted(series.items()):
        run.sort(key=lambda p: p.gflops)
        first, last = run[0], run[-1]
        change = success_change(first, last)
        kind = "paired" if change.paired else "unpaired"
        verdict = "yes" if abs(change.success) > 2 * change.stderr else "no"
        lines.append(f"| {arm} | {task} | {split} | {first.phase} | {last.phase} | "
                     f"{100 * first.success:.1f} -> {100 * last.success:.1f} | "
                     f"{100 * change.success:+.1f} | {100 * change.stderr:.1f} ({kind}) | "
                     f"{verdict} |")
    return "\n".join(lines)


def step_changes_table(points: list[EvalPoint]) -> str:
    """V-IRL's headline, per-step accuracy (share of route positions acted on right), last
    point against first; the error bar treats positions as independent, so it is a lower
    bound. Empty when no point has one."""
    series: dict[tuple[str, str, str], list[EvalPoint]] = defaultdict(list)
    for point in points:
        if point.step_accuracy is not None and point.positions:
            series[(point.arm, point.task, point.split)].append(point)
    if not series:
        return ""
    lines = ["| arm | task | split | from | to | per-step accuracy (%) | change (points) | ± | "
             "beyond 2 ± |", "|---|---|---|---|---|---|---|---|---|"]
    for (arm, task, split), run in sorted(series.items()):
        run.sort(key=lambda p: p.gflops)
        first, last = run[0], run[-1]
        change = last.step_accuracy - first.step_accuracy
        bar = math.hypot(*(success_stderr(p.step_accuracy, p.positions) for p in (first, last)))
        verdict = "yes" if abs(change) > 2 * bar else "no"
        lines.append(f"| {arm} | {task} | {split} | {first.phase} | {last.phase} | "
                     f"{100 * first.step_accuracy:.1f} -> {100 * last.step_accuracy:.1f} | "
                     f"{100 * change:+.1f} | {100 * bar:.1f} | {verdict} |")
    return "\n".join(lines)


def recall_table(points_by_run: dict[Path, list[EvalPoint]]) -> str:
    """Success split by what each run's SFT demonstrated (cluster/results/recall.py); empty when no
    run had an SFT phase on a task with recall keys."""
    rows: list[tuple[str, EvalPoint, dict[str, RecallGroup]]] = []
    for run, run_points in points_by_run.items():
        settings = read_run_settings(run)
        if settings:
            rows += [(run.name, *split) for split in recall_splits(*settings, run_points)]
    if not rows:
        return ""
    names = list(dict.fromkeys(name for *_, groups in rows for name in groups))
    lines = ["| run | arm | phase | task | split | " + " | ".join(names) + " |",
             "|---|---|---|---|---|" + "---|" * len(names)]
    for run, point, groups in rows:
        cells = [_solved(groups.get(name)) for name in names]
        lines.append(f"| {run} | {point.arm} | {point.phase} | {point.task} | {point.split} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _solved(group: RecallGroup | None) -> str:
    if group is None:
        return "–"
    return f"{group.solved}/{group.episodes} ({100 * group.success:.0f}%)"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def write_report(run_dirs: list[Path], out: Path) -> Path:
    """Write report.md and its plots into `out`; returns the report's path."""
    out.mkdir(parents=True, exist_ok=True)
    points_by_run = {run: read_evaluations(run) for run in run_dirs}
    points = [point for run_points in points_by_run.values() for point in run_points]
    logs = {run.name: read_training_log(run) for run in run_dirs}
    sections = ["# Revisor report", "", "Runs: " + ", ".join(f"`{run}`" for run in run_dirs), ""]
    if points:
        plot_success_vs_compute(points, out / "success_vs_compute.png")
        plot_success_by_turn(points, out / "success_by_turn.png")
        steps = step_changes_table(points)
        sections += ["## What training changed", "", changes_table(points), "",
                     *([steps, ""] if steps else []),
                     "## Success against training compute", "",
                     "![success vs compute](success_vs_compute.png)", "", markdown_table(points), "",
                     "## Success within k verification steps", "",
                     "![success by turn](success_by_turn.png)", ""]
    recall = recall_table(points_by_run)
    if recall:
        sections += ["## Recall or skill: success by what SFT showed", "",
                     "Evaluation episodes grouped by the most specific key they share with an "
                     "SFT demonstration (solved/episodes). Success only where SFT showed the "
                     "instance is recall; success on unseen instances is skill.", "",
                     recall, ""]
    if any(logs.values()):
        plot_training_curves(logs, out / "training_curves.png")
        sections += ["## Training", "", "![training curves](training_curves.png)", ""]
    for run in run_dirs:
        config = run / "config.yaml"
        if config.exists():
            sections += [f"## Settings of `{run.name}`", "", "```yaml", config.read_text().strip(),
                         "```", ""]
    report = out / "report.md"
    report.write_text("\n".join(sections))
    return report


def runs_problem(runs: list[Path]) -> str | None:
    """Why the report of `runs` would say nothing, or None: a path that is not a directory,
    or a run with neither evaluations nor a training log (not started, or stopped before its
    first update); its report would be an empty page and exit 0."""
    missing = [str(run) for run in runs if not run.is_dir()]
    if missing:
        return f"not a run directory: {', '.join(missing)}"
    empty = [str(run) for run in runs
             if not (run / EVALUATIONS).exists() and not (run / TRAINING_LOG).exists()]
    if empty:
        return (f"no results in {', '.join(empty)} (no {EVALUATIONS} and no {TRAINING_LOG}): "
                "give the run_dir of a job that has evaluated or trained")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revisor report", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, help="where to write (default: RUN_DIR/report)")
    args = parser.parse_args(argv)
    if problem := runs_problem(args.runs):
        print(f"revisor report: {problem}", file=sys.stderr)
        return 2
    report = write_report(args.runs, args.out or args.runs[0] / "report")
    print(f"report written to {report}")
    return 0
