"""Sets and configuration written by the original xmen (2019-2021), read as ours.

The original's ``experiment.yml`` (its ``ExperimentManager._to_yml``) records::

    root: /abs/set            defaults: /abs/set/defaults.yml      script: /abs/set/script.sh
    experiments: [/abs/set/a=1__b=2, ...]   overides: [{a: 1, b: 2}, ...]
    created: ...   purpose: ...   notes: [...]   type: AnExperiment

Every path is absolute, so a copy of such a set still names the original folder: following those paths to write
is how a command run in a copy rewrote the original. The conversion here keeps only names relative to the folder
the set is read from; nothing in this module ever opens a recorded absolute path.

The original's ``~/.xmen/config.yml`` (``GlobalExperimentManager``) records ``python_experiments`` (name -> module
or run script), ``python_paths``, ``prompt_for_message``, ``header``, ``experiments`` (a list of set roots, later a
mapping root -> info) and a few keys of its own (``meta``, ``save_conda``, ``requeue``, ...). Its first write by
us keeps every key it had and a backup of the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any
from xmen.errors import StateFileError
from xmen.store import files
from xmen.store.layout import DEFAULTS_FILE, PARAMS_FILE, SCRIPT_FILE, SET_FILE
from xmen.store.status import FINISHED

#: Suffix of the copy of an original-format file kept when we first rewrite it.
BACKUP_SUFFIX = ".orig-xmen"

# The original's experiment.yml keys that have no meaning for us once converted.
_DROPPED_SET_KEYS = ("overides",)


def is_original_set(data: Any) -> bool:
    """Whether a parsed experiment.yml was written by the original xmen: experiments as a list of absolute paths.

    Any other list (``experiments: [a, b]``, a hand edit) is damage, which the shape check reports: reading it
    as names would let ``clean`` take every linked experiment for unlinked.
    """
    if not isinstance(data, dict):
        return False
    experiments = data.get("experiments")
    return isinstance(experiments, list) and all(
        isinstance(path, str) and os.path.isabs(path) for path in experiments
    )


def experiment_names(paths: list[Any]) -> list[str]:
    """The folder names of the original's absolute experiment paths (they always sat directly under the root)."""
    names: list[str] = []
    for path in paths:
        name = PurePosixPath(str(path).rstrip("/")).name
        if name and name not in names:
            names.append(name)
    return names


def _relative_file(value: Any, recorded_root: str, fallback: str) -> str:
    """A recorded absolute script/defaults path as a name inside the set (its own file when it was elsewhere)."""
    if not value:
        return fallback
    text = str(value)
    if not os.path.isabs(text):
        return text
    if recorded_root and text.startswith(recorded_root.rstrip("/") + "/"):
        return text[len(recorded_root.rstrip("/")) + 1 :]
    return fallback


def convert_set(data: dict[str, Any]) -> dict[str, Any]:
    """An original-format experiment.yml as ours; ours (or anything else) is returned unchanged.

    ``root`` keeps the recorded value, so that a copied set is seen as moved (and relinked before a run).
    """
    if not is_original_set(data):
        return data
    recorded_root = str(data.get("root") or "")
    converted: dict[str, Any] = {}
    converted["root"] = recorded_root
    converted["type"] = data.get("type")
    converted["created"] = data.get("created")
    converted["purpose"] = data.get("purpose") or ""
    converted["script"] = _relative_file(data.get("script"), recorded_root, SCRIPT_FILE)
    converted["defaults"] = _relative_file(data.get("defaults"), recorded_root, DEFAULTS_FILE)
    notes = data.get("notes") or []
    converted["notes"] = [str(n) for n in notes] if isinstance(notes, list) else [str(notes)]
    converted["options"] = {}
    for key, value in data.items():  # keys of its own we know nothing about are kept
        if key not in converted and key not in _DROPPED_SET_KEYS and key != "experiments":
            converted[key] = value
    converted["experiments"] = {name: {} for name in experiment_names(data["experiments"])}
    return converted


def finished_by_original(params: Any) -> bool:
    """Whether an experiment's params.yml says the original xmen finished it: ``_status: finished`` and no run of
    ours (``_run``, which our runner records). The one answer to "is an original experiment without a status file
    done": migration writes its status file, the planner of a set not yet migrated trusts it (finished means
    finished; the original kept no status file)."""
    return isinstance(params, dict) and params.get("_status") == FINISHED and "_run" not in params


def migrated_from_original(root: str | os.PathLike[str]) -> bool:
    """Whether the set at ``root`` was migrated from the original xmen (its experiment.yml backup is there)."""
    return backup_path(os.path.join(os.fspath(root), SET_FILE)).is_file()


def backup_path(path: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(path)}{BACKUP_SUFFIX}")


def keep_backup(path: str | os.PathLike[str], original_text: str) -> None:
    """Save the original-format text of ``path`` beside it before it is first rewritten (an older backup wins)."""
    backup = backup_path(path)
    if not backup.exists():
        files.write_text_atomic(backup, original_text)


def backup_if_original_set(set_file: str | os.PathLike[str]) -> None:
    """Before rewriting experiment.yml: keep the original xmen's version of it, if that is what is on disk."""
    try:
        text = Path(set_file).read_text(encoding="utf-8")
        data = files.load_yaml_text(text, os.fspath(set_file))
    except (OSError, StateFileError, UnicodeDecodeError):
        return
    if is_original_set(data):
        keep_backup(set_file, text)


