"""What the shipped Snakefiles (rules/xmen.smk, workflow/Snakefile) do, as an importable, tested module.

The rule text stays a thin declaration over one :class:`XmenWorkflow` per Snakemake workflow. Which experiments
the default target asks for comes from xmen.run.planner, the same decision ``xmen run`` makes:

- A run or dry run (``snakemake``, ``snakemake -n``) asks for the experiments that need one: Snakemake then
  builds its DAG over those only (fast on sets of thousands of finished experiments), and with nothing to do it
  says its own "Nothing to be done".
- Any command that looks at the whole workflow gets every experiment that is not blocked: ``-F/--forceall``,
  ``-R/--forcerun``, ``-f/--forcetargets`` (read from ``workflow.dag_settings``), and the commands that are not a
  run at all: ``--summary``, ``--detailed-summary``, ``--list-changes``, ``--delete-all-output``, ``--report``,
  ``--dag``, ``--rulegraph``, ``--archive``, ``--list-untracked``...: whatever builds a DAG that is not the one
  ``Workflow.execute`` runs (xmen.host.snakemake_run.builds_dag_for_a_run).

xmen's patches on Snakemake's Job (xmen.host.patches) are applied while Snakemake parses the Snakefile. What
depends on the executor (the patches on the SLURM plugin, or refusing a plugin they do not fit; adopting jobs an
earlier run left in SLURM; the SLURM preflight) is decided when Snakemake first evaluates the rules' input
(:meth:`XmenWorkflow.dag_started`): while it parses the Snakefile, Snakemake has not chosen its executor yet
(xmen.host.plugin says which patch comes earlier, and why). A host xmen's patches do not fit ends Snakemake with
one line (:func:`refusing`).

This module loads Snakemake's internals only inside functions; it is imported only by Snakefiles (and tests),
never by ``import xmen``.
"""
from __future__ import annotations

import atexit
import contextlib
import inspect
import os
import shlex
import subprocess
import sys
import tempfile
from typing import Any, Callable

from xmen.errors import XmenError
from xmen.host import patches, plugin, slurm_submit
from xmen.host.jobs import RULE
from xmen.host.jobs import install_per_experiment_retries, install_refused_alone  # noqa: F401 - their old place
from xmen.host.snakemake_run import builds_dag_for_a_run, executor_in_use
from xmen.host.versions import HostRefusal, refuse
from xmen.run import planner, rule_job
from xmen.slurm import partitions
from xmen.store.files import read_yaml_settled, update_yaml
from xmen.store.layout import DONE_FILE, RUN_LOG
from xmen.store import logs, retry
from xmen.store.terminal import plain
from xmen.sets.run_options import SBATCH_WORDS, sbatch_words, unsafe_resource_char
from xmen.store.locks import ENV_PACK, done_token
from xmen.store import layout

#: ``--config xmen_slurm_step=snakemake``: every SLURM job runs the plugin's own job step (see xmen.rule_job).
SLURM_STEP_CONFIG = "xmen_slurm_step"
_SPECIAL_NAMES = frozenset(["", ".", ".."])
# What an experiment that does not ask for a sized resource gets (Snakemake's own default is 1000 MB).
SIZED_FALLBACK = {"mem_mb": 1000, "mem_mib": 954, "mem": "1000MB", "disk_mb": 1000, "disk_mib": 954, "disk": "1000MB"}
#: The SLURM executor plugin's resource for ``--cpus-per-task``; it wins over the rule's (capped) threads.
CPUS_PER_TASK = "cpus_per_task"


def asks_for_everything(dag_settings: Any, frame: Any = None, workflow: Any = None) -> bool:
    """True when Snakemake should see every experiment, not only the pending ones (see the module docstring): a
    force flag of ``dag_settings``, or a DAG that is not a run's (of ``workflow``; without one, told by the Workflow
    method on the stack above ``frame``)."""
    if dag_settings is not None and (
        getattr(dag_settings, "forceall", False)
        or getattr(dag_settings, "forcerun", None)
        or getattr(dag_settings, "forcetargets", False)
    ):
        return True
    return not builds_dag_for_a_run(workflow, frame or sys._getframe(1))


