"""Monitor a training loop: step/epoch counters, hooks every N steps or epochs, checkpoints, time left.

In the spirit of the original xmen's ``xmen.monitor``: wrap each loop with the monitor; the innermost loop counts
steps, the one around it epochs (then era, eon, supereon). Hooks are given as ``"REGEX@N<trigger>"`` strings and
receive the caller's local variables whose names match REGEX whenever the trigger's counter reaches a multiple of N::

    exp = ...                                     # a registered Experiment (or Monitor(directory=...))
    m = Monitor(exp,
                ckpt='^model$@100s', ckpt_keep=3,  # save `model` every 100 steps, keep the last 3
                msg='^loss$@10s',                 # exp.message({'loss': ..., 'step': ..., 'epoch': ...})
                log='^loss$@1e',                  # print the loss every epoch
                stop_before=600)                  # checkpoint and end as `timeout` 10 min before the time limit
    m.load(model=model)                           # resume: the last checkpoint, counters included
    for epoch in m(range(10)):                    # after a resume, each loop skips what was done
        for x in m(data):
            loss = ...

Triggers are abbreviated ``s``, ``e``, ``er``, ``eo``, ``se``; REGEX matches variable names from their start
(``re.match``, as in the original: ``'opt'`` matches ``optimiser``). Messages use ``Experiment.message()`` with the
counters added. ``time_left()`` reads the SLURM job's end time (``SLURM_JOB_END_TIME``, else ``squeue``/``scontrol``
for ``SLURM_JOB_ID``) or, off SLURM, a run time in minutes from ``XMEN_RUNTIME`` (or ``runtime``, Snakemake's
resource name) counted from the monitor's creation.

Checkpoints live in ``<directory>/checkpoints/<name>/<step>.pt`` (``torch.save``, used only for objects with a
``state_dict`` when torch is already imported) or ``<step>.pkl`` (pickle); writes are atomic. Only the stdlib is
imported here.
"""
from __future__ import annotations

import datetime
import inspect
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from xmen.define.process import SignalTrap
from xmen.store import files
from xmen.store.layout import CHECKPOINTS_DIR
from xmen.store.status import STOPPED_ITSELF

TRIGGERS = ("step", "epoch", "era", "eon", "supereon")
BRIEF = {"step": "s", "epoch": "e", "era": "er", "eon": "eo", "supereon": "se"}
_TRIGGER_OF = {**{k: k for k in TRIGGERS}, **{v: k for k, v in BRIEF.items()}}
_CHECKPOINT_NAME = re.compile(r"^(\d+)\.(pt|pkl)$")
CHECKPOINTS = CHECKPOINTS_DIR  # its old name here


class TimeLimit(Exception):
    """Raised by the monitor when ``stop_before`` seconds or fewer are left and it was not run by xmen (which
    records a time limit as the ``timeout`` status instead)."""


