"""The `revisor` command: one entry point, one subcommand per job.

Subcommands import their modules only when chosen, and each module parses its arguments
before it imports torch, Ray or vLLM, so `revisor --help` and `revisor COMMAND --help` answer
at once.
"""

from __future__ import annotations

import difflib
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("cluster.main", "train: one job (SFT warm start, RL, evaluations, report) from settings"),
    "plan": ("cluster.plan.planner", "placement and per-GPU memory of a configuration, before launch"),
    "import-gguf": ("rollout_workers.gguf_import", "a GGUF model file as a checkpoint directory every part loads"),
    "pretrain": ("cluster.job.pretrain", "a base model with general skills from the generated corpus, cached by settings"),
    "play": ("cluster.play", "play episodes of a task with a scripted policy"),
    "report": ("cluster.results.report", "plots and a Markdown report of one or more run directories"),
    "study": ("cluster.study.command", "both arms of the study from one init, at matched training compute"),
    "scale": ("cluster.job.control", "set the number of rollout workers of a running job"),
    "study-report": ("cluster.study.report", "the study's figures and tables from STUDY_DIR/study.json"),
    "study-seeds": ("cluster.study.seeds", "one study's settings over several seeds: each seed, mean, spread"),
    "tiny-model": ("rollout_workers.tiny_models.cli", "build a tiny LM or VLM (with tokenizer) saved by path"),
}

SYNONYMS = {"train": "run", "fit": "run", "start": "run", "resume": "run"}
"""Words a new user tries for a command, and the command they mean."""


def usage() -> str:
    lines = ["usage: revisor <command> [options]   (revisor <command> --help for its options)",
             "", "commands:"]
    lines += [f"  {name:<13} {summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def nearest_command(name: str) -> str | None:
    """The command a mistyped or guessed name most likely meant."""
    if name in SYNONYMS:
        return SYNONYMS[name]
    near = difflib.get_close_matches(name, SUBCOMMANDS, n=1, cutoff=0.5)
    return near[0] if near else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in SUBCOMMANDS:
        near = nearest_command(argv[0])
        hint = f" (did you mean 'revisor {near}'?)" if near else ""
        print(f"revisor: unknown command '{argv[0]}'{hint}; revisor --help lists the commands",
              file=sys.stderr)
        return 2
    return run_subcommand(argv[0], argv[1:])


def run_subcommand(name: str, argv: list[str]) -> int:
    """A subcommand's main; invalid settings that reach here are reported in a line each."""
    module = importlib.import_module(SUBCOMMANDS[name][0])
    try:
        return module.main(argv)
    except Exception as error:  # pydantic is imported only if a subcommand raised
        from pydantic import ValidationError

        if not isinstance(error, ValidationError):
            raise
        from cluster.settings.loading import describe

        print(f"revisor {name}: {describe(error, source='settings')}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