@contextlib.contextmanager
def refusing() -> Any:
    """End this Snakemake with the refusal's one line when a host does not fit xmen's patches (HostRefusal)."""
    try:
        yield
    except HostRefusal as refusal:
        refuse(refusal)


def keep_packed_experiments_apart(workflow: Any) -> bool:
    """Settings that keep the experiments of a pack separate; True when they were applied.

    A pack is a Snakemake group job (``--groups xmen_experiment=pack --group-components pack=N``): one SLURM job runs
    N experiments one after another. Experiments are independent, but Snakemake treats a group job as a unit:

    - the Snakemake the SLURM plugin starts inside the job (not the main process; its ``local_groupid`` is the pack's
      id) runs without the user's ``--keep-going``, so one failing experiment would leave the pack's later ones
      unrun: it keeps going;
    - the main process deletes every output of a failed group job as possibly corrupt, which would drop the status
      files of the pack's finished experiments. xmen's runner writes ``xmen.done`` last and only on success, so one
      that exists is never partial: the main process keeps them (``--keep-incomplete``).

    Runs when Snakemake evaluates the rule's input (its settings are known then, the scheduler not yet made), and
    changes nothing unless the experiments are grouped: a plain run keeps the settings the user gave.
    """
    settings = getattr(workflow, "execution_settings", None)
    if settings is None:
        return False
    if workflow.is_main_process:
        rule = workflow.get_rule(RULE) if workflow.is_rule(RULE) else None
        if rule is None or getattr(rule, "group", None) is None:
            return False
        settings.keep_incomplete = True
        return True
    groups = getattr(workflow, "group_settings", None)
    if getattr(groups, "local_groupid", "local") in (None, "local"):
        return False
    settings.keep_going = True
    return True