class Spec:
    """``"REGEX@N<trigger>"`` (``'^model$@5s'``, ``'opt@1e'``); ``"@N<trigger>"`` has no variables; a bare
    ``"REGEX"`` has no trigger (manual use)."""

    def __init__(self, spec: str) -> None:
        if not isinstance(spec, str):
            raise ValueError(f"a hook spec is a string like 'loss@10s', got {spec!r}")
        regex, at, when = spec.rpartition("@")
        if not at:
            regex, when = spec, ""
        self.regex: str | None = regex or None
        self.modulo: int | None = None
        self.trigger: str | None = None
        if at:
            found = re.fullmatch(r"(\d+)([a-z]+)", when)
            if found is None or found.group(2) not in _TRIGGER_OF or int(found.group(1)) < 1:
                raise ValueError(f"{spec!r}: expected REGEX@N<trigger> with trigger one of "
                                 f"{', '.join(BRIEF.values())} (e.g. 'loss@10s')")
            self.modulo = int(found.group(1))
            self.trigger = _TRIGGER_OF[found.group(2)]

    def matches(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        if self.regex is None:
            return {}
        return {k: v for k, v in variables.items() if re.match(self.regex, k) is not None}

    def __str__(self) -> str:
        when = f"@{self.modulo}{BRIEF[self.trigger]}" if self.trigger else ""
        return f"{self.regex or ''}{when}"


class Hook(Spec):
    """Called with the matching variables whenever the monitor's ``trigger`` counter is a multiple of ``modulo``.
    Subclasses override ``__call__(variables, monitor)``."""

    def __call__(self, variables: dict[str, Any], monitor: "Monitor") -> None:
        raise NotImplementedError


class Logger(Hook):
    """Print the matching variables: ``[12:01:07 step=20 epoch=1]: loss = 0.125``."""

    def __init__(self, spec: str, format: str = "", process: Callable[[Any], Any] | None = None) -> None:
        super().__init__(spec)
        self.format = format
        self.process = process

    def __call__(self, variables: dict[str, Any], monitor: "Monitor") -> None:
        parts = []
        for key, value in variables.items():
            if self.process is not None:
                value = self.process(value)
            try:
                parts.append(f"{key} = {value:{self.format}}")
            except (TypeError, ValueError):
                parts.append(f"{key} = {value}")
        monitor.log(", ".join(parts))


class Messenger(Hook):
    """``"VARS->EXPERIMENTS@N<t>"``: ``message()`` the matching variables (and the counters) to the caller's
    Experiment variables matching EXPERIMENTS; ``"VARS@N<t>"`` messages the monitor's own experiment."""

    def __init__(self, spec: str) -> None:
        values, arrow, rest = spec.partition("->")
        self.targets: str | None = None
        if arrow:
            target, at, when = rest.rpartition("@")
            if not at:
                raise ValueError(f"{spec!r}: expected VARS->EXPERIMENTS@N<trigger>")
            self.targets = target
            spec = f"{values}@{when}"
        super().__init__(spec)

    def __call__(self, variables: dict[str, Any], monitor: "Monitor") -> None:
        from xmen.define.experiment import Experiment  # import weight: the class loads PyYAML; a bare Monitor needs none

        if self.targets is None:
            experiments = [monitor.experiment] if monitor.experiment is not None else []
        else:
            experiments = [v for k, v in monitor.caller_variables.items()
                           if isinstance(v, Experiment) and re.match(self.targets, k) is not None]
        if not experiments:
            monitor.log(f"warning: no experiment to message {sorted(variables)} to ({self})")
            return
        message = {**monitor.counters(), **{k: v for k, v in variables.items() if not isinstance(v, Experiment)}}
        for experiment in experiments:
            experiment.message(message)


class Checkpointer(Hook):
    """Save each matching variable to ``<directory>/checkpoints/<name>/<step>.pt|.pkl``, keeping the last ``keep``
    (all when ``None``)."""

    def __init__(self, spec: str, keep: int | None = None) -> None:
        super().__init__(spec)
        if keep is not None and keep < 1:
            raise ValueError(f"{spec!r}: keep must be at least 1 (or None for all), got {keep}")
        self.keep = keep

    def __call__(self, variables: dict[str, Any], monitor: "Monitor") -> None:
        if monitor.directory is None:
            monitor.log(f"warning: cannot checkpoint {sorted(variables)}: the monitor has no directory")
            return
        saved = [name for name, obj in variables.items() if _save(monitor, name, obj, self.keep) is not None]
        if saved:
            monitor.log(f"saved {', '.join(saved)} in {Path(monitor.directory) / CHECKPOINTS}")


# ---------------------------------------------------------------------------------------------- saving, loading


def _torch_for(obj: Any) -> Any:
    """The torch module when ``obj`` is a torch object to save with ``torch.save``; ``None`` otherwise (torch is
    never imported here: an object with a ``state_dict`` made by torch means torch is loaded already)."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and hasattr(obj, "state_dict") and hasattr(torch, "save") else None


def _atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Replace the checkpoint ``path`` atomically; a symbolic link there is refused (LinkError naming it)."""
    files.write_atomic(path, write)


def checkpoint_files(folder: Path) -> list[tuple[int, Path]]:
    """The checkpoints xmen wrote in ``folder`` (``<step>.pt|.pkl``), oldest step first."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _CHECKPOINT_NAME.match(entry.name)
        if match is not None and entry.is_file() and not entry.is_symlink():  # xmen writes no link: never its own
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _save(monitor: "Monitor", name: str, obj: Any, keep: int | None) -> Path | None:
    folder = Path(monitor.directory) / CHECKPOINTS / name  # type: ignore[arg-type]
    files.refuse_links(monitor.directory, [Path(CHECKPOINTS, name)])  # type: ignore[arg-type]  # never into a link
    folder.mkdir(parents=True, exist_ok=True)
    meta = {**monitor.counters(all_levels=True), "depth": monitor.depth, "positions": list(monitor._stack),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    torch = _torch_for(obj)
    if torch is not None:
        target = folder / f"{monitor.step}.pt"
        payload = {**meta, "state_dict": obj.state_dict()}
        _atomic(target, lambda handle: torch.save(payload, handle))
    else:
        target = folder / f"{monitor.step}.pkl"
        if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
            payload = {**meta, "state_dict": obj.state_dict()}
        else:
            payload = {**meta, "object": obj}
        _atomic(target, lambda handle: pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL))
    if keep is not None:
        for _, old in checkpoint_files(folder)[:-keep]:
            old.unlink(missing_ok=True)
    return target


def _read(path: Path) -> dict[str, Any]:
    if path.suffix == ".pt":
        import torch  # a .pt file was written by torch.save: torch is needed to read it

        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except TypeError:  # torch < 1.13 has no weights_only (and loads everything)
            return torch.load(path, map_location="cpu")
    with open(path, "rb") as handle:
        return pickle.load(handle)


# ---------------------------------------------------------------------------------------------- time left


def _parse_end_time(text: str) -> float | None:
    text = text.strip()
    if not text or text in ("N/A", "Unknown", "NONE", "None"):
        return None
    if text.isdigit():
        return float(text)
    try:
        return datetime.datetime.fromisoformat(text).timestamp()  # SLURM prints local time
    except ValueError:
        return None


def slurm_end_time(job_id: str | None = None, timeout: float = 10.0) -> float | None:
    """The end time (epoch seconds) of a SLURM job: ``SLURM_JOB_END_TIME`` if set, else ``squeue``, else
    ``scontrol``; ``None`` when unknown (no job, no SLURM tools, no limit)."""
    env_end = os.environ.get("SLURM_JOB_END_TIME")
    if env_end and job_id is None:
        parsed = _parse_end_time(env_end)
        if parsed is not None:
            return parsed
    job = job_id or os.environ.get("SLURM_JOB_ID") or os.environ.get("SLURM_JOBID")
    if not job:
        return None
    commands = (["squeue", "-h", "-j", job, "-o", "%e"], ["scontrol", "show", "job", job])
    for command in commands:
        if shutil.which(command[0]) is None:
            continue
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                 stdin=subprocess.DEVNULL).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        if command[0] == "scontrol":
            found = re.search(r"\bEndTime=(\S+)", out)
            out = found.group(1) if found else ""
        parsed = _parse_end_time(out.splitlines()[0] if out.strip() else "")
        if parsed is not None:
            return parsed
    return None


def local_runtime() -> float | None:
    """Seconds allowed for a run off SLURM: ``XMEN_RUNTIME`` (or ``runtime``) in minutes; ``None`` if unset."""
    for key in ("XMEN_RUNTIME", "runtime"):
        value = os.environ.get(key)
        if value:
            try:
                return float(value) * 60.0
            except ValueError:
                raise ValueError(f"{key}={value!r}: expected minutes, e.g. {key}=90") from None
    return None


# ---------------------------------------------------------------------------------------------- the monitor


class Monitor:
    """Counters and hooks around nested loops (see the module docs). ``experiment`` (an Experiment, optional)
    gives the checkpoint directory and the target of messages without ``->``."""

    def __init__(
        self,
        experiment: Any = None,
        *,
        directory: str | os.PathLike[str] | None = None,
        hooks: Sequence[Hook] = (),
        ckpt: str | Sequence[str] | None = None,
        ckpt_keep: int | None | Sequence[int | None] = None,
        msg: str | Sequence[str] | None = None,
        log: str | Sequence[str] | None = None,
        log_format: str = "",
        limit: str | None = None,
        stop_before: float | None = None,
    ) -> None:
        if isinstance(experiment, (str, os.PathLike)):  # Monitor('/tmp/checkpoint', ...) as in the original
            directory, experiment = experiment, None
        self.experiment = experiment
        self._directory = os.fspath(directory) if directory is not None else None
        self.triggers: dict[str, int] = dict.fromkeys(TRIGGERS, 0)
        self.hooks: list[Hook] = []
        ckpts = _as_list(ckpt)
        keeps = list(ckpt_keep) if isinstance(ckpt_keep, (list, tuple)) else [ckpt_keep] * len(ckpts)
        if len(keeps) != len(ckpts):
            raise ValueError("ckpt_keep: give one value, or one per ckpt spec")
        self.hooks += [Checkpointer(spec, keep) for spec, keep in zip(ckpts, keeps)]
        self.hooks += [Messenger(spec) for spec in _as_list(msg)]
        self.hooks += [Logger(spec, log_format) for spec in _as_list(log)]
        self.hooks += list(hooks)
        self.limit = Spec(limit) if limit is not None else None
        if self.limit is not None and self.limit.trigger is None:
            raise ValueError(f"limit {limit!r}: expected '@N<trigger>', e.g. '@20s'")
        self.stop_before = stop_before
        self.caller_variables: dict[str, Any] = {}
        self.depth = 0  #: the deepest nesting of monitored loops seen (1: steps only, 2: steps in epochs...)
        self._stack: list[int] = []  #: iterations done by each running loop, outermost first
        self._stopped = False
        self._skip: dict[int, int] = {}  #: loop index -> iterations to skip on its next start (after load)
        self._created = time.time()
        self._end_cache: tuple[float, float | None] | None = None

    # -- counters -----------------------------------------------------------------------------------------------

    step = property(lambda self: self.triggers["step"], doc="Steps done (iterations of the innermost loop).")
    epoch = property(lambda self: self.triggers["epoch"], doc="Epochs done (iterations of the loop around it).")
    era = property(lambda self: self.triggers["era"])
    eon = property(lambda self: self.triggers["eon"])
    supereon = property(lambda self: self.triggers["supereon"])

    @property
    def directory(self) -> str | None:
        if self._directory is not None:
            return self._directory
        return getattr(self.experiment, "directory", None)

    def counters(self, all_levels: bool = False) -> dict[str, int]:
        """The counters in use (``step``, and ``epoch``... once their loops exist); all with ``all_levels``."""
        used = TRIGGERS if all_levels else TRIGGERS[: max(self.depth, 1)]
        return {k: self.triggers[k] for k in used}

    # -- loops --------------------------------------------------------------------------------------------------

    def __call__(self, iterable: Iterable[Any], length: int | None = None) -> Iterator[Any]:
        """Iterate ``iterable``, counting its iterations at this loop's level and running the hooks (``length`` is
        accepted for the original's signature)."""
        index = len(self._stack)
        self._stack.append(0)
        self.depth = max(self.depth, len(self._stack))
        try:
            iterator = iter(iterable)
            for _ in range(self._skip.pop(index, 0)):  # resumed: skip what the checkpoint had done in this loop
                if next(iterator, _END) is _END:
                    break
                self._stack[index] += 1
            for item in iterator:
                if self._stopped or self._limit_reached(self._level(index)):
                    self._stopped = True
                    return
                yield item
                self._stack[index] += 1
                caller = inspect.currentframe()
                caller = caller.f_back if caller is not None else None
                self.inc(self._level(index), caller)
                del caller
        finally:
            self._stack.pop()

    def _level(self, index: int) -> str:
        return TRIGGERS[min(self.depth - 1 - index, len(TRIGGERS) - 1)]

    def _limit_reached(self, level: str) -> bool:
        return (self.limit is not None and level == self.limit.trigger
                and self.triggers[level] >= (self.limit.modulo or 0))

    def stop(self, reason: str = "") -> None:
        """End every monitored loop after the current iteration."""
        self._stopped = True
        if reason:
            self.log(reason)

    def inc(self, trigger: str = "step", frame: Any = None) -> None:
        """Count one ``trigger`` and run its hooks (called by the loops; call it yourself for manual counting)."""
        trigger = _TRIGGER_OF.get(trigger, trigger)
        if trigger not in self.triggers:
            raise ValueError(f"unknown trigger {trigger!r} (one of {', '.join(TRIGGERS)})")
        self.triggers[trigger] += 1
        if frame is None:
            frame = inspect.currentframe()
            frame = frame.f_back if frame is not None else None
        self.caller_variables = dict(frame.f_locals) if frame is not None else {}
        try:
            for hook in self.hooks:
                if hook.trigger == trigger and hook.modulo and self.triggers[trigger] % hook.modulo == 0:
                    hook(hook.matches(self.caller_variables), self)
            if trigger == "step" and self.stop_before is not None:
                left = self.time_left()
                if left is not None and left <= self.stop_before:
                    self._end_for_time_limit(left)
        finally:
            self.caller_variables = {}

    # -- time ---------------------------------------------------------------------------------------------------

    def time_left(self) -> float | None:
        """Seconds until the SLURM job's end time, or until the local ``XMEN_RUNTIME`` runs out; ``None`` when
        there is no limit. SLURM is asked at most once a minute."""
        now = time.time()
        if self._end_cache is None or now - self._end_cache[0] > 60.0:
            end = slurm_end_time()
            if end is None:
                runtime = local_runtime()
                end = self._created + runtime if runtime is not None else None
            self._end_cache = (now, end)
        end = self._end_cache[1]
        return None if end is None else end - now

    def _end_for_time_limit(self, left: float) -> None:
        """Checkpoint every checkpoint hook's variables now, then end the run as a time-out."""
        for hook in self.hooks:
            if isinstance(hook, Checkpointer):
                hook(hook.matches(self.caller_variables), self)
        self.stop(f"{left:.0f}s left before the time limit: checkpointed at step {self.step}, stopping")
        handler = signal.getsignal(signal.SIGUSR1)
        trap = getattr(handler, "__self__", None)
        if isinstance(trap, SignalTrap) and threading.current_thread() is threading.main_thread():
            # Under xmen (--execute or exp()), SIGUSR1 is the scheduler's "time is up": status timeout, a rerun
            # resumes. The handler raises here, before the line below.
            trap.stop_self(signal.SIGUSR1, f"{STOPPED_ITSELF} {left:.0f}s before the time limit (stop_before="
                                           f"{self.stop_before:g}s): checkpointed at step {self.step}")
        raise TimeLimit(f"{left:.0f}s left before the time limit (step {self.step})")

    # -- manual use ---------------------------------------------------------------------------------------------

    def log(self, text: Any) -> None:
        """Print ``text`` with the time and the counters in use."""
        counters = " ".join(f"{k}={v}" for k, v in self.counters().items())
        print(f"[{time.strftime('%H:%M:%S')} {counters}]: {text}", flush=True)

    def checkpoint(self, keep: int | None = None, **objects: Any) -> list[Path]:
        """Save ``name=object`` pairs now (``keep``: how many of each to keep)."""
        if self.directory is None:
            raise ValueError("the monitor has no directory to checkpoint in")
        return [p for name, obj in objects.items() if (p := _save(self, name, obj, keep)) is not None]

    def load(self, step: int | None = None, **objects: Any) -> dict[str, Any]:
        """Resume from the last checkpoint (or the one at ``step``) of each ``name=object``: objects with
        ``load_state_dict`` are restored in place; the counters are restored and each loop, when it next starts,
        skips the iterations the checkpoint had done (consuming them from its iterable). Returns name -> restored object (the saved object itself for plain pickled ones); names without a
        checkpoint are left out."""
        restored: dict[str, Any] = {}
        meta: dict[str, Any] | None = None
        for name, obj in objects.items():
            if self.directory is None:
                break
            found = checkpoint_files(Path(self.directory) / CHECKPOINTS / name)
            if step is not None:
                found = [item for item in found if item[0] == step]
            if not found:
                continue
            payload = _read(found[-1][1])
            if "state_dict" in payload and hasattr(obj, "load_state_dict"):
                obj.load_state_dict(payload["state_dict"])
                restored[name] = obj
            else:
                restored[name] = payload.get("object", payload.get("state_dict"))
            if meta is None or _progress(payload) > _progress(meta):
                meta = payload
        if meta is not None:
            for key in TRIGGERS:
                self.triggers[key] = int(meta.get(key, 0))
            self.depth = max(self.depth, int(meta.get("depth", 1)))
            self._skip = dict(enumerate(int(n) for n in meta.get("positions", [])))
            self.log(f"resumed {', '.join(restored)} from step {self.step}")
        return restored

    def __repr__(self) -> str:
        return f"Monitor({', '.join(f'{k}={v}' for k, v in self.counters().items())}, directory={self.directory})"


#: The original's name for the monitor with checkpoints (torch objects are saved with torch.save here too).
TorchMonitor = Monitor

_END = object()


def _progress(meta: Mapping[str, Any]) -> tuple[int, ...]:
    """How far a checkpoint got: its counters, most significant first."""
    return tuple(int(meta.get(key, 0)) for key in reversed(TRIGGERS))


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


__all__ = [
    "Checkpointer", "Hook", "Logger", "Messenger", "Monitor", "Spec", "TimeLimit", "TorchMonitor", "checkpoint_files",
    "local_runtime", "slurm_end_time",
]
