"""The shapes of xmen's state files, checked in one place.

A hand edit or a bad merge can leave ``experiment.yml`` or a ``params.yml`` valid YAML of the wrong shape
(``experiments: [a, b]``, ``notes: 5``, ``options: [1]``). Every reader goes through these checks, so each command
reports one line, ``path: what is wrong``, before it changes anything, instead of a traceback half-way, or worse,
reading a damaged list of experiments as "no experiments" and acting on that.
"""
from __future__ import annotations

import math
import os
import stat
from typing import Any, Mapping

from xmen.errors import StateFileError
from xmen.store import files, retry
from xmen.store import status as st
from xmen.store.layout import DEFAULTS_KEYS, DONE_FILE, DONE_FIRST_LINE

_SCALARS = (str, int, float, bool)


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _fail(path: str | os.PathLike[str], what: str) -> None:
    raise StateFileError(f"{os.fspath(path)}: {what}")


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, _SCALARS) or type(value).__name__ in ("date", "datetime")


#: The most threads an experiment may ask for: more than any one machine has (the largest nodes have a few
#: thousand CPUs), small enough that a typo (``--threads 999999999999``) is refused, not queued for ever.
MAX_THREADS = 65536

#: The largest number a resource may hold: SLURM keeps memory, time and counts in 32 bits.
MAX_RESOURCE = 2**32 - 1

#: The most attempts after a failure an experiment may ask for (``--retries``): a typo (``99999999999999999``) is
#: refused, not stored and retried for ever.
MAX_RETRIES = 1000

#: The largest count any option takes (``-j``, ``--repeats``, ``--max-rows``...): SLURM's and most tools' 32 bits.
MAX_COUNT = MAX_RESOURCE

#: The longest interval a command waits between two looks (``xmen list --watch``): a day.
MAX_SECONDS = 86400.0

#: Resources that measure something (memory, disk, time, counts): zero of them is no run at all.
_POSITIVE_RESOURCES = ("mem", "disk", "runtime", "time", "cpus", "tasks", "nodes")


def count_problem(key: str, value: Any, least: int, most: int | None = None) -> str | None:
    """Why ``value`` cannot be the whole number ``key`` (threads, retries...), or None if it can."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        return f"{key!r} must be a whole number of at least {least}, found {value!r}"
    if most is not None and value > most:
        return f"{key!r} must be at most {most:,}, found {value:,}"
    return None


def resource_problem(name: str, value: Any) -> str | None:
    """Why the resource value ``value`` of ``name`` cannot be run, or None: a number must be finite, not negative,
    at most :data:`MAX_RESOURCE`, and above zero for sizes and times (``mem_mb``, ``runtime``...)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if math.isnan(value) or math.isinf(value):
        return f"resource {name}={value!r} is not a finite number"
    least_is_zero = not name.lower().startswith(_POSITIVE_RESOURCES)
    if value < 0 or (value == 0 and not least_is_zero):
        return f"resource {name}={value!r} must be {'0 or more' if least_is_zero else 'more than 0'}"
    if value > MAX_RESOURCE:
        return f"resource {name}={value!r} is larger than {MAX_RESOURCE:,}"
    return None


def check_run_options(path: str | os.PathLike[str], where: str, options: Any) -> None:
    """Run options (``options:`` of a set, or one experiment's entry): a mapping of known value shapes."""
    if options is None:
        return
    if not isinstance(options, dict):
        _fail(path, f"{where} must be a mapping of run options, found {_kind(options)}")
    requires = options.get("requires")
    if requires is not None and not (
        isinstance(requires, list) and all(isinstance(r, str) and r.strip() for r in requires)
    ):
        _fail(path, f"{where}: 'requires' must be a list of experiment paths, found {_kind(requires)}")
    resources = options.get("resources")
    if resources is not None:
        if not isinstance(resources, dict):
            _fail(path, f"{where}: 'resources' must be a mapping NAME: VALUE, found {_kind(resources)}")
        for name, value in resources.items():
            values = value if isinstance(value, list) else [value]
            if not values or not all(v is not None and _is_scalar(v) for v in values):
                _fail(path, f"{where}: resource {name!r} must be a value or a list of values, found {_kind(value)}")
            for one in values:
                problem = resource_problem(str(name), one)
                if problem is not None:
                    _fail(path, f"{where}: {problem}")
    for key, least, most in (("threads", 1, MAX_THREADS), ("retries", 0, MAX_RETRIES)):
        value = options.get(key)
        problem = None if value is None else count_problem(key, value, least, most)
        if problem is not None:
            _fail(path, f"{where}: {problem}")
    policy = options.get("retry_on")
    if policy is not None:
        if not isinstance(policy, list) or not all(isinstance(word, str) for word in policy):
            _fail(path, f"{where}: 'retry_on' must be a list of failure causes, found {_kind(policy)}")
        try:
            retry.parse_policy(policy)
        except ValueError as exc:
            _fail(path, f"{where}: 'retry_on': {exc}")


def check_experiment_name(path: str | os.PathLike[str], name: Any) -> None:
    """A linked name must be a folder of the set: no path, not empty."""
    text = str(name)
    if not isinstance(name, (str, int)) or isinstance(name, bool) or not text or "/" in text or text in (".", ".."):
        _fail(path, f"'experiments' links an invalid experiment name {name!r}")