class XmenWorkflow:
    """The experiments of one Snakemake workflow and the callables its rule uses."""

    def __init__(self, workflow: Any, config: dict[str, Any]) -> None:
        self.workflow = workflow
        self.config = config
        self.cwd = os.getcwd()
        self.experiments: dict[str, dict[str, Any]] = {}  # path relative to the workdir -> run options
        self.chosen: list[str] = []  # absolute paths the default target may ask for
        self.set_files: list[str] = []
        self.planner = planner.Planner(reasons=False, tokens=True)
        self._loaded: set[str] = set()
        self._has_requires = False
        self._requires_is_function = False  # what requires_input() gave the rule
        #: What planning saw of each experiment it asked for (xmen.store.locks.done_token), passed to its runner as
        #: XMEN_EXPECT_DONE: the runner skips an experiment that another run finished since it was planned.
        self.planned: dict[str, str] = {}
        self._checked = False  # the SLURM preflight ran (once per run)
        #: Whether xmen's patches on the SLURM plugin are installed (xmen.host.plugin: a run with the slurm
        #: executor): no hang on scancel, SLURM's verdict, prompt status checks, queued markers, adopted jobs.
        self.slurm = False
        self._started = False  # Snakemake evaluated the rules' input (dag_started)
        #: The experiments the default target left out that no run starts by itself (planner.left_out), named on
        #: stderr when this Snakemake ends (:meth:`say_left_out`), whatever it ran or said ("Nothing to be done").
        self.left_out: dict[str, planner.Verdict] = {}
        #: Started by xmen run, which names them itself (taken out of the environment: its jobs never see it).
        self.left_out_said = os.environ.pop(planner.LEFT_OUT_SAID_ENV, None) == "1"
        if self.workflow.is_main_process:
            self.workflow._xmen_glue = self  # the Job patches and the direct job step find the glue here
            with refusing():
                patches.install(patches.SNAKEMAKE_PATCHES)  # per-experiment retries, refused experiments alone
            plugin.install_if_fits(self.cwd)  # what must come before Snakemake makes its executor

    def dag_started(self) -> None:
        """Once, when Snakemake first evaluates the rules' input (its settings and executor are known then): the
        SLURM plugin's part in this run (xmen.host.plugin.prepare: patched, adopting the jobs an earlier, killed run
        left in SLURM; or refused in one line), and :func:`keep_packed_experiments_apart`.

        That is while Snakemake builds its DAG, before it makes its scheduler, when the default target's or an
        experiment's requirements are asked; for explicit targets without requirements, only when it schedules the
        first job (a refusal then comes before that job is submitted, followed by Snakemake's report of where).
        """
        if self._started:
            return
        self._started = True
        if self.workflow.is_main_process:
            with refusing():
                self.slurm, self.planner.adopt = plugin.prepare(self.workflow, self.cwd)
        keep_packed_experiments_apart(self.workflow)

    # ------------------------------------------------------------------ sets
    def rel(self, path: str) -> str:
        """A planner path (absolute) as Snakemake sees it: relative to the working directory."""
        return os.path.relpath(path, self.cwd)

    def load_set(self, set_dir: str) -> dict[str, dict[str, Any]]:
        """Run options of the set's linked experiments, keyed by path relative to the working directory."""
        root = os.path.normpath(os.path.join(self.cwd, set_dir))
        info = self.planner.set_info(root)
        if info is None:
            raise ValueError(f"{os.path.join(root, layout.SET_FILE)} cannot be read as an experiment set")
        recorded = info.data.get("root")
        if recorded and os.path.realpath(str(recorded)) != os.path.realpath(root):
            # run.sh files name absolute paths: running a moved set would run the old copy.
            raise ValueError(
                f"the experiment set in {root} was moved from {recorded}; run `xmen relink -r {root}` first"
            )
        loaded = {}
        prefix = os.path.relpath(root, self.cwd)
        prefix = "" if prefix == "." else prefix
        for name, options in info.linked.items():
            if os.sep in name or name in _SPECIAL_NAMES:
                path = os.path.normpath(os.path.join(prefix, name))
            else:
                path = os.path.join(prefix, name)
            loaded[path] = options
        if root not in self._loaded:
            self._loaded.add(root)
            self.experiments.update(loaded)
            self._has_requires = self._has_requires or any(o.get("requires") for o in loaded.values())
        return loaded

    def add_set(self, set_dir: str) -> None:
        """Add a set's experiments to the workflow; the default target asks for those that need a run.

        ``--config xmen_targets=FILE`` (written by ``xmen run GLOB``) narrows the default target to the
        experiments listed in FILE, one path per line (relative to the working directory).
        """
        loaded = self.load_set(set_dir)
        self.set_files.append(os.path.normpath(os.path.join(set_dir, layout.SET_FILE)))
        paths = list(loaded)
        if self.config.get("xmen_targets"):
            with open(self.config["xmen_targets"], encoding="utf-8") as handle:
                wanted = [os.path.normpath(line.rstrip("\n")) for line in handle if line.strip()]
            mine = set(paths)  # requirements elsewhere that need a run are added by the planner
            paths = [p for p in dict.fromkeys(wanted) if p in mine]
        self.chosen.extend(os.path.normpath(os.path.join(self.cwd, p)) for p in paths)

    def options(self, exp: str) -> dict[str, Any]:
        exp = os.path.normpath(exp)
        if exp not in self.experiments:
            # A requirement in a set this workflow did not load: read that set on demand.
            try:
                self.load_set(os.path.dirname(exp) or ".")
            except ValueError:
                return {}
        return self.experiments.get(exp, {})

    # ------------------------------------------------------------------ targets
    def target_paths(self, everything: bool) -> list[str]:
        """Absolute paths of the experiments the default target asks for."""
        return [v.path for v in self.target_verdicts(everything)]

    def target_verdicts(self, everything: bool) -> list[planner.Verdict]:
        """The planner's verdicts of the experiments the default target asks for."""
        if everything:
            self.planner.queue().prefetch(self.chosen)  # one squeue call for all queued markers
            verdicts = [self.planner.verdict(p) for p in self.chosen]
            return [v for v in verdicts if v.action not in (planner.BLOCKED, planner.UNLINKED)]
        return [v for v in self.planner.plan(self.chosen) if v.action == planner.RUN]

    def targets_input(self) -> Callable[..., list[str]]:
        """The default target's input function, called when Snakemake builds its DAG (its settings known then)."""

        def targets(wildcards: Any) -> list[str]:
            self.dag_started()
            everything = asks_for_everything(getattr(self.workflow, "dag_settings", None), workflow=self.workflow)
            verdicts = self.target_verdicts(everything)
            self.note_left_out()
            paths = [v.path for v in verdicts]
            for verdict in verdicts:  # what each looked like before it was decided (see Verdict.seen)
                self.planned.setdefault(os.path.normpath(self.rel(verdict.path)), verdict.seen)
            self.adopt_jobs(verdicts)
            if not everything:  # an adopted experiment's job is in SLURM already: nothing to check
                self.check_slurm([v.path for v in verdicts if not v.job_id])
            if not paths:
                # An input that exists and that no rule makes: Snakemake then says "Nothing to be done" instead
                # of running a target job with neither input nor output.
                if self.set_files:
                    return self.set_files[:1]
                return [os.path.relpath(str(self.workflow.main_snakefile), self.cwd)]  # a workflow without sets
            return [os.path.join(self.rel(p), DONE_FILE) for p in paths]

        targets._overwrite_params = inspect.signature(targets).parameters  # type: ignore[attr-defined]
        return targets

    def note_left_out(self) -> None:
        """Remember the chosen experiments the planner left out (blocked, or waiting for a queued requirement); the
        first time, arrange for :meth:`say_left_out` to name them when this Snakemake process ends."""
        if not self.workflow.is_main_process or self.left_out_said:
            return  # xmen run names them itself, at the end of its summary
        first = not self.left_out
        for path in self.chosen:
            verdict = self.planner.verdict(path)  # decided already for the target: no second look at the disk
            if planner.left_out(verdict):
                self.left_out[path] = verdict
        if first and self.left_out:
            atexit.register(self.say_left_out)

    def say_left_out(self) -> None:
        """Name each left-out experiment with its reason, on stderr, at the end of the run."""
        named = sorted(((self.rel(path), verdict) for path, verdict in self.left_out.items()), key=lambda n: n[0])
        for line in planner.left_out_lines(named):
            print(plain(f"xmen: {line}"), file=sys.stderr, flush=True)

    def adopt_jobs(self, verdicts: list[planner.Verdict]) -> None:
        """Say which experiments follow a SLURM job an earlier run left (the planner's verdict), and in a real run
        hand them to the hooked plugin (xmen.host.slurm_submit.adopt), which follows those jobs instead of
        submitting."""
        adopted = {v.path: v.job_id for v in verdicts if v.job_id and v.action == planner.RUN}
        if not adopted:
            return
        for verdict in verdicts:
            if verdict.path in adopted:
                print(plain(f"xmen: {self.rel(verdict.path)}: {verdict.reason}"), file=sys.stderr, flush=True)
        if self.slurm:  # a real run (xmen.slurm follows the adopted jobs' status), not a dry run
            slurm_submit.adopt(adopted)

    def check_slurm(self, paths: list[str]) -> None:
        """Before the SLURM executor submits anything: one ``sinfo`` call, one line per problem SLURM would reject,
        and in a real run those experiments recorded as error and refused by the hooked plugin
        (xmen.host.slurm_submit); a dry run for the SLURM executor prints the same lines and records nothing."""
        slurm = executor_in_use(self.workflow, dry_run=True) == plugin.SLURM
        if self._checked or not self.workflow.is_main_process or not slurm:
            return
        self._checked = True
        wanted = {self.rel(p): self.options(self.rel(p)) for p in paths}
        limit = getattr(getattr(self.workflow, "resource_settings", None), "max_threads", None)
        grouped = partitions.preflight(wanted, max_threads=limit)
        if grouped:
            slurm_submit.refuse(grouped, self.cwd, dry_run=executor_in_use(self.workflow) != plugin.SLURM)

    def refused(self, wildcards: Any) -> bool:
        """Whether the SLURM preflight of this run refused the experiment (xmen.host.slurm_submit.refuse)."""
        if not slurm_submit.HOOKS.refused:
            return False
        exp = getattr(wildcards, "exp", None)
        return bool(exp) and os.path.normpath(os.path.join(self.cwd, str(exp))) in slurm_submit.HOOKS.refused

    def alone(self, wildcards: Any) -> bool:
        """Whether the experiment is kept out of every pack (xmen.host.jobs): the SLURM preflight refused it, or this
        run adopted its job from an earlier run (Snakemake would form other packs than that run did, and no pack
        of new members can follow one old job: each adopted experiment follows its own pack's job alone)."""
        exp = getattr(wildcards, "exp", None)
        if not exp:
            return False
        path = os.path.normpath(os.path.join(self.cwd, str(exp)))
        return path in slurm_submit.HOOKS.refused or path in slurm_submit.HOOKS.adopted_dirs

    # ------------------------------------------------------------------ the rule's callables
    def requires_input(self) -> Any:
        """The rule's input: the status files of an experiment's requirements (globs resolved now).

        A plain empty list when no experiment of the workflow has requirements: Snakemake then skips calling a
        function per job. Kept a function outside the main process (a cluster job's Snakemake).
        """
        self._requires_is_function = not self.workflow.is_main_process or self._has_requires
        if not self._requires_is_function:
            return []

        def requires_of(wildcards: Any) -> list[str]:
            self.dag_started()
            path = os.path.normpath(os.path.join(self.cwd, wildcards.exp))
            self.options(wildcards.exp)
            return [os.path.join(self.rel(r), DONE_FILE) for _, r in self.planner.requirements(path) if r]

        # Snakemake inspects an input function's signature for every job unless it carries its parameters in this
        # attribute (snakemake.common's overwrite_function_params): give it the real ones once.
        requires_of._overwrite_params = inspect.signature(requires_of).parameters  # type: ignore[attr-defined]
        return requires_of

    def threads(self, wildcards: Any) -> int:
        self.dag_started()  # also when the main process was given explicit targets (no default target input)
        options = self.options(wildcards.exp)
        if options.get("requires") and not self._requires_is_function:
            # Only an experiment of a set loaded on demand (an explicit target elsewhere) can get here.
            raise ValueError(
                f"{wildcards.exp} has requirements, but this workflow (whose own experiments have none) did not "
                f"schedule them; run it from its own set's folder"
            )
        return int(options.get("threads") or 1)

    def remote_threads(self, wildcards: Any) -> int | None:
        """The CPUs a cluster job of the experiment gets: its own threads (``--max-threads`` still caps them);
        ``None`` for a local run.

        Snakemake caps a rule's threads by ``--cores`` for remote executors too, and the set's default profile says
        ``cores: all`` (this machine's cores, for local runs) while ``xmen run -j N`` passes ``--cores N``: on a
        cluster that would give each job the login node's cores, or N. The plugin takes ``cpus_per_task`` before
        threads, so the job asks SLURM for what the experiment registered, and the job's own Snakemake (given the
        submitting side's ``--cores``) hands the experiment that number as XMEN_THREADS.
        """
        if self.workflow.local_exec:
            return None
        threads = self.threads(wildcards)
        limit = getattr(self.workflow.resource_settings, "max_threads", None)
        return min(threads, limit) if limit else threads

    def resource(self, name: str) -> Callable[[Any, int], Any]:
        """Resource callable: a value, or a list of values per attempt (the last one repeats)."""

        def resource(wildcards: Any, attempt: int) -> Any:
            value = (self.options(wildcards.exp).get("resources") or {}).get(name)
            if isinstance(value, list):
                value = value[min(attempt, len(value)) - 1] if value else None
            if value is None and name == CPUS_PER_TASK:
                value = self.remote_threads(wildcards)
            if value is None:
                # Snakemake skips a None resource, but cannot convert one for sized resources (mem_mb...).
                value = SIZED_FALLBACK.get(name)
            if isinstance(value, str):  # experiment.yml may have been edited by hand: nothing of it may run
                bad = unsafe_resource_char(name, value)
                if bad is not None:
                    raise ValueError(f"{wildcards.exp}: resource {name}={value!r} holds {bad!r}, which only "
                                     f"{SBATCH_WORDS} may hold (fix it in experiment.yml)")
                if name == SBATCH_WORDS:
                    try:
                        value = sbatch_words(value)  # the plugin puts it on sbatch's shell line as it is
                    except ValueError as exc:
                        raise ValueError(f"{wildcards.exp}: {SBATCH_WORDS} {value!r}: {exc}") from None
            return value

        return resource

    def resources(self) -> dict[str, Callable[[Any, int], Any]]:
        """The rule's resources: every name an experiment registered, and ``cpus_per_task`` (see remote_threads)."""
        names: set[str] = {CPUS_PER_TASK}
        for options in self.experiments.values():
            names.update((options.get("resources") or {}).keys())
        return {name: self.resource(name) for name in sorted(names)}

    def retries(self) -> int:
        """The most retries any experiment asked for; 0 outside the main process (a cluster job's Snakemake runs
        the one attempt it was given, as told with --retries 0, which a rule's `retries:` would override).
        Each experiment's own job gets its own number (:meth:`experiment_retries`)."""
        if not self.workflow.is_main_process:
            return 0
        return max([int(options.get("retries") or 0) for options in self.experiments.values()] or [0])

    def experiment_retries(self, wildcards: Any, rule_retries: int, attempt: int | None = None) -> int:
        """The retries of one experiment's job after its attempt ``attempt`` failed: its own, within what the rule
        allows (``retries()``), when its retry policy retries the failure's cause (xmen.store.retry, from its params.yml);
        else none, and its ``_error`` says why it was not retried (a cancellation must stick, too)."""
        exp = getattr(wildcards, "exp", "")
        options = self.options(exp)
        own = int(options.get("retries") or 0)
        if not own:
            return 0
        params = os.path.join(self.cwd, exp, layout.PARAMS_FILE)
        decision = retry.decide(options, _read_params(params), attempt or 1)
        if decision.retry:
            return min(own, rule_retries)
        if attempt is not None and attempt <= own and decision.cause != retry.CANCELLED:
            _note_not_retried(params, options, attempt)
        return 0

    # ------------------------------------------------------------------ the job
    def failed_log(self, log: str, max_lines: int = 100) -> str:
        """The end of a failed experiment's log for the error message, with ``--show-failed-logs``."""
        settings = getattr(self.workflow, "output_settings", None)
        if not getattr(settings, "show_failed_logs", False):
            return ""
        return failed_log_text(log, max_lines)

    def run_experiment(self, wildcards: Any, threads: int, resources: Any, output: Any) -> None:
        """The job (xmen.rule_job): run.sh with its resources in the environment, its output in the log, then the
        status file.

        The experiment sees XMEN_ATTEMPT, XMEN_THREADS and XMEN_<RESOURCE> (e.g. XMEN_MEM_MB). An attempt beyond
        the experiment's own retries fails at once (Snakemake's retries are per rule). The previous attempt's log
        is kept in logs/attempt-N.log; xmen.log is the latest.
        """
        from snakemake.exceptions import WorkflowError
        from snakemake.shell import shell

        exp = wildcards.exp
        refused = self.attempt_refusal(exp, int(resources.get("xmen_attempt") or 1))
        if refused is not None:
            raise WorkflowError(refused)
        try:
            logs.keep_previous_log(exp)
        except OSError as exc:  # a symbolic link at xmen.log or logs/ (LinkError): the shell would write through it
            raise WorkflowError(f"{exp}: {exc}") from None
        if not self.workflow.is_main_process and not self.workflow.local_exec:
            threads = self.remote_threads(wildcards) or threads  # what SLURM was asked for, not this --cores
        command = experiment_command(exp, threads, resources, expect=self.planned.get(os.path.normpath(exp)))
        try:
            shell(command.replace("{", "{{").replace("}", "}}"))
        except subprocess.CalledProcessError as error:
            raise WorkflowError(rule_job.failure(exp, error.returncode) + self.failed_log(os.path.join(exp, RUN_LOG))
                                ) from None
        rule_job.write_missing_status(exp)  # the rule's output, {exp}/xmen.done

    def attempt_refusal(self, exp: str, attempt: int) -> str | None:
        """Why the experiment's attempt ``attempt`` must not run, or None: beyond its own retries (Snakemake's are per
        rule), or its previous attempt failed for a cause its retry policy does not retry (xmen.store.retry: the decision
        Snakemake's restart_times got, kept also where that was not hooked). The rule's run block and a direct
        SLURM job (xmen.rule_job) both ask."""
        options = self.options(exp)
        refused = rule_job.refusal(exp, attempt, int(options.get("retries") or 0))
        if refused is None and attempt > 1:
            decision = retry.decide(options, _read_params(os.path.join(exp, layout.PARAMS_FILE)), attempt - 1)
            if not decision.retry:
                refused = (f"{exp}: not run again, attempt {attempt - 1} ended by {decision.cause}: {decision.why} "
                           f"(see its params.yml _error and {os.path.join(exp, RUN_LOG)})")
        return refused

    def slurm_job(self, job: Any, executor: Any) -> list[rule_job.JobSpec] | None:
        """What a SLURM job of xmen's rule runs without Snakemake inside it (xmen.rule_job): its experiment, or a
        pack's experiments in Snakemake's order. None for a job that keeps the plugin's own job step: a job of
        another rule, an array or MPI job, a workflow without a shared file system or with a storage provider, or
        ``--config xmen_slurm_step=snakemake``.
        """
        if str(self.config.get(SLURM_STEP_CONFIG, "direct")) == "snakemake":
            return None
        members = list(job) if job.is_group() else [job]
        if not members or any(getattr(member.rule, "name", None) != RULE for member in members):
            return None
        if "mpi" in job.resources.keys() or any("mpi" in member.resources.keys() for member in members):
            return None
        arrays = getattr(executor, "array_jobs", None) or ()
        if RULE in arrays or "all" in arrays:
            return None
        storage = self.workflow.storage_settings
        if getattr(storage, "default_storage_provider", None) or not _shares_everything(storage):
            return None
        step = job_step_launcher(job)  # a pack's experiments share its allocation
        cpus = int(job.resources.get(CPUS_PER_TASK) or job.threads or 1) if job.is_group() else None
        return [self._job_spec(member, step, cpus, len(members)) for member in members]

    def _job_spec(self, job: Any, step: list[str], cpus: int | None, pack: int = 1) -> rule_job.JobSpec:
        exp = str(job.wildcards.exp)
        threads = self.remote_threads(job.wildcards) or job.threads
        if cpus is not None:
            threads = max(1, min(threads, cpus))
        resources = {name: value for name, value in job.resources.items() if not _to_be_decided(value)}
        tmpdir = self.tmpdir(job)
        if tmpdir is not None:
            resources["tmpdir"] = tmpdir
        # What planning saw, or (explicit targets: the default target's input did not plan it) what the first
        # submission saw, so that a retried pack does not run again what its first attempt finished.
        expect = self.planned.setdefault(os.path.normpath(exp), done_token(os.path.join(self.cwd, exp)))
        env = rule_job.environment(threads, resources, expect)
        if pack > 1:  # the runner records it: `xmen cancel` of one member then cancels that member alone
            env[ENV_PACK] = str(pack)
        return rule_job.JobSpec(workdir=self.cwd, exp=exp, attempt=int(job.attempt),
                                refused=self.attempt_refusal(exp, int(job.attempt)) or "", env=env, step=step,
                                inputs=[str(path) for path in job.input])

    def tmpdir(self, job: Any) -> str | None:
        """The job's ``tmpdir`` when it was given (registered, ``--default-resources tmpdir=...``); None for
        Snakemake's default, the temporary folder of the machine the job runs on (Snakemake evaluates it there)."""
        try:
            value = job.rule.expand_resources(job.wildcards_dict, job.input, job.attempt).get("tmpdir")
        except Exception:  # noqa: BLE001 - an input function that fails here fails the job where it runs
            return None
        if value is None or _to_be_decided(value) or os.path.normpath(str(value)) == os.path.normpath(
                tempfile.gettempdir()):
            return None
        return str(value)


