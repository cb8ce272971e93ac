"""The one planner: which experiments need a run, which are blocked, which went stale, and why.

Every path that decides what runs asks this module: ``xmen run`` and ``xmen run -n`` (engine.plan), the generated
Snakefile and ``xmen ci`` (through xmen.snakemake_glue), and the reasons ``xmen list`` shows. Two answers cannot
disagree because there is one question.

The rule, for a linked experiment E:

- E is **blocked** while a requirement is unlinked, unreadable or blocked itself (the reason names it and its
  status), or while E is on a requirement cycle (a hand edit of experiment.yml: the reason names the cycle); a
  blocked experiment is never a target.
- E **runs** when its status file ``xmen.done`` is missing (reason: new, reset, failed (status), status file
  missing; in a set the original xmen wrote (migrated or not), one it recorded as finished is done:
  xmen.store.legacy.finished_by_original), when a requirement runs (``requirement R pending``), when a requirement finished after E did
  (``requirement R reran``), or when the set of its requirements changed since its run (a glob such as
  ``../eval/*`` gained or lost an experiment). This is transitive, across sets.
- E whose SLURM job is still queued (xmen.slurm.queue: its marker, and squeue asked once per plan) is **skipped**
  like a running one: a second Snakemake, also after the first was killed, never submits it again. So is E when a
  requirement is queued (Snakemake would submit the requirement again to make E's input).
- Planning for a run with the slurm executor (``Planner(adopt=True)``: a Snakemake whose main process submits to
  SLURM, or its dry run), such an E **runs by adopting its job** instead (``Verdict.job_id``, reason "adopts SLURM
  job N"): it is part of the DAG, its dependents wait for it, and the hooks of xmen.slurm.queue follow that job
  rather than submit one. So is a ``running`` E whose job (``_run.slurm_job_id``) squeue still shows: after a killed
  Snakemake, the next run waits for what the first one left in SLURM.
- A finished E whose parameters or code (the hash of the set's script and the experiment module) differ from what
  its run recorded is **changed**: flagged, not rerun; ``xmen run --changed`` reruns it (see README). Results that
  depend on a changed experiment are changed too.

Requirements are kept in ``experiment.yml`` as the user gave them (paths or globs, relative to the set) and are
resolved here, against the experiments linked now. The cheap checks come first: a finished experiment costs one
``stat`` of its status file and one of ``params.yml``; ``params.yml`` is read only when it is newer than the
status file, or the code is newer, or the experiment has glob requirements.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable

from xmen.errors import StateFileError
from xmen.slurm.queue import QueueView, describe_adopted
from xmen.store import files, legacy, statecheck
from xmen.store import status as st
from xmen.store.locks import done_token
from xmen.store.shown import shown_status
from xmen.store.layout import PARAMS_FILE
from xmen.store.setfile import Requirements, code_record, mtime_ns, params_hash, public_params, read_mapping


RUN = "run"  #: needs a run
DONE = "done"  #: finished and up to date
CHANGED = "changed"  #: finished, but its parameters or code changed since (not rerun unless asked)
BLOCKED = "blocked"  #: cannot run: a requirement is unlinked, unreadable or blocked
SKIP = "skip"  #: left alone: running now, or its params.yml cannot be read
UNLINKED = "unlinked"  #: not a linked experiment (only ever a requirement)

#: The end of a queued experiment's reason (what its dependents quote without it).
_NOT_AGAIN = ", not submitted again"
#: How the reason of an experiment whose requirement is queued in SLURM begins.
_WAITS_FOR = "waits for "
#: The two kinds of experiment a run leaves out and that no run will start until something changes: BLOCKED (for
#: ever, until the user fixes its requirements) and WAITING (until a requirement's queued SLURM job finished).
WAITING = "waiting"
#: How the reason of an experiment whose status file contradicts its params.yml begins (it is BLOCKED).
INCONSISTENT = "inconsistent"
#: How the reason of an experiment on a requirement cycle begins (it is BLOCKED; register refuses cycles, a hand
#: edit of experiment.yml can make one).
CYCLE = "requirement cycle"


@dataclass(frozen=True)
class Verdict:
    """What the planner decided for one experiment folder (``path`` is absolute and normalised)."""

    path: str
    action: str
    reason: str
    status: str
    #: What the planner saw of the experiment just before deciding (``xmen.store.locks.done_token``), with
    #: ``Planner(tokens=True)``: handed to its runner, which skips an experiment another run finished since. Taken
    #: before the decision, never after: a run ending in between would otherwise look like a forced rerun.
    seen: str = ""
    #: The SLURM job an adopted experiment runs in (``Planner(adopt=True)``): followed, never submitted again.
    job_id: str = ""


class Planner(Requirements):
    """Decisions over any number of sets, each read once; ask :meth:`verdict` or :meth:`plan`.

    ``reasons=False`` skips reading the ``params.yml`` of experiments whose status file is missing (they run
    whatever it says): the Snakefile's fast path. ``engine.plan`` and ``xmen list`` want the reasons.
    ``adopt=True`` plans for a run with the slurm executor: experiments whose SLURM job is still alive run by adopting
    it (see the module docstring).
    """

    def __init__(self, reasons: bool = True, tokens: bool = False, adopt: bool = False) -> None:
        super().__init__()
        self.reasons = reasons
        self.tokens = tokens
        self.adopt = adopt
        self._verdicts: dict[str, Verdict] = {}
        self._queue: Any = None  # xmen.slurm.queue.QueueView, made on first need
        self._deciding: list[str] = []  # the experiments being decided, each waiting for the next (a requirement)
        self._cycles: dict[str, str] = {}  # experiment -> the reason naming the requirement cycle it is on

    # ------------------------------------------------------------------ deciding
    def verdict(self, path: str) -> Verdict:
        path = os.path.normpath(path)
        found = self._verdicts.get(path)
        if found is not None:
            return found
        if path in self._deciding:  # a cycle (refused at register, but experiment.yml can be edited by hand)
            return self._cycle(path)
        self._deciding.append(path)
        try:
            seen = done_token(path) if self.tokens else ""
            result = self._decide(path)
        finally:
            self._deciding.pop()
        cycle = self._cycles.get(path)
        if cycle is not None:  # never a target: Snakemake would stop the whole run on a cyclic graph
            status = result.status if result.status != st.UNKNOWN else self._status(path)
            result = Verdict(path, BLOCKED, cycle, status)
        if seen:
            result = replace(result, seen=seen)
        self._verdicts[path] = result
        return result

    def _cycle(self, path: str) -> Verdict:
        """The verdict of ``path`` asked again while it is being decided: each experiment on the cycle (the
        requirements from ``path`` back to it) is blocked with the cycle as its reason, once decided."""
        members = self._deciding[self._deciding.index(path):]
        for member in members:
            trail = members[members.index(member):] + members[:members.index(member)] + [member]
            shown = " -> ".join(os.path.relpath(p, os.path.dirname(member)) for p in trail)
            self._cycles.setdefault(member, f"{CYCLE}: {shown}")
        return Verdict(path, BLOCKED, self._cycles[path], st.UNKNOWN)

    def _decide(self, path: str) -> Verdict:
        if self.options(path) is None:
            return Verdict(path, UNLINKED, "not a linked experiment", UNLINKED)
        done = mtime_ns(os.path.join(path, st.DONE_FILE))
        if done is not None or os.path.lexists(os.path.join(path, st.DONE_FILE)):
            inconsistent = self._inconsistent(path)
            if inconsistent is not None:
                return inconsistent
        blocked = waits = reran = changed = queued = None
        for spec, required in self.requirements(path):
            shown = self._show(required, path) if required else spec
            if not required:
                blocked = blocked or f"requirement {spec} matches no linked experiment"
                continue
            other = self.verdict(required)
            if other.action == SKIP and other.status == st.QUEUED:
                # Its job is in SLURM's queue: running E now would make Snakemake submit it a second time.
                queued = queued or f"requirement {shown} {other.reason.removesuffix(_NOT_AGAIN)}"
                continue
            if other.action in (UNLINKED, BLOCKED) or (other.action == SKIP and other.status != st.RUNNING):
                if other.action != SKIP or done is None:
                    blocked = blocked or (f"requirement {shown} blocked ({other.reason})" if other.action == BLOCKED
                                          else f"requirement {shown} {other.status}")
                continue
            if other.action in (RUN, SKIP):
                if not waits:
                    state = other.status if other.status != st.UNKNOWN else self._status(required)
                    waits = f"requirement {shown} pending" + (f" ({state})" if state in st.FAILED else "")
                continue
            required_done = mtime_ns(os.path.join(required, st.DONE_FILE))
            if done is not None and required_done is not None and required_done > done:
                reran = reran or f"requirement {shown} reran"
            if other.action == CHANGED:
                changed = changed or f"requirement {shown} changed"
        if blocked:
            status = st.FINISHED if done is not None else self._status(path)
            return Verdict(path, BLOCKED, blocked, status)
        if queued:
            status = st.FINISHED if done is not None else self._status(path)
            return Verdict(path, SKIP, f"{_WAITS_FOR}{queued}; run again once it finished", status)
        if done is None:
            return self._pending(path, waits)
        if waits or reran:
            return Verdict(path, RUN, waits or reran or "", st.FINISHED)
        stale = self._stale(path, done)
        if stale:
            return Verdict(path, RUN if stale.startswith("requirements changed") else CHANGED, stale, st.FINISHED)
        if changed:
            return Verdict(path, CHANGED, changed, st.FINISHED)
        return Verdict(path, DONE, "", st.FINISHED)

    def _inconsistent(self, path: str) -> Verdict | None:
        """BLOCKED for an experiment whose status file says finished when it is not (statecheck): planted by hand,
        a symlink, or beside a params.yml that says otherwise (checked when planning reads reasons). Snakemake
        would take it as done for ever; xmen never deletes a file it did not write, so the user removes it."""
        recorded = None
        if self.reasons:
            params = read_mapping(os.path.join(path, PARAMS_FILE))
            recorded = shown_status(params).value if params is not None else None
        problem = statecheck.status_file_problem(path, recorded)
        if problem is None:
            return None
        return Verdict(path, BLOCKED, f"{INCONSISTENT}: {problem}; remove it to run the experiment",
                       recorded or st.UNKNOWN)

    def queue(self) -> Any:
        """What SLURM says of the experiments with a queued marker (one squeue call per :meth:`plan`)."""
        if self._queue is None:
            self._queue = QueueView()
        return self._queue

    def _queued(self, path: str) -> Verdict | None:
        """SKIP for an experiment whose SLURM job is still queued (or starting): never submitted twice, also when
        the Snakemake that submitted it was killed (see xmen.slurm.queue); RUN adopting that job with ``adopt``.

        Asked before its params.yml is read (the fast path reads none): whatever it records, a live job in the
        queue is never submitted again."""
        shown = shown_status(None, path, self.queue())
        if shown.value != st.QUEUED:
            return None
        if self.adopt:
            state = self.queue().state(shown.job_id)  # squeue's answer, already asked
            return Verdict(path, RUN, describe_adopted(shown.job_id, state, queued=True), st.QUEUED,  # type: ignore[arg-type]
                           job_id=shown.job_id)
        return Verdict(path, SKIP, f"queued as {shown.why}{_NOT_AGAIN}", st.QUEUED)

    def _adopted_running(self, path: str, params: dict[str, Any] | None = None) -> Verdict | None:
        """With ``adopt``: RUN adopting the SLURM job of a ``running`` experiment that squeue still shows alive.

        Without its params (the fast path) they are read only when its heartbeat is fresh: a run under way."""
        if not self.adopt:
            return None
        if params is None:
            beat = mtime_ns(os.path.join(path, st.HEARTBEAT_FILE))
            if beat is None or time.time() - beat / 1e9 > st.LOST_AFTER:
                return None
            params = read_mapping(os.path.join(path, PARAMS_FILE)) or {}
        run = params.get("_run") if isinstance(params.get("_run"), dict) else {}
        job_id = str(run.get("slurm_job_id") or "")
        if params.get("_status") != st.RUNNING or not job_id:
            return None
        state = self.queue().running(job_id, str(run.get("started") or ""))
        if state is None:
            return None
        return Verdict(path, RUN, describe_adopted(job_id, state, queued=False), st.RUNNING, job_id=job_id)

    def _status(self, path: str) -> str:
        """The status a requirement (or a blocked experiment) recorded, unread for liveness: it names it."""
        params = read_mapping(os.path.join(path, PARAMS_FILE))
        if params is None:
            return st.CORRUPT
        return shown_status(params).value

    def _pending(self, path: str, waits: str | None) -> Verdict:
        queued = self._queued(path)
        if queued is not None:
            return queued
        original = self._in_original_set(path)
        if not self.reasons and not original:
            return self._adopted_running(path) or Verdict(path, RUN, "pending", st.UNKNOWN)
        params_file = os.path.join(path, PARAMS_FILE)
        try:  # what every command checks (an empty or hand-damaged params.yml is named, never run as "new")
            params = dict(statecheck.check_params(params_file, files.read_yaml(params_file)))
        except StateFileError as exc:
            return Verdict(path, SKIP, f"unreadable params.yml: {exc}", st.CORRUPT)
        if original and legacy.finished_by_original(params):
            return Verdict(path, DONE, "", st.FINISHED)  # finished means finished (migration writes its status file)
        current = shown_status(params, path).value  # the queue was asked above
        if current == st.RUNNING:
            return self._adopted_running(path, params) or Verdict(path, SKIP, "running now", current)
        if current in st.FAILED:
            reason = f"failed ({current})"
        elif current == st.FINISHED:
            reason = "status file missing"
        elif params.get("_reset"):
            reason = "reset"
        else:
            reason = "new"
        if waits:
            reason += f", after {waits}"
        return Verdict(path, RUN, reason, current)

    def _in_original_set(self, path: str) -> bool:
        """Whether ``path`` is linked in a set the original xmen wrote (its experiment.yml, or the backup migration kept)."""
        info = self.set_info(os.path.dirname(path))
        return info is not None and info.original

    def _stale(self, path: str, done: int) -> str | None:
        """Why a finished experiment no longer matches its run (requirements, parameters, code), or None."""
        root = os.path.dirname(path)
        info = self.set_info(root)
        assert info is not None
        params_file = os.path.join(path, PARAMS_FILE)
        params_mtime = mtime_ns(params_file)
        code_files, code_mtime = info.code()
        globbed = self.has_glob_requirements(path)
        newer_params = params_mtime is not None and params_mtime > done
        newer_code = code_mtime is not None and code_mtime > done
        if not (globbed or newer_params or newer_code):
            return None
        params = read_mapping(params_file)
        if not params:
            return None
        run = params.get("_run") if isinstance(params.get("_run"), dict) else {}
        if globbed and isinstance(run.get("requires"), list):
            before = set(run["requires"])
            now = {self._show(r, path) for _, r in self.requirements(path) if r}
            if before != now:
                joined = sorted(now - before)
                left = sorted(before - now)
                parts = [f"+{n}" for n in joined] + [f"-{n}" for n in left]
                return "requirements changed (" + ", ".join(parts[:3]) + (", ..." if len(parts) > 3 else "") + ")"
        if newer_params and run.get("params_hash") and run["params_hash"] != params_hash(params):
            old = run.get("params") if isinstance(run.get("params"), dict) else {}
            now = public_params(params)
            keys = sorted(k for k in set(old) | set(now) if old.get(k) != now.get(k)) if old else []
            if keys:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {now.get(k)!r}" for k in keys[:3])
                return f"params changed ({shown})"
            return "params changed"
        recorded = run.get("code") if isinstance(run.get("code"), dict) else {}
        hashes = recorded.get("files") if isinstance(recorded.get("files"), dict) else None
        if newer_code and hashes:
            current = code_record(info)
            differ = sorted(name for name, value in current.items() if name in hashes and hashes[name] != value)
            if differ:
                return "code changed (" + ", ".join(os.path.basename(d) for d in differ) + ")"
        return None

    @staticmethod
    def _show(required: str, path: str) -> str:
        return os.path.relpath(required, os.path.dirname(path))

    # ------------------------------------------------------------------ planning
    def plan(self, paths: Iterable[str], changed: bool = False) -> list[Verdict]:
        """Verdicts of ``paths`` in their order, then of every requirement (transitively) that needs a run, and
        with ``changed`` (``xmen run --changed``) every requirement whose parameters or code changed.

        Requirements that need a run are targets too: Snakemake does not rerun a missing input whose consumer's
        output is still present.
        """
        wanted = (RUN, CHANGED) if changed else (RUN,)
        paths = [os.path.normpath(p) for p in paths]
        self.queue().prefetch(p for p in paths if p not in self._verdicts)  # one squeue call for all markers
        chosen = [self.verdict(p) for p in paths]
        listed: set[str] = set()
        ordered: list[Verdict] = []

        def visit(item: Verdict) -> None:
            """Requirements first (a launcher runs the list in order), each once."""
            listed.add(item.path)
            for _, required in self.requirements(item.path):
                if required and required not in listed:
                    other = self.verdict(required)
                    if other.action in wanted:
                        visit(other)
            ordered.append(item)

        for item in chosen:
            if item.path in listed:
                continue
            if item.action in wanted:
                visit(item)
            else:
                listed.add(item.path)
                ordered.append(item)
        return ordered


def left_out(verdict: Verdict) -> str | None:
    """:data:`BLOCKED` or :data:`WAITING` for an experiment a run leaves out and that will not run without another
    run (or the user's fix), else None. Every run names these at its end: "nothing to be done" is not green."""
    if verdict.action == BLOCKED:
        return BLOCKED
    if verdict.action == SKIP and verdict.reason.startswith(_WAITS_FOR):
        return WAITING
    return None


#: Set (to 1) in the environment of the Snakemake that ``xmen run`` starts: xmen run names the left-out experiments
#: itself, at the end of its summary, so the glue does not (``xmen run -v`` shows Snakemake's output: each once).
LEFT_OUT_SAID_ENV = "XMEN_LEFT_OUT_SAID"


def left_out_lines(named: Iterable[tuple[str, Verdict]]) -> list[str]:
    """One line per left-out experiment (``not run (blocked): NAME: reason``) of (name, verdict) pairs, then one
    line counting them; none when nothing was left out."""
    lines = []
    counts: dict[str, int] = {}
    for name, verdict in named:
        kind = left_out(verdict)
        if kind is None:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        lines.append(f"not run ({kind}): {name}: {verdict.reason}")
    if lines:
        lines.append(f"{', '.join(f'{n} {kind}' for kind, n in sorted(counts.items()))}: not run, and no run "
                     "starts them until what stops them changes")
    return lines


def release_for_rerun(paths: Iterable[str]) -> None:
    """Make finished experiments pending again (``xmen run --changed``): remove their status file, which xmen
    wrote, so that ``xmen run`` and Snakemake both see them as needing a run; params.yml keeps its history."""
    for path in paths:
        statecheck.remove_status_file(path)


