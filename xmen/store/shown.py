"""What a user sees of an experiment: :func:`shown_status`, the one function that derives it.

params.yml records a status (``_status``); what is true now may differ in two ways, and every reader asks here:

- **lost**: a ``running`` experiment whose process is gone (heartbeat stale, run lock free, pid dead:
  xmen.store.heartbeat). This needs the experiment's folder.
- **queued**: an experiment whose SLURM job waits in the queue (its marker, xmen.store.markers, and squeue). This
  needs SLURM's queue, and the statuses under which a marker is believed (:func:`xmen.store.status.may_be_queued`).

Who calls it: ``xmen list`` (xmen.look.rows, and through it ``to_dataframe``, ``xmen compare`` and ``xmen report``),
the planner (xmen.run.planner: ``xmen run``, the Snakefile), ``xmen cancel`` (xmen.run.cancel) and the progress line
of ``xmen run`` (xmen.run.progress).

Why the queue is an argument: asking SLURM is xmen.slurm's business, a layer above this one, and a reader of many
experiments must ask squeue ONCE for all of them, not once each. So the caller hands in a *queue view* it keeps for
the whole listing or plan; xmen.slurm.queue.QueueView is the one implementation, and anything with its method will
do (duck-typed)::

    queue.about(exp_dir: str) -> None | answer with .job_id: str, .queued: bool, .why: str

``None`` when the experiment has no queued marker (or the view does not count it); else whether its job is still
in the queue (or starting) and what to say about it. The rules about statuses stay here, the rules about SLURM
there, and callers that never ask SLURM (``xmen cancel`` reads the marker's job id itself, progress) import nothing
of it.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from xmen.store import status as st
from xmen.store.heartbeat import effective_status


def shown_status(
    params: Mapping[str, Any] | None,
    exp_dir: str | os.PathLike[str] | None = None,
    queue: Any = None,
) -> st.Status:
    """What a user sees of the experiment whose parsed params.yml is ``params`` (in folder ``exp_dir``).

    The recorded ``_status`` (``default`` when there is none), or :data:`~xmen.store.status.UNKNOWN` when
    ``params`` is None (not read: only the queue can tell). With ``exp_dir``, a dead ``running`` experiment is
    ``lost``; ``params`` then needs ``_run``/``_started`` of a running one (see
    :func:`xmen.store.heartbeat.effective_status`). With ``exp_dir`` and a ``queue`` view (see the module
    docstring), an experiment that may be queued (:func:`~xmen.store.status.may_be_queued`) and whose job is still
    in the queue is ``queued``; ``why`` and ``job_id`` say what the view says of its marker. Nothing is written.
    """
    if params is None:
        value = st.UNKNOWN
    else:
        recorded = params.get("_status")
        value = st.DEFAULT if recorded is None else recorded if recorded.__class__ is str else str(recorded)
        if value == st.RUNNING and exp_dir is not None:
            try:
                value = effective_status(params, exp_dir)
            except OSError:
                value = st.RUNNING  # cannot tell: what it recorded
    if queue is None or exp_dir is None or not st.may_be_queued(value):
        return st.Status(value)
    answer = queue.about(os.fspath(exp_dir))
    if answer is None:
        return st.Status(value)
    return st.Status(st.QUEUED if answer.queued else value, answer.why, answer.job_id)
