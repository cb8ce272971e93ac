"""Experiment statuses and the rules for which status a folder really has.

A process that dies without reporting (``kill -9``, OOM, node loss) cannot write its own status, so a running
experiment keeps a heartbeat file fresh; a stale heartbeat turns ``running`` into ``lost`` when read.
"""
from __future__ import annotations

DEFAULT = "default"
REGISTERED = "registered"
RUNNING = "running"
FINISHED = "finished"
ERROR = "error"
STOPPED = "stopped"
TIMEOUT = "timeout"
LOST = "lost"
#: Submitted to SLURM, not started yet: never stored in params.yml, read from the marker file (xmen.slurm_queue)
#: and squeue.
QUEUED = "queued"

ALL = (DEFAULT, REGISTERED, QUEUED, RUNNING, FINISHED, ERROR, STOPPED, TIMEOUT, LOST)
FAILED = (ERROR, STOPPED, TIMEOUT, LOST)

#: Name of the status file Snakemake targets; written last by the rule, only when the experiment finished.
DONE_FILE = "xmen.done"
#: Heartbeat file touched by a running experiment (see xmen.heartbeat).
HEARTBEAT_FILE = ".xmen-heartbeat"
#: Seconds between heartbeats, and how stale a heartbeat may get before the experiment counts as lost.
HEARTBEAT_INTERVAL = 15.0
LOST_AFTER = 4 * HEARTBEAT_INTERVAL
