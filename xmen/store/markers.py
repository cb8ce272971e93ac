"""The queued marker: an experiment whose SLURM job is submitted and has not started it yet.

The submission hooks (xmen.host.slurm_submit) write :data:`~xmen.store.layout.MARKER_FILE` with the job id and the
submission time; the runner removes it when the experiment starts; readers ask SLURM about the job
(xmen.slurm.queue). A submission SLURM rejects is recorded in params.yml (:func:`record_rejected`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from xmen.store import files
from xmen.store import status as st
from xmen.store.layout import MARKER_FILE, PARAMS_FILE, RUN_KEYS, comments
from xmen.store.provenance import now_time

#: Prefix of the ``_error`` of an experiment whose submission SLURM rejected.
REJECTED = "submission rejected by SLURM"
#: Prefix of the ``_error`` of an experiment xmen's SLURM preflight kept from ``sbatch`` (SLURM never saw it).
REFUSED = "not submitted, SLURM would reject it"
#: A SLURM job id: ``123``, or an array task ``123_4``.
_JOB_ID = re.compile(r"[0-9]+(?:_[0-9]+)?")


@dataclass(frozen=True)
class Marker:
    """What :data:`MARKER_FILE` says: the SLURM job id (``123`` or an array task ``123_4``) and when it was
    submitted."""

    job_id: str
    submitted: str = ""
    #: The job's name (the plugin's run uuid), to tell it from another job that got the same id later.
    name: str = ""
    #: How many experiments the job runs (more than one: a pack, which ``xmen cancel`` cancels member by member).
    pack: int = 1


def is_job_id(text: str) -> bool:
    """Whether ``text`` is a SLURM job id (``123`` or ``123_4``), not an option or anything else."""
    return bool(_JOB_ID.fullmatch(text))


def mark(exp_dir: str | os.PathLike[str], job_id: str, name: str = "", pack: int = 1) -> None:
    """Record that ``exp_dir``'s job ``job_id`` (job name ``name``, when known; running ``pack`` experiments) was
    submitted (atomically: a reader sees the old or the new)."""
    record: dict[str, Any] = {"job_id": str(job_id), "submitted": now_time()}
    if name:
        record["name"] = str(name)
    if pack > 1:
        record["pack"] = int(pack)
    text = yaml.safe_dump(record, sort_keys=False)
    files.write_text_atomic(os.path.join(os.fspath(exp_dir), MARKER_FILE), text)


def marker(exp_dir: str | os.PathLike[str]) -> Marker | None:
    """The experiment's marker, or None (no marker, or an unreadable one)."""
    data = files.read_mapping(os.path.join(os.fspath(exp_dir), MARKER_FILE))
    job_id = str(data.get("job_id") or "").strip() if isinstance(data, dict) else ""
    if not is_job_id(job_id):  # a hand-edited or damaged marker names no job
        return None
    pack = data.get("pack")
    return Marker(job_id, str(data.get("submitted") or ""), str(data.get("name") or ""),
                  pack if isinstance(pack, int) and not isinstance(pack, bool) and pack > 1 else 1)


def unmark(exp_dir: str | os.PathLike[str]) -> None:
    """Remove the marker (the runner does when the experiment starts)."""
    try:
        os.unlink(os.path.join(os.fspath(exp_dir), MARKER_FILE))
    except FileNotFoundError:
        pass


def record_rejected(exp_dir: str | os.PathLike[str], reason: str, refused: bool = False) -> None:
    """Record in the experiment's params.yml that SLURM rejected its submission (``_error: submission rejected by
    SLURM: <reason>``), or with ``refused`` that the preflight kept it from sbatch because SLURM would (``_error:
    not submitted, SLURM would reject it: <reason>``); ``error`` either way. No run started: ``_run`` is left alone."""
    def change(data: dict[str, Any]) -> None:
        data["_status"] = st.ERROR
        data["_error"] = f"{REFUSED if refused else REJECTED}: {reason}"

    files.update_yaml(os.path.join(os.fspath(exp_dir), PARAMS_FILE), change, comments(RUN_KEYS))
