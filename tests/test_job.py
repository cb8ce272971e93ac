"""xmen.job (the runner every run.sh execs) and xmen.heartbeat, on plain shell and python experiments."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xmen.store import files
from xmen.store import status as st
from xmen.store.heartbeat import Heartbeat, effective_status
from xmen.store.provenance import hostname, now_time

from cli_helpers import wait_until

pytestmark = pytest.mark.usefixtures("xmen_home")

PYTHON_EXPERIMENT = '''\
import os
import time
from xmen.experiment import Experiment


class Sleeper(Experiment):
    def __init__(self):
        """Sleeps (or fails) on request."""
        super().__init__()
        self.seconds: float = 30.0  # @p How long to sleep

    def run(self):
        open(os.path.join(self.directory, 'started'), 'w').close()
        print('sleeping', flush=True)
        time.sleep(self.seconds)


if __name__ == '__main__':
    exp = Sleeper()
    exp.main(exp.parse_args())
'''


def make_experiment(tmp_path: Path, body: str, name: str = "exp") -> tuple[Path, Path]:
    """A registered plain shell experiment: (params.yml, script.sh)."""
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/bash\n" + textwrap.dedent(body))
    script.chmod(0o755)
    folder = tmp_path / name
    folder.mkdir()
    params = folder / "params.yml"
    files.write_yaml(params, {"_name": name, "_status": st.REGISTERED, "_messages": {}, "a": 1})
    return params, script


def runner(params: Path, script: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xmen.job", str(params), str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def run_job(params: Path, script: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xmen.job", str(params), str(script)], capture_output=True, text=True, timeout=60
    )


def test_plain_script_finishes(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, 'echo "job=$XMEN_JOB params=$1"\n')
    proc = run_job(params, script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"job=1 params={params}\n"
    data = files.read_yaml(params)
    assert data["_status"] == st.FINISHED and "_error" not in data
    run = data["_run"]
    assert run["host"] == hostname() and isinstance(run["pid"], int) and run["returncode"] == 0
    assert run["started"] <= run["ended"]
    assert data["a"] == 1 and data["_messages"] == {}  # everything else kept
    assert (params.parent / st.HEARTBEAT_FILE).exists()


def test_exit_code_is_an_error(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, "exit 3\n")
    proc = run_job(params, script)
    assert proc.returncode == 3
    data = files.read_yaml(params)
    assert data["_status"] == st.ERROR and data["_error"] == "exit code 3" and data["_run"]["returncode"] == 3
    assert "exit code 3" in proc.stderr


def test_sigkill_is_an_error(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, "kill -9 $$\n")
    proc = run_job(params, script)
    assert proc.returncode == 128 + 9
    data = files.read_yaml(params)
    assert data["_status"] == st.ERROR and data["_error"] == "killed by signal 9"


@pytest.mark.parametrize(
    "sig, expected, reason",
    [
        (signal.SIGTERM, st.TIMEOUT, "received SIGTERM; killed by signal 15"),
        (signal.SIGUSR1, st.TIMEOUT, "received SIGUSR1; killed by signal 10"),
        (signal.SIGINT, st.STOPPED, "received SIGINT; killed by signal 2"),
    ],
)
def test_signal_to_runner_reaches_a_sleeping_script(tmp_path: Path, sig: int, expected: str, reason: str) -> None:
    # `started` by a redirection, not `touch`: a SIGINT reaching bash while it waits for a child that then exits
    # normally is dropped by bash (it assumes the child handled it), and the script slept on (a flaky test).
    params, script = make_experiment(tmp_path, ': > "$(dirname "$1")/started"\nexec sleep 30\n')
    proc = runner(params, script)
    wait_until((params.parent / "started").exists, 20, "the experiment started", proc=proc)
    proc.send_signal(sig)
    proc.communicate(timeout=20)
    assert proc.returncode == 128 + sig
    data = files.read_yaml(params)
    assert data["_status"] == expected and data["_error"] == reason


def test_sigterm_to_the_child_before_the_runner_is_still_a_timeout(tmp_path: Path) -> None:
    """SLURM signals the whole job, often the script before the runner: the runner's late SIGTERM still counts."""
    body = 'runner=$PPID\n(sleep 0.5; kill -TERM "$runner") &\nkill -TERM $$\n'
    params, script = make_experiment(tmp_path, body)
    proc = run_job(params, script)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT and data["_error"] == "received SIGTERM; killed by signal 15"


