"""``register``: every combination of a sweep as an experiment folder, in phases that each do one thing.

1. :func:`check_request` refuses bad numbers and oversized sweeps before anything is read or written;
2. :func:`plan_names` names each experiment (``k=v__k=v``, ``-n NAME``, ``-x N`` repeats) after fitting the sweep
   to the parameters of defaults.yml (xmen.sets.fitting);
3. :func:`sort_out` decides for each name: new, already registered (skipped), or a leftover of a register that was
   killed (repaired or re-linked, see :func:`leftover`), or blocked by a folder xmen did not make;
4. :func:`resolve_requires` and :func:`check_cycles` check ``--requires``;
5. :func:`write_and_link` writes the new folders, then links them in experiment.yml (the commit point), removing
   what it wrote if anything fails.

Everything is validated before the first folder is written; experiment.yml and the Snakefile are written once,
whatever the size of the sweep. Running the same registration again after it was killed finishes it.
"""
from __future__ import annotations

import contextlib
import fnmatch
import itertools
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from xmen.errors import StateFileError, UsageError
from xmen.sets import snakefile
from xmen.sets.fitting import check_seed_param, fit_sweep, parameter_table
from xmen.sets.run_options import check_threads, parse_run_options
from xmen.sets.runscript import resolve_header, run_script_renderer
from xmen.store import files, naming, ownership, statecheck, status, sweep
from xmen.store.layout import (DEFAULTS_FILE, DONE_FILE, EXPERIMENT_MARKER, PARAMS_FILE, REGISTER_KEYS, RUN_FILE,
                               SCRIPT_FILE, SET_FILE)
from xmen.store.layout import comments as comments_of
from xmen.store.provenance import get_meta, now_time
from xmen.store.setfile import is_glob

#: The most experiments one ``register`` makes unless told otherwise (``--max-experiments``): a typo such as
#: ``-x 100000000`` or a 12 x 10 sweep is refused in well under a second instead of filling memory and disk.
MAX_EXPERIMENTS = 100_000
SEPARATOR = naming.SEPARATOR
#: Files register writes into an experiment folder (and what a killed write of them leaves).
_REGISTER_FILES = (ownership.EXPERIMENT_MARKER, PARAMS_FILE, RUN_FILE)


