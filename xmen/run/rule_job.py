"""What xmen's rule runs for one experiment, and how a SLURM job runs it without Snakemake inside the job.

One place decides the job of an experiment (the ``run:`` block of rules/xmen_rule.smk calls it through
xmen.snakemake_glue, and so does a direct SLURM job): an attempt beyond the experiment's retries is refused; the
previous attempt's log is kept; ``run.sh`` runs with the experiment's threads, resources and what planning saw of it
in its environment (:func:`environment`), its output in ``xmen.log``; a run that succeeded without writing the
status file (a hand-made ``run.sh``) gets one.

**The direct SLURM job.** The SLURM executor plugin's job runs Snakemake twice on the compute node: the job-step
executor reads the Snakefile and builds the DAG of its one job, then starts, through ``srun``, a second Snakemake
that does the same again before it runs the rule's code. That is 3-5 s of every job, against experiments that may
take 1 s. For xmen's rule the main Snakemake process knows all that code needs, so it hands it over in one
argument (:func:`command`, :class:`JobSpec`) and the job runs :func:`run_all` directly (``python -c`` importing
this module, see :func:`command`). A pack (a Snakemake group job of many experiments) is one such job running its experiments one after
another, each in its own job step, as the plugin's job step would with ``--keep-going``. Everything else stays
Snakemake's: it submits the job with the same sbatch options, follows it in SLURM, checks its outputs and retries
it (XmenWorkflow.slurm_job decides which jobs go this way).

This module is light (no Snakemake, no pandas): it is imported on compute nodes.
"""
from __future__ import annotations

import base64
import binascii
import collections
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from xmen.store import logs
from xmen.store import status as st
from xmen.store.layout import PARAMS_FILE, RUN_FILE, RUN_LOG

