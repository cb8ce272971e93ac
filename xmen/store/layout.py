"""Where everything of a set lives on disk: every file name xmen reads or writes, and every key comment.

The one home of these names: other modules import them from here and never spell them out. A set is a folder::

    <set>/experiment.yml     SET_FILE: the set (type, options, the linked experiments and their run options)
    <set>/defaults.yml       DEFAULTS_FILE: the parameters every experiment starts from
    <set>/script.sh          SCRIPT_FILE: what runs one experiment
    <set>/Snakefile          SNAKEFILE, and profiles/default/config.yaml (PROFILE_DIR): the generated workflow
    <set>/.xmen/             XMEN_DIR: the last run's log, where xmen is installed (the listing index of a set is
                             in the user's cache folder: CACHE_DIR, INDEX_CACHE_DIR)
    <set>/<experiment>/      one folder per experiment:
        params.yml           PARAMS_FILE: its parameters and state (the keys starting with ``_``)
        run.sh               RUN_FILE: generated; ``python -m xmen.job`` runs the experiment
        xmen.done            DONE_FILE: Snakemake's target, written last when it finished
        xmen.log             RUN_LOG: output of its latest attempt; earlier ones in logs/ (LOGS_DIR)
        history.jsonl        HISTORY_FILE: every message() in order
        .xmen-experiment     EXPERIMENT_MARKER: xmen created this folder
        .xmen-job.lock       LOCK_FILE: held by whoever runs it; one line per run started or ended
        .xmen-heartbeat      HEARTBEAT_FILE: touched while it runs
        .xmen-queued         MARKER_FILE: its SLURM job is submitted and has not started it
        .xmen-reserve        RESERVE_FILE: space kept aside while it runs, to record the outcome on a full disk

Paths written on users' disks and in the README keep working whatever moves inside the package:
``python -m xmen.job`` (every run.sh), ``python -m xmen.experiment``, ``python -m xmen.rule_job`` (queued SLURM
jobs) and ``xmen.snakemake_glue`` (every set's Snakefile).
"""
from __future__ import annotations

import os
from pathlib import Path

# ------------------------------------------------------------------------------------------------------ a set
SET_FILE = "experiment.yml"
DEFAULTS_FILE = "defaults.yml"
SCRIPT_FILE = "script.sh"
SNAKEFILE = "Snakefile"
#: The set's workflow profiles; ``default`` is the one Snakemake applies by itself in the set's folder.
PROFILES_DIR = "profiles"
PROFILE_DIR = Path(PROFILES_DIR) / "default"
PROFILE_FILE = os.path.join(PROFILES_DIR, "default", "config.yaml")
#: xmen's own folder in a set.
XMEN_DIR = ".xmen"
#: Where the xmen that wrote the Snakefile is installed (read by a snakemake from another environment).
XMEN_PATH_FILE = Path(XMEN_DIR) / "xmen-path"
#: The listing's index of a set (and the changes since it was written), in the set's folder of INDEX_CACHE_DIR.
INDEX_FILE = "index.json"
DELTA_FILE = "index-delta.json"
#: The user's cache folder of xmen, in ``$XDG_CACHE_HOME`` (else ``~/.cache``), and its folder of listing indexes
#: (one folder per set, named by a hash of the set's real path): a listing writes nothing into the sets it reads.
CACHE_DIR = "xmen"
INDEX_CACHE_DIR = "list-index"
#: Snakemake's log of the last ``xmen run`` of the set.
LAST_RUN_LOG = Path(XMEN_DIR) / "last-run.log"
#: Lock a set-wide ``xmen run`` holds.
SET_RUN_LOCK = Path(XMEN_DIR) / "run.lock"
#: The files xmen writes in a set's XMEN_DIR (the listing index lived there before it moved to the user's cache),
#: and the prefix of the list of targets ``xmen run`` hands Snakemake there: ``rm`` deletes these, keeps the rest.
XMEN_DIR_FILES = (XMEN_PATH_FILE.name, LAST_RUN_LOG.name, SET_RUN_LOCK.name, INDEX_FILE, DELTA_FILE)
TARGETS_PREFIX = "targets-"
#: A hidden folder ``clean`` and ``rm`` move an experiment folder into before deleting it (one rename: a kill never
#: leaves a half-deleted folder that still looks like an experiment), marked by TRASH_MARKER while it holds anything.
TRASH_PREFIX = ".xmen-trash-"
TRASH_MARKER = ".xmen-trash"
#: Top-level entries of a set that xmen itself writes (init, register, run, list, Snakemake started in the set).
SET_ENTRIES = (SET_FILE, DEFAULTS_FILE, SCRIPT_FILE, SNAKEFILE, XMEN_DIR, ".snakemake")

