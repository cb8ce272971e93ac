"""Statuses say what happened: os._exit inside run(), experiments ignoring SIGTERM, a full disk, hand edits saved
to params.yml while the experiment runs (atomic and in-place saves). Real processes under the job runner."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from xmen.store import files
from xmen.store import status as st
from xmen.store.heartbeat import effective_status
from xmen.run.runner import lock_held

from cli_helpers import wait_until

pytestmark = [pytest.mark.usefixtures("xmen_home"), pytest.mark.timeout(120)]

PYTHON_EXPERIMENT = '''\
import os
import signal
import time
from xmen.experiment import Experiment


class Probe(Experiment):
    def __init__(self):
        """Does what `mode` says, to see what the runner records."""
        super().__init__()
        self.mode: str = 'ok'  # @p ok | os_exit | ignore_term | messages
        self.seconds: float = 2.0  # @p How long the messages mode runs

    def run(self):
        open(os.path.join(self.directory, 'started'), 'w').close()
        if self.mode == 'os_exit':
            os._exit(0)
        if self.mode == 'ignore_term':
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open(os.path.join(self.directory, 'ignoring'), 'w').close()
            time.sleep(60)
        if self.mode == 'messages':
            end = time.monotonic() + self.seconds
            step = 0
            while time.monotonic() < end:
                step += 1
                self.message({'step': step})
                time.sleep(0.003)


if __name__ == '__main__':
    exp = Probe()
    exp.main(exp.parse_args())
'''


def python_experiment(tmp_path: Path, mode: str, seconds: float = 2.0, root: Path | None = None) -> tuple[Path, Path]:
    """A registered python experiment: (params.yml, script.sh)."""
    script_py = tmp_path / "probe.py"
    script_py.write_text(PYTHON_EXPERIMENT)
    root = root or tmp_path / "root"
    subprocess.run([sys.executable, str(script_py), "--to_root", str(root)], check=True)
    subprocess.run(
        [sys.executable, str(script_py), "--update", f"{{mode: {mode}, seconds: {seconds}}}", "--register", str(root),
         "e1"],
        check=True,
    )
    return root / "e1" / "params.yml", root / "script.sh"


def shell_experiment(folder: Path, body: str) -> tuple[Path, Path]:
    """A registered plain shell experiment in ``folder``/exp: (params.yml, script.sh)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "script.sh"
    script.write_text("#!/bin/bash\n" + textwrap.dedent(body))
    script.chmod(0o755)
    exp = folder / "exp"
    exp.mkdir()
    params = exp / "params.yml"
    files.write_yaml(params, {"_name": "exp", "_status": st.REGISTERED, "_messages": {}, "a": 1})
    return params, script


