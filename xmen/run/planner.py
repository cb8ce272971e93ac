"""The one planner: which experiments need a run, which are blocked, which went stale, and why.

Every path that decides what runs asks this module: ``xmen run`` and ``xmen run -n`` (engine.plan), the generated
Snakefile and ``xmen ci`` (through xmen.snakemake_glue), and the reasons ``xmen list`` shows. Two answers cannot
disagree because there is one question.

The rule, for a linked experiment E:

- E is **blocked** while a requirement is unlinked, unreadable or blocked itself (the reason names it and its
  status); a blocked experiment is never a target.
- E **runs** when its status file ``xmen.done`` is missing (reason: new, reset, failed (status), status file
  missing), when a requirement runs (``requirement R pending``), when a requirement finished after E did
  (``requirement R reran``), or when the set of its requirements changed since its run (a glob such as
  ``../eval/*`` gained or lost an experiment). This is transitive, across sets.
- E whose SLURM job is still queued (xmen.slurm_queue: its marker, and squeue asked once per plan) is **skipped**
  like a running one: a second Snakemake, also after the first was killed, never submits it again. So is E when a
  requirement is queued (Snakemake would submit the requirement again to make E's input).
- Planning for a run with the slurm executor (``Planner(adopt=True)``: a Snakemake whose main process submits to
  SLURM, or its dry run), such an E **runs by adopting its job** instead (``Verdict.job_id``, reason "adopts SLURM
  job N"): it is part of the DAG, its dependents wait for it, and the hooks of xmen.slurm_queue follow that job
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

import fnmatch
import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable

import yaml

from xmen.store import status as st

try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader  # type: ignore[misc]

SET_FILE = "experiment.yml"
PARAMS_FILE = "params.yml"
DEFAULT_SCRIPT = "script.sh"

RUN = "run"  #: needs a run
DONE = "done"  #: finished and up to date
CHANGED = "changed"  #: finished, but its parameters or code changed since (not rerun unless asked)
BLOCKED = "blocked"  #: cannot run: a requirement is unlinked, unreadable or blocked
SKIP = "skip"  #: left alone: running now, or its params.yml cannot be read
UNLINKED = "unlinked"  #: not a linked experiment (only ever a requirement)

_GLOB_CHARS = frozenset("*?[")
#: The end of a queued experiment's reason (what its dependents quote without it).
_NOT_AGAIN = ", not submitted again"


@dataclass(frozen=True)
class Verdict:
    """What the planner decided for one experiment folder (``path`` is absolute and normalised)."""

    path: str
    action: str
    reason: str
    status: str
    #: What the planner saw of the experiment just before deciding (``xmen.job.done_token``), with
    #: ``Planner(tokens=True)``: handed to its runner, which skips an experiment another run finished since. Taken
    #: before the decision, never after: a run ending in between would otherwise look like a forced rerun.
    seen: str = ""
    #: The SLURM job an adopted experiment runs in (``Planner(adopt=True)``): followed, never submitted again.
    job_id: str = ""


def _done_token(path: str) -> str:
    from xmen.run.runner import done_token

    return done_token(path)


def is_glob(spec: str) -> bool:
    return any(c in _GLOB_CHARS for c in spec)


def params_hash(params: dict[str, Any]) -> str:
    """Hash of an experiment's parameters (the keys not starting with ``_``), independent of key order."""
    public = {str(k): v for k, v in params.items() if not str(k).startswith("_")}
    text = json.dumps(public, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def public_params(params: dict[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in params.items() if not str(k).startswith("_")}


def file_hash(path: str | None) -> str | None:
    """sha256 (first 16 hex digits) of a file's bytes; None when it cannot be read."""
    if not path:
        return None
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()[:16]


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _read_yaml(path: str) -> dict[str, Any] | None:
    """A YAML mapping, or None when the file is missing, unreadable or not a mapping."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle.read(), Loader=_Loader)
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if data is None:
        return {}
    return data if isinstance(data, dict) else None


@dataclass
class SetInfo:
    """One set's experiment.yml as the planner needs it."""

    root: str
    linked: dict[str, dict[str, Any]]  # name -> run options, requires as given (defaults merged)
    data: dict[str, Any]
    _code: tuple[list[str], int | None] | None = None
    _hashes: dict[str, str | None] | None = None

    def code_files(self) -> list[str]:
        """The files whose content is the experiment's code: the set's script and the Python module, if any."""
        found = [os.path.join(self.root, str(self.data.get("script") or DEFAULT_SCRIPT))]
        defaults = _read_yaml(os.path.join(self.root, str(self.data.get("defaults") or "defaults.yml"))) or {}
        version = defaults.get("_version")
        if isinstance(version, dict) and version.get("module"):
            found.append(str(version["module"]))
        return found

    def code(self) -> tuple[list[str], int | None]:
        """(code files, newest mtime among them), computed once per set."""
        if self._code is None:
            paths = self.code_files()
            mtimes = [m for m in (_mtime(p) for p in paths) if m is not None]
            self._code = (paths, max(mtimes) if mtimes else None)
        return self._code


def load_set(root: str) -> SetInfo | None:
    """The set at ``root`` (absolute), or None if it has no readable experiment.yml."""
    data = _read_yaml(os.path.join(root, SET_FILE))
    if data is None:
        return None
    defaults = data.get("options") if isinstance(data.get("options"), dict) else {}
    experiments = data.get("experiments") if isinstance(data.get("experiments"), dict) else {}
    linked: dict[str, dict[str, Any]] = {}
    for name, options in experiments.items():
        merged = dict(defaults)
        if isinstance(options, dict):
            merged.update(options)
        linked[str(name)] = merged
    return SetInfo(root=root, linked=linked, data=data)


def code_record(info: SetInfo) -> dict[str, Any]:
    """``{file: hash}`` of the set's code files now (what a run records and the planner compares); the set's
    script by its name, the experiment module by its path. Hashed once per SetInfo."""
    if info._hashes is None:
        info._hashes = {os.path.basename(p) if i == 0 else p: file_hash(p) for i, p in enumerate(info.code()[0])}
    return dict(info._hashes)


class Planner:
    """Decisions over any number of sets, each read once; ask :meth:`verdict` or :meth:`plan`.

    ``reasons=False`` skips reading the ``params.yml`` of experiments whose status file is missing (they run
    whatever it says): the Snakefile's fast path. ``engine.plan`` and ``xmen list`` want the reasons.
    ``adopt=True`` plans for a run with the slurm executor: experiments whose SLURM job is still alive run by adopting
    it (see the module docstring).
    """

    def __init__(self, reasons: bool = True, tokens: bool = False, adopt: bool = False) -> None:
        self.reasons = reasons
        self.tokens = tokens
        self.adopt = adopt
        self._sets: dict[str, SetInfo | None] = {}
        self._verdicts: dict[str, Verdict] = {}
        self._requires: dict[str, list[tuple[str, str]]] = {}
        self._queue: Any = None  # xmen.slurm_queue.QueueView, made on first need

    # ------------------------------------------------------------------ reading
    def set_info(self, root: str) -> SetInfo | None:
        if root in self._sets:
            return self._sets[root]
        root = os.path.normpath(root)
        if root not in self._sets:
            self._sets[root] = load_set(root)
        return self._sets[root]

    def options(self, path: str) -> dict[str, Any] | None:
        """Run options of the linked experiment at ``path``; None when it is not linked."""
        root, name = os.path.split(path)
        info = self.set_info(root)
        return None if info is None else info.linked.get(name)

    def requirements(self, path: str) -> list[tuple[str, str]]:
        """``(spec as given, absolute path)`` of each requirement of ``path``, globs resolved against what is
        linked now. A glob matching nothing yields ``(spec, "")``."""
        if path in self._requires:
            return self._requires[path]
        options = self.options(path) or {}
        specs = options.get("requires") or []
        if isinstance(specs, str):
            specs = [specs]
        root = os.path.dirname(path)
        resolved: list[tuple[str, str]] = []
        seen: set[str] = set()
        for spec in specs:
            spec = str(spec).rstrip("/")
            if not is_glob(spec):
                target = os.path.normpath(os.path.join(root, spec))
                if target not in seen:
                    seen.add(target)
                    resolved.append((spec, target))
                continue
            folder, _, pattern = spec.rpartition("/")
            other = os.path.normpath(os.path.join(root, folder)) if folder else root
            info = self.set_info(other)
            linked = info.linked if info else {}
            if pattern in linked:  # a name that merely contains [ or *: itself
                names = [pattern]
            else:
                names = [n for n in linked if fnmatch.fnmatchcase(n, pattern)]
            if not names:
                resolved.append((spec, ""))
            for name in names:
                target = os.path.join(other, name)
                if target not in seen and target != path:
                    seen.add(target)
                    resolved.append((spec, target))
        self._requires[path] = resolved
        return resolved

    def has_glob_requirements(self, path: str) -> bool:
        specs = (self.options(path) or {}).get("requires") or []
        return any(is_glob(str(s)) for s in ([specs] if isinstance(specs, str) else specs))

    # ------------------------------------------------------------------ deciding
    def verdict(self, path: str) -> Verdict:
        path = os.path.normpath(path)
        found = self._verdicts.get(path)
        if found is not None:
            return found
        # A cycle (refused at register, but experiment.yml can be edited by hand): Snakemake reports it.
        self._verdicts[path] = Verdict(path, RUN, "requirement cycle", "unknown")
        seen = _done_token(path) if self.tokens else ""
        result = self._decide(path)
        if seen:
            result = replace(result, seen=seen)
        self._verdicts[path] = result
        return result

    def _decide(self, path: str) -> Verdict:
        if self.options(path) is None:
            return Verdict(path, UNLINKED, "not a linked experiment", UNLINKED)
        done = _mtime(os.path.join(path, st.DONE_FILE))
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
                    state = other.status if other.status != "unknown" else self._status(required)
                    waits = f"requirement {shown} pending" + (f" ({state})" if state in st.FAILED else "")
                continue
            required_done = _mtime(os.path.join(required, st.DONE_FILE))
            if done is not None and required_done is not None and required_done > done:
                reran = reran or f"requirement {shown} reran"
            if other.action == CHANGED:
                changed = changed or f"requirement {shown} changed"
        if blocked:
            status = st.FINISHED if done is not None else self._status(path)
            return Verdict(path, BLOCKED, blocked, status)
        if queued:
            status = st.FINISHED if done is not None else self._status(path)
            return Verdict(path, SKIP, f"waits for {queued}; run again once it finished", status)
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

    def queue(self) -> Any:
        """What SLURM says of the experiments with a queued marker (one squeue call per :meth:`plan`)."""
        if self._queue is None:
            from xmen.slurm.queue import QueueView

            self._queue = QueueView()
        return self._queue

    def _queued(self, path: str) -> Verdict | None:
        """SKIP for an experiment whose SLURM job is still queued (or starting): never submitted twice, also when
        the Snakemake that submitted it was killed (see xmen.slurm_queue); RUN adopting that job with ``adopt``."""
        found = self.queue().queued(path)
        if found is None:
            return None
        from xmen.slurm.queue import describe, describe_adopted

        if self.adopt:
            return Verdict(path, RUN, describe_adopted(found[0].job_id, found[1], queued=True), st.QUEUED,
                           job_id=found[0].job_id)
        return Verdict(path, SKIP, describe(*found) + _NOT_AGAIN, st.QUEUED)

    def _adopted_running(self, path: str, params: dict[str, Any] | None = None) -> Verdict | None:
        """With ``adopt``: RUN adopting the SLURM job of a ``running`` experiment that squeue still shows alive.

        Without its params (the fast path) they are read only when its heartbeat is fresh: a run under way."""
        if not self.adopt:
            return None
        if params is None:
            beat = _mtime(os.path.join(path, st.HEARTBEAT_FILE))
            if beat is None or time.time() - beat / 1e9 > st.LOST_AFTER:
                return None
            params = _read_yaml(os.path.join(path, PARAMS_FILE)) or {}
        run = params.get("_run") if isinstance(params.get("_run"), dict) else {}
        job_id = str(run.get("slurm_job_id") or "")
        if params.get("_status") != st.RUNNING or not job_id:
            return None
        state = self.queue().running(job_id, str(run.get("started") or ""))
        if state is None:
            return None
        from xmen.slurm.queue import describe_adopted

        return Verdict(path, RUN, describe_adopted(job_id, state, queued=False), st.RUNNING, job_id=job_id)

    def _status(self, path: str) -> str:
        params = _read_yaml(os.path.join(path, PARAMS_FILE))
        if params is None:
            return "corrupt"
        return str(params.get("_status") or st.REGISTERED)

    def _pending(self, path: str, waits: str | None) -> Verdict:
        queued = self._queued(path)
        if queued is not None:
            return queued
        if not self.reasons:
            return self._adopted_running(path) or Verdict(path, RUN, "pending", "unknown")
        from xmen.store import files, statecheck
        from xmen.errors import StateFileError

        params_file = os.path.join(path, PARAMS_FILE)
        try:  # what every command checks (an empty or hand-damaged params.yml is named, never run as "new")
            params = dict(statecheck.check_params(params_file, files.read_yaml(params_file)))
        except StateFileError as exc:
            return Verdict(path, SKIP, f"unreadable params.yml: {exc}", "corrupt")
        current = str(params.get("_status"))
        if current == st.RUNNING:
            from xmen.store.heartbeat import effective_status

            current = effective_status(params, path)
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

    def _stale(self, path: str, done: int) -> str | None:
        """Why a finished experiment no longer matches its run (requirements, parameters, code), or None."""
        root = os.path.dirname(path)
        info = self.set_info(root)
        assert info is not None
        params_file = os.path.join(path, PARAMS_FILE)
        params_mtime = _mtime(params_file)
        code_files, code_mtime = info.code()
        globbed = self.has_glob_requirements(path)
        newer_params = params_mtime is not None and params_mtime > done
        newer_code = code_mtime is not None and code_mtime > done
        if not (globbed or newer_params or newer_code):
            return None
        params = _read_yaml(params_file)
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


def release_for_rerun(paths: Iterable[str]) -> None:
    """Make finished experiments pending again (``xmen run --changed``): remove their status file, which xmen
    wrote, so that ``xmen run`` and Snakemake both see them as needing a run; params.yml keeps its history."""
    for path in paths:
        try:
            os.unlink(os.path.join(path, st.DONE_FILE))
        except FileNotFoundError:
            pass


def set_paths(root: str, names: Iterable[str] | None = None) -> list[str]:
    """Absolute experiment paths of the linked experiments of the set at ``root`` (or of ``names``)."""
    root = os.path.abspath(root)
    if names is None:
        info = load_set(root)
        names = list(info.linked) if info else []
    return [os.path.join(root, str(n)) for n in names]
