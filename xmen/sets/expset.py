"""An experiment set: a folder of experiments sharing one script, one defaults.yml and one Snakefile.

The folders are the source of truth. ``experiment.yml`` records the set (type, purpose, notes) and which
experiment folders are linked, with their run options (resources, threads, retries and their policy, requirements); the Snakefile
reads it. Every change to ``experiment.yml`` is a locked read-modify-write, and a command that fails validation
changes nothing: folders are written only after the whole request was checked, and removed again if writing fails.
"""
from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from xmen.store import config as global_config
from xmen.store import files, naming, ownership, statecheck, status
from xmen.sets import snakefile
from xmen.store import origin as _origin
from xmen.errors import NotASetError, SetExistsError, StateFileError, UsageError, XmenError
from xmen.store.layout import (DEFAULTS_FILE, PARAMS_FILE, PROFILE_FILE, PROFILES_DIR, RUN_FILE, SCRIPT_FILE,
                               SET_COMMENTS, SET_FILE, SET_RUN_LOCK, TRASH_MARKER, TRASH_PREFIX,
                               XMEN_DIR)
from xmen.store.shown import shown_status
from xmen.store.attempts import done_text
from xmen.store.legacy import (backup_if_original_set, convert_set, finished_by_original, is_original_set,
                               keep_backup, migrated_from_original, original_class_script)
from xmen.store.notes import EXPERIMENT_NOTES, SET_NOTES, edit_notes
from xmen.store.locks import flock_held, lock_held, release, try_lock
from xmen.store.provenance import now_time
from xmen.sets import register as registering
from xmen.sets.register import MAX_EXPERIMENTS, RegisterResult
from xmen.sets.runscript import existing_header, render_class_script, render_run_script


def is_set(root: str | os.PathLike[str]) -> bool:
    return (Path(root) / SET_FILE).is_file()


def refuse_empty_folder(root: str | os.PathLike[str]) -> None:
    """An empty folder name (an unset variable) is an error, never the current folder (``.`` names that)."""
    if not os.fspath(root).strip():
        raise UsageError("empty folder (an unset variable?); use . for the current folder")


def refuse_nested_set(root: Path) -> None:
    """Refuse a set in the file system's root, or inside another set or an experiment folder (the outer set's
    ``clean`` or ``rm`` would take it for part of its own), naming the enclosing set."""
    if root.parent == root:
        raise UsageError(f"refusing to make a set in {root}, the root of the file system; pick a folder of its own")
    enclosing = ownership.enclosing_set(root)
    if enclosing is not None:
        where, what = enclosing
        raise UsageError(f"refusing a set inside {what} {where}: {root} (pick a folder outside it)")


def _now() -> str:
    return now_time()