#: What Snakemake sets to a job's threads for the libraries that start threads of their own (snakemake.shell).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
#: Signals SLURM sends a job (scancel, its time limit, --signal): SLURM passes them to the experiment's runner in
#: its step; this process, the job's batch shell, waits for the runner rather than end the job first (SLURM would
#: then kill the runner before it recorded the outcome).
_WAITED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
#: Of those, the ones that end a job: no other experiment of a pack starts after one.
_STOPPING_SIGNALS = frozenset([signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
#: The variables of the batch shell a job step keeps, as the plugin's job step does (the others are the
#: allocation's defaults, which would conflict with the step's own options).
_KEPT_SLURM_VARIABLES = frozenset(["SLURM_JOB_ID", "SLURM_JOBID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID",
                                   "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP",
                                   "SLURM_CLUSTER_NAME", "SLURM_SUBMIT_DIR", "SLURM_SUBMIT_HOST"])
#: The job step's task: run.sh with its output in the experiment's log (paths come as arguments, never as text).
_TASK = 'exec bash "$1" > "$2" 2>&1'
_SPEC_VERSION = 2
#: What may stand unquoted in the job's command line, also inside the plugin's ``--wrap="..."``.
_SAFE_WORD = re.compile(r"[A-Za-z0-9_./+@%:,=-]+")
#: The job's python program: xmen from where the submitting process imported it, then :func:`main`.
_BOOT = "import sys; sys.path.append(sys.argv.pop(1)); from xmen.rule_job import main; sys.exit(main())"


def environment(threads: int, resources: Mapping[str, Any], expect: str | None = None) -> dict[str, str]:
    """The variables run.sh gets: XMEN_THREADS (and the thread variables Snakemake sets for a job with that many
    threads), XMEN_ATTEMPT, XMEN_<RESOURCE> (XMEN_MEM_MB...), and XMEN_EXPECT_DONE when planning saw the experiment
    (see xmen.run.runner)."""
    env: dict[str, str] = {"XMEN_THREADS": str(threads)}
    env.update((name, str(threads)) for name in THREAD_VARIABLES)
    if expect:
        env["XMEN_EXPECT_DONE"] = expect
    for name, value in resources.items():
        if name.startswith("_") or value is None:
            continue
        key = "XMEN_ATTEMPT" if name == "xmen_attempt" else "XMEN_" + re.sub(r"\W", "_", name).upper()
        env[key] = str(value)
    return env


def shell_line(exp: str, env: Mapping[str, str]) -> str:
    """The shell line of the rule's run block: run.sh with ``env``, its output in the experiment's log."""
    prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
    return f"{prefix} bash {shlex.quote(os.path.join(exp, RUN_FILE))} > {shlex.quote(os.path.join(exp, RUN_LOG))} 2>&1"


def refusal(exp: str, attempt: int, retries: int) -> str | None:
    """Why this attempt must not run (Snakemake's retries are per rule: it may ask for one the experiment does not
    allow), or None."""
    if attempt > 1 + retries:
        return (f"{exp}: not run again, attempt {attempt} is beyond its {retries} retries "
                f"(see its params.yml _error and {os.path.join(exp, RUN_LOG)})")
    return None


def write_missing_status(exp: str) -> None:
    """xmen's runner (which every generated run.sh execs) writes the status file itself; a hand-made run.sh that
    succeeded does not: give it one."""
    from xmen.store.files import write_text_atomic  # import weight: PyYAML, which a direct SLURM job needs only here

    done = os.path.join(exp, st.DONE_FILE)
    if not os.path.exists(done):
        write_text_atomic(done, "finished\n")


def failed_log_text(log: str, max_lines: int = 100) -> str:
    """The last ``max_lines`` of ``log`` framed like Snakemake's own failed-log output (a deque: logs are big)."""
    shown: collections.deque[str] = collections.deque(maxlen=max_lines)
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


def failure(exp: str, returncode: int) -> str:
    """The one-line reason a job of the experiment failed."""
    return f"{exp} failed with exit code {returncode} (see {os.path.join(exp, RUN_LOG)} and its params.yml _error)"


# ------------------------------------------------------------------------------------------ the direct job
@dataclass(frozen=True)
class JobSpec:
    """All a direct SLURM job needs of one experiment, decided by the main Snakemake process."""

    workdir: str  #: Snakemake's working directory (experiment paths are relative to it)
    exp: str  #: the experiment folder, relative to workdir
    attempt: int
    #: Why this attempt must not run (XmenWorkflow.attempt_refusal: beyond the experiment's retries, or a cause its retry
    #: policy does not retry), decided by the submitting process; empty: it runs.
    refused: str = ""
    env: dict[str, str] = field(default_factory=dict)  #: :func:`environment`
    #: The job step launcher and its options (``srun -n1 --cpu-bind=q --cpus-per-task=N --nodes=1``, as the plugin's
    #: job step has them); empty: run.sh runs in the batch shell's own step.
    step: list[str] = field(default_factory=list)
    #: Status files of its requirements (relative to workdir). Snakemake submits a job once they exist; in a pack
    #: a requirement may be an earlier experiment of the same job, which may have failed.
    inputs: list[str] = field(default_factory=list)


def encode(specs: list[JobSpec]) -> str:
    """One shell-safe word (base64 of compressed JSON): the plugin puts the job's command inside ``--wrap="..."`` on
    a shell line, where quotes, ``$`` and backquotes of experiment names or resource values would be read."""
    data = json.dumps({"v": _SPEC_VERSION, "jobs": [asdict(spec) for spec in specs]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(zlib.compress(data.encode(), 9)).decode().rstrip("=")


def decode(text: str) -> list[JobSpec]:
    """The specs :func:`encode` made; ValueError for anything else."""
    try:
        data = json.loads(zlib.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))))
    except (binascii.Error, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"not a job spec of xmen.rule_job ({exc})") from None
    if not isinstance(data, dict) or data.get("v") != _SPEC_VERSION or not isinstance(data.get("jobs"), list):
        raise ValueError("not a job spec of this version of xmen.rule_job")
    specs = []
    for item in data["jobs"]:
        try:
            spec = JobSpec(**item)
        except TypeError as exc:
            raise ValueError(f"not a job spec of xmen.rule_job ({exc})") from None
        lists = (spec.step, spec.inputs)
        if not isinstance(spec.refused, str) or not isinstance(spec.env, dict) or not all(isinstance(v, str) for v in spec.env.values()) or not all(
                isinstance(value, list) and all(isinstance(v, str) for v in value) for value in lists):
            raise ValueError("not a job spec of xmen.rule_job (its values)")
        specs.append(spec)
    if not specs:
        raise ValueError("not a job spec of xmen.rule_job (no experiment)")
    return specs


def command(specs: list[JobSpec], python: str, xmen_path: str, before: list[str | None] | None = None) -> str | None:
    """The job's command line: ``before`` (the plugin's own prefix, exported variables, precommand), then this
    module in place of the shell (``exec``: SLURM's signals reach it, not a shell that would end the job first).

    ``xmen_path`` is where the submitting process imported xmen from: appended to the job's ``sys.path`` as the
    generated Snakefile appends it (a Snakemake installed apart from xmen finds it the same way). None when the
    python or that path holds characters the plugin's ``--wrap="..."`` shell line would read.
    """
    if not (_SAFE_WORD.fullmatch(python) and _SAFE_WORD.fullmatch(xmen_path)):
        return None
    parts = [text for part in (before or []) if part and (text := str(part).strip().removesuffix("&&").strip())]
    parts.append(f"exec {python} -c '{_BOOT}' {xmen_path} {encode(specs)}")
    return " && ".join(parts)


def run_all(specs: list[JobSpec]) -> int:
    """Run the experiments of one job one after another (one, or a pack): 0 when every one succeeded, else the
    first failure's exit code. One failing experiment fails alone; an experiment whose requirement in the same
    pack failed is not run. Once SLURM ends the job (SIGTERM: ``scancel``, the time limit), no other starts.
    """
    stopping: list[int] = []

    def noted(signum: int, frame: Any) -> None:
        if signum in _STOPPING_SIGNALS:
            stopping.append(signum)
        os.write(2, f"xmen.rule_job: signal {signum}; waiting for the experiment's runner to end\n".encode())

    previous = {sig: signal.signal(sig, noted) for sig in _WAITED_SIGNALS}
    try:
        worst = 0
        for index, spec in enumerate(specs):
            if stopping:
                left = ", ".join(other.exp for other in specs[index:])
                print(f"xmen.rule_job: the job was stopped (signal {stopping[0]}); not started: {left}",
                      file=sys.stderr, flush=True)
                return worst or 128 + stopping[0]
            try:
                returncode = run(spec)
            except OSError as exc:  # its folder is gone, a full disk...: it fails alone
                print(f"Error: {spec.exp}: {exc}", file=sys.stderr, flush=True)
                returncode = 1
            worst = worst or returncode
        return worst
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(spec: JobSpec) -> int:
    """Run one experiment's job here, as the rule's run block would: its exit code (0 only when it succeeded).

    run.sh runs as a job step (:attr:`JobSpec.step`), like the rule's code under the plugin's own job step: SLURM
    places it on the job's CPUs, signals it (``scancel``, the time limit, ``--signal``) and accounts for it.
    A signal does not interrupt the wait (PEP 475; :func:`run_all` notes it).
    """
    os.chdir(spec.workdir)
    missing = [path for path in spec.inputs if not os.path.exists(path)]
    if missing:
        print(f"{spec.exp}: not run, its requirement {missing[0]} is not there (it failed in this job)",
              file=sys.stderr, flush=True)
        return 1
    if _finished_since_planned(spec):  # a pack's retry: its first attempt finished this one (its log stays)
        print(f"{spec.exp}: finished since it was planned; not run again", file=sys.stderr, flush=True)
        return 0
    if spec.refused:
        print(spec.refused, file=sys.stderr, flush=True)
        return 1
    logs.keep_previous_log(spec.exp)
    _make_tmpdir(spec)
    log = os.path.join(spec.exp, RUN_LOG)
    argv = [*spec.step, "bash", "-c", _TASK, "xmen-job", os.path.join(spec.exp, RUN_FILE), log]
    env = {key: value for key, value in os.environ.items() if not (spec.step and _launcher_default(key))}
    env.update(spec.env)
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
    except OSError as exc:
        print(f"{spec.exp}: cannot start {argv[0]}: {exc}", file=sys.stderr, flush=True)
        return 127
    returncode = child.wait()
    if returncode != 0:
        print(failure(spec.exp, returncode) + failed_log_text(log, 20), file=sys.stderr, flush=True)
        return returncode if 0 < returncode < 256 else 1
    write_missing_status(spec.exp)
    return 0


def _make_tmpdir(spec: JobSpec) -> None:
    """The job's temporary folder, as Snakemake's job step has it: the ``tmpdir`` resource given to the job, else
    this node's own (Snakemake evaluates ``tmpdir`` where the job runs); created, as Snakemake creates it."""
    tmpdir = spec.env.get("XMEN_TMPDIR") or tempfile.gettempdir()
    spec.env["XMEN_TMPDIR"] = tmpdir
    os.makedirs(tmpdir, exist_ok=True)


def _finished_since_planned(spec: JobSpec) -> bool:
    """Whether another attempt or run finished the experiment after it was planned (xmen.run.runner's rule)."""
    expect = spec.env.get("XMEN_EXPECT_DONE")
    if not expect:
        return False
    from xmen.store.locks import finished_since  # import weight: it loads PyYAML, which a direct job rarely needs

    return finished_since(spec.exp, expect, os.path.join(spec.exp, PARAMS_FILE))


def _launcher_default(name: str) -> bool:
    """Whether a variable of the batch shell must not reach the job step: the allocation's own SLURM_* values and
    the SRUN_/SBATCH_ defaults (the plugin's job step drops them for its ``srun`` too)."""
    if name.startswith(("SRUN_", "SBATCH_")):
        return True
    return name.startswith("SLURM_") and name not in _KEPT_SLURM_VARIABLES


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m xmen.rule_job SPEC (the job of a SLURM job xmen's Snakefile submitted)", file=sys.stderr)
        return 2
    try:
        specs = decode(args[0])
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    try:
        return run_all(specs)
    except OSError as exc:  # the working directory or an experiment folder is gone, a full disk...
        print(f"Error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
