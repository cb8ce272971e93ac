"""One run of an experiment, from its lock to its status file: the steps every run goes through, whoever runs it.

Two kinds of process run experiments: the job runner (``python -m xmen.job``, which every generated run.sh execs, a
process wrapper around any script) and a python ``Experiment`` run in its own process (``--execute``, ``--debug``,
``exp()``, ``with exp:``). Both go through a :class:`Lifecycle`, so both lock, record, heartbeat, settle and write
the same things::

    life = Lifecycle(params)          # owner: it holds the run lock; or under a runner: the runner holds it
    if not life.acquire(): ...        # 1. the run lock (a runner waits for it; see acquire)
    try:
        life.start()                  # 2. _status running, _run, no _error, no status file, no queued marker;
                                      # 3. the heartbeat
        ...                           #    the experiment runs (the caller's business: a child, or run())
        life.end(rc, final, reason)   # 4. settle the status (an outside verdict wins), _run's end, _attempts;
                                      # 5. the status file xmen.done, last, when finished
    finally:
        life.release()                # 6. the heartbeat stops, the run is counted as ended, the lock is freed

**The owner** of a run is the process that holds the run lock (:mod:`xmen.store.locks`): the runner, or a python
experiment run without one. It does every step. **A python experiment under a runner** (:func:`managed_by_runner`:
run.sh exec'd the runner, which started the experiment with ``XMEN_JOB``) does only the status part: it records
``running`` when ``run()`` starts and its own outcome when ``run()`` returns (how ``run()`` ended is known only
inside); the runner, its owner, does the rest when the experiment process has exited, and keeps the experiment's
outcome (:data:`~xmen.store.locks.RUN_BY_EXPERIMENT`).

What a run records, the same whoever owns it:

* ``_run`` at the start: ``host``, ``pid``, ``started``, ``attempt`` (``XMEN_ATTEMPT``), ``slurm_job_id`` and
  ``slurm_node``, ``requires``, ``code`` (or ``provenance_error``), ``params_hash``, ``params``
  (:func:`xmen.store.attempts.run_context` and :func:`~xmen.store.attempts.record_start`, which also makes
  ``_version.git`` the run's commit); a python experiment adds ``experiment`` (its class);
* ``_run`` at the end: ``ended``, ``returncode``, ``status``, ``signal`` and ``reason`` when there are, and the run
  appended to ``_attempts`` (:func:`~xmen.store.attempts.record_end`);
* ``_status`` and ``_error`` through :func:`xmen.store.status.settle`: SLURM's or ``xmen cancel``'s verdict, when
  in, stays and the run's reason is added to it; a note when the disk is full;
* the status file ``xmen.done`` (:func:`~xmen.store.attempts.done_text`) when the run finished, removed when a run
  starts; one line in the run lock file when a run starts and when it ends (:func:`~xmen.store.locks.count_run`).

What stays with the callers: the runner forwards signals to its child, kills it after a grace, enforces the time
limit, keeps space in reserve for a full disk (it passes ``on_full_disk``) and decides the outcome from the child's
exit (``decide``); a python experiment traps signals into ``run()``, copies its output to ``out.txt`` and orders
``params.yml`` its way (``arrange``, ``comments``). The previous attempt's ``xmen.log`` is kept by whoever opens the
new one (the rule's job, :mod:`xmen.run.rule_job`): a run cannot, its output is already going there.

**Why in xmen.store.** Every step is the on-disk model of a run (the lock protocol, params.yml keys, the heartbeat
and marker files, the status file) and is built only from store modules; the ``Experiment`` class (xmen.define)
uses it, so it must sit below xmen.define; and it talks to no scheduler (it only reads ``SLURM_JOB_ID``), so it
needs nothing from xmen.slurm. It stays light: ``import xmen.run.runner`` loads it on every run.
"""
from __future__ import annotations

import errno
import os
import sys
from typing import Any, Callable, Mapping

from xmen.errors import XmenError
from xmen.store import attempts, files, ownership
from xmen.store import status as st
from xmen.store.heartbeat import Heartbeat
from xmen.store.layout import DONE_FILE, RUN_COMMENTS
from xmen.store.locks import (ENV_ATTEMPT, ENV_PACK, count_run, finished_since, managed_by_runner, release as release_lock,
                              try_lock)
