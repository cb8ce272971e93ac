"""`xmen list --slurm` and `to_dataframe`: the last SLURM job record (`_slurm`, written by xmen.slurm) as columns,
through the listing index like every other column."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from xmen.store import files
from xmen.look import listing
from xmen.cli.list import list_command

from cli_helpers import write_set
from test_listing import settled  # noqa: F401 - fixture

JOBS = [
    {"job_id": "41", "attempt": 1, "state": "OUT_OF_MEMORY", "exit_code": "0:125", "node": "n1", "partition": "main",
     "elapsed": "00:00:09", "max_rss": "1900M"},
    {"job_id": "42", "attempt": 2, "state": "CANCELLED", "exit_code": "0:0", "node": "n2", "partition": "main",
     "elapsed": "00:01:05", "max_rss": "512K"},
]


def with_jobs(tmp_path: Path) -> Path:
    root = write_set(tmp_path, 2)
    name = sorted(p.name for p in root.iterdir() if p.is_dir())[0]
    files.update_yaml(root / name / "params.yml", lambda d: d.update(_status="cancelled", _slurm=JOBS))
    return root


def test_list_slurm_shows_the_last_job(tmp_path, settled):
    root = with_jobs(tmp_path)
    for _ in range(2):  # read, then from the index
        plain = CliRunner().invoke(list_command, [str(root)])
        assert plain.exit_code == 0 and "slurm_job" not in plain.output, plain.output
        shown = CliRunner().invoke(list_command, [str(root), "--slurm"])
        assert shown.exit_code == 0, shown.output
        header = shown.output.splitlines()[0].split()
        assert header[-5:] == list(listing.SLURM_COLUMNS), header
        row = next(line for line in shown.output.splitlines() if "cancelled" in line).split()
        assert row[-5:] == ["42", "CANCELLED", "n2", "00:01:05", "512K"], row
    csv = CliRunner().invoke(list_command, [str(root), "--slurm", "--csv", "--sort", "slurm_job"])
    assert csv.output.splitlines()[1].endswith(",42,CANCELLED,n2,00:01:05,512K"), csv.output


def test_to_dataframe_carries_the_slurm_columns(tmp_path, settled):
    root = with_jobs(tmp_path)
    frame = listing.to_dataframe(str(root))
    assert list(frame["slurm_job"]) == ["42", None] and list(frame["slurm_state"]) == ["CANCELLED", None]
    plain = write_set(tmp_path / "other", 1)
    assert "slurm_job" not in listing.to_dataframe(str(plain)).columns  # no SLURM, no columns


def test_status_filter_knows_cancelled(tmp_path, settled):
    root = with_jobs(tmp_path)
    result = CliRunner().invoke(list_command, [str(root), "--status-is", "cancelled"])
    assert result.exit_code == 0 and result.output.count("cancelled") == 1, result.output


@pytest.mark.parametrize("bad", ["a string", [1, 2]])
def test_a_damaged_slurm_record_is_named(tmp_path, settled, bad):
    root = write_set(tmp_path, 1)
    name = next(p.name for p in root.iterdir() if p.is_dir())
    files.update_yaml(root / name / "params.yml", lambda d: d.update(_slurm=bad))
    from xmen.store import statecheck
    from xmen.errors import StateFileError

    with pytest.raises(StateFileError, match="'_slurm' must be a list of job records"):
        statecheck.check_params(root / name / "params.yml", files.read_yaml(root / name / "params.yml"))


def test_a_run_that_stopped_itself_says_so_beside_slurms_failed(tmp_path, settled, monkeypatch):
    """A Monitor's stop_before ends the run as timeout (a rerun resumes) with exit code 138, which SLURM records
    as FAILED: the SLURM column keeps SLURM's word and says why, so the two columns do not contradict."""
    from test_monitor import Training

    exp = Training()
    exp.register(tmp_path, "train")
    monkeypatch.setenv("XMEN_RUNTIME", "0.4")  # the Monitor's stop_before (30 s) is already due at its first step
    assert exp() == "timeout"
    error = files.read_yaml(tmp_path / "train" / "params.yml")["_error"]
    root = write_set(tmp_path / "set", 2)
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    failed = [{**JOBS[0], "job_id": "43", "state": "FAILED", "exit_code": "138:0"}]
    files.update_yaml(root / names[0] / "params.yml", lambda d: d.update(_status="timeout", _error=error, _slurm=failed))
    files.update_yaml(root / names[1] / "params.yml", lambda d: d.update(_status="error", _error="exit code 1",
                                                                         _slurm=failed))
    csv = CliRunner().invoke(list_command, [str(root), "--slurm", "--csv", "--sort", "name"])
    assert csv.exit_code == 0, csv.output
    rows = csv.output.splitlines()[1:]
    assert ",43,FAILED (stopped itself for its time limit)," in rows[0], rows
    assert ",43,FAILED,n1," in rows[1], rows  # a run that failed stays FAILED
