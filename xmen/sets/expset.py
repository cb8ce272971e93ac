"""An experiment set: a folder of experiments sharing one script, one defaults.yml and one Snakefile.

The folders are the source of truth. ``experiment.yml`` records the set (type, purpose, notes) and which
experiment folders are linked, with their run options (resources, threads, retries and their policy, requirements); the Snakefile
reads it. Every change to ``experiment.yml`` is a locked read-modify-write, and a command that fails validation
changes nothing: folders are written only after the whole request was checked, and removed again if writing fails.
"""
from __future__ import annotations

import contextlib
import fnmatch
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from xmen.store import config as global_config
from xmen.store import files, naming, ownership, retry, statecheck, status, sweep
from xmen.sets import snakefile
from xmen.store import origin as _origin
from xmen.errors import NotASetError, SetExistsError, StateFileError, UsageError, XmenError
from xmen.store.layout import DEFAULTS_FILE, PARAMS_FILE, RUN_FILE, SCRIPT_FILE, SET_FILE
from xmen.define.parameters import check_value, coerce_value, parse_comment
from xmen.store.shown import shown_status
from xmen.store.legacy import backup_if_original_set, convert_set, is_original_set, original_run_header
from xmen.store.notes import EXPERIMENT_NOTES, SET_NOTES, edit_notes
from xmen.store.locks import flock_held, lock_held, release, try_lock
from xmen.store.provenance import get_meta, now_time
from xmen.store.setfile import is_glob


