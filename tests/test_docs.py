"""The docs build: `mkdocs build --strict` (a dead link, a missing page or a bad anchor fails),
the configuration reference is the one the settings models generate, and no file cites a
document that does not ship with the project."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.jobs import ROOT

sys.path.insert(0, str(ROOT / "docs"))
import gen_config_reference  # noqa: E402

TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".sh", ""}
SKIPPED_DIRS = {".venv", ".git", ".cache", "runs", "site", "__pycache__", ".pytest_cache",
                ".ruff_cache", ".hypothesis", "build", "dist"}


def project_files() -> list[Path]:
    """The project's text files (not this test, which names what it looks for)."""
    return [path for path in ROOT.rglob("*")
            if path.is_file() and path.suffix in TEXT_SUFFIXES and path != Path(__file__)
            and not SKIPPED_DIRS & set(path.relative_to(ROOT).parts)]


def test_config_reference_is_generated_from_the_settings_models():
    committed = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert committed == gen_config_reference.render(), \
        "docs/reference/config.md is stale: run `make docs` (docs/gen_config_reference.py)"
    for path in ("cluster.learner_resources", "learner.ppo.clip_ratio", "task.rewards.success",
                 "compute_points"):
        assert f"| `{path}` |" in committed, path


def test_docs_site_builds_strictly(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert (tmp_path / "site" / "protocol" / "index.html").exists()
    assert (tmp_path / "site" / "reference" / "config" / "index.html").exists()


def test_readme_is_short_and_its_links_exist():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 150
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme):
        assert (ROOT / target).exists(), f"README links to missing {target}"


def test_no_file_cites_a_document_that_does_not_ship():
    """Citations name docs pages (docs/protocol.md §Rewards), never the study notes the
    project was written from."""
    offenders = [str(path.relative_to(ROOT)) for path in project_files()
                 if re.search(r"PROTOCOL(\.md)?\s*§", path.read_text(errors="ignore"))]
    assert not offenders, offenders


def test_docs_citations_name_existing_sections():
    """Every `docs/PAGE.md §Section` cited in code, configs or docs names a heading there."""
    pattern = re.compile(r"docs/([\w/.-]+\.md) §([A-Z][A-Za-z' -]*)")
    for path in project_files():
        for page, section in pattern.findall(path.read_text(errors="ignore")):
            headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / page).read_text(), re.M)
            cited = section.strip()
            assert any(cited.startswith(h) or h.startswith(cited) for h in headings), \
                f"{path.relative_to(ROOT)} cites docs/{page} §{section}"


def test_files_the_docs_name_exist():
    """Every repository path the docs and README name in code spans (`learner/ppo.py`) is
    there, so that moving a module shows up here instead of in a reader's dead end."""
    pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]
    span = re.compile(r"`((?:[\w.-]+/)+(?:[\w.-]*\.(?:py|yaml|yml|md|json|txt|sh|png))?)`")
    missing = [(page.name, path) for page in pages for path in span.findall(page.read_text())
               if not path.startswith(("RUN_DIR", "STUDY_DIR", "runs/", "/", "models/", "report/", "site/"))
               and not (ROOT / path).exists()]
    assert not missing, missing