def runner(params: Path, script: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xmen.job", str(params), str(script)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def test_os_exit_inside_run_is_not_finished(tmp_path: Path) -> None:
    params, script = python_experiment(tmp_path, "os_exit")
    proc = runner(params, script)
    _, err = proc.communicate(timeout=60)
    data = files.read_yaml(params)
    assert data["_status"] == st.ERROR, err
    assert "without recording that its run() returned" in data["_error"]
    assert proc.returncode != 0
    assert not (params.parent / st.DONE_FILE).exists()
    assert effective_status(data, params.parent) == st.ERROR


def test_os_exit_inside_run_without_a_runner_is_lost_at_once(tmp_path: Path) -> None:
    """A direct --execute: nobody can record the outcome, but readers see the free lock at once (not after 60 s)."""
    params, _ = python_experiment(tmp_path, "os_exit")
    subprocess.run([sys.executable, str(tmp_path / "probe.py"), "--execute", str(params)], timeout=60)
    data = files.read_yaml(params)
    assert data["_status"] == st.RUNNING  # what the file says...
    assert effective_status(data, params.parent) == st.LOST  # ...and what readers show


def test_shell_experiment_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    params, script = shell_experiment(tmp_path, """\
        trap '' TERM
        touch "$(dirname "$1")/started"
        sleep 8
        exit 0
        """)
    proc = runner(params, script, env={**os.environ, "XMEN_KILL_GRACE": "1"})
    wait_until((params.parent / "started").exists, 20, "the experiment started", proc=proc)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - began
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT, err
    assert data["_error"].startswith("received SIGTERM; killed by signal 9")
    assert took < 6, took  # killed after ~1 s, not after the script's 8 s
    assert proc.returncode == 128 + signal.SIGKILL
    assert not (params.parent / st.DONE_FILE).exists()
    assert lock_held(params.parent) is False  # the sleep child was killed too (it shared the lock)


def test_python_experiment_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    params, script = python_experiment(tmp_path, "ignore_term")
    proc = runner(params, script, env={**os.environ, "XMEN_KILL_GRACE": "1"})
    wait_until((params.parent / "ignoring").exists, 20, "run() ignoring SIGTERM", proc=proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    data = files.read_yaml(params)
    assert data["_status"] == st.TIMEOUT, err
    assert proc.returncode == 128 + signal.SIGKILL


def test_sigint_to_a_script_ignoring_it_is_stopped(tmp_path: Path) -> None:
    params, script = shell_experiment(tmp_path, """\
        trap '' INT
        touch "$(dirname "$1")/started"
        sleep 8
        """)
    proc = runner(params, script, env={**os.environ, "XMEN_KILL_GRACE": "0.5"})
    wait_until((params.parent / "started").exists, 20, "the experiment started", proc=proc)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert files.read_yaml(params)["_status"] == st.STOPPED


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs mounted for the test (we are root in CI containers); skipped where mounting is impossible."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_shell_experiment_filling_the_disk_still_gets_its_outcome_recorded(small_disk: Path) -> None:
    params, script = shell_experiment(small_disk, """\
        head -c 4000000 /dev/zero > "$(dirname "$1")/big"
        echo "head exit $?"
        exit 3
        """)
    proc = runner(params, script)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    data = files.read_yaml(params)
    assert data["_status"] == st.ERROR, err
    assert "exit code 3" in data["_error"] and "the disk is full" in data["_error"]
    assert effective_status(data, params.parent) == st.ERROR
    assert proc.returncode == 3


def test_a_python_experiment_filling_the_disk_is_never_running_or_finished(small_disk: Path, tmp_path: Path) -> None:
    params, script = python_experiment(tmp_path, "ok", root=small_disk / "root")
    # the experiment fills the disk, then run() returns; its own final write fails
    text = PYTHON_EXPERIMENT.replace(
        "        if self.mode == 'os_exit':",
        "        try:\n"
        "            with open(os.path.join(self.directory, 'big'), 'wb') as h:\n"
        "                h.write(b'0' * 4000000)\n"
        "        except OSError:\n"
        "            pass\n"
        "        if self.mode == 'os_exit':",
    )
    (tmp_path / "probe.py").write_text(text)
    proc = runner(params, script)
    _, err = proc.communicate(timeout=60)
    data = files.read_yaml(params)
    shown = effective_status(data, params.parent)
    assert shown == st.ERROR, (shown, err)  # recorded with the runner's reserve
    assert "the disk is full" in data["_error"]
    assert not (params.parent / st.DONE_FILE).exists()
    assert proc.returncode != 0
    assert lock_held(params.parent) is False


def test_a_full_disk_before_the_outcome_is_a_one_line_message_and_lost(small_disk: Path) -> None:
    """No reserve can help when the disk is full from the start: one line, non-zero exit, never `running`."""
    params, script = shell_experiment(small_disk, "exit 0\n")
    filler = small_disk / "filler"
    with open(filler, "wb") as handle:
        try:
            handle.write(b"0" * 4000000)
        except OSError:
            pass
    proc = runner(params, script)
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert proc.returncode != 0
    assert not (params.parent / st.DONE_FILE).exists()
    assert effective_status(files.read_yaml(params), params.parent) not in (st.RUNNING, st.FINISHED)


def _atomic_save(path: Path, key: str, value: int) -> None:
    """What an editor saving by rename does: read, change, write a new file, rename it over (no xmen lock)."""
    text = path.read_text()
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.swp")
    temporary.write_text(text + f"{key}: {value}\n")
    os.replace(temporary, path)


def _in_place_save(path: Path, key: str, value: int) -> None:
    """What an editor saving in place does: truncate the file and write it again, here in two parts."""
    while True:
        text = path.read_text()
        try:
            if isinstance(files.load_yaml_text(text), dict):
                break
        except Exception:  # noqa: BLE001 - caught another in-place save half-written: read again
            pass
        time.sleep(0.005)
    text += f"{key}: {value}\n"
    middle = len(text) // 2
    while text[middle] in "\n:":  # end the first part mid-line: a half-written file is not valid YAML
        middle += 1
    with open(path, "r+", encoding="utf-8") as handle:
        handle.truncate(0)
        handle.write(text[:middle])
        handle.flush()
        time.sleep(0.003)
        handle.write(text[middle:])


@pytest.mark.parametrize("save", [_atomic_save, _in_place_save], ids=["atomic", "in-place"])
def test_hand_edits_saved_during_a_run_are_kept(tmp_path: Path, save) -> None:
    params, script = python_experiment(tmp_path, "messages", seconds=3.0)
    proc = runner(params, script)
    wait_until((params.parent / "started").exists, 20, "the experiment started", proc=proc)
    saved = []
    for index in range(30):
        save(params, f"hand_{index}", index)
        saved.append(f"hand_{index}")
        time.sleep(0.02)
    _, err = proc.communicate(timeout=60)
    data = files.read_yaml(params)
    lost = [key for key in saved if data.get(key) != int(key.split("_")[1])]
    print(f"\nhand edits ({save.__name__}): {len(saved)} saved during the run, {len(lost)} lost")
    assert not lost, (lost, err)
    assert data["_status"] == st.FINISHED, (data.get("_error"), err)
    assert data["_messages"]["step"] > 10
    assert proc.returncode == 0


def test_update_yaml_retries_a_file_caught_half_written(tmp_path: Path) -> None:
    path = tmp_path / "params.yml"
    files.write_yaml(path, {"a": 1, "b": "x" * 200})
    whole = path.read_text()

    def finish_the_save() -> None:
        time.sleep(0.2)  # the save stays half-written a while: update_yaml must retry through it
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(whole)

    path.write_text("a: [1,\n")  # an in-place save caught half-way (invalid YAML)
    writer = threading.Thread(target=finish_the_save)
    writer.start()
    data = files.update_yaml(path, lambda d: d.__setitem__("c", 3))
    writer.join()
    assert data["a"] == 1 and data["c"] == 3 and files.read_yaml(path)["b"] == "x" * 200


def test_update_yaml_still_reports_a_file_that_stays_broken(tmp_path: Path) -> None:
    path = tmp_path / "params.yml"
    path.write_text("a: [1,\n")
    began = time.monotonic()
    with pytest.raises(files.StateFileError):
        files.update_yaml(path, lambda d: None)
    assert time.monotonic() - began < 3


def test_readers_use_the_run_lock_on_this_host(tmp_path: Path) -> None:
    """`running` with the lock held is running; with the lock free it is lost at once, even while the recorded pid
    lives (a zombie, or a reused pid) and the heartbeat is fresh."""
    from xmen.store.heartbeat import Heartbeat
    from xmen.run.runner import release, try_lock
    from xmen.store.provenance import hostname, now_time

    Heartbeat(tmp_path).beat()
    params = {"_status": st.RUNNING, "_run": {"host": hostname(), "pid": os.getpid(), "started": now_time()}}
    fd = try_lock(tmp_path)
    try:
        assert lock_held(tmp_path) is True
        assert effective_status(params, tmp_path) == st.RUNNING
    finally:
        release(fd)
    assert lock_held(tmp_path) is False
    assert effective_status(params, tmp_path) == st.LOST
    elsewhere = {"_status": st.RUNNING, "_run": {"host": "another-host", "pid": 1, "started": now_time()}}
    assert effective_status(elsewhere, tmp_path) == st.RUNNING  # another host: its heartbeat decides


def test_which_statuses_may_be_queued_or_cancelled():
    """The one rule `xmen list` and `xmen cancel` use: a queued marker counts for every status but running (its job
    started it) and finished (only a forced rerun submits it again); anything but finished may be cancelled."""
    assert [s for s in st.ALL if st.may_be_queued(s)] == [
        st.DEFAULT, st.REGISTERED, st.QUEUED, st.ERROR, st.STOPPED, st.TIMEOUT, st.CANCELLED, st.LOST]
    assert [s for s in st.ALL if not st.cancellable(s)] == [st.FINISHED]
    assert st.may_be_queued("corrupt") and not st.may_be_queued(st.RUNNING)