from xmen.store.markers import marker, unmark
from xmen.store.provenance import hostname, now_time

#: ``decide(data, run) -> (status, reason)``: the run's outcome from what params.yml says when it ended.
Decide = Callable[[dict[str, Any], dict[str, Any]], tuple[str, str | None]]


def attempt_number() -> int | None:
    """The attempt number a run was given (``XMEN_ATTEMPT``; Snakemake does not export it, the rule passes it)."""
    value = os.environ.get(ENV_ATTEMPT, "").strip()
    return int(value) if value.isdigit() else None


def last_run(params: str | os.PathLike[str]) -> tuple[Any, Any] | None:
    """(status, _run) of ``params``: tells whether another process ran the experiment while we waited."""
    try:
        data = files.read_yaml_settled(params)
    except (XmenError, OSError):
        return None
    return data.get("_status"), data.get("_run")


def disk_full(exp_dir: str | os.PathLike[str]) -> bool:
    """Whether the file system of ``exp_dir`` has no block left for us."""
    try:
        return os.statvfs(exp_dir).f_bavail == 0
    except OSError:
        return False


class CancelledBeforeStart(XmenError):
    """``xmen cancel`` cancelled the experiment in the SLURM job that now reaches it (a pack member not started
    then): the run does not start, and nothing is recorded."""


def _pack_step() -> dict[str, Any]:
    """``slurm_step_id`` (the job step the run is in) and ``slurm_pack`` (how many experiments its job runs, when
    more than one): what ``xmen cancel`` needs to cancel one member of a pack alone."""
    found: dict[str, Any] = {}
    step = os.environ.get("SLURM_STEP_ID", "")
    if step.isdigit() and int(step) < 0xFFFFFFF0:  # a real step (the batch and extern steps have other numbers)
        found["slurm_step_id"] = step
    pack = os.environ.get(ENV_PACK, "")
    if pack.isdigit() and int(pack) > 1:
        found["slurm_pack"] = int(pack)
    return found


