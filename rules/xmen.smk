# xmen: the one wildcard rule that runs experiments. Shipped with xmen; do not edit in generated Snakefiles.
#
# Experiments come from each set's experiment.yml (the single source of truth), loaded by xmen_load_set().
# The rule's shell text must stay byte-stable across xmen releases and regenerations: Snakemake reruns every
# finished experiment whose recorded rule code differs ("Code has changed").
import collections as _xmen_collections
import inspect as _xmen_inspect
import os as _xmen_os
import re as _xmen_re
import shlex as _xmen_shlex
import subprocess as _xmen_subprocess

import yaml as _xmen_yaml
from snakemake.exceptions import WorkflowError as _XmenWorkflowError

XMEN_DONE = "xmen.done"
XMEN_LOG = "xmen.log"  # in the experiment's folder: what run.sh printed
XMEN_EXPERIMENTS = {}  # experiment path (relative to the working directory) -> run options
XMEN_TARGETS = []
_XMEN_SET_CACHE = {}
_XMEN_SPECIAL_NAMES = frozenset(["", ".", ".."])  # names normpath changes even without a separator
# What an experiment that does not ask for a sized resource gets (Snakemake's own default is 1000 MB).
_XMEN_SIZED_FALLBACK = {"mem_mb": 1000, "mem_mib": 954, "mem": "1000MB", "disk_mb": 1000, "disk_mib": 954, "disk": "1000MB"}

try:
    _XMEN_LOADER = _xmen_yaml.CSafeLoader
except AttributeError:
    _XMEN_LOADER = _xmen_yaml.SafeLoader


def xmen_load_set(set_dir):
    """Run options of every linked experiment of the set in set_dir, keyed by path relative to the workdir."""
    set_dir = _xmen_os.path.normpath(set_dir)
    if set_dir in _XMEN_SET_CACHE:
        return _XMEN_SET_CACHE[set_dir]
    with open(_xmen_os.path.join(set_dir, "experiment.yml"), encoding="utf-8") as handle:
        data = _xmen_yaml.load(handle, Loader=_XMEN_LOADER) or {}
    recorded = data.get("root")
    if recorded and _xmen_os.path.realpath(recorded) != _xmen_os.path.realpath(set_dir):
        # run.sh files name absolute paths: running a moved set would run the old copy.
        raise ValueError(
            f"the experiment set in {_xmen_os.path.abspath(set_dir)} was moved from {recorded}; "
            f"run `xmen relink -r {_xmen_os.path.abspath(set_dir)}` first"
        )
    defaults = data.get("options") or {}
    loaded = {}
    prefix = "" if set_dir == "." else set_dir
    for name, options in (data.get("experiments") or {}).items():
        merged = dict(defaults)
        if options:
            merged.update(options)
        requires = merged.get("requires")
        merged["requires"] = [
            _xmen_os.path.normpath(_xmen_os.path.join(set_dir, required)) for required in requires
        ] if requires else []
        name = str(name)
        if _xmen_os.sep in name or name in _XMEN_SPECIAL_NAMES:
            path = _xmen_os.path.normpath(_xmen_os.path.join(set_dir, name))
        else:  # a plain folder name: what normpath(join(set_dir, name)) gives, without the work
            path = _xmen_os.path.join(prefix, name)
        loaded[path] = merged
    _XMEN_SET_CACHE[set_dir] = loaded
    return loaded


XMEN_PLANNED = {}  # experiment path -> what planning saw (xmen.job.done_token: "status file;runs")


def _xmen_done_mtime(path):
    try:
        info = _xmen_os.stat(_xmen_os.path.join(path, XMEN_DONE))
    except OSError:
        info = None
    if path not in XMEN_PLANNED:
        try:
            runs = _xmen_os.stat(_xmen_os.path.join(path, ".xmen-job.lock")).st_size
        except OSError:
            runs = 0
        done = f"{info.st_ino}:{info.st_mtime_ns}" if info is not None else "missing"
        XMEN_PLANNED[path] = f"{done};{runs}"
    return info.st_mtime_ns if info is not None else None