_SET_COMMENTS = {
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
_PARAM_COMMENTS = {
    "_name": "The name of the experiment (its folder)",
    "_root": "The experiment set it belongs to",
    "_status": "default | registered | running | finished | error | stopped | timeout | cancelled",
    "_created": "The date the experiment was created",
    "_purpose": "A description of the experiment purpose",
    "_version": "Experiment version information",
    "_meta": "Machine and user that registered the experiment",
    "_messages": "Messages left by the experiment",
    "_repeat": "Which of the -x N repeats this is (1..N)",
}
_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Resource names the Snakefile cannot take from a user: Snakemake's own (``_cores``, ``_nodes``, every ``_``
#: name), the rule's attempt counter, and names whose ``XMEN_<NAME>`` variable the rule already sets.
_RESERVED_RESOURCES = {"xmen_attempt": "the attempt counter of xmen's rule", "attempt": "XMEN_ATTEMPT is the attempt",
                       "threads": "use --threads"}
#: The most experiments one ``register`` makes unless told otherwise (``--max-experiments``): a typo such as
#: ``-x 100000000`` or a 12 x 10 sweep is refused in well under a second instead of filling memory and disk.
MAX_EXPERIMENTS = 100_000
SEPARATOR = naming.SEPARATOR
#: Characters a resource value may hold outside quotes.
_RESOURCE_CHAR = re.compile(r"[A-Za-z0-9_.:+%@/=-]")
#: The resource whose value is sbatch's own words (the SLURM executor plugin adds it to the sbatch line).
SBATCH_WORDS = "slurm_extra"


@dataclass
class RegisterResult:
    """What ``register`` did: the folders created, the names skipped (with why) and the type warnings."""

    created: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Experiments not registered because a folder of their name is in the way (not xmen's, or other values).
    blocked: list[tuple[str, str]] = field(default_factory=list)


def is_set(root: str | os.PathLike[str]) -> bool:
    return (Path(root) / SET_FILE).is_file()


def _now() -> str:
    return now_time()


class ExperimentSet:
    """The experiment set at ``root`` (raises NotASetError if there is none)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
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
        written by the original xmen is read as ours (see xmen.legacy) before it is checked.
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
            # The original xmen made the folders its experiment.yml lists: they carry our marker from now on, so
            # clean and rm know them once the migrated file no longer says which they were.
            for exp_name in convert_set(on_disk)["experiments"]:
                exp_dir = self.root / exp_name
                if exp_dir.is_dir() and not exp_dir.is_symlink() and not ownership.is_marked_experiment(exp_dir):
                    ownership.mark_experiment(exp_dir)
        backup_if_original_set(self.set_file)
        files.write_yaml(self.set_file, data, _SET_COMMENTS)

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
        path = self.root / name / PARAMS_FILE
        return statecheck.check_params(path, files.read_yaml(path))  # type: ignore[return-value]

    def status_of(self, name: str) -> str:
        """The status of one experiment as a user should see it (a dead ``running`` one is ``lost``)."""
        exp_dir = self.root / name
        try:
            params = files.read_yaml(exp_dir / PARAMS_FILE)
        except StateFileError:
            return status.CORRUPT
        return _effective_status(params, exp_dir)

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
        root_path = Path(os.path.abspath(root))
        if is_set(root_path):
            raise SetExistsError(f"already an experiment set: {root_path}")
        if (name is None) == (script is None):
            raise UsageError("give either -n NAME (a configured experiment) or -s SCRIPT with -d DEFAULTS")
        if script is not None and defaults is None:
            raise UsageError("-s SCRIPT needs -d DEFAULTS (a defaults.yml for the script)")
        if root_path.exists() and not root_path.is_dir():
            raise UsageError(f"not a folder: {root_path}")
        global_config.load()  # a damaged global configuration stops init before it writes anything
        created_root = not root_path.exists()
        root_path.mkdir(parents=True, exist_ok=True)
        before = sorted(os.listdir(root_path))  # what rm must never delete
        staging = Path(tempfile.mkdtemp(prefix=".xmen-init-", dir=root_path))
        moved: list[Path] = []
        created: list[str] = []
        try:
            if name is not None:
                exp_type = _init_python(staging, name)
            else:
                exp_type = _init_script(staging, Path(script), Path(defaults))  # type: ignore[arg-type]
            snakefile.write_workflow(staging)
            for entry in [DEFAULTS_FILE, SCRIPT_FILE, snakefile.SNAKEFILE, "profiles"]:
                target = root_path / entry
                if entry in (DEFAULTS_FILE, SCRIPT_FILE) and _same_file_text(target, staging / entry):
                    continue  # the folder's own script.sh/defaults.yml (a bare init): used where they are
                if target.exists():
                    if entry == "profiles" and target.is_dir():
                        # Keep the user's other profiles; only ours is placed, never over one of theirs.
                        ours = staging / ownership.PROFILE_FILE
                        profile = root_path / ownership.PROFILE_FILE
                        if profile.exists() or profile.is_symlink():
                            if profile.read_bytes() != ours.read_bytes():
                                raise SetExistsError(f"{profile} exists; refusing to overwrite it")
                            continue
                        profile.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(ours, profile)
                        moved.append(profile)
                        created.append(ownership.PROFILE_FILE)
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
            files.write_yaml(root_path / SET_FILE, set_data, _SET_COMMENTS)
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
        """Register every combination of the sweep ``updates`` as an experiment folder.

        Everything is validated before the first folder is written (the number of combinations before any is
        built); if writing fails, what was written is removed. experiment.yml and the Snakefile are written once,
        whatever the size of the sweep. Running the same registration again after it was killed finishes it:
        folders it left unlinked are re-linked or rewritten (see :func:`_leftover`).
        """
        if repeats < 1:
            raise UsageError(f"-x/--repeats must be at least 1, got {repeats}")
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be at least 1, got {threads}")
        if retries is not None and retries < 0:
            raise UsageError(f"--retries must be 0 or more, got {retries}")
        if max_experiments is not None and max_experiments < 1:
            raise UsageError(f"--max-experiments must be at least 1, got {max_experiments}")
        parsed = sweep.parse(updates if updates is not None else {})
        n_combos = sweep.count(parsed)
        total = n_combos * repeats
        if max_experiments is not None and total > max_experiments:
            how = f" ({n_combos:,} combinations x {repeats:,} repeats)" if repeats > 1 else ""
            raise UsageError(
                f"the sweep makes {total:,} experiments{how}, more than the limit of {max_experiments:,}; "
                "raise it with --max-experiments N"
            )
        if name is not None:
            naming.check_name(name)
            if n_combos > 1:
                raise UsageError(f"-n NAME names a single experiment, but the sweep has {n_combos} combinations")
        run_options = _run_options(resources, threads, retries, retry_on)

        with files.locked(self.set_file):
            set_data = self.data()
            defaults_path = self.root / str(set_data.get("defaults") or DEFAULTS_FILE)
            defaults = files.read_yaml(defaults_path)
            comments = files.read_comments(defaults_path)
            table = _parameter_table(defaults, comments)
            linked: dict[str, Any] = dict(set_data.get("experiments") or {})
            result = RegisterResult()

            fitted = _fit_sweep(parsed, table, strict, result.warnings, generated_names=name is None)
            if seed_param is not None:
                _check_seed_param(seed_param, parsed, table)
            # Folder names list the parameters in their declared order: {seed: 0, lr: 3} and {lr: 3, seed: 0}
            # are one experiment. The user's order still decides which key varies slowest.
            keys = list(parsed)
            name_keys = [k for k in table if k in parsed]
            planned: list[tuple[str, dict[str, Any]]] = []
            for picked in itertools.product(*(fitted[k] for k in keys)):
                chosen = dict(zip(keys, picked))
                overrides = {key: value for key, (_, value) in chosen.items()}
                base = name if name is not None else SEPARATOR.join(chosen[k][0] for k in name_keys)
                if repeats == 1 and seed_param is None:
                    if not base:
                        raise UsageError("nothing to name the experiment by: give -n NAME, overrides, or -x N")
                    naming.check_name(base)
                    planned.append((base, overrides))
                    continue
                for index in range(1, repeats + 1):
                    exp_name = naming.repeat_name(base, index) if repeats > 1 else base
                    if not exp_name:
                        raise UsageError("nothing to name the experiment by: give -n NAME, overrides, or -x N")
                    naming.check_name(exp_name)
                    repeat = dict(overrides)
                    if repeats > 1:
                        repeat["_repeat"] = index
                    if seed_param is not None:
                        repeat[seed_param] = index
                    planned.append((exp_name, repeat))

            header_text = _header_text(header)
            script_path = self.root / str(set_data.get("script") or SCRIPT_FILE)
            base_params = _base_params(defaults, purpose, str(self.root), repeated=repeats > 1)
            param_comments = dict(_PARAM_COMMENTS)
            param_comments.update({k: v for k, v in comments.items() if not k.startswith("_")})
            # Every params.yml is dump_params(params, param_comments); the values they share are dumped once.
            params_file = _params_renderer(base_params, _now(), param_comments)
            run_text = _run_script_renderer(script_path, header_text, sys.executable)

            seen: set[str] = set()
            root_text = str(self.root)
            new: list[tuple[str, dict[str, Any]]] = []
            leftovers: dict[str, str] = {}  # name -> "repair" | "relink": left unlinked by an interrupted register
            link_names: list[str] = []
            for exp_name, overrides in planned:
                if exp_name in seen:
                    raise UsageError(f"the sweep names {exp_name!r} twice")
                seen.add(exp_name)
                if exp_name in linked:
                    # A name given with -n says nothing of the values: registered with others, it is no skip.
                    clash = _linked_clash(os.path.join(root_text, exp_name), overrides) if name is not None else None
                    if clash is not None:
                        result.blocked.append((exp_name, f"already registered with other values ({clash})"))
                    else:
                        result.skipped.append((exp_name, "already registered"))
                    continue
                folder = os.path.join(root_text, exp_name)
                if not os.path.lexists(folder):
                    new.append((exp_name, overrides))
                    link_names.append(exp_name)
                    continue
                verdict, why = _leftover(folder, params_file(exp_name, overrides))
                if verdict in ("repair", "relink"):
                    leftovers[exp_name] = verdict
                    link_names.append(exp_name)
                    new.append((exp_name, overrides))
                elif verdict == "skip":
                    result.skipped.append((exp_name, why))
                else:
                    result.blocked.append((exp_name, why))

            required = self._resolve_requires(list(requires), linked, link_names)
            options = dict(run_options)
            if required:
                options["requires"] = required
            if required:
                self._check_cycles(link_names, required, linked)

            written: list[Path] = []
            try:
                # The new folders' files are written without a per-file fsync: experiment.yml is the commit point
                # (an experiment it does not link does not exist), and the file system is synced once before it
                # is replaced, atomically as ever. A failure removes the folders written so far. Each folder is
                # marked as xmen's right after it is made, so a kill leaves only marked leftovers, which the next
                # run of the same registration repairs or re-links.
                for exp_name, overrides in new:
                    folder = os.path.join(root_text, exp_name)
                    state = leftovers.get(exp_name)
                    if state is not None:
                        _finish_leftover(folder, state, params_file(exp_name, overrides), run_text(folder))
                        continue
                    os.mkdir(folder)
                    written.append(Path(folder))
                    ownership.mark_experiment(folder)
                    files.write_new_file(os.path.join(folder, PARAMS_FILE), params_file(exp_name, overrides))
                    files.write_new_file(os.path.join(folder, RUN_FILE), run_text(folder), mode=0o755)
                if new:
                    files.sync_filesystem(root_text)
                for exp_name in link_names:
                    linked[exp_name] = dict(options)
                set_data["experiments"] = linked
                _remove_stale_temps(self.set_file)  # left by a killed writer; every writer holds this lock
                self._save_set(set_data)
            except BaseException:
                for folder in written:
                    shutil.rmtree(folder, ignore_errors=True)
                raise
            result.created = link_names
            snakefile.write_workflow(self.root)
            return result

    def _resolve_requires(self, specs: list[str], linked: dict[str, Any], new_names: list[str]) -> list[str]:
        """Check ``--requires`` paths or globs and return them as experiment.yml keeps them: relative to this set's
        root, globs as globs. xmen.planner resolves them at every plan, so an experiment that joins a required
        set later joins the inputs, and an unlinked one leaves them."""
        kept: list[str] = []
        for spec in specs:
            spec = spec.strip().rstrip("/")
            if not spec:
                raise UsageError("empty --requires value")
            folder, _, pattern = spec.rpartition("/")
            other_root = Path(os.path.normpath(self.root / folder)) if folder else self.root
            if other_root == self.root:
                candidates = list(linked) + new_names
            else:
                if not is_set(other_root):
                    raise UsageError(f"--requires {spec!r}: {other_root} is not an experiment set")
                candidates = [str(n) for n in (files.read_yaml(other_root / SET_FILE).get("experiments") or {})]
            if not any(fnmatch.fnmatchcase(n, pattern) for n in candidates):
                raise UsageError(f"--requires {spec!r} matches no linked experiment in {other_root}")
            rel_folder = os.path.relpath(other_root, self.root)
            entry = pattern if rel_folder == "." else f"{rel_folder}/{pattern}"
            if entry not in kept:
                kept.append(entry)
        return kept

    def _check_cycles(self, new_names: list[str], required: list[str], linked: dict[str, Any]) -> None:
        """Refuse requirements (paths or globs, resolved as the planner will) that lead back to an experiment
        being registered."""
        new_paths = {str(self.root / n) for n in new_names}
        set_cache: dict[Path, dict[str, Any]] = {}

        def set_data(root: Path) -> dict[str, Any]:
            if root not in set_cache:
                try:
                    set_cache[root] = files.read_yaml(root / SET_FILE)
                except StateFileError:
                    set_cache[root] = {}
            return set_cache[root]

        def expand(path: Path, specs: list[str]) -> list[Path]:
            found: list[Path] = []
            for spec in specs:
                spec = str(spec).rstrip("/")
                if not is_glob(spec):
                    found.append(Path(os.path.normpath(path.parent / spec)))
                    continue
                folder, _, pattern = spec.rpartition("/")
                other = Path(os.path.normpath(path.parent / folder)) if folder else path.parent
                names = [str(n) for n in (set_data(other).get("experiments") or {})]
                if other == self.root:
                    names += new_names
                found += [other / n for n in names if fnmatch.fnmatchcase(n, pattern) and other / n != path]
            return found

        def requirements_of(path: Path) -> list[Path]:
            if str(path) in new_paths:
                return expand(path, required)
            data = set_data(path.parent)
            opts = (data.get("experiments") or {}).get(path.name) or {}
            defaults = data.get("options") or {}
            return expand(path, opts.get("requires", defaults.get("requires")) or [])

        for start in new_paths:
            stack, visited = [(Path(start), [Path(start).name])], set()
            while stack:
                node, trail = stack.pop()
                for nxt in requirements_of(node):
                    if str(nxt) == start:
                        chain = " -> ".join(trail + [os.path.relpath(nxt, self.root)])
                        raise UsageError(f"requirement cycle: {chain}")
                    if str(nxt) not in visited:
                        visited.add(str(nxt))
                        stack.append((nxt, trail + [os.path.relpath(nxt, self.root)]))

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
                _update_params(exp_dir / PARAMS_FILE, back_to_registered)
                (exp_dir / status.DONE_FILE).unlink(missing_ok=True)
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
        with files.locked(self.set_file):
            data = self.data()
            old_root = str(data.get("root") or "")
            linked: dict[str, Any] = dict(data.get("experiments") or {})
            self.relink_left = []
            if pattern is not None:
                roots = [str(self.root), old_root]
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
            moved = old_root != str(self.root) or self._is_original_format()
            if moved:
                _origin.moved_to(data, self.root, _now())
            if moved or relinked:
                script_path = self.root / str(data.get("script") or SCRIPT_FILE)
                header_cache: dict[str, str] = {}
                for exp_name in list(linked):
                    exp_dir = self.root / exp_name
                    if not (exp_dir / PARAMS_FILE).is_file():
                        continue
                    if moved or exp_name in relinked:
                        root_text = str(self.root)
                        files.update_yaml(exp_dir / PARAMS_FILE, lambda p: p.__setitem__("_root", root_text))
                        header = _existing_header(exp_dir / RUN_FILE, header_cache)
                        files.write_text_atomic(
                            exp_dir / RUN_FILE,
                            render_run_script(exp_dir, script_path, header, sys.executable),
                            mode=0o755,
                        )
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
        """(folders xmen made as experiments of this set, other folders holding a params.yml), top level only,
        leaving out the names in ``skip``."""
        record = ownership.set_record(data)
        before = set(record["before_init"]) if record else set()
        roots = [str(self.root), str(data.get("root") or "")]
        owned: list[str] = []
        foreign: list[str] = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name in skip or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name not in before and ownership.is_xmen_experiment(entry.path, roots):
                owned.append(entry.name)
            elif os.path.isfile(os.path.join(entry.path, PARAMS_FILE)):
                foreign.append(entry.name)
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
                if entry.name.startswith(_TRASH_PREFIX) and entry.is_dir(follow_symlinks=False):
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
        if flock_held(self.root / ".xmen" / "run.lock"):
            raise XmenError(f"refusing to remove {self.root}: an xmen run is running on it")
        record = ownership.set_record(data)
        before = set(record["before_init"]) if record else set()
        owned_set = set(owned)
        plan = RemovalPlan(experiments=list(owned))
        for name in sorted(os.listdir(self.root)):
            if name in owned_set:
                continue
            if name == "profiles":  # init places its profile even beside the user's own (checked before)
                ours = (record is None or any(c in ("profiles", ownership.PROFILE_FILE) for c in record["created"]))
                folder = self.root / "profiles"
                profile = self.root / ownership.PROFILE_FILE
                ours = ours and not folder.is_symlink() and profile.is_file() and not profile.is_symlink()
                if ours:
                    plan.files.append(ownership.PROFILE_FILE)
                ignored = {profile, profile.parent} if ours else set()
                if folder.is_symlink() or not folder.is_dir() or any(p not in ignored for p in folder.rglob("*")):
                    plan.kept.append("profiles")  # the user's other profiles
            elif name in before:
                plan.kept.append(name)
            elif ownership.is_xmen_set_entry(name) or name.startswith(_TRASH_PREFIX):
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
                if name == ownership.PROFILE_FILE:
                    path.unlink(missing_ok=True)
                    for folder in (path.parent, path.parent.parent):
                        if folder.is_dir() and not any(folder.iterdir()):
                            folder.rmdir()
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


_TRASH_PREFIX = ".xmen-trash-"


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
        trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=root))
        os.replace(folder, trash / exp_name)
    finally:
        release(fd)
    shutil.rmtree(trash)
    return True


# ---------------------------------------------------------------------- helpers
def render_run_script(exp_dir: Path, script: Path, header: str, python: str) -> str:
    """run.sh: header, then the job runner on this experiment (every path shell-quoted)."""
    return _run_script_renderer(script, header, python)(str(exp_dir))


def _run_script_renderer(script: Path, header: str, python: str):
    """``render_run_script`` for many folders of one set: the text of ``exp_dir`` (an absolute folder path str)."""
    lines = ["#!/bin/bash"]
    if header.strip():
        lines.append(header.rstrip("\n"))
    lines += [
        "# Generated by xmen: runs the set's script.sh on this experiment's params.yml through xmen's job runner,",
        "# which records running/finished/error/timeout in params.yml.",
        "",
    ]
    head = "\n".join(lines)
    tail = f" {shlex.quote(str(script))}\n"
    runner = f"exec {shlex.quote(python)} -m xmen.job "
    if header.strip():
        runner = _header_python(python) + 'exec "$xmen_python" -m xmen.job '
    quote = shlex.quote

    def render(exp_dir: str) -> str:
        return f"{head}cd {quote(exp_dir)} || exit 1\n{runner}{quote(exp_dir + '/' + PARAMS_FILE)}{tail}"

    return render


def _header_python(python: str) -> str:
    """Lines choosing the interpreter after a header, which may have changed the environment (conda activate, a
    venv's activate, export PATH=...): the ``python`` (else ``python3``) now first on PATH if it can import xmen,
    else ``python``, the interpreter xmen was installed with; exported as ``XMEN_PYTHON`` for script.sh. Without a
    header run.sh execs ``python`` directly."""
    installed = shlex.quote(python)
    return (  # the check costs one interpreter start, and only when PATH's python is another one
        "xmen_python=$(command -v python || command -v python3)\n"
        f'[ "$xmen_python" = {installed} ] || "${{xmen_python:-false}}" -c "import xmen" 2>/dev/null'
        f" || xmen_python={installed}\n"
        'export XMEN_PYTHON="$xmen_python"  # a python experiment\'s script.sh runs on it too\n'
    )


_HEADER_END = "# Generated by xmen: runs the set's script.sh"


def _existing_header(run_script: Path, cache: dict[str, str]) -> str:
    try:
        text = run_script.read_text(encoding="utf-8")
    except OSError:
        return ""
    if _HEADER_END not in text:
        return original_run_header(text)  # written by the original xmen
    lines = text.split("\n")
    body = []
    for line in lines[1:]:
        if line.startswith(_HEADER_END):
            break
        body.append(line)
    return "\n".join(body)


def _header_text(header: str | None) -> str:
    """The run.sh header: ``header`` as given (a file path or text), else the global configuration's."""
    # The configured header is already text (config -H read the file); a header given here may name a file.
    text = global_config.load().header if header is None else global_config.read_header(header)
    lines = text.split("\n")
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


def _run_options(resources: str | dict[str, Any] | None, threads: int | None, retries: int | None,
                 retry_on: str | None = None) -> dict[str, Any]:
    """The run options of new experiments. An experiment with retries gets its retry policy (``retry_on``, the
    default one unless ``--retry-on`` says otherwise): one without it was registered before policies (xmen.retry)."""
    options: dict[str, Any] = {}
    parsed = parse_resources(resources) if resources else {}
    if parsed:
        options["resources"] = parsed
    if threads is not None:
        options["threads"] = threads
    if retry_on is not None and not retries:
        raise UsageError("--retry-on needs --retries N (how many attempts after a failure)")
    policy = retry.parse_policy(retry_on) if retry_on is not None else [retry.DEFAULT]
    if retries is not None:
        options["retries"] = retries
        if retries:
            options[retry.POLICY_KEY] = policy
    return options


def parse_resources(spec: str | dict[str, Any]) -> dict[str, Any]:
    """``"mem_mb=4000 runtime=60 slurm_partition=gpu"`` -> dict; ``mem_mb=1000,2000`` gives one value per attempt.

    The text is read like shell words: quotes keep spaces, ``=`` and commas inside a value
    (``slurm_extra='--mail-user="a b" --mail-type=END,FAIL'``); each word is split at its first unquoted ``=``.
    Outside quotes a value may hold only plain characters, so a stray ``;`` or ``$`` is an error, not a value.
    """
    if isinstance(spec, dict):
        items = [(str(k), v if isinstance(v, list) else str(v).split(",")) for k, v in spec.items()]
        items = [(k, [_plain(v) for v in values]) for k, values in items]
    else:
        items = [_split_word(word) for word in _resource_words(spec)]
    parsed: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for key, values in items:
        if not _RESOURCE_NAME.match(key):
            raise UsageError(f"--resources: invalid resource name {key!r}")
        reserved = _RESERVED_RESOURCES.get(key.lower())
        if reserved is None and key.startswith("_"):
            reserved = "Snakemake keeps names starting with '_', such as _cores and _nodes"
        if reserved is not None:
            raise UsageError(f"--resources: {key!r} is reserved ({reserved})")
        variable = key.upper()  # the experiment sees XMEN_<NAME>
        if variable in variables:
            raise UsageError(f"--resources: {variables[variable]!r} and {key!r} are one resource (XMEN_{variable})")
        variables[variable] = key
        converted = [_resource_value(key, value) for value in values]
        parsed[key] = converted[0] if len(converted) == 1 else converted
    return parsed


#: One character of a --resources word and whether it was quoted (quoted characters are taken literally).
_Char = tuple[str, bool]


def _resource_words(spec: str) -> list[list[_Char]]:
    """The words of a --resources text, shell-like: whitespace separates, '...' and "..." quote, \\ escapes."""
    words: list[list[_Char]] = []
    word: list[_Char] | None = None
    quote = ""
    chars = iter(spec)
    for char in chars:
        if quote:
            if char == quote:
                quote = ""
                continue
            if char == "\\" and quote == '"':
                following = next(chars, "")
                if following not in ('"', "\\"):
                    word.append(("\\", True))  # type: ignore[union-attr]
                char = following
            word.append((char, True))  # type: ignore[union-attr]
            continue
        if char.isspace():
            if word is not None:
                words.append(word)
                word = None
            continue
        if word is None:
            word = []
        if char in ("'", '"'):
            quote = char
        elif char == "\\":
            word.append((next(chars, ""), True))
        else:
            word.append((char, False))
    if quote:
        raise UsageError(f"--resources: unclosed {quote} in {spec!r}")
    if word is not None:
        words.append(word)
    return words


def _split_word(word: list[_Char]) -> tuple[str, list[list[_Char]]]:
    """(name, the values per attempt) of one NAME=VALUE word: split at the first unquoted ``=``, then at unquoted
    commas."""
    text = "".join(c for c, _ in word)
    at = next((i for i, (c, quoted) in enumerate(word) if c == "=" and not quoted), None)
    if at is None or at == len(word) - 1:
        raise UsageError(f"--resources: expected NAME=VALUE, got {text!r}")
    if any(quoted for _, quoted in word[:at]):
        raise UsageError(f"--resources: invalid resource name {''.join(c for c, _ in word[:at])!r}")
    values: list[list[_Char]] = [[]]
    for char, quoted in word[at + 1:]:
        if char == "," and not quoted:
            values.append([])
        else:
            values[-1].append((char, quoted))
    return "".join(c for c, _ in word[:at]), values


def _plain(value: Any) -> list[_Char]:
    """A value given as data (a YAML mapping): held to the rules of unquoted text."""
    return [(c, False) for c in str(value).strip()]


def unsafe_resource_char(key: str, text: str) -> str | None:
    """The first character of a resource value that must not reach sbatch's shell line, or None.

    The SLURM plugin puts resource values unquoted on a line it runs with a shell (``--gpus={gpu}``); only
    ``slurm_extra`` is re-quoted word by word (:func:`sbatch_words`), so only it may hold spaces, quotes, ``;``
    or ``$``. Every other value keeps to plain characters (and commas: a list of partitions), however it was
    written, also by hand in experiment.yml.
    """
    for char in text:
        if not char.isprintable():
            return char
        if key != SBATCH_WORDS and char != "," and not _RESOURCE_CHAR.match(char):
            return char
    return None


def _resource_value(key: str, value: list[_Char]) -> int | float | str:
    text = "".join(c for c, _ in value)
    bad = [c for c, quoted in value if (not quoted and not _RESOURCE_CHAR.match(c)) or not c.isprintable()]
    if not bad and unsafe_resource_char(key, text) is not None:  # quoted, but not slurm_extra
        raise UsageError(f"--resources: invalid value {text!r} for {key}: only {SBATCH_WORDS} may hold "
                         f"{unsafe_resource_char(key, text)!r} (the others reach sbatch's command line as they are)")
    if not text or bad:
        raise UsageError(f"--resources: invalid value {text!r} for {key}"
                         + (f" (quote {bad[0]!r})" if bad and bad[0].isprintable() and key == SBATCH_WORDS else ""))
    if key == SBATCH_WORDS:
        try:
            shlex.split(text)
        except ValueError as exc:
            raise UsageError(f"--resources: {key} {text!r}: {exc} (it is read as sbatch's own words)") from None
    if not any(quoted for _, quoted in value):
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    return text


def sbatch_words(value: str) -> str:
    """``slurm_extra`` as the plugin puts it on sbatch's shell line: the user's words, each quoted, so that a value
    with spaces stays one argument and nothing in it runs (``--mail-user="a b"`` -> ``'--mail-user=a b'``)."""
    return " ".join(shlex.quote(word) for word in shlex.split(value))


@dataclass
class _Param:
    type: str | None
    default: Any


def _parameter_table(defaults: dict[str, Any], comments: dict[str, str]) -> dict[str, _Param]:
    """Parameters of a set: the non-underscore keys of defaults.yml, typed by their ``(type)`` comment."""
    table: dict[str, _Param] = {}
    for key, value in defaults.items():
        key = str(key)
        if key.startswith("_"):
            continue
        declared = None
        if key in comments:
            declared = parse_comment(comments[key])[0]
        table[key] = _Param(declared, value)
    return table


_INFERRED = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def _fit(key: str, choice: sweep.Choice, param: _Param) -> tuple[Any, str | None, bool]:
    """The value to store for ``choice``, a warning if it does not fit the parameter's type, and whether that
    misfit is an error.

    ``1e-3`` for a float parameter is the float 0.001 (YAML 1.1 reads it as text). A value outside a
    ``Literal[...]`` parameter's choices is an error (a typo ``adm`` would run as the default); any other misfit
    is a warning, kept as given: the tutorial sweeps ``b: None | cat`` on an int.
    """
    declared = param.type or (_INFERRED.get(type(param.default)) if param.default is not None else None)
    value = choice.value
    if declared is None:
        return value, None, False
    if declared == "str" and isinstance(value, (int, float, bool)) and not isinstance(value, str):
        return choice.text, None, False  # what the user typed, e.g. a: 1.0 for a str parameter is '1.0'
    try:
        return coerce_value(declared, value, key), None, False
    except UsageError:
        pass
    return value, f"parameter {key!r} is declared {declared} but gets {value!r}", "Literal" in declared


def _fit_sweep(
    parsed: dict[str, list[sweep.Choice]],
    table: dict[str, _Param],
    strict: bool,
    warnings: list[str],
    generated_names: bool,
) -> dict[str, list[tuple[str, Any]]]:
    """Each parameter's alternatives as (``key=text`` name part, value to store), checked once per alternative.

    Checks what can be checked on the grammar, before any combination is built: unknown parameters, types,
    alternatives that differ only in spelling (``1e-3 | 0.001``: equal values, two folders) and, for generated
    names, the parts that would make two sweeps name one folder.
    """
    fitted: dict[str, list[tuple[str, Any]]] = {}
    for key, choices in parsed.items():
        if key not in table:
            known = ", ".join(table) or "none"
            raise UsageError(f"unknown parameter {key!r} (parameters: {known})")
        entries: list[tuple[str, Any]] = []
        spelled: dict[str, str] = {}
        for choice in choices:
            value, problem, fatal = _fit(key, choice, table[key])
            if problem:
                if strict or fatal:
                    raise UsageError(problem)
                if problem not in warnings:
                    warnings.append(problem)
            if generated_names:
                naming.check_part(key, choice.text)
            same = f"{type(value).__name__}:{value!r}"
            if same in spelled:
                raise UsageError(f"{key}: {spelled[same]!r} and {choice.text!r} are the same value")
            spelled[same] = choice.text
            entries.append((f"{key}={choice.text}", value))
        fitted[key] = entries
    return fitted


def _check_seed_param(seed_param: str, parsed: dict[str, list[sweep.Choice]], table: dict[str, _Param]) -> None:
    """``--seed-param NAME`` sets NAME to each repeat's index: it must be an int-like parameter not swept."""
    if seed_param not in table:
        known = ", ".join(table) or "none"
        raise UsageError(f"--seed-param: unknown parameter {seed_param!r} (parameters: {known})")
    if seed_param in parsed:
        raise UsageError(f"--seed-param {seed_param} sets {seed_param} to the repeat index; do not sweep it too")
    param = table[seed_param]
    declared = param.type or (_INFERRED.get(type(param.default)) if param.default is not None else None)
    if declared is not None and not check_value(declared, 1):
        raise UsageError(f"--seed-param: parameter {seed_param!r} is declared {declared}, not an int")


# Files register writes into an experiment folder (and what a killed write of them leaves).
_REGISTER_FILES = (ownership.EXPERIMENT_MARKER, PARAMS_FILE, RUN_FILE)


def _is_register_file(entry: str) -> bool:
    if entry in _REGISTER_FILES:
        return True
    for own in _REGISTER_FILES:
        if entry == f".{own}.lock" or (entry.startswith(f".{own}.") and entry.endswith(".tmp")):
            return True
    return False


def _same_parameters(found: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """None when ``found`` (a params.yml on disk) holds the values ``expected``; else the first difference."""
    for key, value in expected.items():
        if key.startswith("_") and key not in ("_name", "_repeat"):
            continue
        there = found.get(key, "<missing>")
        if files.dump_yaml(there) != files.dump_yaml(value):
            return f"{key}: {there!r} there, {value!r} here"
    return None


def _linked_clash(folder: str, overrides: dict[str, Any]) -> str | None:
    """The first override whose value differs from the one in ``folder``'s params.yml (None if all agree)."""
    try:
        found = files.read_yaml(os.path.join(folder, PARAMS_FILE))
    except StateFileError:
        return None
    return _same_parameters(found, {k: v for k, v in overrides.items() if not k.startswith("_")})


def _leftover(folder: str, params_text: str) -> tuple[str, str]:
    """What to do with an unlinked ``folder`` where register would create one, and why.

    ``repair``: an empty folder, or one xmen marked that has no readable params.yml and nothing but register's own
    files (a kill left it half-written): write params.yml and run.sh. ``relink``: xmen's folder with the values
    register would write, never run: link it (rewriting run.sh if it is incomplete). ``skip``: the same values
    but it ran (``xmen relink -e`` links it with its results). ``blocked``: a folder xmen did not make, or one
    with other values: never touched.
    """
    if os.path.islink(folder) or not os.path.isdir(folder):
        return "blocked", "a file of that name is in the way; rename it"
    try:
        entries = os.listdir(folder)
    except OSError as exc:
        return "blocked", f"folder cannot be read ({exc.strerror})"
    if not entries:
        return "repair", ""
    if not ownership.is_marked_experiment(folder):
        try:
            made_by_old_xmen = files.read_yaml(os.path.join(folder, PARAMS_FILE)).get("_name") == Path(folder).name
        except StateFileError:
            made_by_old_xmen = False
        if made_by_old_xmen:  # an experiment from before folders were marked: as ever, relink adopts it
            return "skip", "folder exists but is not linked (see xmen relink -e)"
        return "blocked", (f"folder exists and xmen did not make it (no {ownership.EXPERIMENT_MARKER}); "
                           "it is left untouched: rename it or register under another name")
    foreign = sorted(e for e in entries if not _is_register_file(e))
    try:
        found = files.read_yaml(os.path.join(folder, PARAMS_FILE))
    except StateFileError:
        if foreign:
            return "blocked", f"folder has no readable {PARAMS_FILE} but holds {', '.join(foreign[:3])}; not touched"
        return "repair", ""
    expected = files.load_yaml_text(params_text)
    keys, expected_keys = list(found), list(expected)
    if not foreign and len(keys) < len(expected_keys) and keys == expected_keys[:len(keys)]:
        return "repair", ""  # a torn write: the first lines of what register writes
    difference = _same_parameters(found, expected)
    if difference is not None:
        return "blocked", f"an unlinked folder of that name holds other values ({difference})"
    if found.get("_status", status.REGISTERED) == status.REGISTERED and status.DONE_FILE not in entries:
        return "relink", ""
    return "skip", "folder exists but is not linked (see xmen relink -e)"


def _finish_leftover(folder: str, state: str, params_text: str, run_text: str) -> None:
    """Complete a folder a killed register left (``state`` from :func:`_leftover`); atomic writes only."""
    params_path = os.path.join(folder, PARAMS_FILE)
    with files.locked(params_path):
        for own in _REGISTER_FILES:
            _remove_stale_temps(os.path.join(folder, own))
        if not ownership.is_marked_experiment(folder):
            ownership.mark_experiment(folder)
        if state == "repair":
            files.write_text_atomic(params_path, params_text)
        run_path = os.path.join(folder, RUN_FILE)
        try:
            current = Path(run_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            current = None
        if current != run_text:
            files.write_text_atomic(run_path, run_text, mode=0o755)


def _remove_stale_temps(path: str | os.PathLike[str]) -> None:
    """Delete the ``.NAME.*.tmp`` files a killed atomic write of ``path`` left. Call holding ``path``'s lock (every
    writer of ``path`` holds it), so no temp file deleted here is one a live writer is filling."""
    target = Path(path)
    prefix = f".{target.name}."
    try:
        entries = os.listdir(target.parent)
    except OSError:
        return
    for entry in entries:
        if entry.startswith(prefix) and entry.endswith(".tmp"):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / entry)


def _base_params(defaults: dict[str, Any], purpose: str, root: str, repeated: bool = False) -> dict[str, Any]:
    """The params.yml of the set's defaults; ``repeated`` adds a ``_repeat`` slot (each -x N repeat's index)."""
    params: dict[str, Any] = {
        "_name": None,
        "_root": root,
        "_status": status.REGISTERED,
        "_created": None,
        "_purpose": purpose or "",
        "_version": defaults.get("_version"),
        "_meta": get_meta(),
        "_messages": {},
    }
    if repeated:
        params["_repeat"] = None
    for key, value in defaults.items():
        if not str(key).startswith("_"):
            params[str(key)] = value
    return params


def _ordered(params: dict[str, Any]) -> dict[str, Any]:
    return params


def _params_renderer(base_params: dict[str, Any], created: str, comments: dict[str, str]):
    """The params.yml text of a new experiment from its name and overrides, for many experiments of one sweep.

    The same text as ``files.dump_params(params, comments)`` of ``params = dict(base_params)`` with ``_name``,
    ``_created`` and then the overrides set (tests compare both): every value is dumped once per sweep.
    """
    text = files.ParamsText(comments, plain_keys=("_name",))
    base = dict(base_params)
    base["_created"] = created
    base["_name"] = "x"  # a placeholder, replaced per experiment (the key keeps its position)
    parts = [text.entry(key, value) for key, value in base.items()]
    slot = {key: index for index, key in enumerate(base)}
    name_slot = slot["_name"]

    def render(name: str, overrides: dict[str, Any]) -> str:
        chunks = parts.copy()
        chunks[name_slot] = text.entry("_name", name)
        extra = []
        for key, value in overrides.items():
            index = slot.get(key)
            if index is None:
                extra.append(text.entry(key, value))  # a key new to the dict goes last, in update order
            else:
                chunks[index] = text.entry(key, value)
        return "".join(chunks + extra) if extra else "".join(chunks)

    return render


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
    data = files.read_yaml(defaults)
    for key in data:
        if not isinstance(key, str) or not key:
            raise UsageError(f"{defaults}: parameter names must be strings, got {key!r}")
    text = defaults.read_text(encoding="utf-8")
    files.write_text_atomic(staging / DEFAULTS_FILE, text)
    files.write_text_atomic(staging / SCRIPT_FILE, script.read_text(encoding="utf-8"), mode=0o755)
    return script.name
