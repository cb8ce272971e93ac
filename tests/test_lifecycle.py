"""xmen.store.lifecycle: the one run lifecycle of the job runner and of a python experiment run in its own process.

Both paths record the same things for the same outcome (``_run``, ``_attempts``, the status file, the run count in
the lock file); the lifecycle's steps are checked one by one without any process around them.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from xmen.store import files, lifecycle, markers
from xmen.store import status as st
from xmen.store.attempts import done_text
from xmen.store.layout import DONE_FILE, HEARTBEAT_FILE, LOCK_FILE, MARKER_FILE
from xmen.store.lifecycle import Lifecycle
from xmen.store.locks import ENV_JOB, ENV_JOB_PARAMS, RUN_BY_EXPERIMENT, lock_held, release, try_lock
from xmen.store.provenance import hostname

pytestmark = pytest.mark.usefixtures("xmen_home")

EXPERIMENT = '''\
import sys
from xmen.experiment import Experiment


class Probe(Experiment):
    def __init__(self):
        """Finishes, or fails on request."""
        super().__init__()
        self.fail: bool = False  # @p Raise inside run()

    def run(self):
        print("probing")
        if self.fail:
            raise ValueError("asked to fail")


if __name__ == "__main__":
    exp = Probe()
    exp.main(exp.parse_args())
'''


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No runner, no SLURM job, no attempt number around the test (the suite may itself run inside a job)."""
    for name in (ENV_JOB, ENV_JOB_PARAMS, "SLURM_JOB_ID", "SLURMD_NODENAME", "XMEN_ATTEMPT", "XMEN_EXPECT_DONE"):
        monkeypatch.delenv(name, raising=False)


def registered(tmp_path: Path, name: str = "exp", **values) -> Path:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    params = folder / "params.yml"
    files.write_yaml(params, {"_name": name, "_status": st.REGISTERED, "_messages": {}, "a": 1, **values})
    return params


