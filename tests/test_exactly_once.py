"""Every experiment runs at most once at a time, whatever starts it, and a run after any kill -9 needs no manual step.

Real `xmen run`, plain `snakemake`, `xmen ci` and the launcher form (`xmen run "*" bash`) on real sets, started
together; then kill -9 at random points (of the whole run, the job runner alone, the experiment alone, the process
that started it) followed by a plain next run. Each experiment's script counts its starts and completions and
detects a concurrent second copy (an flock of its own), so double runs are seen whatever causes them.

Figures are printed (run with -s): concurrent mixes tried / double runs; kill -9 trials / corrupt / stuck /
double runs / next-run failures. XMEN_KILL_TRIALS sets the number of kill trials (default 10, ~40 s on an idle
2-core machine).
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xmen.store import files
from xmen.store import status as st
from xmen.sets.expset import ExperimentSet
from xmen.run.runner import lock_held

from cli_helpers import make_set, wait_until, xmen

pytestmark = [pytest.mark.usefixtures("xmen_home"), pytest.mark.timeout(300)]

DEFAULTS = "a: 0  # (int) A label (default=0)\nsleep: 0  # (float) Seconds to sleep (default=0)\n"
# Counts starts and completions; a second copy running at the same time finds the probe lock taken.
SCRIPT = r"""#!/bin/bash
dir="$(dirname "$1")"
exec {probe}>>"$dir/.probe"
flock -n "$probe" || echo overlap >> "$dir/overlaps"
echo $$ >> "$dir/pids"
echo start >> "$dir/starts"
sleep "$(sed -n "s/^sleep: *\([^ #]*\).*/\1/p" "$1")"
echo done >> "$dir/completions"
"""


@pytest.fixture(autouse=True)
def experiment(tmp_path: Path) -> None:
    """The experiment of the sets the tests make (make_set) in tmp_path."""
    (tmp_path / "script.sh").write_text(SCRIPT)
    (tmp_path / "defaults.yml").write_text(DEFAULTS)


def lines(folder: Path, name: str) -> int:
    path = folder / name
    return len(path.read_text().splitlines()) if path.exists() else 0


def start(command: list[str], cwd: Path, output: int = subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, stdout=output, stderr=output, text=True, start_new_session=True)


XMEN = [sys.executable, "-m", "xmen.cli"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def started_any(root: Path) -> bool:
    return any((folder / "starts").exists() for folder in root.iterdir() if folder.is_dir())


def experiments(root: Path) -> list[str]:
    return list(ExperimentSet(root).experiments)


def statuses(root: Path) -> dict[str, str]:
    exp_set = ExperimentSet(root)
    return {name: exp_set.status_of(name) for name in exp_set.experiments}


# ------------------------------------------------------------------------------------------ concurrent mixes

#: Each mix: commands started one after the other (each once the previous one has started an experiment).
MIXES = {
    "xmen run -j 6, then snakemake -j 1": [XMEN + ["run", "-j", "6"], SNAKEMAKE + ["-j", "1"]],
    "snakemake -j 6, then xmen run -j 2": [SNAKEMAKE + ["-j", "6"], XMEN + ["run", "-j", "2"]],
    "xmen run '*' bash, then snakemake -j 3": [XMEN + ["run", "*", "bash"], SNAKEMAKE + ["-j", "3"]],
    "xmen ci -j 4, then snakemake -j 2, then xmen run '*' bash": [
        XMEN + ["ci", "..", "-j", "4"], SNAKEMAKE + ["-j", "2"], XMEN + ["run", "*", "bash"]],
}


@pytest.mark.parametrize("mix", list(MIXES))
def test_concurrent_runs_complete_each_experiment_exactly_once(tmp_path: Path, mix: str) -> None:
    root = make_set(tmp_path, "set_a", "{a: 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11 | 12, sleep: 1.5}")
    procs = []
    for command in MIXES[mix]:
        procs.append(start(command, root))
        wait_until(lambda: started_any(root) or procs[-1].poll() is not None, 60,
                   f"{' '.join(command[2:])} started an experiment (or ended)")
    outputs = [proc.communicate(timeout=240) for proc in procs]
    names = experiments(root)
    completions = {name: lines(root / name, "completions") for name in names}
    overlaps = sum(lines(root / name, "overlaps") for name in names)
    doubles = sum(1 for count in completions.values() if count > 1)
    print(f"\nconcurrent mix [{mix}]: {len(names)} experiments, {doubles} completed twice, {overlaps} overlaps")
    detail = "\n".join(err[-1500:] for _, err in outputs)
    assert overlaps == 0, detail
    assert all(count == 1 for count in completions.values()), (completions, detail)
    assert set(statuses(root).values()) == {st.FINISHED}, detail
    assert [proc.returncode for proc in procs] == [0] * len(procs), detail


def test_a_finished_disjoint_snakemake_does_not_let_a_third_run_twice(tmp_path: Path) -> None:
    """The old failure: a finished snakemake deleted `.snakemake/locks` of one still running, and a third ran its
    experiments again."""
    root = make_set(tmp_path, "set_a", "{a: 1 | 2 | 3 | 4 | 5 | 6, sleep: 1}")
    make = ExperimentSet(root)
    names = list(make.experiments)
    xmen(None, "register", "{a: 7 | 8 | 9, sleep: 0}", "-r", str(root))
    quick = [name for name in experiments(root) if name not in names]
    first = start(SNAKEMAKE + ["-j", "2"] + [f"{name}/xmen.done" for name in names], root)
    wait_until(lambda: started_any(root), 60, "the first snakemake started an experiment", proc=first)
    second = subprocess.run(SNAKEMAKE + ["-j", "3"] + [f"{name}/xmen.done" for name in quick], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    third = subprocess.run(SNAKEMAKE + ["-j", "6"], cwd=root, capture_output=True, text=True, timeout=120)
    first.communicate(timeout=120)
    assert third.returncode == 0 and first.returncode == 0, third.stderr[-2000:]
    assert {name: lines(root / name, "completions") for name in experiments(root)} == dict.fromkeys(
        experiments(root), 1)
    assert sum(lines(root / name, "overlaps") for name in experiments(root)) == 0


def test_kill_9_of_the_runner_alone_keeps_the_experiment_locked(tmp_path: Path) -> None:
    root = make_set(tmp_path, "set_a", "{a: 1, sleep: 3}")
    name = experiments(root)[0]
    folder = root / name
    run = start(XMEN + ["run", "*", "bash"], root, output=subprocess.DEVNULL)  # the orphan keeps pipes open
    wait_until(lambda: lines(folder, "starts") == 1, 60, f"{name} started", proc=run)
    runner_pid = files.read_yaml(folder / "params.yml")["_run"]["pid"]
    os.kill(runner_pid, signal.SIGKILL)
    run.wait(timeout=30)
    assert lock_held(folder) is True  # the experiment process still holds it
    assert statuses(root)[name] == st.RUNNING  # and is shown running: it is
    again = subprocess.run(XMEN + ["run"], cwd=root, capture_output=True, text=True, timeout=60)
    assert "running now" in again.stderr and "every matching experiment is finished" not in again.stderr
    plain = subprocess.run(SNAKEMAKE + ["-j", "1"], cwd=root, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert lines(folder, "overlaps") == 0  # snakemake's runner waited for the orphan instead of starting a copy
    assert statuses(root)[name] == st.FINISHED


def test_after_kill_9_of_the_whole_run_the_next_run_runs_everything_at_once(tmp_path: Path) -> None:
    """Dead (even zombie) runners are never "running now", without waiting for a stale heartbeat."""
    root = make_set(tmp_path, "set_a", "{a: 1 | 2 | 3, sleep: 30}")
    run = start(XMEN + ["run", "-j", "3"], root)
    wait_until(lambda: all(lines(root / name, "starts") for name in experiments(root)), 60,
               "every experiment started", proc=run)
    os.killpg(run.pid, signal.SIGKILL)  # not reaped yet: the xmen process is a zombie
    wait_until(lambda: not any(lock_held(root / name) for name in experiments(root)), 10,
               "every experiment's run lock released")
    assert set(statuses(root).values()) == {st.LOST}
    for name in experiments(root):
        params = root / name / "params.yml"
        files.update_yaml(params, lambda data: data.update(sleep=0))
    again = subprocess.run(XMEN + ["run"], cwd=root, capture_output=True, text=True, timeout=120)
    run.wait()
    assert again.returncode == 0, again.stderr
    assert "running now" not in again.stderr
    assert set(statuses(root).values()) == {st.FINISHED}


def test_kill_9_of_snakemake_needs_no_unlock(tmp_path: Path) -> None:
    root = make_set(tmp_path, "set_a", "{a: 1 | 2, sleep: 30}")
    run = start(SNAKEMAKE + ["-j", "2"], root)
    wait_until(lambda: all(lines(root / name, "starts") for name in experiments(root)), 60,
               "every experiment started", proc=run)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    wait_until(lambda: not any(lock_held(root / name) for name in experiments(root)), 10,
               "every experiment's run lock released")
    for name in experiments(root):
        files.update_yaml(root / name / "params.yml", lambda data: data.update(sleep=0))
    again = subprocess.run(SNAKEMAKE + ["-j", "2"], cwd=root, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "LockException" not in again.stderr and "cannot be locked" not in again.stderr
    assert set(statuses(root).values()) == {st.FINISHED}


def test_a_forced_rerun_still_runs(tmp_path: Path) -> None:
    root = make_set(tmp_path, "set_a", "{a: 1 | 2}")
    assert subprocess.run(SNAKEMAKE + ["-j", "2"], cwd=root, capture_output=True, timeout=120).returncode == 0
    targets = [f"{name}/xmen.done" for name in experiments(root)]
    proc = subprocess.run(SNAKEMAKE + ["-j", "2", "-F", *targets], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {lines(root / name, "completions") for name in experiments(root)} == {2}


# A run ending while another run decides about the same experiment. Fault injection in the real processes: a
# sitecustomize (on PYTHONPATH) wraps the planner so that, just after it decided to run FINISH_DURING_PLAN, another
# run (the experiment's own run.sh, to its end) finishes it; the run that planned must not run it a second time.
FINISH_DURING_PLAN = r"""
import os, subprocess
from xmen.run import planner

_decide = planner.Planner._decide


def _decide_while_another_run_ends(self, path):
    verdict = _decide(self, path)
    marker = os.path.join(path, "finished-during-plan")
    if os.path.basename(path) == os.environ.get("FINISH_DURING_PLAN") and not os.path.exists(marker):
        open(marker, "w").close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("XMEN_EXPECT")}
        subprocess.run(["bash", os.path.join(path, "run.sh")], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return verdict


planner.Planner._decide = _decide_while_another_run_ends
"""


@pytest.mark.parametrize("starter", ["snakemake", "xmen run", "launcher"])
def test_a_run_ending_while_another_plans_is_not_run_again(tmp_path: Path, starter: str) -> None:
    """The CI failure: the token handed to a runner was taken after the planner decided; an experiment whose
    other run ended in between looked like a forced rerun, and ran twice."""
    root = make_set(tmp_path, "set_a", "{a: 1 | 2}")
    victim = experiments(root)[0]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FINISH_DURING_PLAN)
    env = dict(os.environ, FINISH_DURING_PLAN=victim,
               PYTHONPATH=os.pathsep.join([str(hook)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    command = {"snakemake": SNAKEMAKE + ["-j", "1"], "xmen run": XMEN + ["run", "-j", "1"],
               "launcher": XMEN + ["run", "*", "bash"]}[starter]
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert (root / victim / "finished-during-plan").exists(), "the fault was not injected"
    assert proc.returncode == 0, proc.stdout[-1500:] + proc.stderr[-1500:]
    assert {name: lines(root / name, "completions") for name in experiments(root)} == dict.fromkeys(
        experiments(root), 1)
    assert set(statuses(root).values()) == {st.FINISHED}
    assert (root / victim / "xmen.done").exists()


# The CI failure itself: Snakemake B decides that X needs a run while Snakemake A's runner is finishing X; A's
# runner writes X's status file and ends, but A has not yet noted the job's end (its incomplete marker is still
# there, A is frozen with SIGSTOP), so B, with rerun-incomplete, reruns X. B's runner must find that X was finished
# since B looked. Both runners and B's planner are the real ones, held at those points by a sitecustomize hook.
CONCURRENT_FINISH = r"""
import os, signal, time

FLAGS, ROLE, VICTIM = (os.environ.get(k) for k in ("HOOK_FLAGS", "HOOK_ROLE", "HOOK_VICTIM"))


def wait_for(test, what):
    deadline = time.monotonic() + 60
    while not test():
        if time.monotonic() > deadline:
            raise SystemExit(f"test hook: {what} never happened")
        time.sleep(0.01)


if ROLE == "first":  # A's runner writes X's status file only once B has decided
    from xmen.store import files

    _write = files.write_text_atomic

    def write_when_b_decided(path, *args, **kwargs):
        if os.path.dirname(os.path.abspath(path)) == VICTIM:
            wait_for(lambda: os.path.exists(os.path.join(FLAGS, "b-decided")), "B's decision")
        return _write(path, *args, **kwargs)

    files.write_text_atomic = write_when_b_decided
elif ROLE == "second":  # B's planner, just after deciding to run X: let A's runner finish X, with A frozen
    from xmen.run import planner, runner as job

    _decide = planner.Planner._decide

    def decide_then_let_a_finish(self, path):
        verdict = _decide(self, path)
        if path == VICTIM and verdict.action == planner.RUN and not os.path.exists(os.path.join(FLAGS, "b-decided")):
            a_pid = int(open(os.path.join(FLAGS, "a-pid")).read())
            os.kill(a_pid, signal.SIGSTOP)
            open(os.path.join(FLAGS, "b-decided"), "w").close()
            lock = os.path.join(VICTIM, job.LOCK_FILE)
            wait_for(lambda: "ended" in open(lock).read() and not job.lock_held(VICTIM), "the end of A's run")
        return verdict

    planner.Planner._decide = decide_then_let_a_finish
"""


def test_a_run_finishing_while_a_second_snakemake_plans_is_not_run_again(tmp_path: Path) -> None:
    root = make_set(tmp_path, "set_a", "{a: 1, sleep: 0}")
    victim = root / experiments(root)[0]
    hook, flags = tmp_path / "hook", tmp_path / "flags"
    hook.mkdir()
    flags.mkdir()
    (hook / "sitecustomize.py").write_text(CONCURRENT_FINISH)
    base = dict(os.environ, HOOK_FLAGS=str(flags), HOOK_VICTIM=str(victim),
                PYTHONPATH=os.pathsep.join([str(hook)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    first = subprocess.Popen(SNAKEMAKE + ["-j", "1"], cwd=root, env=dict(base, HOOK_ROLE="first"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (flags / "a-pid").write_text(str(first.pid))
        wait_until(lambda: lines(victim, "completions") == 1 or first.poll() is not None, 60,
                   "the first snakemake completed X (or ended)")
        second = subprocess.run(SNAKEMAKE + ["-j", "1"], cwd=root, env=dict(base, HOOK_ROLE="second"),
                                capture_output=True, text=True, timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert (flags / "b-decided").exists(), "the second Snakemake never decided to run X: " + second.stderr[-2000:]
    assert lines(victim, "completions") == 1, second.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert first.returncode == 0, err[-3000:]
    assert statuses(root) == {victim.name: st.FINISHED}
    assert (victim / "xmen.done").exists()


# ------------------------------------------------------------------------------------------------- kill -9 trials


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


STARTERS = {
    "xmen run": XMEN + ["run", "-j", "4"],
    "snakemake": SNAKEMAKE + ["-j", "4"],
    "launcher": XMEN + ["run", "*", "bash"],
}
TARGETS = ("group", "runners", "experiments", "starter", "snakemake")


def test_random_kill_9_trials(tmp_path: Path) -> None:
    """A chain of runs on one set, each started at once after the previous one was killed at a random point (of a
    random part of it); the last run must finish everything. A run that ends by itself before its kill is a
    next-run failure if it failed (e.g. Snakemake's "Directory cannot be locked")."""
    trials = int(os.environ.get("XMEN_KILL_TRIALS", "10"))
    seed = int(os.environ.get("XMEN_KILL_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    root = make_set(tmp_path, "set_a", "{a: " + " | ".join(str(i) for i in range(16)) + ", sleep: 0.6}")
    names = experiments(root)
    corrupt = next_failures = 0
    notes = []
    for trial in range(trials):
        if set(statuses(root).values()) == {st.FINISHED}:
            code, _, err = xmen(None, "reset", "-r", str(root))
            assert code == 0, err
        starter = rng.choice(list(STARTERS))
        target = rng.choice(TARGETS)
        run = start(STARTERS[starter], root, output=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))
        if run.poll() is not None:
            if run.returncode != 0:
                next_failures += 1
                notes.append(f"trial {trial} ({starter}): ended by itself with exit {run.returncode}")
        elif target == "group":
            _kill([run.pid] + _descendants(run.pid))
        elif target == "starter":
            _kill([run.pid])
        else:
            below = _descendants(run.pid)
            if target == "runners":
                _kill([pid for pid in below if "xmen.job" in _cmdline(pid)])
            elif target == "snakemake":
                _kill([pid for pid in [run.pid] + below if "snakemake" in _cmdline(pid)][:1])
            else:
                pids = set()
                for name in names:
                    if (root / name / "pids").exists():
                        pids.update(int(p) for p in (root / name / "pids").read_text().split())
                _kill([pid for pid in below if pid in pids])
        run.wait(timeout=120)
        for name in names:
            try:
                files.read_yaml(root / name / "params.yml")
            except files.StateFileError as exc:
                corrupt += 1
                notes.append(f"trial {trial}: {exc}")
    # The last run, as a user would start it: no --unlock, no manual step.
    final = subprocess.run(SNAKEMAKE + ["-j", "4"], cwd=root, capture_output=True, text=True, timeout=120)
    if final.returncode != 0:
        next_failures += 1
        notes.append(f"final run: exit {final.returncode}: {final.stderr[-800:]}")
    wait_until(lambda: not any(lock_held(root / name) for name in names), 30,
               "every experiment's run lock released (the orphans of the kills ended)",
               details=lambda: "\n".join(notes))
    left = {name: state for name, state in statuses(root).items() if state != st.FINISHED}
    stuck = len(left)
    doubles = sum(lines(root / name, "overlaps") for name in names)
    print(f"\nkill -9 trials (seed {seed}): {trials} trials / {corrupt} corrupt / {stuck} stuck / "
          f"{doubles} double runs / {next_failures} next-run failures")
    assert (corrupt, stuck, doubles, next_failures) == (0, 0, 0, 0), "\n".join(notes + [str(left)])