# ------------------------------------------------------------------------------------------- an experiment
PARAMS_FILE = "params.yml"
RUN_FILE = "run.sh"
#: Snakemake's target for an experiment: written last, by whoever ran it, when it finished.
DONE_FILE = "xmen.done"
#: The first line of every status file xmen writes (xmen.store.attempts.done_text): a regular file saying it.
DONE_FIRST_LINE = "finished"
#: Output of the latest attempt; the earlier ones are kept in LOGS_DIR as ``attempt-N.log``.
RUN_LOG = "xmen.log"
LOGS_DIR = "logs"
#: Every ``message()`` of the experiment, in order.
HISTORY_FILE = "history.jsonl"
#: Where ``--debug`` and ``--to_root`` experiments write their output (the original xmen's name).
OUT_FILE = "out.txt"
#: xmen created this folder (destructive commands delete only folders that carry it).
EXPERIMENT_MARKER = ".xmen-experiment"
#: Held by whoever runs the experiment (the runner, or a direct ``--execute``); one line per run started or ended.
LOCK_FILE = ".xmen-job.lock"
#: Touched while the experiment runs; readers turn a stale ``running`` into ``lost``.
HEARTBEAT_FILE = ".xmen-heartbeat"
#: The experiment's SLURM job is submitted and has not started it yet.
MARKER_FILE = ".xmen-queued"
#: Space the runner keeps aside while the experiment runs, freed to record the outcome when the disk filled up.
RESERVE_FILE = ".xmen-reserve"
#: The reserve's size: RESERVE_BYTES zero bytes (a file of zeros no longer than this is xmen's reserve, or what a
#: kill while writing it left; anything else at that name is the user's, and a run refuses to touch it).
RESERVE_BYTES = 256 * 1024

#: An experiment's files and folders a run writes, and a set's that ``xmen run`` writes: a symbolic link at any of
#: them is refused before the run starts (xmen never writes its own files through a link).
EXPERIMENT_RUN_WRITES = (PARAMS_FILE, f".{PARAMS_FILE}.lock", LOCK_FILE, HEARTBEAT_FILE, RESERVE_FILE, RUN_LOG,
                         LOGS_DIR, HISTORY_FILE, DONE_FILE, MARKER_FILE, OUT_FILE)
#: A set's files every command that changes the set (re)writes: its Snakefile and default profile.
SET_WORKFLOW_WRITES = (SNAKEFILE, XMEN_PATH_FILE, PROFILE_FILE)
SET_RUN_WRITES = (LAST_RUN_LOG, SET_RUN_LOCK, *SET_WORKFLOW_WRITES)

# ---------------------------------------------------------------------------------------------- the machine
#: The global configuration's folder in the home folder (``$XMEN`` names another).
GLOBAL_CONFIG_DIR = ".xmen"
#: The global configuration, in ``$XMEN`` or ``~/.xmen``.
CONFIG_FILE = "config.yml"
#: The original xmen's global configuration of 2021 (its ``Config``), read while no config.yml of ours exists.
ORIGINAL_CONFIG_FILE = "xmen.yml"

# ------------------------------------------------------------------------------------------- key comments
#: Comments of the keys of experiment.yml.
SET_COMMENTS = {
    "root": "Folder of this set (relink updates it after a move)",
    "type": "Experiment type",
    "created": "When the set was created",
    "purpose": "What the set is for",
    "notes": "Notes added with xmen note",
    "options": "Run options every experiment gets unless it sets its own",
    "experiments": "Linked experiments and their run options (resources, threads, retries, retry_on, requires)",
    "init_created": "What xmen init created here (xmen rm deletes only xmen's own files)",
    "before_init": "What was here before xmen init: xmen rm never deletes these",
}
#: Comments of the ``_`` keys of params.yml, whoever writes them (register, the Experiment class, the runner),
#: in the order an experiment writes them (its parameters follow).
PARAMS_COMMENTS = {
    "_created": "The date the experiment was created",
    "_version": "Experiment version information",
    "_meta": "Machine and user that registered the experiment",
    "_name": "The name of the experiment (its folder)",
    "_root": "The experiment set it belongs to",
    "_status": "default | registered | running | finished | error | stopped | timeout | cancelled",
    "_purpose": "A description of the experiment purpose",
    "_messages": "Messages left by the experiment",
    "_run": "The last run: host, pid, start and end time, return code",
    "_error": "Why the last run did not finish",
    "_repeat": "Which of the -x N repeats this is (1..N)",
}
#: The ``_`` keys a defaults.yml may hold (the Experiment class writes them); every other ``_`` key is xmen's.
DEFAULTS_KEYS = ("_created", "_version", "_meta")
#: The keys register writes (its comments, in PARAMS_COMMENTS).
REGISTER_KEYS = ("_name", "_root", "_status", "_created", "_purpose", "_version", "_meta", "_messages", "_repeat")
#: The keys the Experiment class writes first, in this order.
EXPERIMENT_KEYS = ("_created", "_version", "_meta", "_name", "_root", "_status", "_purpose", "_messages", "_run",
                   "_error")
#: The keys a run writes.
RUN_KEYS = ("_status", "_run", "_error")
#: Comments of the keys a run writes, as every run has written them (xmen.store.lifecycle; the Experiment class
#: writes its own, META_COMMENTS).
RUN_COMMENTS = {
    "_status": "One of registered, running, finished, error, stopped, timeout, cancelled",
    "_run": "The last run: host, pid, start and end time, return code",
    "_error": "Why the last run did not finish",
}


def comments(keys: tuple[str, ...]) -> dict[str, str]:
    """The comments of ``keys`` (of params.yml), in that order."""
    return {key: PARAMS_COMMENTS[key] for key in keys}


#: Comments of the global configuration's keys.
CONFIG_COMMENTS = {
    "prompt": "Ask for a purpose when a set is initialised (never when stdin is not a terminal)",
    "python_paths": "Folders put on PYTHONPATH for experiment modules",
    "experiments": "Experiment classes: name -> script that defines them",
    "header": "Text put at the top of every generated run.sh (after the shebang)",
    "sets": "Experiment sets created on this machine",
}

#: A Monitor's checkpoints: ``<experiment>/checkpoints/<name>/<step>.pkl`` (or .pt).
CHECKPOINTS_DIR = "checkpoints"