class ExperimentSet:
    """The experiment set at ``root`` (raises NotASetError if there is none)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        refuse_empty_folder(root)
        self.root = Path(os.path.abspath(os.path.expanduser(root)))
        if not self.root.is_dir():
            raise NotASetError(f"no such folder: {self.root}")
        if not is_set(self.root):
            raise NotASetError(f"not an experiment set (no {SET_FILE}): {self.root}")
        #: Folders the last ``relink(pattern)`` matched but left alone, with why.
        self.relink_left: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"ExperimentSet({str(self.root)!r})"

    # ------------------------------------------------------------------ reading
    @property
    def set_file(self) -> Path:
        return self.root / SET_FILE

    def data(self) -> dict[str, Any]:
        """The parsed experiment.yml, checked to have the shape of a set (StateFileError ``path: what is wrong``).

        Every command reads the set through here, so a damaged file stops it before it changes anything. A file
        written by the original xmen is read as ours (see xmen.store.legacy) before it is checked.
        """
        data = convert_set(files.read_yaml(self.set_file))
        return statecheck.check_set_data(self.set_file, data)  # type: ignore[return-value]

    def _save_set(self, data: dict[str, Any]) -> None:
        """Replace experiment.yml (caller holds its lock); the original xmen's version is kept as a backup first."""
        statecheck.check_set_data(self.set_file, data)
        try:
            on_disk = files.read_yaml(self.set_file)
        except StateFileError:
            on_disk = {}
        if is_original_set(on_disk):
            snakefile.refuse_links(self.root)  # migration ends with the Snakefile: refused before it starts
            self._migrate_original(on_disk, data)
        backup_if_original_set(self.set_file)
        files.write_yaml(self.set_file, data, SET_COMMENTS)

    def _point_here(self, names: Iterable[str], data: dict[str, Any]) -> None:
        """Make experiments ``names`` name this folder: each params.yml's ``_root``, and each run.sh rewritten (its
        header kept) to run the set's script through xmen's job runner. After a move, and on migration."""
        script_path = self.root / str(data.get("script") or SCRIPT_FILE)
        header_cache: dict[str, str] = {}
        root_text = str(self.root)
        for exp_name in names:
            exp_dir = self.root / exp_name
            if not (exp_dir / PARAMS_FILE).is_file():
                continue
            files.update_yaml(exp_dir / PARAMS_FILE, lambda p: p.__setitem__("_root", root_text))
            header = existing_header(exp_dir / RUN_FILE, header_cache)
            files.write_text_atomic(
                exp_dir / RUN_FILE, render_run_script(exp_dir, script_path, header, sys.executable), mode=0o755
            )

    def _migrate_original(self, on_disk: dict[str, Any], data: dict[str, Any]) -> None:
        """What a set of the original xmen needs besides its experiment.yml (``on_disk``), before that file is first
        rewritten as ``data`` (caller holds its lock). Each folder its experiment.yml lists carries our marker from
        now on (clean and rm know them once the migrated file no longer says which they were); each experiment it
        finished gets its status file (finished means finished: xmen.store.legacy.finished_by_original); a 2021
        class set's script.sh, which exec'd the original's launcher, runs the class with xmen (backup kept). Whichever
        command writes first, the set then runs: each run.sh goes through xmen's job runner (its header kept), each
        params.yml names this folder, and the Snakefile is written."""
        script_path = self.root / str(data.get("script") or SCRIPT_FILE)
        root_text = str(self.root)
        names = [n for n in convert_set(on_disk)["experiments"]
                 if (self.root / n).is_dir() and not (self.root / n).is_symlink()]
        self._point_here(names, data)
        for exp_name in names:
            exp_dir = self.root / exp_name
            if not ownership.is_marked_experiment(exp_dir):
                ownership.mark_experiment(exp_dir)
        self._write_original_status_files(names)
        if script_path.is_file() and not script_path.is_symlink():
            text = script_path.read_text(encoding="utf-8", errors="replace")
            found = original_class_script(text, root_text, str(on_disk.get("root") or ""))
            if found is not None:
                keep_backup(script_path, text)
                files.write_text_atomic(script_path, render_class_script(*found, sys.executable), mode=0o755)
        snakefile.write_workflow(self.root)

    def _write_original_status_files(self, names: Iterable[str]) -> list[str]:
        """Write the status file of each of ``names`` the original xmen finished (finished means finished:
        xmen.store.legacy.finished_by_original); the names written."""
        written = []
        for exp_name in names:
            exp_dir = self.root / exp_name
            done = exp_dir / status.DONE_FILE
            if exp_dir.is_symlink() or os.path.lexists(done):
                continue
            if finished_by_original(files.read_mapping(exp_dir / PARAMS_FILE)):
                files.write_text_atomic(done, done_text({}))
                written.append(exp_name)
        return written

    def finish_migration(self) -> list[str]:
        """A set an older xmen migrated from the original before finished meant finished: write the status files of
        the experiments the original finished (those migration writes today); the names written."""
        if not migrated_from_original(self.root):
            return []
        with files.locked(self.set_file):
            return self._write_original_status_files(self.experiments)

    @property
    def experiments(self) -> list[str]:
        """Names of the linked experiments, in registration order."""
        return [str(name) for name in (self.data().get("experiments") or {})]

    def match(
        self, patterns: Iterable[str] | str | None, linked_only: bool = True, names: Iterable[str] | None = None
    ) -> list[str]:
        """Linked experiment names matching any glob (by name, or by ``root/name`` for absolute globs).

        ``names``: the linked names when the caller already parsed experiment.yml (saves parsing it again).
        """
        if isinstance(patterns, str):
            patterns = [patterns]
        patterns = list(patterns or ["*"])
        if names is not None:
            names = [str(name) for name in names]
        else:
            names = self.experiments if linked_only else self._experiment_folders()
        if "*" in patterns:  # matches every name (fnmatch's '*' matches any text)
            return list(names)
        chosen = []
        for name in names:
            full = str(self.root / name)
            if any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(full, p) for p in patterns):
                chosen.append(name)
        return chosen

    def _experiment_folders(self) -> list[str]:
        found = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                if os.path.isfile(os.path.join(entry.path, PARAMS_FILE)):
                    found.append(entry.name)
        return found

    def params(self, name: str) -> dict[str, Any]:
        """One experiment's params.yml, checked like ``data`` (StateFileError ``path: what is wrong``)."""
        return params_of(self.root / name)

    def status_of(self, name: str) -> str:
        """The status of one experiment as a user should see it (a dead ``running`` one is ``lost``)."""
        return status_of(self.root / name)

    # ------------------------------------------------------------------ creating
    @classmethod
    def init(
        cls,
        root: str | os.PathLike[str],
        *,
        name: str | None = None,
        script: str | os.PathLike[str] | None = None,
        defaults: str | os.PathLike[str] | None = None,
        purpose: str = "",
    ) -> "ExperimentSet":
        """Create a set from a configured Python experiment (``name``) or a shell ``script`` + ``defaults``.

        Refuses, changing nothing, if ``root`` already holds a set. The files are staged in a hidden folder and
        moved in with experiment.yml last, so an interrupted init never leaves a half set behind.
        """
        refuse_empty_folder(root)
        root_path = Path(os.path.abspath(root))
        if is_set(root_path):
            raise SetExistsError(f"already an experiment set: {root_path}")
        refuse_nested_set(root_path)
        if (name is None) == (script is None):
            raise UsageError("give either -n NAME (a configured experiment) or -s SCRIPT with -d DEFAULTS")
        if script is not None and defaults is None:
            raise UsageError("-s SCRIPT needs -d DEFAULTS (a defaults.yml for the script)")
        if root_path.exists() and not root_path.is_dir():
            raise UsageError(f"not a folder: {root_path}")
        naming.check_visible("set name", root_path.name)
        naming.check_new_folder("set name", root_path)
        global_config.load()  # a damaged global configuration stops init before it writes anything
        created_root = not root_path.exists()
        root_path.mkdir(parents=True, exist_ok=True)
        before = sorted(os.listdir(root_path))  # what rm must never delete
        files.refuse_links(root_path, [PROFILE_FILE])  # a linked profiles/ (or default/) is never written into
        staging = Path(tempfile.mkdtemp(prefix=".xmen-init-", dir=root_path))
        moved: list[Path] = []
        created: list[str] = []
        try:
            if name is not None:
                exp_type = _init_python(staging, name)
            else:
                exp_type = _init_script(staging, Path(script), Path(defaults))  # type: ignore[arg-type]
            snakefile.write_workflow(staging)
            for entry in [DEFAULTS_FILE, SCRIPT_FILE, snakefile.SNAKEFILE, PROFILES_DIR]:
                target = root_path / entry
                if entry in (DEFAULTS_FILE, SCRIPT_FILE) and _same_file_text(target, staging / entry):
                    continue  # the folder's own script.sh/defaults.yml (a bare init): used where they are
                if target.exists() or target.is_symlink():  # a link there is never replaced
                    if entry == PROFILES_DIR and target.is_dir():
                        # Keep the user's other profiles; only ours is placed, never over one of theirs.
                        ours = staging / PROFILE_FILE
                        profile = root_path / PROFILE_FILE
                        if profile.exists() or profile.is_symlink():
                            if profile.read_bytes() != ours.read_bytes():
                                raise SetExistsError(f"{profile} exists; refusing to overwrite it")
                            continue
                        profile.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(ours, profile)
                        moved.append(profile)
                        created.append(PROFILE_FILE)
                        continue
                    raise SetExistsError(f"{target} exists; refusing to overwrite it")
                os.replace(staging / entry, target)
                moved.append(target)
                created.append(entry)
            set_data = {
                "root": str(root_path),
                "type": exp_type,
                "created": _now(),
                "purpose": purpose or "",
                "script": SCRIPT_FILE,
                "defaults": DEFAULTS_FILE,
                "notes": [],
                "options": {},
                "experiments": {},
            }
            set_data.update(ownership.init_record(created + [SET_FILE], before))
            set_data["origin"] = _origin.here(root_path)
            files.write_yaml(root_path / SET_FILE, set_data, SET_COMMENTS)
        except BaseException:
            for path in moved:
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
            if created_root:
                shutil.rmtree(root_path, ignore_errors=True)
            raise
        shutil.rmtree(staging, ignore_errors=True)
        global_config.remember_set(root_path)
        return cls(root_path)

    # ------------------------------------------------------------------ registering
    def register(
        self,
        updates: str | dict[str, Any] | None = None,
        *,
        name: str | None = None,
        repeats: int = 1,
        purpose: str = "",
        header: str | None = None,
        strict: bool = False,
        resources: str | dict[str, Any] | None = None,
        threads: int | None = None,
        retries: int | None = None,
        retry_on: str | None = None,
        requires: Iterable[str] = (),
        seed_param: str | None = None,
        max_experiments: int | None = MAX_EXPERIMENTS,
    ) -> RegisterResult:
        """Register every combination of the sweep ``updates`` as an experiment folder (see xmen.sets.register).

        Everything is validated before the first folder is written (the number of combinations before any is
        built); if writing fails, what was written is removed. experiment.yml and the Snakefile are written once,
        whatever the size of the sweep. Running the same registration again after it was killed finishes it.
        """
        refuse_nested_set(self.root)
        return registering.register(
            self.root, self._save_set, self.data, updates, name=name, repeats=repeats, purpose=purpose, header=header,
            strict=strict, resources=resources, threads=threads, retries=retries, retry_on=retry_on,
            requires=requires, seed_param=seed_param, max_experiments=max_experiments,
        )

    # ------------------------------------------------------------------ notes
    def note(self, message: str, delete: bool = False, experiments: str | None = None) -> list[str]:
        """Add (or delete) a note on the set, or on the experiments matching ``experiments``.

        Over many experiments, a broken one (damaged params.yml, note not there) does not stop the others: they are
        noted and :class:`SomeFailed` names the broken ones at the end.
        """
        if not message.strip():
            raise UsageError("empty note")
        if experiments is None:
            self._update_set(edit_notes(SET_NOTES, message, delete))
            return []
        names = self.match(experiments)
        if not names:
            raise UsageError(f"no linked experiment matches {experiments!r}")
        self._refuse_params_links(names)
        done: list[str] = []
        failed: list[tuple[str, str]] = []
        edit = edit_notes(EXPERIMENT_NOTES, message, delete)
        for exp_name in names:
            try:
                _update_params(self.root / exp_name / PARAMS_FILE, edit)
            except XmenError as exc:
                failed.append((exp_name, str(exc)))
            else:
                done.append(exp_name)
        if failed:
            raise SomeFailed("removed the note from" if delete else "noted", done, failed)
        return done

    def _refuse_params_links(self, names: Iterable[str]) -> None:
        """Refuse (LinkError naming it) a symbolic link at the params.yml (or its lock) of any of ``names``, before a
        command over them writes the first one: a link is no broken experiment to skip, and none is half done."""
        for exp_name in names:
            files.refuse_links(self.root / exp_name, (PARAMS_FILE, files.lock_path(PARAMS_FILE)))

    def _update_set(self, change) -> dict[str, Any]:
        """Locked read-modify-write of experiment.yml through ``data`` (checked, original format converted) and
        ``_save_set``: a damaged file is refused, writing nothing."""
        with files.locked(self.set_file):
            data = self.data()
            result = change(data)
            if result is not None:
                data = result
            self._save_set(data)
            return data

    # ------------------------------------------------------------------ state changes
    def reset(self, pattern: str | Iterable[str] = "*", statuses: Iterable[str] = ()) -> list[str]:
        """Set matching experiments back to ``registered`` and remove their status file, so they run again.

        Experiments still running (live heartbeat) are left alone. A broken experiment (damaged params.yml) does
        not stop the others: they are reset and :class:`SomeFailed` names the broken ones at the end.
        """
        wanted = set(statuses)
        unknown = wanted - set(status.ALL)
        if unknown:
            raise UsageError(f"unknown status {sorted(unknown)[0]!r} (one of {', '.join(status.ALL)})")
        names = self.match(pattern)
        if not names:
            shown = pattern if isinstance(pattern, str) else " ".join(pattern)
            raise UsageError(f"no linked experiment matches {shown!r}")
        snakefile.refuse_links(self.root)  # before the first params.yml changes
        self._refuse_params_links(names)
        done: list[str] = []
        failed: list[tuple[str, str]] = []

        def back_to_registered(params: dict[str, Any]) -> None:
            params["_status"] = status.REGISTERED
            params["_reset"] = _now()
            params.pop("_run", None)
            params.pop("_error", None)

        for exp_name in names:
            exp_dir = self.root / exp_name
            try:
                current = _effective_status(self.params(exp_name), exp_dir)
                if wanted and current not in wanted:
                    continue
                if current == status.RUNNING:
                    continue
                foreign = statecheck.status_file_problem(exp_dir)
                if foreign is not None:  # a file xmen did not write is never removed, and the experiment stays
                    raise StateFileError(f"{foreign}: remove it yourself (xmen removes only its own)")
                _update_params(exp_dir / PARAMS_FILE, back_to_registered)
                statecheck.remove_status_file(exp_dir)
            except (XmenError, OSError) as exc:
                failed.append((exp_name, _one_line(exc)))
                continue
            done.append(exp_name)
        if done:
            snakefile.write_workflow(self.root)
        if failed:
            raise SomeFailed("reset", done, failed)
        return done

    def unlink(self, pattern: str | Iterable[str]) -> list[str]:
        """Remove matching experiments from the set; their folders stay until ``clean``."""
        names = self.match(pattern)
        if names:
            snakefile.refuse_links(self.root)  # before experiment.yml changes
            drop = set(names)

            def remove(data: dict[str, Any]) -> None:
                data["experiments"] = {k: v for k, v in (data.get("experiments") or {}).items() if k not in drop}

            self._update_set(remove)
            snakefile.write_workflow(self.root)
        return names

    def relink(self, pattern: str | None = None) -> list[str]:
        """Make the set whole again where it now is; with ``pattern``, also re-link matching unlinked folders.

        After ``mv`` of a set, every recorded path (experiment.yml root, each params.yml ``_root``, each run.sh)
        still names the old place; relinking rewrites them and the global configuration.
        """
        relinked: list[str] = []
        snakefile.refuse_links(self.root)  # before any params.yml, run.sh or experiment.yml changes
        with files.locked(self.set_file):
            data = self.data()
            old_root = str(data.get("root") or "")
            linked: dict[str, Any] = dict(data.get("experiments") or {})
            self.relink_left = []
            if pattern is not None:
                roots = ownership.set_roots(self.root, data)
                for exp_name in self._experiment_folders():
                    if exp_name in linked or not fnmatch.fnmatchcase(exp_name, pattern):
                        continue
                    why = _why_not_relinkable(self.root / exp_name, roots)
                    if why:
                        self.relink_left.append((exp_name, why))
                        continue
                    linked[exp_name] = {}
                    relinked.append(exp_name)
                if not relinked:
                    left = "; ".join(f"{n}: {why}" for n, why in self.relink_left)
                    raise UsageError(
                        f"no unlinked experiment folder xmen made matches {pattern!r}" + (f" ({left})" if left else "")
                    )
            original = self._is_original_format()  # _save_set migrates it, pointing its experiments here
            moved = old_root != str(self.root) or original
            if moved:
                _origin.moved_to(data, self.root, _now())
            if moved or relinked:
                self._point_here([n for n in linked if (moved and not original) or n in relinked], data)
                data["root"] = str(self.root)
                data["experiments"] = linked
                self._save_set(data)
            snakefile.write_workflow(self.root)
        if old_root and old_root != str(self.root) and not is_set(old_root):
            global_config.forget_set(old_root)  # a copy's relink never forgets the set it was copied from
        global_config.remember_set(self.root)
        return relinked

    def _is_original_format(self) -> bool:
        """Whether experiment.yml on disk is still the original xmen's (its run.sh files are the original's too)."""
        try:
            return is_original_set(files.read_yaml(self.set_file))
        except StateFileError:
            return False

    # ------------------------------------------------------------------ deleting
    def _owned_folders(self, data: dict[str, Any], skip: set[str] = frozenset()) -> tuple[list[str], list[str]]:
        """(folders xmen made as experiments of this set, other folders holding a params.yml or xmen's marker, each
        as ``name (why it stays)``), top level only, leaving out the names in ``skip``.

        A folder is this set's only if its marker (or params.yml) names that folder and this set
        (xmen.store.ownership), and never when it holds a set: a copy ``a=x.bak`` stays, and so does a set made
        inside an experiment folder."""
        record = ownership.set_record(data)
        before = set(record["before_init"]) if record else set()
        roots = ownership.set_roots(self.root, data)
        owned: list[str] = []
        foreign: list[str] = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name in skip or not entry.is_dir(follow_symlinks=False):
                continue
            why = "there before xmen init" if entry.name in before else ownership.why_not_xmen_experiment(entry.path, roots)
            if why is None:
                inner = ownership.set_inside(entry.path)
                if inner is None:
                    owned.append(entry.name)
                    continue
                why = f"it holds the experiment set {inner}"
            if os.path.isfile(os.path.join(entry.path, PARAMS_FILE)) or ownership.is_marked_experiment(entry.path):
                foreign.append(f"{entry.name} ({why})")
        return owned, foreign

    def _checked_for_deleting(self, unlinked_only: bool = False) -> tuple[dict[str, Any], list[str], list[str]]:
        """experiment.yml (checked) and the folders as ``_owned_folders`` sees them (``unlinked_only``: leaving out
        the linked ones); refuses, deleting nothing, when experiment.yml links nothing (key empty or missing) while
        xmen's experiment folders exist: a damaged file must never make every experiment look unlinked."""
        data = self.data()
        linked = {str(n) for n in (data.get("experiments") or {})} if unlinked_only else set()
        owned, foreign = self._owned_folders(data, linked)
        if data.get("experiments") is None and owned:
            raise StateFileError(
                f"{self.set_file}: 'experiments' is empty, but the set holds {len(owned)} experiment folder(s) "
                f"({_names(owned)}); restore the file, or link them again with xmen relink -e GLOB"
            )
        return data, owned, foreign

    def clean_plan(self) -> tuple[list[str], list[str]]:
        """(what ``clean`` deletes, what it leaves): unlinked experiment folders xmen made, and the folders
        holding a params.yml that xmen did not make (a user's ``configs/``), which stay.

        Refuses when experiment.yml is damaged or an experiment to delete is running.
        """
        _, doomed, foreign = self._checked_for_deleting(unlinked_only=True)
        self._refuse_running(doomed)
        return doomed, foreign

    def unlinked_folders(self) -> list[str]:
        """Unlinked experiment folders xmen made: what ``clean`` deletes."""
        return self.clean_plan()[0]

    def clean(self, names: Iterable[str] | None = None) -> list[str]:
        """Delete unlinked experiment folders xmen made (``names``: only these, as shown to the user).

        Never a linked experiment, a folder xmen did not make, or one whose experiment is running (its job lock is
        held while it is deleted, so it cannot start meanwhile).
        """
        removed = []
        with files.locked(self.set_file):
            doomed, _ = self.clean_plan()
            if names is not None:
                wanted = set(names)
                doomed = [n for n in doomed if n in wanted]
            for exp_name in doomed:
                if _delete_experiment_folder(self.root, exp_name):
                    removed.append(exp_name)
            for entry in os.scandir(self.root):  # what an interrupted clean or rm left half-deleted
                if ownership.is_xmen_trash(entry.path):  # never a folder of the user's with that prefix
                    shutil.rmtree(entry.path, ignore_errors=True)
        return removed

    def _refuse_running(self, names: Iterable[str]) -> None:
        running = [n for n in names if _is_running(self.root / n)]
        if running:
            raise XmenError(
                f"refusing to delete running experiment(s): {_names(running)} (wait for them, or stop them first)"
            )

    def dependent_sets(self) -> list[str]:
        """Other known sets (global configuration) whose experiments require experiments of this set."""
        me = os.path.realpath(self.root)
        found: list[str] = []
        for other in global_config.load().sets:
            other_real = os.path.realpath(other)
            if other_real == me or not is_set(other_real):
                continue
            try:
                data = ExperimentSet(other_real).data()
            except XmenError:
                continue  # a damaged set cannot run anyway; it reports itself
            options = [("every experiment", data.get("options") or {})]
            options += [(str(n), o or {}) for n, o in (data.get("experiments") or {}).items()]
            for exp_name, opts in options:
                hit = next(
                    (r for r in opts.get("requires") or []
                     if os.path.realpath(os.path.join(other_real, r)).startswith(me + os.sep)),
                    None,
                )
                if hit is not None:
                    found.append(f"{other} ({exp_name} requires {hit})")
                    break
        return found

    def rm_plan(self, force: bool = False) -> "RemovalPlan":
        """What ``rm`` deletes and what it leaves; refuses (deleting nothing) when experiment.yml or the global
        configuration is damaged, an experiment or a run is going, or (without ``force``) another set requires
        this one's experiments."""
        data, owned, _ = self._checked_for_deleting()
        global_config.load()  # rm forgets the set there: a damaged file must stop it before anything is deleted
        if not force:
            dependents = self.dependent_sets()
            if dependents:
                raise XmenError(
                    f"another set requires experiments of {self.root}: {'; '.join(dependents)} "
                    f"(unregister those requirements, or pass --force)"
                )
        self._refuse_running(owned)
        if flock_held(self.root / SET_RUN_LOCK):
            raise XmenError(f"refusing to remove {self.root}: an xmen run is running on it")
        record = ownership.set_record(data)
        before = set(record["before_init"]) if record else set()
        owned_set = set(owned)
        plan = RemovalPlan(experiments=list(owned))
        for name in sorted(os.listdir(self.root)):
            if name in owned_set:
                continue
            if name == PROFILES_DIR:  # init places its profile even beside the user's own (checked before)
                ours = (record is None or any(c in (PROFILES_DIR, PROFILE_FILE) for c in record["created"]))
                folder = self.root / PROFILES_DIR
                profile = self.root / PROFILE_FILE
                ours = ours and not folder.is_symlink() and profile.is_file() and not profile.is_symlink()
                if ours:
                    plan.files.append(PROFILE_FILE)
                ignored = {profile, profile.parent} if ours else set()
                if folder.is_symlink() or not folder.is_dir() or any(p not in ignored for p in folder.rglob("*")):
                    plan.kept.append(PROFILES_DIR)  # the user's other profiles
            elif name in before:
                plan.kept.append(name)
            elif name == XMEN_DIR:  # xmen's files in it go; the user's stay (and so does the folder, then)
                folder = self.root / XMEN_DIR
                if folder.is_symlink() or not folder.is_dir():
                    plan.kept.append(name)
                    continue
                for entry in sorted(os.listdir(folder)):
                    ours = ownership.is_xmen_dir_entry(folder, entry)
                    (plan.files if ours else plan.kept).append(f"{XMEN_DIR}/{entry}")
                plan.files.append(XMEN_DIR)  # removed at the end only when nothing is left in it
            elif ownership.is_xmen_set_entry(name) or ownership.is_xmen_trash(self.root / name):
                plan.files.append(name)
            else:
                plan.kept.append(name)
        return plan

    def rm(self, force: bool = False, plan: "RemovalPlan | None" = None) -> "RemovalPlan":
        """Delete the set: its experiment folders and xmen's own files, never what xmen did not make.

        Experiment folders go first and experiment.yml near the end, so an interrupted rm leaves a set that a
        second rm finishes. The folder itself goes only when nothing else is left in it.
        """
        with files.locked(self.set_file):
            plan = self.rm_plan(force)
            for exp_name in plan.experiments:
                if not _delete_experiment_folder(self.root, exp_name):
                    raise XmenError(f"{exp_name} started running during rm; it and the set were kept")
            last = [SET_FILE]
            for name in [f for f in plan.files if f not in last] + [f for f in last if f in plan.files]:
                path = self.root / name
                if name == PROFILE_FILE:
                    path.unlink(missing_ok=True)
                    for folder in (path.parent, path.parent.parent):
                        if folder.is_dir() and not any(folder.iterdir()):
                            folder.rmdir()
                elif name == XMEN_DIR:
                    with contextlib.suppress(OSError):  # only when empty: the user's files in it stay
                        path.rmdir()
                elif path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
        global_config.forget_set(self.root)
        try:
            self.root.rmdir()  # only when empty: whatever xmen did not make stays
        except OSError:
            pass
        return plan


