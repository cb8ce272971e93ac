"""An experiment set: a folder of experiments sharing one script, one defaults.yml and one Snakefile.

The folders are the source of truth. ``experiment.yml`` records the set (type, purpose, notes) and which
experiment folders are linked, with their run options (resources, threads, retries, requirements); the Snakefile
reads it. Every change to ``experiment.yml`` is a locked read-modify-write, and a command that fails validation
changes nothing: folders are written only after the whole request was checked, and removed again if writing fails.
"""
from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from . import config as global_config
from . import files, naming, snakefile, status, sweep
from .errors import NotASetError, SetExistsError, StateFileError, UsageError, XmenError

SET_FILE = "experiment.yml"
DEFAULTS_FILE = "defaults.yml"
SCRIPT_FILE = "script.sh"
PARAMS_FILE = "params.yml"
RUN_FILE = "run.sh"

_SET_COMMENTS = {
    "root": "Folder of this set (relink updates it after a move)",
    "type": "Experiment type",
    "created": "When the set was created",
    "purpose": "What the set is for",
    "notes": "Notes added with xmen note",
    "options": "Run options every experiment gets unless it sets its own",
    "experiments": "Linked experiments and their run options (resources, threads, retries, requires)",
}
_PARAM_COMMENTS = {
    "_name": "The name of the experiment (its folder)",
    "_root": "The experiment set it belongs to",
    "_status": "default | registered | running | finished | error | stopped | timeout",
    "_created": "The date the experiment was created",
    "_purpose": "A description of the experiment purpose",
    "_version": "Experiment version information",
    "_meta": "Machine and user that registered the experiment",
    "_messages": "Messages left by the experiment",
}
_RESOURCE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESOURCE_VALUE = re.compile(r"^[A-Za-z0-9_.:+%@/-]+$")


@dataclass
class RegisterResult:
    """What ``register`` did: the folders created, the names skipped (with why) and the type warnings."""

    created: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def is_set(root: str | os.PathLike[str]) -> bool:
    return (Path(root) / SET_FILE).is_file()


def _now() -> str:
    from .provenance import now_time

    return now_time()