def xmen_pending(experiments):
    """Experiments that need a run, plus the requirements they wait for that need one too.

    An experiment needs a run when its status file is missing, or a requirement needs a run or finished after
    it. Requirements that need a run are targets themselves: Snakemake does not rerun a missing input whose
    consumer's output is still present. Filtering finished experiments here keeps Snakemake from building a
    DAG over thousands of finished jobs; `--config xmen_check_all=1` lets Snakemake check everything itself.
    """
    if config.get("xmen_check_all"):
        return list(experiments)
    verdict = {}

    def needs_run(path, trail=()):
        if path in verdict:
            return verdict[path]
        if path in trail:  # a cycle: Snakemake reports it
            return True
        done = _xmen_done_mtime(path)
        result = done is None
        for required in _xmen_options(path).get("requires") or ():
            if needs_run(required, trail + (path,)):
                result = True
            else:
                required_done = _xmen_done_mtime(required)
                if done is not None and required_done is not None and required_done > done:
                    result = True
        verdict[path] = result
        return result

    pending = [path for path in experiments if needs_run(path)]
    chosen = set(pending)
    pending += sorted(path for path, result in verdict.items() if result and path not in chosen)
    return pending


def xmen_add_set(set_dir):
    """Add a set's experiments to the workflow and its pending ones to the default target.

    `--config xmen_targets=FILE` (written by `xmen run GLOB`) narrows the default target to the experiments
    listed in FILE, one path per line.
    """
    loaded = xmen_load_set(set_dir)
    XMEN_EXPERIMENTS.update(loaded)
    chosen = loaded
    if config.get("xmen_targets"):
        with open(config["xmen_targets"], encoding="utf-8") as handle:
            wanted = {_xmen_os.path.normpath(line.rstrip("\n")) for line in handle if line.strip()}
        chosen = {path: options for path, options in loaded.items() if path in wanted}
    XMEN_TARGETS.extend(_xmen_os.path.join(path, XMEN_DONE) for path in xmen_pending(chosen))
    _xmen_bind_requires()


def _xmen_options(exp):
    exp = _xmen_os.path.normpath(exp)
    if exp not in XMEN_EXPERIMENTS:
        # A requirement in a set this workflow did not load: read that set on demand.
        XMEN_EXPERIMENTS.update(xmen_load_set(_xmen_os.path.dirname(exp) or "."))
    return XMEN_EXPERIMENTS.get(exp, {})


def _xmen_requires_of(wildcards):
    """The rule's input: the status files of the experiment's requirements."""
    return [_xmen_os.path.join(path, XMEN_DONE) for path in _xmen_options(wildcards.exp).get("requires") or ()]


# Snakemake inspects an input function's signature for every job (inspect.signature, the larger part of its cost
# at 10k jobs) unless the function carries its parameters in this attribute (snakemake.common's
# overwrite_function_params): give it the real ones once.
_xmen_requires_of._overwrite_params = _xmen_inspect.signature(_xmen_requires_of).parameters
_xmen_requires = _xmen_requires_of  # the name the rule's `input:` uses; see _xmen_bind_requires


def _xmen_bind_requires():
    """Make the rule's input a plain empty list when no experiment of the workflow has requirements.

    The input function then would return [] for every job anyway, and Snakemake skips calling it per job. Kept a
    function outside the main process (a cluster job's Snakemake). An explicit target in a set this workflow did
    not load is checked when it runs (see _xmen_threads).
    """
    global _xmen_requires
    needed = not workflow.is_main_process or any(options.get("requires") for options in XMEN_EXPERIMENTS.values())
    _xmen_requires = _xmen_requires_of if needed else []


def _xmen_threads(wildcards):
    options = _xmen_options(wildcards.exp)
    if options.get("requires") and _xmen_requires is not _xmen_requires_of:
        # Only an experiment of a set loaded on demand (an explicit target elsewhere) can get here.
        raise ValueError(
            f"{wildcards.exp} has requirements, but this workflow (whose own experiments have none) did not "
            f"schedule them; run it from its own set's folder"
        )
    return int(options.get("threads") or 1)


def _xmen_resource(name):
    """Resource callable: a value, or a list of values per attempt (the last one repeats)."""

    def resource(wildcards, attempt):
        value = (_xmen_options(wildcards.exp).get("resources") or {}).get(name)
        if isinstance(value, list):
            value = value[min(attempt, len(value)) - 1] if value else None
        if value is None:
            # Snakemake skips a None resource, but cannot convert one for sized resources (mem_mb, disk_mb...).
            value = _XMEN_SIZED_FALLBACK.get(name)
        return value

    return resource