class Lifecycle:
    """One run of the experiment whose ``params.yml`` is ``params`` (see the module docstring for the steps).

    ``owner``: this process owns the run (it holds or takes the run lock); ``None``: it does unless a runner started
    it for this experiment (:func:`~xmen.store.locks.managed_by_runner`). ``comments``: the key comments written
    with params.yml; ``arrange``: applied to params.yml's mapping after each change (an Experiment's key order).
    ``on_full_disk``: called once when a write of the outcome fails for lack of space, before writing again (the
    runner frees its reserve). ``prefix``: of the one-line messages on stderr.
    """

    def __init__(self, params: str | os.PathLike[str], *, owner: bool | None = None,
                 comments: Mapping[str, str] = RUN_COMMENTS,
                 arrange: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 on_full_disk: Callable[[], None] | None = None, prefix: str = "xmen") -> None:
        self.params = os.path.abspath(os.fspath(params))
        self.exp_dir = os.path.dirname(self.params)
        self.owner = (not managed_by_runner(self.params)) if owner is None else owner
        self.comments = dict(comments)
        self.arrange = arrange
        self.on_full_disk = on_full_disk
        self.prefix = prefix
        #: What the run recorded as ``_run`` when it started (the owner's; under a runner, the runner's with ours).
        self.run: dict[str, Any] = {}
        #: ``_repeat`` of the experiment when the run started (which of ``-x N`` repeats it is), if any.
        self.repeat: Any = None
        #: (status, _run) of the run another process made while :meth:`acquire` waited, if it did.
        self.ran_meanwhile: tuple[Any, Any] | None = None
        #: The status the run kept and its ``_error``, once :meth:`end` recorded them.
        self.final: str | None = None
        self.error: str | None = None
        #: False when the status file of a finished run could not be written (see :meth:`write_done`).
        self.done_written = True
        self._fd: int | None = None
        self._started = False
        self._heartbeat: Heartbeat | None = None

    def _say(self, text: str) -> None:
        print(f"{self.prefix}: {text}", file=sys.stderr, flush=True)

    # -- 1. the lock ------------------------------------------------------------------------------------------
    def acquire(self, wait: bool = False) -> bool:
        """Take the run lock; True when this run may go on (under a runner: at once, the runner holds it).

        False without ``wait`` when another process holds it. With ``wait``, wait for the holder (a line on
        stderr says so); False when that process ran the experiment meanwhile (:attr:`ran_meanwhile` says how it
        ended): never run it a second time. Nobody ran it meanwhile (a reader's probe, a killed runner's orphan
        ending): True, go on as planned.
        """
        if not self.owner:
            return True
        fd = try_lock(self.exp_dir)
        if fd is None:
            if not wait:
                return False
            before = last_run(self.params)
            self._say(f"{self.exp_dir} is being run by another process; waiting for it")
            fd = try_lock(self.exp_dir, wait=True)
            after = last_run(self.params)
            if after != before:
                release_lock(fd)
                self.ran_meanwhile = after
                return False
        self._fd = fd
        return True

    def finished_since(self, expected: str | None) -> bool:
        """Whether another run finished the experiment after a planner saw it as ``expected``
        (:func:`~xmen.store.locks.done_token`); its missing status file is written again (Snakemake removed it
        before starting this job: it is true). Only with the lock held."""
        if not expected or not finished_since(self.exp_dir, expected, self.params):
            return False
        done = os.path.join(self.exp_dir, DONE_FILE)
        if not os.path.exists(done):
            last = files.read_yaml(self.params).get("_run")
            files.write_text_atomic(done, attempts.done_text(last if isinstance(last, dict) else {}))
        return True

    # -- 2, 3. the start --------------------------------------------------------------------------------------
    def start(self, **extra: Any) -> dict[str, Any]:
        """Record that the run started; the ``_run`` recorded. ``extra`` keys are added to ``_run`` (a python
        experiment's ``experiment``). Raises OSError/XmenError when params.yml cannot be written: nothing ran.

        The owner first counts the run and removes the status file, then records ``_status: running``, a new
        ``_run`` and no ``_error``, removes the queued marker and starts the heartbeat. Under a runner: ``running``,
        no ``_error``, and ``extra`` added to the runner's ``_run``. The owner raises :class:`CancelledBeforeStart`,
        touching nothing, for an experiment ``xmen cancel`` cancelled in this SLURM job before the job reached it.
        """
        if self.owner:
            ownership.refuse_foreign_run_files(self.exp_dir)  # a user's file at xmen's names: touch nothing
            if os.environ.get("SLURM_JOB_ID"):  # before anything is touched (checked again under the write's lock)
                self._refuse_cancelled(files.read_mapping(self.params))
            if self._fd is not None:
                count_run(self._fd, "started")
            done = os.path.join(self.exp_dir, DONE_FILE)
            if os.path.lexists(done):
                os.unlink(done)
            run: dict[str, Any] = {"host": hostname(), "pid": os.getpid(), "started": now_time()}
            attempt = attempt_number()
            if attempt is not None:
                run["attempt"] = attempt
            if os.environ.get("SLURM_JOB_ID"):
                run["slurm_job_id"] = os.environ["SLURM_JOB_ID"]
                run.update(_pack_step())
                queued = marker(self.exp_dir)
                if "slurm_pack" not in run and queued is not None and queued.pack > 1 and \
                        queued.job_id.split("_")[0] == run["slurm_job_id"]:
                    # A pack in the plugin's own job step (xmen_slurm_step=snakemake): its members share one step,
                    # so none has a step of its own that xmen cancel could stop alone.
                    run["slurm_pack"] = queued.pack
                    run.pop("slurm_step_id", None)
            run.update(attempts.run_context(self.exp_dir))

        def record(data: dict[str, Any]) -> dict[str, Any] | None:
            if self.owner:
                self._refuse_cancelled(data)
            self.repeat = data.get("_repeat")
            data["_status"] = st.RUNNING
            if self.owner:
                attempts.record_start(data, run)
                recorded = dict(run)
            else:
                current = data.get("_run")
                recorded = dict(current) if isinstance(current, dict) else {}
            recorded.update(extra)
            data["_run"] = self.run = recorded
            data.pop("_error", None)
            return self.arrange(data) if self.arrange else None

        files.update_yaml(self.params, record, self.comments)
        self._started = True
        if self.owner:
            unmark(self.exp_dir)  # no longer queued: it runs (and _run.slurm_job_id says which job runs it)
            self._heartbeat = Heartbeat(self.exp_dir).start()
        return self.run

    def _refuse_cancelled(self, data: dict[str, Any] | None) -> None:
        """CancelledBeforeStart when ``data`` (params.yml) says ``xmen cancel`` cancelled the experiment in this SLURM
        job before the job started it (a pack member)."""
        if st.cancelled_before_start(data, os.environ.get("SLURM_JOB_ID")):
            raise CancelledBeforeStart(f"{self.exp_dir} was cancelled with xmen cancel before its SLURM job started "
                                       f"it; not run")

    # -- 4, 5. the end ----------------------------------------------------------------------------------------
    def end(self, returncode: int, final: str | None = None, reason: str | None = None,
            decide: Decide | None = None) -> str:
        """Record how the run ended; the status it keeps. Raises XmenError/OSError when params.yml cannot be
        written (nothing is claimed then: readers see ``running`` with a free lock, i.e. ``lost``).

        ``final``/``reason``: the run's own outcome (its exit code ``returncode``); or ``decide(data, run)``
        computes it from params.yml as it is at the end (the runner: from what its child recorded). The owner
        settles the status (an outside verdict stays), completes ``_run`` (``ended``, ``returncode``,
        ``status``...), appends it to ``_attempts``, notes a full disk in ``_error``, then writes the status file
        when the run finished (:meth:`write_done`); the heartbeat stops. Under a runner: the status settled and
        ``_run.ended``, the rest is the runner's.
        """
        outcome: dict[str, Any] = {}
        full = self.owner and disk_full(self.exp_dir)

        def record(data: dict[str, Any]) -> dict[str, Any] | None:
            current = data.get("_run")
            run = dict(current) if isinstance(current, dict) else dict(self.run)
            status, why = decide(data, run) if decide is not None else (str(final), reason)
            if self.owner:
                run.update(ended=now_time(), returncode=returncode)
                data["_run"] = run
                status = st.settle(data, run, status, why)  # SLURM's or xmen cancel's verdict, when in, stays
                if status == st.FINISHED:
                    data.pop("_error", None)
                attempts.record_end(data, run, status, why if why is not None else data.get("_error"), returncode)
                if full and status != st.FINISHED and data.get("_error"):
                    data["_error"] = f"{data['_error']} (the disk is full)"
            else:
                status = st.settle(data, run, status, why)  # an outside verdict stays
                run["ended"] = now_time()
                data["_run"] = run
            outcome.update(status=status, error=data.get("_error"))
            return self.arrange(data) if self.arrange else None

        try:
            self._write(lambda: files.update_yaml(self.params, record, self.comments))
        finally:
            self._stop_heartbeat()
        self.final, self.error = outcome["status"], outcome.get("error")
        if self.owner and self.final == st.FINISHED:
            self.write_done()
        return self.final

    def write_done(self) -> bool:
        """Write the status file ``xmen.done`` of a finished run (the owner, last of all its writes); False, with a
        line on stderr, when it cannot be written (:attr:`done_written`)."""
        path = os.path.join(self.exp_dir, DONE_FILE)
        try:
            self._write(lambda: files.write_text_atomic(path, attempts.done_text(self.run)))
        except OSError as exc:
            self._say(f"cannot write the status file of {self.exp_dir}: {exc}")
            self.done_written = False
        return self.done_written

    def _write(self, write: Callable[[], Any]) -> Any:
        """``write()``; when the disk is full, :attr:`on_full_disk` and once more (the outcome matters most)."""
        try:
            return write()
        except OSError as exc:
            if self.on_full_disk is None or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.on_full_disk()
            return write()

    # -- 6. the release ---------------------------------------------------------------------------------------
    def release(self) -> None:
        """Stop the heartbeat; count the run as ended (if its start was recorded) and free the run lock."""
        self._stop_heartbeat()
        fd, self._fd = self._fd, None
        if fd is not None:
            if self._started:
                count_run(fd, "ended")
            release_lock(fd)

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    @property
    def lock_fd(self) -> int | None:
        """The run lock's fd while this run holds it (the runner hands it to its child: the lock lives as long as
        the experiment process)."""
        return self._fd