def python_set(tmp_path: Path) -> tuple[Path, Path]:
    """A root with the probe's script.sh and defaults.yml (``--to_root``): (root, the probe's source)."""
    source = tmp_path / "probe.py"
    source.write_text(EXPERIMENT)
    root = tmp_path / "root"
    proc = subprocess.run([sys.executable, str(source), "--to_root", str(root)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return root, source


def register(source: Path, root: Path, name: str, fail: bool) -> Path:
    command = [sys.executable, str(source), "--register", str(root), name]
    if fail:
        command[2:2] = ["--update", "{fail: true}"]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return root / name / "params.yml"


def shape(params: Path) -> dict:
    """What a run recorded, without its values: the keys of _run and of the last _attempts entry, the status,
    _error, the status file, and the lines the run added to the lock file."""
    data = files.read_yaml(params)
    folder = params.parent
    return {
        "status": data["_status"],
        "error": data.get("_error"),
        "run": sorted(data["_run"]),
        "attempts": [sorted(entry) for entry in data["_attempts"]],
        "done": (folder / DONE_FILE).read_text().splitlines()[0] if (folder / DONE_FILE).exists() else None,
        "counted": (folder / LOCK_FILE).read_text().count("\n"),
        "queued": (folder / MARKER_FILE).exists(),
        "heartbeat": (folder / HEARTBEAT_FILE).exists(),
    }


# ------------------------------------------------------------------------- both paths record the same
@pytest.mark.parametrize("fail", [False, True], ids=["finished", "error"])
def test_direct_runs_and_runner_runs_record_the_same(tmp_path: Path, clean_env: None, fail: bool) -> None:
    root, source = python_set(tmp_path)
    shapes = {}
    for index, how in enumerate(("runner", "--execute", "execute()")):
        params = register(source, root, f"run{index}", fail)
        markers.mark(params.parent, "123")  # a SLURM job was queued for it: whoever runs it, it is not queued now
        (params.parent / DONE_FILE).write_text("finished\nrun: an earlier run\n")  # a new run starts without it
        if how == "runner":
            command = [sys.executable, "-m", "xmen.job", str(params), str(root / "script.sh")]
        elif how == "--execute":
            command = [sys.executable, str(source), "--execute", str(params)]
        else:
            command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import probe; "
                       f"sys.exit(0 if probe.Probe().execute({str(params)!r}) == 'finished' else 1)"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert proc.returncode == (1 if fail else 0), proc.stderr
        shapes[how] = shape(params)
        data = files.read_yaml(params)
        assert data["_run"][RUN_BY_EXPERIMENT] == "Probe" and data["_run"]["host"] == hostname()
        assert data["_run"]["returncode"] == (1 if fail else 0) and data["_attempts"][-1]["status"] == data["_status"]
        if not fail:
            assert (params.parent / DONE_FILE).read_text() == done_text(data["_run"])
    expected = shapes["runner"]
    assert expected["status"] == (st.ERROR if fail else st.FINISHED)
    assert expected["done"] == (None if fail else "finished") and expected["counted"] == 2
    assert not expected["queued"] and expected["heartbeat"]
    assert {"host", "pid", "started", "ended", "returncode", "status", "params_hash", "params", "code"} <= set(
        expected["run"])
    assert shapes["--execute"] == expected and shapes["execute()"] == expected


# ------------------------------------------------------------------------------------- the steps alone
def test_an_owner_goes_through_every_step(tmp_path: Path, clean_env: None, monkeypatch) -> None:
    monkeypatch.setenv("XMEN_ATTEMPT", "2")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    params = registered(tmp_path, _error="the last run failed")
    folder = params.parent
    (folder / DONE_FILE).write_text("finished\n")
    markers.mark(folder, "77")
    life = Lifecycle(params)
    assert life.owner and life.acquire()
    assert lock_held(folder)
    try:
        run = life.start(extra_key="x")
        data = files.read_yaml(params)
        assert data["_status"] == st.RUNNING and "_error" not in data and data["_run"] == run
        assert run["attempt"] == 2 and run["slurm_job_id"] == "77" and run["extra_key"] == "x"
        assert run["params"] == {"a": 1} and run["pid"] == os.getpid()
        assert not (folder / DONE_FILE).exists() and markers.marker(folder) is None
        assert (folder / HEARTBEAT_FILE).exists()
        assert life.end(0, st.FINISHED, None) == st.FINISHED
    finally:
        life.release()
    data = files.read_yaml(params)
    assert data["_status"] == st.FINISHED and data["_run"]["returncode"] == 0 and data["_run"]["ended"]
    assert data["_attempts"] == [{k: v for k, v in data["_run"].items() if k != "params"}]
    assert (folder / DONE_FILE).read_text() == done_text(run)
    assert [line.split()[1] for line in (folder / LOCK_FILE).read_text().splitlines()] == ["started", "ended"]
    assert lock_held(folder) is False


def test_a_failed_run_records_its_reason_and_no_status_file(tmp_path: Path, clean_env: None) -> None:
    params = registered(tmp_path)
    life = Lifecycle(params)
    assert life.acquire()
    try:
        life.start()
        assert life.end(143, st.TIMEOUT, "received SIGTERM") == st.TIMEOUT
    finally:
        life.release()
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT and data["_error"] == "received SIGTERM"
    assert data["_attempts"][-1]["reason"] == "received SIGTERM" and data["_attempts"][-1]["returncode"] == 143
    assert not (params.parent / DONE_FILE).exists()


def test_under_a_runner_only_the_status_is_recorded(tmp_path: Path, clean_env: None, monkeypatch) -> None:
    params = registered(tmp_path)
    runner_run = {"host": "the-runner", "pid": 1, "started": "2020-01-01-00-00-00"}
    files.update_yaml(params, lambda d: d.update(_status=st.RUNNING, _run=dict(runner_run)))
    monkeypatch.setenv(ENV_JOB, "1")
    monkeypatch.setenv(ENV_JOB_PARAMS, str(params))
    held = try_lock(params.parent)  # the runner's
    try:
        life = Lifecycle(params)
        assert not life.owner and life.acquire()
        assert life.start(experiment="Probe") == {**runner_run, "experiment": "Probe"}
        assert life.end(5, st.ERROR, "exit code 5") == st.ERROR
        life.release()
        assert lock_held(params.parent)  # still the runner's
    finally:
        release(held)
    data = files.read_yaml(params)
    assert data["_status"] == st.ERROR and data["_error"] == "exit code 5"
    assert set(data["_run"]) == {"host", "pid", "started", "experiment", "ended"}  # the runner adds the rest
    assert "_attempts" not in data and not (params.parent / DONE_FILE).exists()
    assert not (params.parent / LOCK_FILE).read_text()  # the runner counts its run, not us


def test_an_outside_verdict_stays(tmp_path: Path, clean_env: None, monkeypatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "9")
    params = registered(tmp_path)
    life = Lifecycle(params)
    assert life.acquire()
    try:
        life.start()
        files.update_yaml(params, lambda d: d.update(_status=st.CANCELLED, _error="cancelled (SLURM job 9)",
                                                     _slurm=[{"job_id": "9", "state": "CANCELLED"}]))
        assert life.end(143, st.TIMEOUT, "received SIGTERM") == st.CANCELLED
    finally:
        life.release()
    data = files.read_yaml(params)
    assert data["_error"] == "cancelled (SLURM job 9); received SIGTERM"
    assert data["_attempts"][-1]["status"] == st.CANCELLED


def test_decide_reads_what_the_run_left(tmp_path: Path, clean_env: None) -> None:
    params = registered(tmp_path)
    life = Lifecycle(params)
    assert life.acquire()
    seen = []
    try:
        life.start()
        files.update_yaml(params, lambda d: d.update(_status=st.STOPPED, _error="by the script"))

        def decide(data, run):
            seen.append((data["_status"], run["pid"]))
            return str(data["_status"]), None

        assert life.end(130, decide=decide) == st.STOPPED
    finally:
        life.release()
    assert seen[-1] == (st.STOPPED, os.getpid())
    assert files.read_yaml(params)["_attempts"][-1]["reason"] == "by the script"


def test_a_held_lock_is_refused_or_waited_for(tmp_path: Path, clean_env: None) -> None:
    params = registered(tmp_path)
    held = try_lock(params.parent)
    try:
        assert not Lifecycle(params).acquire()
    finally:
        release(held)

    held = try_lock(params.parent)

    def other_run_finishes() -> None:
        time.sleep(0.3)
        files.update_yaml(params, lambda d: d.update(_status=st.FINISHED, _run={"pid": 2}))
        release(held)

    thread = threading.Thread(target=other_run_finishes)
    thread.start()
    life = Lifecycle(params)
    assert not life.acquire(wait=True)
    thread.join()
    assert life.ran_meanwhile == (st.FINISHED, {"pid": 2})
    assert lock_held(params.parent) is False


def test_finished_since_planned(tmp_path: Path, clean_env: None) -> None:
    from xmen.store.locks import done_token

    params = registered(tmp_path)
    planned = done_token(params.parent)
    life = Lifecycle(params)
    assert life.acquire()
    try:
        assert not life.finished_since(planned) and not life.finished_since(None)
        life.start()
        life.end(0, st.FINISHED, None)
    finally:
        life.release()
    (params.parent / DONE_FILE).unlink()  # Snakemake removes its output before running the job
    again = Lifecycle(params)
    assert again.acquire()
    try:
        assert again.finished_since(planned)
    finally:
        again.release()
    assert (params.parent / DONE_FILE).read_text() == done_text(files.read_yaml(params)["_run"])


def test_a_full_disk_frees_the_reserve_and_is_noted(tmp_path: Path, clean_env: None, monkeypatch) -> None:
    params = registered(tmp_path)
    freed = []
    life = Lifecycle(params, on_full_disk=lambda: freed.append(True))
    assert life.acquire()
    real = files.update_yaml
    failures = [OSError(errno.ENOSPC, "No space left on device")]

    def update_once_full(*args, **kwargs):
        if failures and args[1].__qualname__.startswith("Lifecycle.end"):
            raise failures.pop()
        return real(*args, **kwargs)

    try:
        life.start()
        monkeypatch.setattr(files, "update_yaml", update_once_full)
        monkeypatch.setattr(lifecycle, "disk_full", lambda exp_dir: True)
        assert life.end(3, st.ERROR, "exit code 3") == st.ERROR
    finally:
        life.release()
    assert freed == [True]
    assert files.read_yaml(params)["_error"] == "exit code 3 (the disk is full)"


def test_a_status_file_that_cannot_be_written_is_said(tmp_path: Path, clean_env: None, monkeypatch, capsys) -> None:
    params = registered(tmp_path)
    life = Lifecycle(params, prefix="xmen.test")

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    assert life.acquire()
    try:
        life.start()
        monkeypatch.setattr(files, "write_text_atomic", refuse)
        assert life.end(0, st.FINISHED, None) == st.FINISHED
    finally:
        life.release()
    assert not life.done_written
    assert f"xmen.test: cannot write the status file of {params.parent}" in capsys.readouterr().err


def test_a_python_experiment_whose_status_file_fails_exits_non_zero(tmp_path: Path, clean_env: None, monkeypatch,
                                                                  capsys) -> None:
    """As the runner does: the status says finished, the exit code says that Snakemake will not see it."""
    root, source = python_set(tmp_path)
    params = register(source, root, "one", fail=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    import probe

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files, "write_text_atomic", refuse)
    exp = probe.Probe()
    assert exp.execute(params) == st.FINISHED and exp.exit_code == 1
    assert files.read_yaml(params)["_status"] == st.FINISHED and not (params.parent / DONE_FILE).exists()
    assert "xmen: cannot write the status file of" in capsys.readouterr().err


def test_the_runner_and_the_experiment_use_the_lifecycle() -> None:
    """No second copy of the steps: only the lifecycle takes the run lock, counts runs or writes the status file."""
    package = Path(lifecycle.__file__).resolve().parent.parent
    for path in (package / "run" / "runner.py", package / "define" / "experiment.py"):
        text = path.read_text()
        for step in ("try_lock(", "count_run(", "record_start(", "record_end(", "done_text(", "Heartbeat(",
                     "unmark(", "st.settle("):
            assert step not in text, (path.name, step)