@dataclass
class RegisterResult:
    """What ``register`` did: the folders created, the names skipped (with why) and the type warnings."""

    created: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Experiments not registered because a folder of their name is in the way (not xmen's, or other values).
    blocked: list[tuple[str, str]] = field(default_factory=list)


def register(
    set_root: Path,
    save_set: Callable[[dict[str, Any]], None],
    read_set: Callable[[], dict[str, Any]],
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
    """Register the sweep ``updates`` in the set at ``set_root`` (see the module docstring); ``read_set`` and
    ``save_set`` read and write its experiment.yml (ExperimentSet's)."""
    parsed = check_request(updates, name, repeats, threads, retries, max_experiments)
    options = parse_run_options(resources, threads, retries, retry_on)
    set_file = set_root / SET_FILE
    snakefile.refuse_links(set_root)  # it ends with the Snakefile: a link there stops it before any folder is made
    with files.locked(set_file):
        set_data = read_set()
        defaults_path = set_root / str(set_data.get("defaults") or DEFAULTS_FILE)
        defaults = statecheck.read_defaults(defaults_path)
        comments = files.read_comments(defaults_path)
        table = parameter_table(defaults, comments)
        linked: dict[str, Any] = dict(set_data.get("experiments") or {})
        result = RegisterResult()

        fitted = fit_sweep(parsed, table, strict, result.warnings, generated_names=name is None)
        if seed_param is not None:
            check_seed_param(seed_param, parsed, table)
        planned = plan_names(parsed, fitted, table, name, repeats, seed_param)

        param_comments = comments_of(REGISTER_KEYS)
        param_comments.update({k: v for k, v in comments.items() if not k.startswith("_")})
        # Every params.yml is dump_params(params, param_comments); the values they share are dumped once.
        params_file = params_renderer(base_params(defaults, purpose, str(set_root), repeated=repeats > 1), now_time(),
                                      param_comments)
        run_text = run_script_renderer(set_root / str(set_data.get("script") or SCRIPT_FILE), resolve_header(header),
                                       sys.executable)
        roots = ownership.set_roots(set_root, set_data)  # a leftover folder is reused only when it is this set's
        new, leftovers, link_names = sort_out(set_root, planned, linked, name is not None, params_file, result, roots)

        required = resolve_requires(set_root, list(requires), linked, link_names)
        if required:
            options["requires"] = required
            check_cycles(set_root, link_names, required)
        write_and_link(set_root, new, leftovers, link_names, options, params_file, run_text, set_data, linked, save_set)
        result.created = link_names
        snakefile.write_workflow(set_root)
        return result


def check_request(updates: str | dict[str, Any] | None, name: str | None, repeats: int, threads: int | None,
                  retries: int | None, max_experiments: int | None) -> dict[str, list[sweep.Choice]]:
    """The parsed sweep, once the numbers are sane and the sweep is not larger than ``max_experiments``."""
    if threads is not None:
        check_threads(threads)
    for option, value, least, most in (("-x/--repeats", repeats, 1, statecheck.MAX_COUNT),
                                       ("--retries", retries, 0, statecheck.MAX_RETRIES),
                                       ("--max-experiments", max_experiments, 1, statecheck.MAX_COUNT)):
        problem = None if value is None else statecheck.count_problem(option, value, least, most)
        if problem is not None:
            raise UsageError(f"{option}: {problem.replace(repr(option) + ' ', '', 1)}")
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
    return parsed


def plan_names(parsed: dict[str, list[sweep.Choice]], fitted: dict[str, list[tuple[str, Any]]],
               table: dict[str, Any], name: str | None, repeats: int,
               seed_param: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``(folder name, overrides)`` of every experiment of the sweep, in the sweep's order."""
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
    return planned


def sort_out(set_root: Path, planned: list[tuple[str, dict[str, Any]]], linked: dict[str, Any], named: bool,
             params_file: Callable[[str, dict[str, Any]], str],
             result: RegisterResult,
             roots: list[str]) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, str], list[str]]:
    """(experiments to write, leftovers to finish by name: "repair" | "relink", names to link); the skipped and
    blocked ones go into ``result``. ``named``: a name given with -n says nothing of the values; ``roots``: every
    folder the set is or was in (see ownership.set_roots)."""
    seen: set[str] = set()
    root_text = str(set_root)
    new: list[tuple[str, dict[str, Any]]] = []
    leftovers: dict[str, str] = {}  # name -> "repair" | "relink": left unlinked by an interrupted register
    link_names: list[str] = []
    for exp_name, overrides in planned:
        if exp_name in seen:
            raise UsageError(f"the sweep names {exp_name!r} twice")
        seen.add(exp_name)
        if exp_name in linked:
            # A name given with -n says nothing of the values: registered with others, it is no skip.
            clash = linked_clash(os.path.join(root_text, exp_name), overrides) if named else None
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
        verdict, why = leftover(folder, params_file(exp_name, overrides), roots)
        if verdict in ("repair", "relink"):
            leftovers[exp_name] = verdict
            link_names.append(exp_name)
            new.append((exp_name, overrides))
        elif verdict == "skip":
            result.skipped.append((exp_name, why))
        else:
            result.blocked.append((exp_name, why))
    return new, leftovers, link_names


def write_and_link(set_root: Path, new: list[tuple[str, dict[str, Any]]], leftovers: dict[str, str],
                   link_names: list[str], options: dict[str, Any], params_file: Callable[[str, dict[str, Any]], str],
                   run_text: Callable[[str], str], set_data: dict[str, Any], linked: dict[str, Any],
                   save_set: Callable[[dict[str, Any]], None]) -> None:
    """Write the new folders, then link them in experiment.yml; a failure removes the folders written so far.

    The new folders' files are written without a per-file fsync: experiment.yml is the commit point (an experiment
    it does not link does not exist), and the file system is synced once before it is replaced, atomically as
    ever. Each folder is marked as xmen's right after it is made, so a kill leaves only marked leftovers, which the
    next run of the same registration repairs or re-links.
    """
    root_text = str(set_root)
    written: list[Path] = []
    try:
        for exp_name, overrides in new:
            folder = os.path.join(root_text, exp_name)
            state = leftovers.get(exp_name)
            if state is not None:
                finish_leftover(folder, state, params_file(exp_name, overrides), run_text(folder))
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
        remove_stale_temps(set_root / SET_FILE)  # left by a killed writer; every writer holds this lock
        save_set(set_data)
    except BaseException:
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)
        raise


# ---------------------------------------------------------------------------------------------- requirements
def resolve_requires(set_root: Path, specs: list[str], linked: dict[str, Any], new_names: list[str]) -> list[str]:
    """Check ``--requires`` paths or globs and return them as experiment.yml keeps them: relative to the set's
    root, globs as globs. xmen.run.planner resolves them at every plan, so an experiment that joins a required
    set later joins the inputs, and an unlinked one leaves them."""
    kept: list[str] = []
    for spec in specs:
        spec = spec.strip().rstrip("/")
        if not spec:
            raise UsageError("empty --requires value")
        folder, _, pattern = spec.rpartition("/")
        other_root = Path(os.path.normpath(set_root / folder)) if folder else set_root
        if other_root == set_root:
            candidates = list(linked) + new_names
        else:
            if not (other_root / SET_FILE).is_file():
                raise UsageError(f"--requires {spec!r}: {other_root} is not an experiment set")
            candidates = [str(n) for n in (files.read_yaml(other_root / SET_FILE).get("experiments") or {})]
        if not any(fnmatch.fnmatchcase(n, pattern) for n in candidates):
            raise UsageError(f"--requires {spec!r} matches no linked experiment in {other_root}")
        rel_folder = os.path.relpath(other_root, set_root)
        entry = pattern if rel_folder == "." else f"{rel_folder}/{pattern}"
        if entry not in kept:
            kept.append(entry)
    return kept