def test_script_killing_itself_with_sigterm_is_an_error(tmp_path: Path) -> None:
    """No signal ever reaches the runner: after the grace period the run is an error, not a timeout."""
    params, script = make_experiment(tmp_path, "kill -TERM $$\n")
    started = time.monotonic()
    proc = run_job(params, script)
    assert proc.returncode == 128 + signal.SIGTERM
    assert files.read_yaml(params)["_status"] == st.ERROR
    assert time.monotonic() - started < 10


def test_trapping_script_gets_the_forwarded_signal(tmp_path: Path) -> None:
    body = """\
    trap 'echo "$XMEN_JOB" > "$(dirname "$1")/got_term"; exit 7' TERM
    touch "$(dirname "$1")/started"
    sleep 30 >/dev/null 2>&1 &
    wait $!
    """
    params, script = make_experiment(tmp_path, body)
    proc = runner(params, script)
    wait_until((params.parent / "started").exists, 20, "the experiment started", proc=proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 7
    assert (params.parent / "got_term").read_text() == "1\n"
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT and data["_error"] == "received SIGTERM; exit code 7"


def test_two_runners_run_the_script_once(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, 'echo ran >> "$(dirname "$1")/count"\nsleep 1\n')
    procs = [runner(params, script) for _ in range(2)]
    outputs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert (params.parent / "count").read_text() == "ran\n"
    # the second waited for the first instead of running it again
    assert any("being run by another process" in err for _, err in outputs)
    assert files.read_yaml(params)["_status"] == st.FINISHED


def test_waiting_runner_fails_when_the_first_failed(tmp_path: Path) -> None:
    params, script = make_experiment(tmp_path, 'echo ran >> "$(dirname "$1")/count"\nsleep 1\nexit 4\n')
    procs = [runner(params, script) for _ in range(2)]
    for proc in procs:
        proc.communicate(timeout=30)
    assert sorted(p.returncode for p in procs) == [1, 4]
    assert (params.parent / "count").read_text() == "ran\n"


def test_status_file_follows_the_runs(tmp_path: Path) -> None:
    """xmen.done exists exactly when the last run finished, whoever launched it; a new run starts without it."""
    params, script = make_experiment(tmp_path, (
        'echo ran >> "$(dirname "$1")/count"\n'
        '[ -e "$(dirname "$1")/xmen.done" ] && exit 9\n'
        'exit "$(cat "$(dirname "$1")/code" 2>/dev/null || echo 0)"\n'))
    done = params.parent / st.DONE_FILE
    assert run_job(params, script).returncode == 0
    assert done.read_text().startswith("finished\nrun: ")  # which run, so Snakemake sees a rerun by checksum
    # Asked again (Snakemake after a requirement reran, or a user), it runs again.
    (params.parent / "code").write_text("5")
    assert run_job(params, script).returncode == 5
    assert not done.exists() and files.read_yaml(params)["_status"] == st.ERROR
    assert (params.parent / "count").read_text() == "ran\nran\n"


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "xmen.job"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: usage") and proc.stderr.count("\n") == 1
    params, _ = make_experiment(tmp_path, "exit 0\n")
    proc = run_job(params, tmp_path / "missing.sh")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no such file" in proc.stderr
    assert files.read_yaml(params)["_status"] == st.REGISTERED


def _python_job(tmp_path: Path, seconds: float) -> tuple[Path, Path]:
    script_py = tmp_path / "sleeper.py"
    script_py.write_text(PYTHON_EXPERIMENT)
    root = tmp_path / "root"
    subprocess.run([sys.executable, str(script_py), "--to_root", str(root)], check=True)
    subprocess.run(
        [sys.executable, str(script_py), "--update", f"{{seconds: {seconds}}}", "--register", str(root), "e1"],
        check=True,
    )
    return root / "e1" / "params.yml", root / "script.sh"


def test_python_experiment_under_the_runner(tmp_path: Path) -> None:
    params, script = _python_job(tmp_path, 0.0)
    proc = run_job(params, script)
    assert proc.returncode == 0, proc.stderr
    data = files.read_yaml(params)
    assert data["_status"] == st.FINISHED and data["_run"]["returncode"] == 0
    assert "sleeping" in (params.parent / "out.txt").read_text()


def test_ctrl_c_on_the_process_group_stops_a_python_experiment(tmp_path: Path) -> None:
    # The terminal sends SIGINT to the whole group and the runner forwards it again: one stop, cleanly recorded.
    params, script = _python_job(tmp_path, 30.0)
    proc = runner(params, script, start_new_session=True)
    wait_until((params.parent / "started").exists, 20, "the experiment started", proc=proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    data = files.read_yaml(params)
    assert data["_status"] == st.STOPPED and data["_error"] == "received SIGINT"
    assert "Traceback" not in err


def test_sigterm_times_out_a_python_experiment(tmp_path: Path) -> None:
    params, script = _python_job(tmp_path, 30.0)
    proc = runner(params, script)
    wait_until((params.parent / "started").exists, 20, "the experiment started", proc=proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT and data["_error"] == "received SIGTERM"


# --------------------------------------------------------------------------------------------- heartbeat


def test_heartbeat_touches_the_file(tmp_path: Path) -> None:
    beat = tmp_path / st.HEARTBEAT_FILE
    with Heartbeat(tmp_path, interval=0.05):
        assert beat.exists()
        os.utime(beat, (0, 0))
        wait_until(lambda: os.stat(beat).st_mtime != 0, 5, "the heartbeat touching its file again", interval=0.01)
    os.utime(beat, (0, 0))
    time.sleep(0.15)  # three beat intervals: nothing may touch the file any more (an absence has no event to wait for)
    assert os.stat(beat).st_mtime == 0  # stopped


def test_effective_status(tmp_path: Path) -> None:
    now = time.time()
    live = {"_status": st.RUNNING, "_run": {"host": hostname(), "pid": os.getpid(), "started": now_time()}}
    assert effective_status({"_status": st.FINISHED}, tmp_path) == st.FINISHED
    assert effective_status({}, tmp_path) == st.DEFAULT
    # no heartbeat yet, started just now: running
    assert effective_status(live, tmp_path) == st.RUNNING
    # no heartbeat and started long ago: lost
    old = {"_status": st.RUNNING, "_run": {"started": "2020-03-09-16-42-13"}}
    assert effective_status(old, tmp_path) == st.LOST
    assert effective_status({"_status": st.RUNNING, "_started": "2020-03-09-16-42-13"}, tmp_path) == st.LOST
    Heartbeat(tmp_path).beat()
    assert effective_status(old, tmp_path) == st.RUNNING  # fresh heartbeat, other host/unknown pid
    beat = tmp_path / st.HEARTBEAT_FILE
    os.utime(beat, (now - st.LOST_AFTER - 5, now - st.LOST_AFTER - 5))
    assert effective_status(live, tmp_path) == st.LOST
    assert effective_status(live, tmp_path, now=now - st.LOST_AFTER) == st.RUNNING
    # fresh heartbeat but the recorded process on this host is gone
    os.utime(beat, None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = {"_status": st.RUNNING, "_run": {"host": hostname(), "pid": int(dead.stdout)}}
    assert effective_status(gone, tmp_path) == st.LOST
    elsewhere = {"_status": st.RUNNING, "_run": {"host": "another-host", "pid": int(dead.stdout)}}
    assert effective_status(elsewhere, tmp_path) == st.RUNNING
