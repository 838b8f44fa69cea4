"""`revisor scale` asks a running job for a number of rollout workers through its run directory."""

from __future__ import annotations

import pytest

from cluster.cli import main as revisor
from cluster.job.control import CONTROL_FILE, Control, read_control


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "config.yaml").write_text("{}\n")
    return tmp_path


def test_scale_writes_the_request_the_driver_reads(run_dir):
    assert read_control(run_dir) == Control()
    assert revisor(["scale", str(run_dir), "3"]) == 0
    assert read_control(run_dir).rollout_workers == 3


def test_scale_refuses_nonsense(run_dir, tmp_path_factory):
    with pytest.raises(SystemExit):
        revisor(["scale", str(run_dir), "0"])
    with pytest.raises(SystemExit):
        revisor(["scale", str(tmp_path_factory.mktemp("empty")), "2"])


def test_a_corrupt_control_file_is_ignored_not_fatal(run_dir, capsys):
    (run_dir / CONTROL_FILE).write_text('{"rollout_workers": -4')
    assert read_control(run_dir) == Control()
    assert "ignoring" in capsys.readouterr().out