class ExperimentSet:
    """The experiment set at ``root`` (raises NotASetError if there is none)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.abspath(os.path.expanduser(root)))
        if not self.root.is_dir():
            raise NotASetError(f"no such folder: {self.root}")
        if not is_set(self.root):
            raise NotASetError(f"not an experiment set (no {SET_FILE}): {self.root}")

    def __repr__(self) -> str:
        return f"ExperimentSet({str(self.root)!r})"

    # ------------------------------------------------------------------ reading
    @property
    def set_file(self) -> Path:
        return self.root / SET_FILE

    def data(self) -> dict[str, Any]:
        """The parsed experiment.yml."""
        return files.read_yaml(self.set_file)

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
        return files.read_yaml(self.root / name / PARAMS_FILE)

    def status_of(self, name: str) -> str:
        """The status of one experiment as a user should see it (a dead ``running`` one is ``lost``)."""
        exp_dir = self.root / name
        try:
            params = files.read_yaml(exp_dir / PARAMS_FILE)
        except StateFileError:
            return "corrupt"
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
        created_root = not root_path.exists()
        root_path.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".xmen-init-", dir=root_path))
        moved: list[Path] = []
        try:
            if name is not None:
                exp_type = _init_python(staging, name)
            else:
                exp_type = _init_script(staging, Path(script), Path(defaults))  # type: ignore[arg-type]
            snakefile.write_workflow(staging)
            for entry in [DEFAULTS_FILE, SCRIPT_FILE, snakefile.SNAKEFILE, "profiles"]:
                target = root_path / entry
                if target.exists():
                    if entry == "profiles" and target.is_dir():
                        # Keep the user's other profiles; only ours is (re)placed.
                        (target / "default").mkdir(parents=True, exist_ok=True)
                        os.replace(staging / entry / "default" / "config.yaml", target / "default" / "config.yaml")
                        continue
                    raise SetExistsError(f"{target} exists; refusing to overwrite it")
                os.replace(staging / entry, target)
                moved.append(target)
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
        requires: Iterable[str] = (),
    ) -> RegisterResult:
        """Register every combination of the sweep ``updates`` as an experiment folder.

        Everything is validated before the first folder is written; if writing fails, what was written is
        removed. experiment.yml and the Snakefile are written once, whatever the size of the sweep.
        """
        if repeats < 1:
            raise UsageError(f"-x/--repeats must be at least 1, got {repeats}")
        if threads is not None and threads < 1:
            raise UsageError(f"--threads must be at least 1, got {threads}")
        if retries is not None and retries < 0:
            raise UsageError(f"--retries must be 0 or more, got {retries}")
        combos = sweep.combinations(updates if updates is not None else {})
        if name is not None:
            naming.check_name(name)
            if len(combos) > 1:
                raise UsageError(f"-n NAME names a single experiment, but the sweep has {len(combos)} combinations")
        run_options = _run_options(resources, threads, retries)

        with files.locked(self.set_file):
            set_data = self.data()
            defaults_path = self.root / str(set_data.get("defaults") or DEFAULTS_FILE)
            defaults = files.read_yaml(defaults_path)
            comments = files.read_comments(defaults_path)
            table = _parameter_table(defaults, comments)
            linked: dict[str, Any] = dict(set_data.get("experiments") or {})
            result = RegisterResult()

            planned: list[tuple[str, dict[str, Any]]] = []
            fitted: dict[tuple[str, int], tuple[Any, str | None]] = {}  # the combinations share their Choices
            for combo in combos:
                overrides: dict[str, Any] = {}
                for key, choice in combo.items():
                    slot = (key, id(choice))
                    fit = fitted.get(slot)
                    if fit is None:
                        if key not in table:
                            known = ", ".join(table) or "none"
                            raise UsageError(f"unknown parameter {key!r} (parameters: {known})")
                        fit = fitted[slot] = _fit(key, choice, table[key])
                    value, problem = fit
                    if problem:
                        if strict:
                            raise UsageError(problem)
                        if problem not in result.warnings:
                            result.warnings.append(problem)
                    overrides[key] = value
                base = name if name is not None else naming.experiment_name({k: c.text for k, c in combo.items()})
                if repeats > 1:
                    names = [naming.repeat_name(base, i) for i in range(1, repeats + 1)]
                elif base:
                    names = [base]
                else:
                    raise UsageError("nothing to name the experiment by: give -n NAME, overrides, or -x N")
                for exp_name in names:
                    naming.check_name(exp_name)
                    planned.append((exp_name, overrides))

            seen: set[str] = set()
            root_text = str(self.root)
            todo: list[tuple[str, dict[str, Any]]] = []
            for exp_name, overrides in planned:
                if exp_name in seen:
                    raise UsageError(f"the sweep names {exp_name!r} twice")
                seen.add(exp_name)
                if exp_name in linked:
                    result.skipped.append((exp_name, "already registered"))
                elif os.path.lexists(os.path.join(root_text, exp_name)):
                    result.skipped.append((exp_name, "folder exists but is not linked (see xmen relink -e)"))
                else:
                    todo.append((exp_name, overrides))

            new_names = [n for n, _ in todo]
            required = self._resolve_requires(list(requires), linked, new_names)
            options = dict(run_options)
            if required:
                options["requires"] = required
            if required:
                self._check_cycles(new_names, required, linked)

            header_text = _header_text(header)
            python = sys.executable
            script_path = self.root / str(set_data.get("script") or SCRIPT_FILE)
            base_params = _base_params(defaults, purpose, str(self.root))
            param_comments = dict(_PARAM_COMMENTS)
            param_comments.update({k: v for k, v in comments.items() if not k.startswith("_")})
            created_time = _now()

            # Every params.yml is dump_params(params, param_comments); the values they share are dumped once.
            params_file = _params_renderer(base_params, created_time, param_comments)
            run_text = _run_script_renderer(script_path, header_text, python)
            written: list[Path] = []
            try:
                # The new folders' files are written without a per-file fsync: experiment.yml is the commit point
                # (an experiment it does not link does not exist), and the file system is synced once before it
                # is replaced, atomically as ever. A failure removes the folders written so far.
                for exp_name, overrides in todo:
                    folder = os.path.join(root_text, exp_name)
                    os.mkdir(folder)
                    written.append(Path(folder))
                    files.write_new_file(os.path.join(folder, PARAMS_FILE), params_file(exp_name, overrides))
                    files.write_new_file(os.path.join(folder, RUN_FILE), run_text(folder), mode=0o755)
                if written:
                    files.sync_filesystem(root_text)
                for exp_name in new_names:
                    linked[exp_name] = dict(options)
                set_data["experiments"] = linked
                files.write_yaml(self.set_file, set_data, _SET_COMMENTS)
            except BaseException:
                for folder in written:
                    shutil.rmtree(folder, ignore_errors=True)
                raise
            result.created = new_names
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
        from .planner import is_glob

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
    def note(self, message: str, delete: bool = False, experiments: str | None = None) -> None:
        """Add (or delete) a note on the set, or on the experiments matching ``experiments``."""
        if not message.strip():
            raise UsageError("empty note")
        if experiments is not None:
            names = self.match(experiments)
            if not names:
                raise UsageError(f"no linked experiment matches {experiments!r}")
            for exp_name in names:
                files.update_yaml(self.root / exp_name / PARAMS_FILE, _edit_notes("_notes", message, delete))
            return
        files.update_yaml(self.set_file, _edit_notes("notes", message, delete))

    # ------------------------------------------------------------------ state changes
    def reset(self, pattern: str | Iterable[str] = "*", statuses: Iterable[str] = ()) -> list[str]:
        """Set matching experiments back to ``registered`` and remove their status file, so they run again.

        Experiments still running (live heartbeat) are left alone.
        """
        wanted = set(statuses)
        unknown = wanted - set(status.ALL)
        if unknown:
            raise UsageError(f"unknown status {sorted(unknown)[0]!r} (one of {', '.join(status.ALL)})")
        names = self.match(pattern)
        done: list[str] = []
        for exp_name in names:
            exp_dir = self.root / exp_name
            current = self.status_of(exp_name)
            if wanted and current not in wanted:
                continue
            if current == status.RUNNING:
                continue

            def back_to_registered(params: dict[str, Any]) -> None:
                params["_status"] = status.REGISTERED
                params["_reset"] = _now()
                params.pop("_run", None)
                params.pop("_error", None)

            try:
                files.update_yaml(exp_dir / PARAMS_FILE, back_to_registered)
            except StateFileError as exc:
                raise XmenError(f"cannot reset {exp_name}: {exc}") from None
            (exp_dir / status.DONE_FILE).unlink(missing_ok=True)
            done.append(exp_name)
        if done:
            snakefile.write_workflow(self.root)
        return done

    def unlink(self, pattern: str | Iterable[str]) -> list[str]:
        """Remove matching experiments from the set; their folders stay until ``clean``."""
        names = self.match(pattern)
        if names:
            drop = set(names)

            def remove(data: dict[str, Any]) -> None:
                data["experiments"] = {k: v for k, v in (data.get("experiments") or {}).items() if k not in drop}

            files.update_yaml(self.set_file, remove)
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
            if pattern is not None:
                for exp_name in self._experiment_folders():
                    if exp_name not in linked and fnmatch.fnmatchcase(exp_name, pattern):
                        linked[exp_name] = {}
                        relinked.append(exp_name)
                if not relinked:
                    raise UsageError(f"no unlinked experiment folder matches {pattern!r}")
            moved = old_root != str(self.root)
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
                files.write_yaml(self.set_file, data, _SET_COMMENTS)
            snakefile.write_workflow(self.root)
        if old_root and old_root != str(self.root):
            global_config.forget_set(old_root)
        global_config.remember_set(self.root)
        return relinked

    # ------------------------------------------------------------------ deleting
    def unlinked_folders(self) -> list[str]:
        """Top-level experiment folders (holding a params.yml) that are not linked: what ``clean`` deletes."""
        linked = set(self.experiments)
        return [n for n in self._experiment_folders() if n not in linked]

    def clean(self) -> list[str]:
        """Delete the unlinked experiment folders (never anything of a linked experiment)."""
        removed = []
        with files.locked(self.set_file):
            for exp_name in self.unlinked_folders():
                shutil.rmtree(self.root / exp_name)
                removed.append(exp_name)
        return removed

    def rm(self) -> None:
        """Delete the whole set folder and forget it."""
        shutil.rmtree(self.root)
        global_config.forget_set(self.root)


# ---------------------------------------------------------------------- helpers
def find_sets(top: str | os.PathLike[str], recursive: bool = True) -> Iterator[Path]:
    """Sets at or below ``top``, without descending into a set's own experiment folders."""
    top = Path(os.path.abspath(top))
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        is_root = any(e.name == SET_FILE and e.is_file() for e in entries)
        if is_root:
            yield folder
            if not recursive:
                continue
        elif folder != top and not recursive:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
                continue
            if is_root and os.path.exists(os.path.join(entry.path, PARAMS_FILE)):
                continue  # an experiment folder of this set
            if entry.name in ("profiles",) and is_root:
                continue
            stack.append(Path(entry.path))


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
    quote = shlex.quote

    def render(exp_dir: str) -> str:
        return f"{head}cd {quote(exp_dir)} || exit 1\n{runner}{quote(exp_dir + '/' + PARAMS_FILE)}{tail}"

    return render


