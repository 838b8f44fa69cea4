"""`revisor study`: its arguments, parsed before the study's modules (torch, Ray, vLLM) load.

    revisor study --config configs/study/cpu-gp-l.yaml [experiment.key=value ...]
    revisor study --resume STUDY_DIR          # redoes nothing it finished
    ray job submit ... -- revisor study --config ...

Both arms of the study from one init at matched training compute; what a study directory
holds and how a resume works: cluster/study/run.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="revisor study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="study settings (YAML)")
    source.add_argument("--resume", type=Path, metavar="STUDY_DIR",
                        help="finish the study in STUDY_DIR, redoing nothing it finished")
    parser.add_argument("--arms", type=lambda text: text.split(","), metavar="ARM,ARM",
                        help="run only these arms (sft, rl, rl-steps-K); other jobs can run "
                             "the others side by side once the 'sft' arm has run")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value settings "
                                                     "(experiment.… for the experiment's)")
    return parser.parse_args(argv)


def settings_path(args: argparse.Namespace) -> Path:
    """The study's settings file; `--resume` of a directory no study made is refused in one
    line (it is not a settings file problem: the directory is wrong)."""
    from cluster.settings.loading import SettingsError
    from cluster.settings.study import STUDY_SETTINGS

    if args.resume is None:
        return args.config
    if not (args.resume / STUDY_SETTINGS).is_file():
        what = "does not exist" if not args.resume.exists() else f"has no {STUDY_SETTINGS}"
        raise SettingsError(f"--resume {args.resume}: not a study directory (it {what}); give "
                            "the study_dir of a study started with --config")
    return args.resume / STUDY_SETTINGS


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported after parsing: the study pulls in torch, Ray and vLLM (seconds), --help must not.
    from cluster.job.runtime import run_command
    from cluster.settings.study import load_study
    from cluster.study.run import STUDY_RESULTS, console, run_study

    def study() -> dict:
        config = load_study(settings_path(args), args.overrides)
        results = run_study(config, resume=args.resume is not None, only=args.arms)
        points = sum(len(arm) for arm in results["arms"].values())
        console.print(f"study: {Path(config.study_dir) / STUDY_RESULTS} ({points} arm points)")
        return results

    return run_command("revisor study", study)[0]