# ---------------------------------------------------------------------------------------------- run.sh
def original_run_header(text: str) -> str:
    """The header of a run.sh written by the original xmen: the lines between the shebang and its command.

    The original wrote ``#!SHELL``, the header, ``[exec ]SHELL SCRIPT PARAMS`` and (2021) ``echo EXPERIMENT
    FINISHED!``.
    """
    lines = text.split("\n")
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    while lines and (not lines[-1].strip() or lines[-1].strip() == "echo EXPERIMENT FINISHED!"):
        lines.pop()
    if lines and lines[-1].rstrip().endswith(PARAMS_FILE):
        lines.pop()
    return "\n".join(lines).strip("\n")


# ---------------------------------------------------------------------------------------------- script.sh
# The 2021 script.sh of a set of a Python class (``Experiment.to_root``): ``exec LAUNCHER --execute ${1}``, LAUNCHER
# being the run script the original generated in the set's folder (``xmen.utils.get_run_script``).
_EXEC_LAUNCHER = re.compile(r"^exec (/\S+) --execute \$\{?1\}?\s*$", re.M)
_CLASS = re.compile(r'^X = getattr\(mod, "([A-Za-z_][A-Za-z0-9_]*)"\)\s*$', re.M)


def original_class_script(text: str, set_dir: str, recorded_root: str) -> tuple[str, str] | None:
    """``(module file, class name)`` that a 2021 class set's script.sh runs, or None for any other script.

    The launcher it execs is read from the set's own folder (``set_dir``), never through the recorded absolute path,
    which names the folder the set was copied from.
    """
    found = _EXEC_LAUNCHER.search(text)
    root = recorded_root.rstrip("/")
    if found is None or not root or os.path.dirname(found.group(1)) != root:
        return None
    launcher = os.path.join(set_dir, os.path.basename(found.group(1)))
    try:
        launcher_text = Path(launcher).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    name = _CLASS.search(launcher_text)
    module = experiment_module(launcher)
    if name is None or not module.endswith(".py"):
        return None
    return module, name.group(1)


# ---------------------------------------------------------------------------------------------- config
#: The original's config keys that ours reads under another name.
_CONFIG_RENAMES = {"prompt_for_message": "prompt", "python_experiments": "experiments"}


_SYS_PATH = re.compile(r'^sys\.path\.append\("([^"]*)"\)\s*$', re.M)
_IMPORT = re.compile(r'^mod = importlib\.import_module\("([A-Za-z0-9_.]+)"\)\s*$', re.M)


def experiment_module(path: str) -> str:
    """The Python file of a class the original registered: the path itself (2020: the module), or, for the run
    script it generated in ``~/.xmen/experiments`` (2021), the module that script imports (read, never run)."""
    if path.endswith(".py"):
        return path
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return path
    module, root = _IMPORT.search(text), _SYS_PATH.search(text)
    if module is None:
        return path
    candidate = os.path.join(root.group(1) if root else os.path.dirname(path), *module.group(1).split(".")) + ".py"
    return candidate if os.path.isfile(candidate) else path


#: Keys of the 2021 ``xmen.yml`` never copied into ours: its private ones (``_dir``) and the server password.
_CONFIG_SECRET = ("password",)


def is_original_config(data: Any) -> bool:
    """Whether a parsed config.yml (2020) or xmen.yml (2021) was written by the original xmen."""
    return isinstance(data, dict) and any(key in data for key in (*_CONFIG_RENAMES, "linked"))


def linked_sets(experiments: Any) -> list[str]:
    """The set folders of the 2021 ``linked`` list (experiment folders), each once, in order."""
    roots: list[str] = []
    for path in experiments if isinstance(experiments, list) else []:
        root = os.path.dirname(str(path).rstrip("/"))
        if root and root not in roots:
            roots.append(root)
    return roots


def convert_config(data: dict[str, Any]) -> dict[str, Any]:
    """The original's config.yml (2020) or xmen.yml (2021) as the dict ``GlobalConfig.from_dict`` reads; other keys
    are kept as they are, except the 2021 file's private keys and server password.

    Its ``experiments`` (set roots, as a list or a mapping root -> info) or ``linked`` (2021: experiment folders)
    become our ``sets``; its registered classes (name -> module or generated run script) our ``experiments``.
    """
    if not is_original_config(data):
        return data
    converted: dict[str, Any] = {}
    for key, value in data.items():
        if str(key).startswith("_") or key in _CONFIG_SECRET:
            continue
        if key == "experiments":
            roots = list(value) if isinstance(value, (list, dict)) else []
            converted["sets"] = [str(r) for r in roots]
        elif key == "linked":  # 2021: experiment folders
            converted["sets"] = linked_sets(value)
        elif key == "python_experiments" and isinstance(value, dict):
            converted["experiments"] = {str(k): experiment_module(str(v)) for k, v in value.items()}
        elif key in _CONFIG_RENAMES:
            converted[_CONFIG_RENAMES[key]] = value
        else:
            converted[key] = value
    return converted