_HEADER_END = "# Generated by xmen: runs the set's script.sh"


def _existing_header(run_script: Path, cache: dict[str, str]) -> str:
    try:
        text = run_script.read_text(encoding="utf-8")
    except OSError:
        return ""
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


def _run_options(resources: str | dict[str, Any] | None, threads: int | None, retries: int | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    parsed = parse_resources(resources) if resources else {}
    if parsed:
        options["resources"] = parsed
    if threads is not None:
        options["threads"] = threads
    if retries is not None:
        options["retries"] = retries
    return options


def parse_resources(spec: str | dict[str, Any]) -> dict[str, Any]:
    """``"mem_mb=4000 runtime=60 slurm_partition=gpu"`` -> dict; ``mem_mb=1000,2000`` gives one value per attempt."""
    if isinstance(spec, dict):
        items = [(str(k), v) for k, v in spec.items()]
    else:
        items = []
        for token in spec.replace("\n", " ").split():
            key, sep, value = token.partition("=")
            if not sep or not value:
                raise UsageError(f"--resources: expected NAME=VALUE, got {token!r}")
            items.append((key, value))
    parsed: dict[str, Any] = {}
    for key, value in items:
        if not _RESOURCE_NAME.match(key):
            raise UsageError(f"--resources: invalid resource name {key!r}")
        values = value if isinstance(value, list) else str(value).split(",")
        converted = [_resource_value(key, str(v).strip()) for v in values]
        parsed[key] = converted[0] if len(converted) == 1 else converted
    return parsed


def _resource_value(key: str, text: str) -> int | float | str:
    if not text or not _RESOURCE_VALUE.match(text):
        raise UsageError(f"--resources: invalid value {text!r} for {key}")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@dataclass
class _Param:
    type: str | None
    default: Any


def _parameter_table(defaults: dict[str, Any], comments: dict[str, str]) -> dict[str, _Param]:
    """Parameters of a set: the non-underscore keys of defaults.yml, typed by their ``(type)`` comment."""
    from .parameters import parse_comment

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


def _fit(key: str, choice: sweep.Choice, param: _Param) -> tuple[Any, str | None]:
    """The value to store for ``choice``, and a warning if it does not fit the parameter's type."""
    from .parameters import check_value

    declared = param.type or (_INFERRED.get(type(param.default)) if param.default is not None else None)
    value = choice.value
    if declared is None:
        return value, None
    if declared == "str" and isinstance(value, (int, float, bool)) and not isinstance(value, str):
        return choice.text, None  # what the user typed, e.g. a: 1.0 for a str parameter is '1.0'
    if check_value(declared, value):
        return value, None
    return value, f"parameter {key!r} is declared {declared} but gets {value!r}"


def _base_params(defaults: dict[str, Any], purpose: str, root: str) -> dict[str, Any]:
    from .provenance import get_meta

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


def _edit_notes(key: str, message: str, delete: bool):
    def edit(data: dict[str, Any]) -> None:
        notes = [str(n) for n in data.get(key) or []]
        if delete:
            if message not in notes:
                raise UsageError(f"no such note: {message!r}")
            notes.remove(message)
        else:
            notes.append(message)
        data[key] = notes

    return edit


def _effective_status(params: dict[str, Any], exp_dir: Path) -> str:
    try:
        from .heartbeat import effective_status
    except ImportError:  # pragma: no cover - during bootstrap
        return str(params.get("_status", "unknown"))
    return effective_status(params, exp_dir)


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
