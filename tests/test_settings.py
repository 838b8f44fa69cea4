"""Settings files and overrides: validated up front, errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from cluster.settings.loading import SettingsError, dump_settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


class Inner(BaseModel):
    model_config = {"extra": "forbid"}
    workers: int = Field(2, ge=1)
    mode: Literal["sync", "async"] = "sync"


class Outer(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = "run"
    rollout: Inner = Inner()
    seeds: list[int] = [0]


def test_yaml_plus_dotted_overrides(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("name: demo\nrollout:\n  workers: 3\n")
    settings = load_settings(Outer, path, ["rollout.mode=async", "seeds=[1, 2]", "name=other"])
    assert settings == Outer(name="other", rollout=Inner(workers=3, mode="async"), seeds=[1, 2])


def test_errors_name_the_field_and_the_allowed_values(tmp_path):
    with pytest.raises(SettingsError) as caught:
        load_settings(Outer, None, ["rollout.workers=0", "rollout.mode=fast", "rollout.typo=1"])
    message = str(caught.value)
    assert "3 invalid setting(s)" in message
    assert "rollout.workers: Input should be greater than or equal to 1 (given: 0)" in message
    assert "rollout.mode: Input should be 'sync' or 'async' (given: 'fast')" in message
    assert "rollout.typo: Extra inputs are not permitted" in message


@pytest.mark.parametrize(("override", "expected"), [
    ("noequals", "dotted.key=value"),
    ("name.inner=1", "holds a value"),
    ("rollout.workers=[1", "not valid YAML"),
])
def test_malformed_overrides_are_explained(override, expected):
    with pytest.raises(SettingsError, match=expected):
        load_settings(Outer, None, ["name=x", override])


def test_bad_files_are_explained(tmp_path):
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(Outer, tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(SettingsError, match="must hold a mapping"):
        load_settings(Outer, listing)


def test_resolved_settings_round_trip(tmp_path):
    settings = Outer(rollout=Inner(workers=5))
    dump_settings(settings, tmp_path / "config.yaml")
    assert load_settings(Outer, tmp_path / "config.yaml") == settings


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("**/*.yaml")),
                         ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_every_shipped_configuration_loads_back_from_the_settings_a_run_stores(path, tmp_path):
    """A run stores its resolved settings (config.yaml, study.yaml) and `--resume` reads them
    back: what loads must load again from its own dump, unchanged."""
    from cluster.settings.experiment import ExperimentConfig
    from cluster.settings.study import StudyConfig, load_study

    study = "study" in path.parts
    if "models" in path.parts:
        pytest.skip("model architectures, not settings")
    config = load_study(path) if study else load_settings(ExperimentConfig, path)
    stored = tmp_path / "stored.yaml"
    dump_settings(config, stored)
    again = load_settings(StudyConfig if study else ExperimentConfig, stored)
    assert again == config