def check_cycles(set_root: Path, new_names: list[str], required: list[str]) -> None:
    """Refuse requirements (paths or globs, resolved as the planner will) that lead back to an experiment
    being registered."""
    new_paths = {str(set_root / n) for n in new_names}
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
            if other == set_root:
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
                    chain = " -> ".join(trail + [os.path.relpath(nxt, set_root)])
                    raise UsageError(f"requirement cycle: {chain}")
                if str(nxt) not in visited:
                    visited.add(str(nxt))
                    stack.append((nxt, trail + [os.path.relpath(nxt, set_root)]))


# ------------------------------------------------------------------------------------- an interrupted register
def is_register_file(entry: str) -> bool:
    if entry in _REGISTER_FILES:
        return True
    for own in _REGISTER_FILES:
        if entry == f".{own}.lock" or (entry.startswith(f".{own}.") and entry.endswith(".tmp")):
            return True
    return False


def same_parameters(found: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """None when ``found`` (a params.yml on disk) holds the values ``expected``; else the first difference."""
    for key, value in expected.items():
        if key.startswith("_") and key not in ("_name", "_repeat"):
            continue
        there = found.get(key, "<missing>")
        if files.dump_yaml(there) != files.dump_yaml(value):
            return f"{key}: {there!r} there, {value!r} here"
    return None


def linked_clash(folder: str, overrides: dict[str, Any]) -> str | None:
    """The first override whose value differs from the one in ``folder``'s params.yml (None if all agree)."""
    try:
        found = files.read_yaml(os.path.join(folder, PARAMS_FILE))
    except StateFileError:
        return None
    return same_parameters(found, {k: v for k, v in overrides.items() if not k.startswith("_")})


def leftover(folder: str, params_text: str, roots: list[str]) -> tuple[str, str]:
    """What to do with an unlinked ``folder`` where register would create one, and why.

    ``repair``: an empty folder, or one xmen marked that has no readable params.yml and nothing but register's own
    files (a kill left it half-written): write params.yml and run.sh. ``relink``: xmen's folder with the values
    register would write, never run: link it (rewriting run.sh if it is incomplete). ``skip``: the same values
    but it ran (``xmen relink -e`` links it with its results). ``blocked``: a folder xmen did not make, or one
    with other values, or one whose marker is not this set's (a copy of another experiment, another set's: the
    ownership rule, ``ownership.why_not_xmen_experiment`` with the set's ``roots``): never touched.
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
    foreign = sorted(e for e in entries if not is_register_file(e))
    why_not = ownership.why_not_xmen_experiment(folder, roots)
    torn = ownership.marker_record(folder) is None  # empty: killed between creating the marker and writing it
    if why_not is not None and not (torn and not foreign):
        return "blocked", f"folder exists and is not this set's ({why_not}); it is left untouched: rename it"
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
    difference = same_parameters(found, expected)
    if difference is not None:
        return "blocked", f"an unlinked folder of that name holds other values ({difference})"
    if found.get("_status", status.REGISTERED) == status.REGISTERED and DONE_FILE not in entries:
        return "relink", ""
    return "skip", "folder exists but is not linked (see xmen relink -e)"


def finish_leftover(folder: str, state: str, params_text: str, run_text: str) -> None:
    """Complete a folder a killed register left (``state`` from :func:`leftover`); atomic writes only."""
    params_path = os.path.join(folder, PARAMS_FILE)
    with files.locked(params_path):
        for own in _REGISTER_FILES:
            remove_stale_temps(os.path.join(folder, own))
        if ownership.is_marked_experiment(folder) and ownership.marker_record(folder) is None:
            os.unlink(os.path.join(folder, EXPERIMENT_MARKER))  # left empty by a kill: written again, whole
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


def remove_stale_temps(path: str | os.PathLike[str]) -> None:
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


def base_params(defaults: dict[str, Any], purpose: str, root: str, repeated: bool = False) -> dict[str, Any]:
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


def params_renderer(base_params: dict[str, Any], created: str, comments: dict[str, str]):
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