def _to_be_decided(value: Any) -> bool:
    """Snakemake's placeholder for a resource it evaluates only where the job runs (``tmpdir``: ``<TBD>``)."""
    return type(value).__name__ == "TBDString"


def _shares_everything(storage: Any) -> bool:
    """Whether the compute nodes see the experiments and this Python (Snakemake's default shared file system)."""
    try:
        from snakemake_interface_executor_plugins.settings import SharedFSUsage
    except ImportError:
        return False
    usage = getattr(storage, "shared_fs_usage", ()) or ()
    return SharedFSUsage.INPUT_OUTPUT in usage and SharedFSUsage.SOFTWARE_DEPLOYMENT in usage


def job_step_launcher(job: Any) -> list[str]:
    """``srun`` with the options the plugin's job step gives the rule's code (CPUs, GPUs, one node), computed by the
    plugin's own functions; empty when they are not there."""
    try:
        from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting, get_gpu_setting, get_node_setting
    except ImportError:
        return []
    gpu = any(job.resources.get(key) for key in ("gpus", "gpu", "nvidia_gpu"))
    options = [get_cpu_setting(job, gpu), get_gpu_setting(job), get_node_setting(job)]
    return ["srun", "-n1", "--cpu-bind=q", *(word for option in options for word in shlex.split(option or ""))]


def _read_params(path: str) -> dict[str, Any]:
    """The experiment's params.yml (read only when a job with retries failed); empty when it cannot be read."""
    try:
        data = read_yaml_settled(path)
    except (XmenError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def _note_not_retried(params: str, options: dict[str, Any], attempt: int) -> None:
    """Add to the experiment's ``_error`` why its failed ``attempt`` is not retried (decided on what is on disk)."""
    def change(data: dict[str, Any]) -> None:
        retry.note(data, retry.decide(options, data, attempt))

    try:
        update_yaml(params, change)
    except (XmenError, OSError):
        pass  # the note is for the reader; the decision stands without it


def experiment_command(exp: str, threads: int, resources: Any, expect: str | None = None) -> str:
    """The shell line that runs one experiment's run.sh with its resources in the environment (and, when planning
    saw it, ``XMEN_EXPECT_DONE``: see xmen.run.runner)."""
    return rule_job.shell_line(exp, rule_job.environment(threads, resources, expect))


failed_log_text = rule_job.failed_log_text