def xmen_resource_names():
    names = set()
    for options in XMEN_EXPERIMENTS.values():
        names.update((options.get("resources") or {}).keys())
    return sorted(names)


def xmen_retries():
    """The most retries any experiment asked for; 0 (Snakemake's own --retries then applies) outside the main
    process: inside a cluster job the Snakemake processes run the one attempt they were given, as they are told
    with --retries 0, which a rule's own `retries:` would otherwise override."""
    if not workflow.is_main_process:
        return 0
    return max([int(options.get("retries") or 0) for options in XMEN_EXPERIMENTS.values()] or [0])


def _xmen_failed_log(log, max_lines=100):
    """The end of a failed experiment's log for the error message, with `--show-failed-logs` (the ci profile):
    what Snakemake prints for a rule's `log:`, which the rule does not declare (see xmen_run_experiment)."""
    settings = getattr(workflow, "output_settings", None)
    if not getattr(settings, "show_failed_logs", False):
        return ""
    shown = _xmen_collections.deque(maxlen=max_lines)  # a training log can be gigabytes: keep only its end
    total = 0
    try:
        with open(log, encoding="utf-8", errors="replace") as handle:
            for total, line in enumerate(handle, 1):
                shown.append(line.rstrip("\n"))
    except OSError as error:
        return f"\nLogfile {log}: cannot be read ({error.strerror})"
    header = f"Logfile {log}" + (f" (last {len(shown)} of {total} lines):" if len(shown) < total else ":")
    bar = "=" * min(80, max([len(header)] + [len(line) for line in shown]))
    return "\n" + "\n".join([header, bar, *shown, bar])


def xmen_run_experiment(wildcards, threads, resources, output):
    """The job: run.sh with its resources in the environment, its output in the log, then the status file, last.

    The experiment sees XMEN_ATTEMPT, XMEN_THREADS and XMEN_<RESOURCE> (e.g. XMEN_MEM_MB), so a retry with
    more memory can use it. The rule calls this function so that its own code stays one stable line.
    Snakemake's retries are per rule (the most any experiment of the workflow asked for): an attempt beyond
    the experiment's own retries fails at once, without running it again.
    The log is not a `log:` of the rule: Snakemake's per-job handling of one adds about a fifth to a dry run
    (measured: 10,000 pending, 1.13-1.2x a minimal Snakefile with it, 0.93-1.0x without).
    """
    log = _xmen_os.path.join(wildcards.exp, XMEN_LOG)
    options = XMEN_EXPERIMENTS.get(_xmen_os.path.normpath(wildcards.exp)) or {}
    allowed = 1 + int(options.get("retries") or 0)
    attempt = int(resources.get("xmen_attempt") or 1)
    if attempt > allowed:
        raise _XmenWorkflowError(
            f"{wildcards.exp}: not run again, attempt {attempt} is beyond its {allowed - 1} retries "
            f"(see its params.yml _error and {log})"
        )
    env = {"XMEN_THREADS": threads}
    planned = XMEN_PLANNED.get(_xmen_os.path.normpath(wildcards.exp))
    if planned:  # the runner skips an experiment another run finished since this one was planned
        env["XMEN_EXPECT_DONE"] = planned
    for name, value in resources.items():
        if name.startswith("_") or value is None:
            continue
        key = "XMEN_ATTEMPT" if name == "xmen_attempt" else "XMEN_" + _xmen_re.sub(r"\W", "_", name).upper()
        env[key] = value
    prefix = " ".join(f"{key}={_xmen_shlex.quote(str(value))}" for key, value in env.items())
    run_script = _xmen_os.path.join(wildcards.exp, "run.sh")
    command = f"{prefix} bash {_xmen_shlex.quote(run_script)} > {_xmen_shlex.quote(log)} 2>&1"
    try:
        shell(command.replace("{", "{{").replace("}", "}}"))
    except _xmen_subprocess.CalledProcessError as error:
        raise _XmenWorkflowError(
            f"{wildcards.exp} failed with exit code {error.returncode} (see {log} and its params.yml _error)"
            + _xmen_failed_log(log)
        ) from None
    # xmen's job runner (which every run.sh execs) writes the status file itself; a hand-made run.sh does not.
    if not _xmen_os.path.exists(output[0]):
        temporary = f"{output[0]}.tmp{_xmen_os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write("finished\n")
            handle.flush()
            _xmen_os.fsync(handle.fileno())
        _xmen_os.replace(temporary, output[0])
