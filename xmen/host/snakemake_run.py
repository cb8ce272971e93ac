"""What this Snakemake is doing with the workflow: which executor it runs it with, and whether the DAG it builds is
a run's (``snakemake``, ``-n``, ``--touch``) or another command's (``--summary``, ``--dag``, ``--report``...).

Snakemake 9.27 says neither while it parses the Snakefile (``workflow.executor_plugin`` and ``workflow.dag_settings``
are still None then: the command line's DAG settings are set after the Snakefile was read, the executor plugin
only in ``Workflow.execute``), so xmen asks when Snakemake first evaluates the rules' input, through what the
workflow exposes by then:

- ``workflow.executor_plugin``: set by ``Workflow.execute`` only, before it builds its DAG; its ``name`` is the
  executor (``local``, ``slurm``, ``dryrun`` for ``-n``, ``touch``);
- ``workflow.scheduler``: made by ``Workflow.execute`` right after its first DAG.

Two things only the call stack tells (:func:`_snakemake_frames`, xmen's one frame walk): the executor a dry run
stands in for, and which command builds a DAG once a run's scheduler exists.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

#: The executors Snakemake runs instead of the one asked for, for ``-n`` and ``--touch``.
PSEUDO_EXECUTORS = ("dryrun", "touch")
_WORKFLOW_SOURCE = os.path.join("snakemake", "workflow.py")
_API_SOURCE = os.path.join("snakemake", "api.py")


def executor_in_use(workflow: Any, dry_run: bool = False) -> str | None:
    """The executor this Snakemake runs the workflow with (``slurm``, ``local``, ``dryrun`` for ``-n``, ``touch``);
    None before Snakemake chose it (while it parses the Snakefile) and for a command that runs nothing
    (``--summary``, ``--dag``...). With ``dry_run``, a dry run (``-n``, or ``--touch``) names the executor it stands
    in for (the planner's verdicts say what that run would do).
    """
    name = getattr(getattr(workflow, "executor_plugin", None), "name", None)
    if name is None:
        return None
    if dry_run and name in PSEUDO_EXECUTORS:
        return _snakemake_frames().stood_in_for
    return str(name)


def builds_dag_for_a_run(workflow: Any = None, frame: Any = None) -> bool:
    """Whether the DAG Snakemake builds now is the one ``Workflow.execute`` runs (a run, dry run or touch), not the
    DAG of a command that runs nothing (``--summary``, ``--dag``, ``--list-changes``, ``--report``...).

    No executor plugin: ``execute`` has not started, so not a run. An executor plugin and no scheduler yet:
    ``execute``'s own DAG. Once the scheduler exists (or without a workflow), the Workflow method on the stack
    tells: a checkpoint's update within ``execute``, or another command on the same workflow afterwards (Snakemake's
    ``--report-after-run`` builds the report's DAG after the run).
    """
    if workflow is not None:
        if getattr(workflow, "executor_plugin", None) is None:
            return False
        if getattr(workflow, "scheduler", None) is None:
            return True
    return "execute" in _snakemake_frames(frame).workflow_methods


@dataclass
class _Frames:
    """What Snakemake's frames on the stack say (see :func:`_snakemake_frames`)."""

    #: Public methods of snakemake.workflow.Workflow on the stack, innermost first (``execute``, ``summary``...).
    workflow_methods: list[str] = field(default_factory=list)
    #: The ``executor`` DAGApi.execute_workflow was given (None when it is not on the stack).
    stood_in_for: str | None = None


def _snakemake_frames(frame: Any = None) -> _Frames:
    """Walk the call stack for what Snakemake 9.27 exposes nowhere else; xmen's only frame walk.

    - The executor a dry run stands in for: ``DAGApi.execute_workflow(executor, pseudo_executor)`` validates the
      workflow against ``executor`` (``slurm`` for ``-n --executor slurm``) but gives the workflow only the
      ``dryrun`` (or ``touch``) plugin, and keeps ``executor`` nowhere but in its frame.
    - The Workflow method that builds a DAG once a run's scheduler exists (:func:`builds_dag_for_a_run`): the
      workflow keeps its executor plugin and scheduler after ``execute``, and no setting says which command the
      DAG is for.
    """
    frame = frame if frame is not None else sys._getframe(1)
    found = _Frames()
    while frame is not None:
        code = frame.f_code
        if code.co_filename.endswith(_WORKFLOW_SOURCE) and not code.co_name.startswith("_"):
            found.workflow_methods.append(code.co_name)
        elif code.co_name == "execute_workflow" and code.co_filename.endswith(_API_SOURCE):
            executor = frame.f_locals.get("executor")
            found.stood_in_for = str(executor) if executor else None
        frame = frame.f_back
    return found
