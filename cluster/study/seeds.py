"""`revisor study-seeds DIR DIR DIR ...`: one study's settings run with several seeds, as
each seed's figures and their mean and spread, and the study's finding tested on the mean.

A result that one run shows may not be what the next run shows (seeds change the base, the
SFT order and the sampled episodes), so a headline figure is the mean over seeds with the
spread between them. Each directory is a finished `revisor study` of the same settings but
its seeds; this reads their study.json and writes one Markdown table per split.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from cluster.results.evaluations import Change
from cluster.study.compare import (
    EqualCompute,
    Finding,
    comparisons,
    equal_compute,
    measure,
    turn_measure,
    unpaired_change,
)
from cluster.study.results import STUDY_FILE, StudyFileError, read_study


@dataclass(frozen=True)
class Turns:
    """One seed's V-IRL accuracy on turning positions alone (fractions) and both changes."""

    init: float
    rl: float
    sft: float
    rl_gain: Change
    sft_gain: Change


@dataclass(frozen=True)
class SeedRow:
    """One seed's figures on one split at the largest equal compute (fractions)."""

    study: str
    init: float
    rl: float
    sft: float
    finding: Finding
    turns: Turns | None = None
    """V-IRL: the same on turning positions alone; None for other tasks."""


@dataclass(frozen=True)
class MeanChange:
    """A change's mean over seeds, its spread (sample standard deviation) and the error bar
    of the mean: the larger of the spread over sqrt(seeds) and the seeds' own sampling error
    bars combined, so neither three lucky seeds nor one noisy one decides it."""

    mean: float
    spread: float
    stderr: float


def mean_change(changes: list[Change]) -> MeanChange:
    k = len(changes)
    values = [c.success for c in changes]
    spread = statistics.stdev(values) if k > 1 else 0.0
    sampling = math.sqrt(sum(c.stderr**2 for c in changes)) / k
    return MeanChange(mean=statistics.fmean(values), spread=spread,
                      stderr=max(spread / math.sqrt(k), sampling))


def seed_rows(study_dirs: list[Path]) -> dict[str, list[SeedRow]]:
    """Per split, one row per study directory (its changes at equal compute)."""
    rows: dict[str, list[SeedRow]] = {}
    for study_dir in study_dirs:
        study = read_study(study_dir / STUDY_FILE)
        by_split = {row.split: row for row in equal_compute(study)}
        for finding in comparisons(by_split.values()):
            row = by_split[finding.split]
            rows.setdefault(finding.split, []).append(SeedRow(
                study=study_dir.name, init=measure(row.init).value, rl=measure(row.rl).value,
                sft=measure(row.sft).value, finding=finding, turns=_turns(row)))
    return rows


def _turns(row: EqualCompute) -> Turns | None:
    init, rl, sft = (turn_measure(p) for p in (row.init, row.rl, row.sft))
    if init is None or rl is None or sft is None:
        return None
    return Turns(init.value, rl.value, sft.value, unpaired_change(init, rl),
                 unpaired_change(init, sft))


def turn_table(split: str, rows: list[SeedRow]) -> list[str]:
    """V-IRL: each seed's turning positions alone, where the rule is read (a per-step gain
    may come from forward steps); nothing when a seed has no such figures."""
    if any(row.turns is None for row in rows):
        return []
    lines = [f"`{split}`, turning positions alone:", "",
             "| seed (study) | Init (%) | RL (%) | SFT (%) | RL − Init | SFT − Init |",
             "|---|---|---|---|---|---|"]
    turns = [row.turns for row in rows if row.turns is not None]
    for row, t in zip(rows, turns, strict=True):
        lines.append(f"| {row.study} | {100 * t.init:.1f} | {100 * t.rl:.1f} | {100 * t.sft:.1f} "
                     f"| {100 * t.rl_gain.success:+.1f} | {100 * t.sft_gain.success:+.1f} |")
    mean = statistics.fmean
    rl_gain, sft_gain = (mean_change([getattr(t, name) for t in turns])
                         for name in ("rl_gain", "sft_gain"))
    lines.append(f"| mean of {len(rows)} | {100 * mean(t.init for t in turns):.1f} | "
                 f"{100 * mean(t.rl for t in turns):.1f} | {100 * mean(t.sft for t in turns):.1f} "
                 f"| {_points(rl_gain)} | {_points(sft_gain)} |")
    return [*lines, ""]


def _points(change: MeanChange) -> str:
    return f"{100 * change.mean:+.1f} ± {100 * change.stderr:.1f} (spread {100 * change.spread:.1f})"


def split_table(split: str, rows: list[SeedRow]) -> list[str]:
    """Each seed's init, RL, SFT and changes, then their mean; on an OOD split, the finding
    tested on the mean."""
    lines = [f"### `{split}`", "", "| seed (study) | Init (%) | RL (%) | SFT (%) | RL − Init | "
             "SFT − Init | RL − SFT | finding |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        f = row.finding
        lines.append(f"| {row.study} | {100 * row.init:.1f} | {100 * row.rl:.1f} | "
                     f"{100 * row.sft:.1f} | {100 * f.rl_gain.success:+.1f} | "
                     f"{100 * f.sft_gain.success:+.1f} | {100 * f.rl_over_sft.success:+.1f} | "
                     f"{_verdict(f.shown) if split.startswith('ood') else '–'} |")
    rl, sft, gap = (mean_change([getattr(r.finding, name) for r in rows])
                    for name in ("rl_gain", "sft_gain", "rl_over_sft"))
    mean = statistics.fmean
    lines.append(f"| mean of {len(rows)} | {100 * mean(r.init for r in rows):.1f} | "
                 f"{100 * mean(r.rl for r in rows):.1f} | {100 * mean(r.sft for r in rows):.1f} | "
                 f"{_points(rl)} | {_points(sft)} | {_points(gap)} | |")
    if not split.startswith("ood"):
        return [*lines, ""]
    # The same three tests as one seed's (compare.Finding), on the means and their error bars.
    on_mean = Finding(split, *(Change(success=c.mean, stderr=c.stderr, paired=False)
                               for c in (rl, sft, gap)))
    verdict = "shows" if on_mean.shown else "does not show"
    lines += ["", f"On the mean, `{split}` {verdict} the study's finding: RL keeps the init's "
              f"success {_yes(on_mean.rl_keeps)}, SFT loses some {_yes(on_mean.sft_loses)}, "
              f"RL beats SFT by more than twice the error bar {_yes(on_mean.rl_beats_sft)}.", ""]
    return lines


def _yes(passed: bool) -> str:
    return "yes" if passed else "no"


def _verdict(shown: bool) -> str:
    return "shown" if shown else "not shown"


def seeds_report(study_dirs: list[Path]) -> str:
    rows = seed_rows(study_dirs)
    lines = [f"## The study over {len(study_dirs)} seeds", "",
             "Each seed at the largest compute point both arms reached, in points; the mean's "
             "error bar is the larger of the spread over sqrt(seeds) and the seeds' sampling "
             "error bars combined.", ""]
    for split, split_rows in rows.items():
        lines += [*split_table(split, split_rows), *turn_table(split, split_rows)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="revisor study-seeds", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study_dirs", type=Path, nargs="+", help="finished study directories")
    parser.add_argument("--out", type=Path, help="write the Markdown here too")
    args = parser.parse_args(argv)
    try:
        report = seeds_report(args.study_dirs)
    except StudyFileError as error:
        print(f"revisor study-seeds: {error}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(report + "\n")
    print(report)
    return 0