def check_set_data(
    path: str | os.PathLike[str], data: Mapping[str, Any], check_names: bool = True
) -> Mapping[str, Any]:
    """``data`` (the parsed experiment.yml at ``path``) if it has the shape of a set; else StateFileError.

    ``check_names=False``: a reader that reports invalid linked names one by one (``xmen list``) checks them itself.
    """
    for key in ("root", "script", "defaults"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            _fail(path, f"{key!r} must be a string, found {_kind(value)}")
    for key in ("type", "created", "purpose"):
        if not _is_scalar(data.get(key)):
            _fail(path, f"{key!r} must be a single value, found {_kind(data.get(key))}")
    notes = data.get("notes")
    if notes is not None and not (isinstance(notes, list) and all(_is_scalar(n) for n in notes)):
        _fail(path, f"'notes' must be a list of notes, found {_kind(notes)}")
    for key in ("init_created", "before_init"):
        value = data.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            _fail(path, f"{key!r} must be a list of file names, found {_kind(value)}")
    check_run_options(path, "'options'", data.get("options"))
    experiments = data.get("experiments")
    if experiments is not None:
        if not isinstance(experiments, dict):
            _fail(path, f"'experiments' must be a mapping of experiment names to run options, found {_kind(experiments)}")
        for name, options in experiments.items():
            if check_names:
                check_experiment_name(path, name)
            check_run_options(path, f"run options of {name}", options)
    return data


def check_params(path: str | os.PathLike[str], data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` (a parsed params.yml) if the keys xmen manages have their shape; else StateFileError."""
    for key in ("_root", "_status"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            _fail(path, f"{key!r} must be a string, found {_kind(value)}")
    if not _is_scalar(data.get("_name")):  # a hand-written name may read back as a number
        _fail(path, f"'_name' must be a name, found {_kind(data.get('_name'))}")
    notes = data.get("_notes")
    if notes is not None and not (isinstance(notes, list) and all(_is_scalar(n) for n in notes)):
        _fail(path, f"'_notes' must be a list of notes, found {_kind(notes)}")
    messages = data.get("_messages")
    if messages is not None and not isinstance(messages, dict):
        _fail(path, f"'_messages' must be a mapping, found {_kind(messages)}")
    jobs = data.get("_slurm")  # SLURM's record of each attempt (xmen.slurm)
    if jobs is not None and not (isinstance(jobs, list) and all(isinstance(j, dict) for j in jobs)):
        _fail(path, f"'_slurm' must be a list of job records, found {_kind(jobs)}")
    cancelled = data.get("_cancelled")
    if cancelled is not None and not isinstance(cancelled, dict):
        _fail(path, f"'_cancelled' must be a mapping, found {_kind(cancelled)}")
    return data


def read_defaults(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A set's defaults.yml, every key a parameter name given once; else StateFileError naming the first problem.

    A key given twice would silently keep the second value, and a ``_`` key other than :data:`DEFAULTS_KEYS`
    (``_status``, ``_name``...) is xmen's own: neither may pass as a parameter."""
    data = files.read_yaml(path)
    for key in data:
        if not isinstance(key, str) or not key:
            _fail(path, f"parameter names must be strings, got {key!r}")
        if key.startswith("_") and key not in DEFAULTS_KEYS:
            _fail(path, f"{key!r} is reserved: keys starting with '_' are xmen's (only {', '.join(DEFAULTS_KEYS)} "
                        "may be given here)")
    return data


def status_file_problem(exp_dir: str | os.PathLike[str], recorded: str | None = None) -> str | None:
    """Why the status file ``xmen.done`` of ``exp_dir`` is not one a finished run of xmen wrote, or None (also when
    there is none). Snakemake takes any file of that name as "finished": a symlink, a folder, a file without xmen's
    first line, or (``recorded``: the ``_status`` of params.yml, when the caller read it) a status file beside a
    params.yml that says the experiment is not finished, would keep it from ever running, silently."""
    path = os.path.join(os.fspath(exp_dir), DONE_FILE)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"its status file {DONE_FILE} cannot be read: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return f"its status file {DONE_FILE} is a symlink (xmen never writes one)"
    if not stat.S_ISREG(info.st_mode):
        return f"its status file {DONE_FILE} is not a file"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
        try:
            first = os.read(fd, len(DONE_FIRST_LINE) + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"its status file {DONE_FILE} cannot be read: {exc.strerror}"
    if first != (DONE_FIRST_LINE + "\n").encode():
        return f"its status file {DONE_FILE} was not written by xmen (it does not say {DONE_FIRST_LINE!r})"
    if recorded is not None and recorded not in (st.FINISHED, st.RUNNING):
        return f"its status file {DONE_FILE} says finished, but params.yml says {recorded}"
    return None


def remove_status_file(exp_dir: str | os.PathLike[str]) -> None:
    """Remove the status file xmen wrote in ``exp_dir`` (none there: nothing to do). One that xmen did not write
    (:func:`status_file_problem`: a symlink, a folder, a file without xmen's first line) is never removed:
    StateFileError naming it, for the user to remove."""
    problem = status_file_problem(exp_dir)
    if problem is not None:
        raise StateFileError(f"{os.path.join(os.fspath(exp_dir), DONE_FILE)}: {problem.removeprefix('its ')}; "
                             "xmen removes only the status files it wrote: remove it yourself")
    try:
        os.unlink(os.path.join(os.fspath(exp_dir), DONE_FILE))
    except FileNotFoundError:
        pass
