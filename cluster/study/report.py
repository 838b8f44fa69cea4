"""`revisor study-report STUDY_DIR`: the study's figures and tables from STUDY_DIR/study.json.

Where `revisor report` shows runs, this shows the study's answer: does RL or SFT move ID and
OOD success away from the init, at equal training compute (docs/protocol.md §Compute
accounting and §Reported results), and by more than the error bars. It writes
STUDY_DIR/report/study.md and its PNGs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cluster.results.evaluations import Change
from cluster.study.compare import (
    MAIN_ARMS,
    EqualCompute,
    Finding,
    Gain,
    ablation_arms,
    ablation_gains,
    equal_compute,
    findings,
    measure,
    measure_name,
    turn_change,
    turn_measure,
)
from cluster.study.figures import (
    plot_gain_vs_verification_steps,
    plot_recognition_vs_compute,
    plot_success_vs_compute,
)
from cluster.study.results import (
    STUDY_FILE,
    StudyFileError,
    StudyPoint,
    StudyResults,
    read_study,
)

ARM_LABELS = {"sft": "SFT", "rl": "RL"}


def _percent(point: StudyPoint) -> str:
    value, stderr, _ = measure(point)
    return f"{100 * value:.1f} ± {100 * stderr:.1f}"


def _change(change: Change | None) -> str:
    if change is None:
        return "–"
    kind = "paired" if change.paired else "unpaired"
    return f"{100 * change.success:+.1f} ± {100 * change.stderr:.1f} ({kind})"


def equal_compute_table(rows: list[EqualCompute]) -> str:
    """The table of docs/protocol.md §Reported results: Init, RL and SFT per split at the
    largest shared compute point, and each arm's change from the init with its error bar."""
    lines = ["| split | Init (%) | RL (%) | SFT (%) | GFLOPs (target: RL / SFT) | "
             "RL − Init (points) | SFT − Init (points) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        name = row.split + (" (per-step)" if measure(row.rl).per_step else "")
        init = "–" if row.init is None else _percent(row.init)
        lines.append(f"| {name} | {init} | {_percent(row.rl)} | {_percent(row.sft)} | "
                     f"{row.target:g}: {row.rl.gflops:.4g} / {row.sft.gflops:.4g} | "
                     f"{_change(row.gain('rl'))} | {_change(row.gain('sft'))} |")
    return "\n".join(lines)


def equal_compute_recognition_table(rows: list[EqualCompute]) -> list[str]:
    """Recognition accuracy (first answers, GP-VL's cards or V-IRL-VL's landmarks) of the
    init and both arms at the same points as the success table; nothing for text tasks."""
    if all(row.rl.recognition_accuracy is None for row in rows):
        return []
    lines = ["Recognition accuracy at the same points (first answers):", "",
             "| split | Init (%) | RL (%) | SFT (%) |", "|---|---|---|---|"]
    for row in rows:
        init = None if row.init is None else row.init.recognition_accuracy
        lines.append(f"| {row.split} | {_optional(init)} | "
                     f"{_optional(row.rl.recognition_accuracy)} | "
                     f"{_optional(row.sft.recognition_accuracy)} |")
    return [*lines, ""]


def _turn_percent(point: StudyPoint | None) -> str:
    measured = None if point is None else turn_measure(point)
    if measured is None:
        return "–"
    return f"{100 * measured.value:.1f} ± {100 * measured.stderr:.1f} ({point.turn_positions})"


def equal_compute_turn_table(rows: list[EqualCompute]) -> list[str]:
    """V-IRL: the same points on turning positions alone. Forward steps read no rule, so a
    per-step gain under the OOD rule may come from walking on rather than from turning the
    rule's way; this table tells the two apart. Nothing for other tasks."""
    if all(turn_measure(row.rl) is None for row in rows):
        return []
    lines = ["Accuracy on turning positions alone (where the action space, and so the rule, "
             "matters; positions in brackets):", "",
             "| split | Init (%) | RL (%) | SFT (%) | RL − Init (points) | SFT − Init (points) |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        gains = [None if row.init is None else turn_change(row.init, getattr(row, arm))
                 for arm in ("rl", "sft")]
        lines.append(f"| {row.split} | {_turn_percent(row.init)} | {_turn_percent(row.rl)} | "
                     f"{_turn_percent(row.sft)} | {_change(gains[0])} | {_change(gains[1])} |")
    return [*lines, ""]


def _phrase(arm: str, change: Change, subject: str) -> str:
    """What an arm did to a measure, in words: a change beyond twice its error bar is
    reported as a rise or fall, anything smaller as within error bars."""
    size = f"{100 * abs(change.success):.1f} ± {100 * change.stderr:.1f} points"
    if abs(change.success) > 2 * change.stderr:
        verb = "raised" if change.success > 0 else "lowered"
        return f"{arm} {verb} {subject} by {size}"
    return (f"{arm} left {subject} within error bars "
            f"({100 * change.success:+.1f} ± {100 * change.stderr:.1f} points)")


def equal_compute_sentences(rows: list[EqualCompute]) -> list[str]:
    """One plain sentence per OOD split saying what the table's numbers show."""
    sentences = []
    for row in rows:
        rl, sft = row.gain("rl"), row.gain("sft")
        if not row.split.startswith("ood") or row.init is None or rl is None or sft is None:
            continue
        subject = f"{row.split} {measure_name(row.init)}"
        sentences.append(f"- {_phrase('RL', rl, subject)}; {_phrase('SFT', sft, 'it')} "
                         f"(init {100 * measure(row.init).value:.1f}%, at {row.target:g} "
                         f"target GFLOPs).")
    return sentences


def finding_sentence(finding: Finding) -> str:
    """Whether the split shows the study's finding, and which of its tests fail when not."""
    tests = [("RL keeps the init's success", finding.rl_keeps,
              _change(finding.rl_gain)),
             ("SFT loses some of it", finding.sft_loses, _change(finding.sft_gain)),
             ("RL beats SFT by more than twice the error bar", finding.rl_beats_sft,
              _change(finding.rl_over_sft))]
    verdict = "shows the study's finding" if finding.shown else "does not show the finding"
    return f"- `{finding.split}` {verdict}: " + "; ".join(
        f"{name} {'yes' if passed else 'no'} ({figure})" for name, passed, figure in tests) + "."


def ablation_table(gains: dict[str, list[Gain]]) -> str:
    lines = ["| verification steps | arm | split | GFLOPs (target) | OOD (%) | "
             "gain over init (points) |", "|---|---|---|---|---|---|"]
    for split, row in gains.items():
        for gain in row:
            lines.append(f"| {gain.steps} | {gain.arm} | {split} | "
                         f"{gain.point.target_gflops:g} ({gain.point.gflops:.4g}) | "
                         f"{_percent(gain.point)} | {_change(gain.change)} |")
    return "\n".join(lines)


def _optional(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _by_kind(accuracy: float | None, positions: int | None) -> str:
    """V-IRL per-step accuracy on one kind of position, with how many there were."""
    return _optional(accuracy) if accuracy is None or not positions else \
        f"{100 * accuracy:.1f} ({positions})"


def points_table(study: StudyResults) -> str:
    """Every point of the study, the init first, then SFT, RL and the ablation arms."""
    lines = ["| arm | target GFLOPs | GFLOPs | split | success (%) | n | recognition (%) | "
             "per-step accuracy (%) | turn steps (%) | forward steps (%) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    order = list(dict.fromkeys([*MAIN_ARMS, *ablation_arms(study), *sorted(study.arms)]))
    rows = [("init", p) for p in study.init.values()]
    rows += [(arm, p) for arm in order for p in study.arms.get(arm, [])]
    for arm, p in rows:
        target = "–" if p.target_gflops is None else f"{p.target_gflops:g}"
        step = _optional(p.step_accuracy)
        if p.step_accuracy is not None and p.positions:
            step = f"{_percent(p)} ({p.positions} positions)"
        lines.append(f"| {arm} | {target} | {p.gflops:.4g} | {p.split} | "
                     f"{100 * p.success:.1f} ± {100 * p.stderr:.1f} | {p.n} | "
                     f"{_optional(p.recognition_accuracy)} | {step} | "
                     f"{_by_kind(p.turn_step_accuracy, p.turn_positions)} | "
                     f"{_by_kind(p.forward_step_accuracy, p.forward_positions)} |")
    return "\n".join(lines)


def _header(study: StudyResults) -> list[str]:
    return [f"# Revisor study `{study.name}`: SFT vs RL on {study.task}", "",
            f"A policy of {study.parameters:,} parameters, post-trained from one init by SFT "
            f"and by RL to the same target training compute ("
            + ", ".join(f"{c:g}" for c in study.compute_points)
            + " GFLOPs; docs/protocol.md §Compute accounting: 6N(D_init + D), plus "
            "2N·D_buffer for RL's rollouts). "
            "Success is the share of evaluation episodes solved (V-IRL: per-step accuracy), "
            "with error bars sqrt(p(1-p)/n); changes from the init are paired per episode "
            "where the episodes' outcomes were recorded.", ""]


def _equal_compute_section(study: StudyResults) -> list[str]:
    rows = equal_compute(study) if all(study.arms.get(a) for a in MAIN_ARMS) else []
    if not rows:
        return ["## Init -> RL / SFT at equal compute", "",
                "No compute point reached by both the `sft` and the `rl` arm yet.", ""]
    return ["## Init -> RL / SFT at equal compute", "",
            "Each split at the largest compute point both arms reached; GFLOPs are the "
            "training compute where each was measured. A change counts when it exceeds "
            "twice its error bar.", "", equal_compute_table(rows), "",
            *equal_compute_recognition_table(rows), *equal_compute_turn_table(rows),
            *equal_compute_sentences(rows), "",
            *_finding_section(rows)]


def _finding_section(rows: list[EqualCompute]) -> list[str]:
    tested = findings(rows)
    if not tested:
        return []
    return ["## The study's finding", "",
            "SFT memorises, RL generalises: on an OOD split at the largest equal compute, RL "
            "keeps the init's success (at or above it within one error bar), SFT loses some "
            "of it, and RL beats SFT by more than twice the error bar of their difference.",
            "", *map(finding_sentence, tested), ""]


def _figures(study: StudyResults, out: Path) -> list[str]:
    sections = []
    if study.init or any(study.arms.get(arm) for arm in MAIN_ARMS):
        plot_success_vs_compute(study, out / "success_vs_compute.png")
        sections += ["## Success against training compute", "",
                     "![success vs compute](success_vs_compute.png)", "",
                     "Each panel is one split: SFT (blue) and RL (red) start from the same "
                     "init (black diamond) and are evaluated at the same target training "
                     "GFLOPs, with sqrt(p(1-p)/n) error bars. On an OOD panel, a line that climbs "
                     "above the init by more than its error bars shows post-training that "
                     "generalized to unseen rules or visuals; one that falls below it shows "
                     "post-training that memorized its training data.", ""]
    if plot_recognition_vs_compute(study, out / "recognition_vs_compute.png"):
        sections += ["## Recognition accuracy against training compute", "",
                     "![recognition vs compute](recognition_vs_compute.png)", ""]
    gains = ablation_gains(study)
    if gains:
        plot_gain_vs_verification_steps(gains, out / "ood_gain_vs_verification_steps.png")
        sections += ["## OOD gain against verification steps", "",
                     "![OOD gain vs verification steps](ood_gain_vs_verification_steps.png)",
                     "", "RL arms trained with different numbers of verification steps, each "
                     "at the largest compute point all of them reached.", "",
                     ablation_table(gains), ""]
    return sections


def write_study_report(study_dir: Path) -> Path:
    """Write STUDY_DIR/report/study.md and its PNGs from STUDY_DIR/study.json; returns the
    Markdown's path. Raises StudyFileError when study.json is missing or malformed."""
    study = read_study(study_dir / STUDY_FILE)
    out = study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    sections = [*_header(study), *_equal_compute_section(study), *_figures(study, out),
                "## Every point", "", points_table(study), ""]
    report = out / "study.md"
    report.write_text("\n".join(sections))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revisor study-report", description=__doc__)
    parser.add_argument("study_dir", type=Path, help="a study directory holding study.json")
    args = parser.parse_args(argv)
    try:
        report = write_study_report(args.study_dir)
    except StudyFileError as error:
        print(f"revisor study-report: {error}", file=sys.stderr)
        return 2
    print(f"study report written to {report}")
    return 0