@dataclass
class RemovalPlan:
    """What ``rm`` deletes (experiment folders, xmen's own top-level entries) and what it leaves."""

    experiments: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)




def _names(names: list[str], limit: int = 20) -> str:
    """``a, b, c`` (at most ``limit`` names, then how many more): for one-line messages."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _why_not_relinkable(folder: Path, roots: list[str]) -> str | None:
    """Why ``relink -e`` leaves ``folder`` alone (a folder xmen did not make, or a damaged params.yml), or None.

    relink rewrites a folder's params.yml and run.sh: never those of a folder a user made (a ``configs/`` with its
    own params.yml), and never a half-written one (running the same ``xmen register`` again repairs those).
    """
    if not ownership.is_xmen_experiment(folder, roots):
        return "xmen did not make it; left alone"
    try:
        statecheck.check_params(folder / PARAMS_FILE, files.read_yaml(folder / PARAMS_FILE))
    except StateFileError as exc:
        return f"{exc} (run the same xmen register again to repair it)"
    return None


def _is_running(exp_dir: Path) -> bool:
    """Running now: its job runner (or the experiment it started) holds the job lock, or its heartbeat is live."""
    if lock_held(exp_dir):
        return True
    try:
        params = files.read_yaml(exp_dir / PARAMS_FILE)
    except StateFileError:
        return False
    return params.get("_status") == status.RUNNING and _effective_status(params, exp_dir) == status.RUNNING


def _delete_experiment_folder(root: Path, exp_name: str) -> bool:
    """Delete one experiment folder unless its experiment is running; False when it was running.

    The job lock is held while the folder is moved to a hidden trash name (one rename: a kill never leaves a
    half-deleted folder that no longer looks like xmen's) and then deleted.
    """
    folder = root / exp_name
    fd = try_lock(folder)
    if fd is None:
        return False
    try:
        trash = Path(tempfile.mkdtemp(prefix=TRASH_PREFIX, dir=root))
        files.write_new_file(trash / TRASH_MARKER, "")  # xmen's trash until the end (ownership.is_xmen_trash)
        os.replace(folder, trash / exp_name)
    finally:
        release(fd)
    shutil.rmtree(trash / exp_name)
    shutil.rmtree(trash)
    return True


# ---------------------------------------------------------------------- helpers
class SomeFailed(XmenError):
    """A command over many experiments did the healthy ones (``done``) and names the broken ones (``failed``)."""

    def __init__(self, verb: str, done: list[str], failed: list[tuple[str, str]]) -> None:
        self.done = done
        self.failed = failed
        reasons = "; ".join(f"{name}: {why}" for name, why in failed)
        super().__init__(f"{verb} {len(done)} experiment(s); {len(failed)} failed: {reasons}")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, XmenError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return " ".join(str(exc).split())


def _update_params(path: Path, change) -> dict[str, Any]:
    """Locked read-modify-write of a params.yml that refuses (writing nothing) when the file is damaged."""

    def checked(data: dict[str, Any]) -> Any:
        statecheck.check_params(path, data)
        return change(data)

    return files.update_yaml(path, checked)


def params_of(exp_dir: Path) -> dict[str, Any]:
    """The params.yml of the experiment in ``exp_dir``, checked (StateFileError ``path: what is wrong``)."""
    path = exp_dir / PARAMS_FILE
    return statecheck.check_params(path, files.read_yaml(path))  # type: ignore[return-value]


def status_of(exp_dir: Path) -> str:
    """The status of the experiment in ``exp_dir`` as a user should see it (a dead ``running`` one is ``lost``,
    an unreadable params.yml ``corrupt``), whichever set it is in."""
    try:
        params = files.read_yaml(exp_dir / PARAMS_FILE)
    except StateFileError:
        return status.CORRUPT
    return _effective_status(params, exp_dir)


def _effective_status(params: dict[str, Any], exp_dir: Path) -> str:
    """What a user sees of the experiment (xmen.store.shown: a dead ``running`` one is ``lost``)."""
    return shown_status(params, exp_dir).value


# ---------------------------------------------------------------------- init helpers
def _init_python(staging: Path, name: str) -> str:
    """Write defaults.yml and script.sh of a configured Python experiment class into ``staging``."""
    conf = global_config.load()
    script = conf.experiments.get(name)
    if script is None:
        known = ", ".join(sorted(conf.experiments)) or "none; add one with xmen config --add SCRIPT"
        raise UsageError(f"unknown experiment {name!r} (configured: {known})")
    if not os.path.isfile(script):
        raise UsageError(f"the script of {name} is gone: {script} (xmen config --add it again)")
    env = dict(os.environ)
    paths = [p for p in conf.python_paths] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    command = [sys.executable, "-m", "xmen.experiment", f"{script}:{name}", "--to_root", str(staging)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        lines = [l for l in (proc.stderr or proc.stdout).strip().splitlines() if l.strip()]
        reason = lines[-1] if lines else f"exit code {proc.returncode}"
        raise XmenError(f"{name} could not write its defaults: {reason}")
    for required in (DEFAULTS_FILE, SCRIPT_FILE):
        if not (staging / required).is_file():
            raise XmenError(f"{name} did not write {required}")
    return name


def _same_file_text(kept: Path, staged: Path) -> bool:
    try:
        return kept.is_file() and kept.read_bytes() == staged.read_bytes()
    except OSError:
        return False


def _init_script(staging: Path, script: Path, defaults: Path) -> str:
    """Copy a shell experiment's script and its defaults.yml (validated) into ``staging``."""
    if not script.is_file():
        raise UsageError(f"no such script: {script}")
    if not defaults.is_file():
        raise UsageError(f"no such defaults file: {defaults}")
    statecheck.read_defaults(defaults)
    text = defaults.read_text(encoding="utf-8")
    files.write_text_atomic(staging / DEFAULTS_FILE, text)
    files.write_text_atomic(staging / SCRIPT_FILE, script.read_text(encoding="utf-8"), mode=0o755)
    return script.name
