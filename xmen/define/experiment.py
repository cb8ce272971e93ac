"""The ``Experiment`` base class: parameters declared with ``@p`` comments, a command line, and a status lifecycle.

Subclass it, declare parameters, override ``run``::

    class AnExperiment(Experiment):
        def __init__(self):
            \"\"\"A basic python experiment.\"\"\"
            super().__init__()
            self.a: str = 'h'  # @p A parameter

        def run(self):
            print(self.a)

    if __name__ == '__main__':
        exp = AnExperiment(); args = exp.parse_args(); exp.main(args)

The parameter table is read from the class source when the class is created (see :mod:`xmen.define.parameters`); each
class has its own table, merged along the MRO. The table feeds ``help()``, ``--help``, ``defaults.yml`` comments and
the checks of ``--update``. Folder layout written here:

* ``<root>/defaults.yml`` and ``<root>/script.sh`` (``--to_root``): what an experiment set needs to register and
  run experiments of this class without importing it;
* ``<root>/<name>/params.yml`` (``--register``): one experiment; its ``_status`` goes ``registered`` -> ``running``
  -> ``finished`` | ``error`` | ``stopped`` | ``timeout``, always through a locked read-modify-write so that
  concurrent ``message()`` calls and other processes' edits are kept;
* ``<root>/<name>/out.txt``: a copy of everything the experiment printed while it ran under ``--execute``;
* a run records what every run records, with or without the job runner (``_run``, ``_attempts``, ``xmen.done``
  when it finished...): see :mod:`xmen.store.lifecycle`.

Only the stdlib and PyYAML are imported: this module loads inside every job on a cluster node.
Also runnable as ``python -m xmen.experiment SCRIPT.py:ClassName [flags]`` for classes that are not their script's
``__main__``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import inspect
import os
import shlex
import signal
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from xmen.store import files
from xmen.store.lifecycle import Lifecycle
from xmen.store.locks import RUN_BY_EXPERIMENT
from xmen.store.naming import check_name as check_folder_name
from xmen.store.notes import EXPERIMENT_NOTES, edit_notes
from xmen.store import status as st
from xmen.errors import ExperimentError, UsageError, XmenError
from xmen.store.history import HistoryWriter
from xmen.define.argv import class_parser, debug_folder, experiment_parser, parse_update
from xmen.define.process import SIGNAL_STATUS, Interrupted, SignalTrap, tee_output
from xmen.define.parameters import (ClassTable, Param, class_table, coerce_value, merge_tables, to_yaml_safe, with_block,
                                    yaml_comment)
from xmen.store.provenance import get_git, get_meta, get_version, now_time
from xmen.store.layout import DEFAULTS_FILE, OUT_FILE, PARAMS_FILE, SCRIPT_FILE


#: Help comments of the metadata keys, in the order they are written (parameters follow them).
META_COMMENTS: dict[str, str] = {
    "_created": "The date the experiment was created",
    "_version": "Experiment version information. See `get_version`",
    "_meta": "The machine and user that created the experiment",
    "_name": "The name of the experiment (its folder)",
    "_root": "The folder of the experiment set",
    "_status": "One of registered, running, finished, error, stopped, timeout, cancelled",
    "_purpose": "Why the experiment was run",
    "_messages": "Latest values sent by the experiment with message()",
    "_run": "The last run: host, pid, start and end time, return code",
    "_error": "Why the last run did not finish",
}

#: Exit codes of ``main()`` per final status (timeouts exit 128 + the signal number, like a shell).
EXIT_ERROR = 1
EXIT_STOPPED = 130


# ----------------------------------------------------------------------------------------------------------------
# Helpers the set-level code reuses
# ----------------------------------------------------------------------------------------------------------------


def params_table(cls: type) -> dict[str, Param]:
    """The merged parameter table of an Experiment class (name -> :class:`~xmen.define.parameters.Param`), a copy."""
    return dict(getattr(cls, "_xmen_params", {}))


def params_comments(cls: type) -> dict[str, str]:
    """Comments for ``defaults.yml`` / ``params.yml``: metadata keys and ``(TYPE) HELP (default=REPR)`` per
    parameter."""
    comments = dict(META_COMMENTS)
    for name, param in params_table(cls).items():
        comments[name] = yaml_comment(param)
    return comments


def source_file(cls: type) -> str | None:
    """Absolute path of the file defining ``cls``; ``None`` if it has none (exec'd, interactive)."""
    try:
        path = inspect.getsourcefile(cls) or inspect.getfile(cls)
    except (TypeError, OSError):
        return None
    return os.path.abspath(path) if path else None


def defaults_dict(instance: "Experiment") -> dict[str, Any]:
    """``defaults.yml`` content of ``instance``: ``_created``, ``_version``, ``_meta``, then its parameters.

    Parameter values are the instance's current values (defaults after ``__init__``, plus any ``update``), made
    YAML-safe (tuples become lists, numpy scalars Python numbers).
    """
    cls = type(instance)
    data: dict[str, Any] = {
        "_created": now_time(),
        "_version": get_version(source_file(cls), cls.__qualname__),
        "_meta": get_meta(),
    }
    for name in params_table(cls):
        data[name] = to_yaml_safe(getattr(instance, name, None))
    return data


def ordered(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with metadata keys first (in :data:`META_COMMENTS` order, then other ``_`` keys), then the rest."""
    out = {key: data[key] for key in META_COMMENTS if key in data}
    out.update((k, v) for k, v in data.items() if str(k).startswith("_") and k not in out)
    out.update((k, v) for k, v in data.items() if k not in out)
    return out


def check_name(name: str) -> str:
    """Refuse experiment names that are not a single, ordinary folder name."""
    text = str(name)
    if not text or text in (".", "..") or "/" in text or os.sep in text or "\0" in text or "\n" in text:
        raise UsageError(f"invalid experiment name {text!r}: it must be a single folder name")
    return check_folder_name(text)  # what xmen register accepts: the Snakefile cannot run names with {} and such


# ----------------------------------------------------------------------------------------------------------------
# Run-time machinery: tee of the output, signal trap
# ----------------------------------------------------------------------------------------------------------------


def _comment_safe(text: Any) -> str:
    """Text for a shell comment: a newline in a path must not end the comment and become a command."""
    return str(text).replace("\n", "\\n").replace("\r", "\\r")


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """Report file system failures (permissions, a file where a folder should be) as one-line XmenErrors."""
    try:
        yield
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise XmenError(f"cannot {what}: {exc.strerror or exc}{where}") from None


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ----------------------------------------------------------------------------------------------------------------
# The Experiment class
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class _State:
    """Per-instance bookkeeping, kept in one attribute so that it cannot collide with a user's parameters."""

    status: str = st.DEFAULT
    directory: Path | None = None
    messages: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0
    frozen: bool = False  #: parameters are fixed: the folder's params.yml records them (set by register / load)
    pending: tuple[str, str, str] | None = None  #: (root, name, purpose) of Experiment(root, name), done after init
    init_depth: int = 0  #: nesting of wrapped __init__ calls (the outermost one performs ``pending``)
    context: Any = None  #: the running ``with exp:`` block (see :class:`_Block`)
    history: HistoryWriter | None = None  # buffers message() calls (created on the first one with a folder)


class _Recorded:
    """A read-only member of the original xmen API (``exp.name``, ``exp.created``, ...), read from ``params.yml``.

    A non-data descriptor: a parameter of the same name (``name: str = 'x'  # @p``) wins, so classes written for
    this xmen that already use such names keep working.
    """

    def __init__(self, read: Callable[["Experiment"], Any]) -> None:
        self.read = read
        self.__doc__ = read.__doc__

    def __get__(self, obj: "Experiment | None", owner: type | None = None) -> Any:
        return self if obj is None else self.read(obj)

    def __repr__(self) -> str:
        return "<recorded in params.yml>"


def _recorded(key: str) -> Callable[["Experiment"], Any]:
    def read(exp: "Experiment") -> Any:
        folder = exp._xmen.directory
        if folder is None:
            return None
        try:
            return files.read_yaml(folder / PARAMS_FILE).get(key)
        except XmenError:
            return None

    return read


def _folder_part(part: str) -> Callable[["Experiment"], Any]:
    def read(exp: "Experiment") -> Any:
        folder = exp._xmen.directory
        if folder is None:
            return None
        return os.fspath(folder.parent) if part == "root" else folder.name

    return read


def _outermost_init(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subclass ``__init__`` so that ``Cls(root, name)`` registers once every ``__init__`` has run (the
    parameters assigned in the subclass's ``__init__`` are then in ``params.yml``)."""

    @functools.wraps(init)
    def wrapper(self: "Experiment", *args: Any, **kwargs: Any) -> None:
        state = self._xmen
        state.init_depth += 1
        try:
            init(self, *args, **kwargs)
        finally:
            state.init_depth -= 1
        if state.init_depth == 0 and state.pending is not None:
            root, name, purpose = state.pending
            state.pending = None
            self.register(root, name, purpose)

    return wrapper


class _Block:
    """The lifecycle of ``with exp:``, reusing :meth:`Experiment._run_managed` unchanged.

    ``_run_managed`` runs in a helper thread around a call that waits for the block to end and re-raises the block's
    exception there, so a with-block gets exactly the statuses, lock, heartbeat, ``out.txt`` copy and ``params.yml``
    writes of ``run()``. Signals are trapped in the main thread (only it can) and end the block like ``run()``.
    """

    def __init__(self, exp: "Experiment") -> None:
        self.exp = exp
        self.entered = threading.Event()
        self.left = threading.Event()
        self.error: BaseException | None = None
        self.failure: BaseException | None = None
        self.trap = SignalTrap()
        self.thread = threading.Thread(target=self._manage, name="xmen-with-block", daemon=True)

    def _body(self) -> None:
        self.entered.set()
        self.left.wait()
        if self.error is not None:
            raise self.error

    def _manage(self) -> None:
        try:
            self.exp._run_managed(self._body)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.failure = exc
        finally:
            self.entered.set()

    def enter(self) -> None:
        self.thread.start()
        self.entered.wait()
        if self.failure is not None:
            self.thread.join()
            raise self.failure
        self.trap.install()

    def exit(self, error: BaseException | None) -> None:
        self.trap.armed = False
        self.trap.restore()
        self.error = error
        self.left.set()
        self.thread.join()
        if self.failure is not None:
            raise self.failure


class Experiment:
    """Base class of python experiments: subclass it, declare ``@p`` parameters and override ``run()``.

    Instances expose ``status``, ``directory`` and ``messages``; ``message()`` records values in ``params.yml``;
    ``parse_args()`` / ``main()`` give the script a command line (``--help`` lists the parameters).
    """

    _xmen_own: ClassTable = ClassTable({}, {})
    _xmen_params: dict[str, Param] = {}
    _xmen_description: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Read this class's parameter table from its source, merge it with its parents', and write the docs."""
        super().__init_subclass__(**kwargs)
        own = class_table(cls)
        cls._xmen_own = own
        tables = [c.__dict__["_xmen_own"] for c in reversed(cls.__mro__) if "_xmen_own" in c.__dict__]
        table = merge_tables(tables)
        for name in [n for n in table if isinstance(inspect.getattr_static(cls, n, None), property)]:
            del table[name]  # a subclass replaced the parameter by a property: it is no longer a parameter
        # The description: the class's own docstring, else its __init__'s, else the parent's description.
        init = cls.__dict__.get("__init__")
        init_doc = getattr(init, "__doc__", None)
        own_doc = cls.__dict__.get("__doc__")
        Experiment._adopt_table(cls, table, own_doc or init_doc or getattr(cls, "_xmen_description", None))
        if table and init is not None:
            with contextlib.suppress(AttributeError, TypeError):
                init.__doc__ = with_block(init_doc, table)
        if init is not None and not hasattr(init, "__wrapped__"):
            cls.__init__ = _outermost_init(init)  # type: ignore[method-assign]

    @staticmethod
    def _adopt_table(cls: type["Experiment"], table: dict[str, Param], description: str | None,
                     own: ClassTable | None = None) -> None:
        """Give ``cls`` its parameter table and docs (``own``: the table its subclasses merge, when it is not read
        from a class statement, as for functional experiments)."""
        for name in table:
            if name.startswith("_"):
                raise ExperimentError(f"{cls.__qualname__}: parameter {name!r}: names starting with '_' are reserved")
            if name in _RESERVED:
                raise ExperimentError(f"{cls.__qualname__}: parameter {name!r} would hide Experiment.{name}")
        if own is not None:
            cls._xmen_own = own
        cls._xmen_params = table
        cls._xmen_description = inspect.cleandoc(description) if description else None
        cls.__doc__ = with_block(cls._xmen_description, table) if table else cls._xmen_description

    def __new__(cls, *args: Any, **kwargs: Any) -> "Experiment":
        # State is created here rather than in __init__ so that it exists even if a subclass forgets super().
        self = super().__new__(cls)
        self._xmen = _State()
        if kwargs.get("copy_params", kwargs.get("copy", True)) is not False:
            self._copy_class_defaults()
        return self

    def _copy_class_defaults(self) -> None:
        """Give the instance its own copy of each class-body parameter default: ``exp.x += [4.]`` must not change
        ``AnExperiment.x`` for every other instance (``copy_params=False`` shares them, as in the original)."""
        cls = type(self)
        for name in cls._xmen_params:
            try:
                value = inspect.getattr_static(cls, name)
            except AttributeError:
                continue
            if hasattr(value, "__get__") or isinstance(value, (str, int, float, bool, type(None))):
                continue  # a property or method replaced the parameter, or an immutable value
            with contextlib.suppress(Exception):
                self.__dict__[name] = copy.deepcopy(value)

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        name: str | None = None,
        purpose: str = "",
        copy_params: bool = True,
        **overrides: Any,
    ) -> None:
        """Subclasses call ``super().__init__()`` and then assign their parameters.

        The original xmen's forms work too: ``Experiment(root, name)`` registers ``<root>/<name>`` (a subclass once
        its whole ``__init__`` has run); ``Experiment(folder)`` registers that folder; keyword arguments override
        parameter defaults; ``copy_params=False`` shares mutable class-body defaults between instances.
        """
        if "copy" in overrides and "copy" not in type(self)._xmen_params:
            overrides.pop("copy")
        if overrides:
            self.update(overrides)
        if root is None:
            if name is not None:
                raise UsageError("Experiment(root, name): name given without root")
            return
        if name is None:  # the 2021 form: root is the experiment's own folder
            folder = Path(root).absolute()
            root, name = folder.parent, folder.name
        pending = (os.fspath(root), str(name), purpose or "")
        if type(self).__init__ is Experiment.__init__:
            self.register(*pending)
        else:
            self._xmen.pending = pending

    def __setattr__(self, key: str, value: Any) -> None:
        """Parameters are fixed once registered (the run must match ``params.yml``); recorded members are
        read-only."""
        state = self.__dict__.get("_xmen")
        params = type(self)._xmen_params
        if state is not None and state.frozen and key in params:
            raise AttributeError(
                f"{type(self).__name__}.{key} cannot change after register(): the run must match {PARAMS_FILE} "
                "(detach() first to change it)"
            )
        if key in _RECORDED and key not in params and isinstance(inspect.getattr_static(type(self), key), _Recorded):
            raise AttributeError(f"{type(self).__name__}.{key} is recorded by xmen and cannot be set")
        object.__setattr__(self, key, value)

    # -- members of the original API (read from params.yml) -----------------------------------------------------

    root = _Recorded(_folder_part("root"))
    root.__doc__ = "The folder of the experiment set (the parent of ``directory``); ``None`` until registered."
    name = _Recorded(_folder_part("name"))
    name.__doc__ = "The experiment's name (its folder's name); ``None`` until registered."
    created = _Recorded(_recorded("_created"))
    created.__doc__ = "When the experiment was registered (``_created``)."
    purpose = _Recorded(_recorded("_purpose"))
    purpose.__doc__ = "Why the experiment was run (``_purpose``)."
    version = _Recorded(_recorded("_version"))
    version.__doc__ = "Module, class and git information recorded at registration (``_version``)."
    notes = _Recorded(lambda exp: list(_recorded("_notes")(exp) or []))
    notes.__doc__ = "Notes left with :meth:`note` or ``xmen note -e`` (``_notes``)."

    def note(self, text: str, remove: bool = False) -> None:
        """Leave a note with the experiment (in ``params.yml``), or remove it with ``remove=True``."""
        if self._xmen.directory is None:
            raise XmenError(f"{type(self).__name__} has no folder: register() it before leaving notes")
        files.update_yaml(self._xmen.directory / PARAMS_FILE, edit_notes(EXPERIMENT_NOTES, str(text), remove),
                          params_comments(type(self)))

    def detach(self) -> None:
        """Forget the folder: parameters can change again and messages stay in memory (the folder is kept)."""
        self._xmen.directory = None
        self._xmen.status = st.DEFAULT
        self._xmen.frozen = False

    def __enter__(self) -> "Experiment":
        """``with exp:`` runs the block as the experiment: ``running`` inside, then ``finished``, ``error``,
        ``stopped`` or ``timeout`` like ``exp()``; the block's exception propagates."""
        if self._xmen.directory is None:
            raise XmenError(f"{type(self).__name__} has no folder: register() it before running it")
        if self._xmen.context is not None:
            raise XmenError(f"{type(self).__name__} is already running in a with block")
        block = _Block(self)
        block.enter()
        self._xmen.context = block
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        block, self._xmen.context = self._xmen.context, None
        if block is not None:
            block.exit(exc)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}(status={self.status})"]
        if self._xmen.directory is not None:
            lines += [f"root: {self.root}", f"name: {self.name}"]
            for key in ("created", "purpose"):
                value = Experiment.__dict__[key].read(self)
                if value:
                    lines.append(f"{key}: {value}")
        if self._xmen.messages:
            lines.append("messages:")
            lines += [f"  {k}: {v!r}" for k, v in self._xmen.messages.items()]
        params = self.parameters()
        if params:
            lines.append("parameters:")
            lines += [f"  {k}: {v!r}" for k, v in params.items()]
        return "\n".join(lines)

    # -- state --------------------------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """``default``, ``registered``, ``running`` (inside run), ``finished``, ``error``, ``stopped``, ``timeout``,
        ``cancelled``."""
        return self._xmen.status

    @property
    def directory(self) -> str | None:
        """The experiment's folder (holding ``params.yml``); ``None`` until registered or executed."""
        return os.fspath(self._xmen.directory) if self._xmen.directory is not None else None

    @property
    def messages(self) -> dict[str, Any]:
        """Latest value per key sent with :meth:`message` (a copy)."""
        return dict(self._xmen.messages)

    def parameters(self) -> dict[str, Any]:
        """Current parameter values, in table order."""
        return {name: getattr(self, name, None) for name in params_table(type(self))}

    def update(self, overrides: Mapping[str, Any], strict: bool = True) -> None:
        """Set parameters from a mapping; unknown names and values not fitting the annotation are UsageErrors.

        Everything is checked before anything is set, so a failed update changes nothing. With ``strict=False`` a
        value that does not fit its annotation is kept with a warning on stderr: ``xmen register`` already warned
        about it and the user registered it anyway (the tutorial sweeps ``b: None | cat`` for an ``int``).
        """
        if not isinstance(overrides, Mapping):
            raise UsageError(f"expected a mapping of parameters, got {type(overrides).__name__}")
        table = params_table(type(self))
        unknown = [str(k) for k in overrides if k not in table]
        if unknown:
            known = ", ".join(table) if table else "none: its source could not be read or declares no @p"
            plural = "s" if len(unknown) > 1 else ""
            raise UsageError(
                f"{type(self).__name__} has no parameter{plural} {', '.join(map(repr, unknown))} (parameters: {known})"
            )
        checked = {}
        for key, value in overrides.items():
            try:
                checked[str(key)] = coerce_value(table[str(key)].type, value, f"parameter {key}")
            except UsageError as exc:
                if strict:
                    raise
                print(f"warning: {exc}", file=sys.stderr, flush=True)
                checked[str(key)] = value
        for name, value in checked.items():
            setattr(self, name, value)

    # -- files --------------------------------------------------------------------------------------------------

    def to_defaults(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``<directory>/defaults.yml`` (creating the folder); its path."""
        folder = Path(directory).absolute()
        target = folder / DEFAULTS_FILE
        with _os_errors(f"write {target}"):
            folder.mkdir(parents=True, exist_ok=True)
            files.write_yaml(target, defaults_dict(self), params_comments(type(self)))
        return target

    def to_root(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``defaults.yml`` and an executable ``script.sh`` into ``directory`` (created if needed)."""
        folder = Path(directory).absolute()
        script = self.script_text()  # before writing anything: fails for classes without a source file
        self.to_defaults(folder)
        with _os_errors(f"write {folder / SCRIPT_FILE}"):
            files.write_text_atomic(folder / SCRIPT_FILE, script, mode=0o755)
        return folder

    def _launch_command(self) -> tuple[list[str], list[str]]:
        """(argv before ``--execute``, folders PYTHONPATH needs) that re-create this class in a job."""
        cls = type(self)
        path = source_file(cls)
        if path is None:
            raise ExperimentError(f"{cls.__qualname__} has no source file: define it in a .py file to run it as a job")
        folders: list[str] = []
        main = sys.modules.get("__main__")
        main_spec = getattr(main, "__spec__", None)
        if cls.__module__ == "__main__" and main_spec is not None and main_spec.name not in ("__main__", None):
            # Started with `python -m pkg.mod`: keep that form so the module's relative imports still work.
            parts = main_spec.name.split(".")
            root = Path(path).parent
            for _ in parts[1:]:
                root = root.parent
            folders.append(os.fspath(root))
            argv = [sys.executable, "-m", main_spec.name]
        elif cls.__module__ == "__main__":
            folders.append(os.path.dirname(path))
            argv = [sys.executable, path]
        else:
            folders.append(os.path.dirname(path))
            argv = [sys.executable, "-m", "xmen.experiment", f"{path}:{cls.__qualname__}"]
        # Whatever made the class importable now (xmen config --add_path, a checkout of xmen itself on PYTHONPATH)
        # is needed by the job too, which may start from a clean environment (cron, SLURM, another shell).
        for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
            if entry and os.path.abspath(entry) not in folders:
                folders.append(os.path.abspath(entry))
        return argv, folders

    def script_text(self) -> str:
        """The ``script.sh`` that runs this class on a ``params.yml`` given as ``$1`` (every path shell-quoted)."""
        argv, folders = self._launch_command()
        cls = type(self)
        path = source_file(cls)
        git = get_git(os.path.dirname(path)) if path else None
        lines = [
            "#!/bin/bash",
            f"# File generated on {now_time()} by xmen for {_comment_safe(cls.__qualname__)}",
            f"# Module: {_comment_safe(path)}",
        ]
        if git is None:
            lines.append("# GIT: none (the module is not in a git repository)")
        else:
            lines += [
                "# GIT:",
                f"# - repo {_comment_safe(git['local'])}",
                f"# - branch {_comment_safe(git['branch'] or '(detached HEAD)')}",
                f"# - remote {_comment_safe(git['remote'] or '(none)')}",
                f"# - commit {_comment_safe(git['commit'] or '(no commit)')}",
                f"# - dirty {'(unknown)' if git['dirty'] is None else str(git['dirty']).lower()}",
            ]
        joined = os.pathsep.join(folders)
        lines += [
            "",
            f'export PYTHONPATH="${{PYTHONPATH:+${{PYTHONPATH}}:}}"{shlex.quote(joined)}',
            # XMEN_PYTHON: the interpreter a run.sh header's environment chose (see xmen.sets.runscript._header_python).
            f"xmen_python={shlex.quote(argv[0])}",
            f'exec "${{XMEN_PYTHON:-$xmen_python}}" {" ".join(shlex.quote(a) for a in argv[1:])} --execute "$1"',
            "",
        ]
        return "\n".join(lines)

    def _params_data(self, name: str, root: str, status: str, purpose: str) -> dict[str, Any]:
        data = defaults_dict(self)
        data.update({"_name": name, "_root": root, "_status": status, "_purpose": purpose, "_messages": {}})
        return ordered(data)

    def register(self, root: str | os.PathLike[str], name: str, purpose: str = "") -> Path:
        """Create ``<root>/<name>/params.yml`` with ``_status: registered``; refuse if it exists. Its folder."""
        check_name(name)
        root_dir = Path(root).absolute()
        folder = root_dir / name
        target = folder / PARAMS_FILE
        with _os_errors(f"register {folder}"):
            folder.mkdir(parents=True, exist_ok=True)
            with files.locked(target):  # exists-check and write under one lock: two registrations cannot both win
                if target.exists():
                    raise XmenError(f"{target} already exists: refusing to register over it")
                data = self._params_data(name, os.fspath(root_dir), st.REGISTERED, purpose or "")
                files.write_yaml(target, data, params_comments(type(self)))
        self._xmen.directory = folder
        self._xmen.status = st.REGISTERED
        self._xmen.messages = {}
        self._xmen.frozen = True
        return folder

    def message(self, messages: Mapping[str, Any], step: int | None = None) -> None:
        """Record values, e.g. ``{'loss': 0.1}``: every call in the experiment's history (``history.jsonl``, with
        its time and ``step``), the latest value per key under ``_messages`` in ``params.yml``.

        Cheap enough for every step of a training loop (microseconds): calls are buffered and appended to the
        history by a background thread within :data:`xmen.history.FLUSH_SECONDS`; ``_messages`` is merged into
        ``params.yml`` (a locked read-modify-write, so other processes' edits are kept) at most once a second and
        when ``run()`` ends (see :mod:`xmen.history`). Values are made YAML-safe (numpy scalars become numbers,
        unknown objects their ``str``). Before the experiment has a folder, messages are only kept in memory.
        """
        if not isinstance(messages, Mapping):
            raise UsageError(f"message() expects a mapping, got {type(messages).__name__}")
        clean = {str(k): to_yaml_safe(v) for k, v in messages.items()}
        self._xmen.messages.update(clean)
        folder = self._xmen.directory
        if folder is None:
            return
        writer = self._xmen.history
        if writer is None or writer.folder is not folder:
            writer = self._xmen.history = HistoryWriter(folder, functools.partial(self._write_latest_messages, folder))
        try:
            writer.append(clean, step)
        except ValueError as exc:
            raise UsageError(f"message(): {exc}") from None

    def _write_latest_messages(self, folder: Path, latest: dict[str, Any]) -> None:
        """Merge ``latest`` into ``_messages`` of ``folder``'s ``params.yml`` (called by its history writer,
        throttled)."""

        def change(data: dict[str, Any]) -> None:
            current = data.get("_messages")
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(latest)
            data["_messages"] = merged

        files.update_yaml(folder / PARAMS_FILE, change, params_comments(type(self)))

    def _flush_messages(self) -> None:
        """Write every buffered message now (history and ``_messages``): before the final status of a run."""
        if self._xmen.history is not None:
            self._xmen.history.close()

    # -- running --------------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Override with the experiment itself."""
        raise NotImplementedError(f"{type(self).__name__} does not define run()")

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        """Used to run experiment. Upon entering the experiment status is updated to ``'running'`` before ``args``
        and ``kwargs`` are passed to ``run()``. If ``run()`` is successful the experiment ``status`` is updated to
        ``'finished'``, else to ``'error'`` (exception), ``'stopped'`` (SIGINT) or ``'timeout'`` (SIGTERM/SIGUSR1).
        Returns the final status. The experiment must have a folder (``register()`` it first).
        """
        if self._xmen.directory is None:
            raise XmenError(f"{type(self).__name__} has no folder: register() it before calling it")
        return self._run_managed(lambda: self.run(*args, **kwargs))

    def _load(self, params_path: str | os.PathLike[str]) -> Path:
        """Attach to an existing ``params.yml``: read it and set the parameters it holds."""
        path = Path(os.path.abspath(params_path))
        data = files.read_yaml_settled(path)  # an editor may be saving it in place right now
        values = {k: v for k, v in data.items() if not str(k).startswith("_")}
        self._xmen.frozen = False
        try:
            self.update(values, strict=False)
        except UsageError as exc:
            reason = f"{path}: {exc}"

            def failed(d: dict[str, Any]) -> None:
                d["_status"] = st.ERROR
                d["_error"] = _one_line(reason)

            with contextlib.suppress(XmenError):
                files.update_yaml(path, failed, params_comments(type(self)))
            raise UsageError(reason) from None
        messages = data.get("_messages")
        self._xmen.messages = dict(messages) if isinstance(messages, dict) else {}
        self._xmen.directory = path.parent
        self._xmen.status = str(data.get("_status") or st.REGISTERED)
        self._xmen.frozen = True
        return path

    def execute(self, params_path: str | os.PathLike[str]) -> str:
        """Run from a ``params.yml`` (what ``--execute`` does): load it, run with status tracking; the final status.

        The exit code for a command line is then in :attr:`exit_code`.
        """
        self._load(params_path)
        return self._run_managed(self.run)

    @property
    def exit_code(self) -> int:
        """Exit code matching the last run: 0 finished, 1 error, 130 stopped, 128+signal for a timeout."""
        return self._xmen.exit_code

    def _run_managed(self, call: Callable[[], Any]) -> str:
        """The run lifecycle around ``call`` (:class:`~xmen.store.lifecycle.Lifecycle`: lock, records, heartbeat,
        status file), in this process: running -> finished | error | stopped | timeout. Under a job runner, the
        runner owns the run and this records only the status; either way signals are trapped into ``call`` and
        its output is copied to ``out.txt``."""
        state = self._xmen
        assert state.directory is not None
        folder = state.directory
        life = Lifecycle(folder / PARAMS_FILE, comments=params_comments(type(self)), arrange=ordered)
        if not life.acquire():  # a runner holds the lock for its child; otherwise we exclude concurrent runs
            raise XmenError(f"{folder} is being run by another process")
        try:
            # Tells the job runner that this process records its own outcome when run() returns: if it exits
            # without doing so (os._exit inside run()), the run did not finish, whatever its exit code.
            life.start(**{RUN_BY_EXPERIMENT: type(self).__name__})
            state.status = st.RUNNING
            trap = SignalTrap()
            try:
                with tee_output(folder / OUT_FILE):
                    trap.install()
                    try:
                        final, reason, code = self._call_user(call)
                    finally:
                        trap.armed = False
                    self._flush_messages()
                    if reason is not None and final != st.ERROR:
                        print(f"xmen: {type(self).__name__} {final}: {reason}", file=sys.stderr)
                    final = life.end(code, final, reason)  # an outside verdict stays
                    if not life.done_written:
                        code = code or EXIT_ERROR
            finally:
                trap.restore()
        finally:
            life.release()
        state.status = final
        state.exit_code = code
        return final

    def _call_user(self, call: Callable[[], Any]) -> tuple[str, str | None, int]:
        """Run the user's code; (status, one-line reason or None, exit code). Tracebacks are printed here."""
        try:
            call()
        except Interrupted as exc:
            name = signal.Signals(exc.signum).name
            return SIGNAL_STATUS[exc.signum], exc.reason or f"received {name}", 128 + exc.signum
        except KeyboardInterrupt:
            return st.STOPPED, "received SIGINT", EXIT_STOPPED
        except SystemExit as exc:
            if exc.code in (None, 0):
                return st.FINISHED, None, 0
            if isinstance(exc.code, int):
                return st.ERROR, f"exit code {exc.code}", exc.code
            print(exc.code, file=sys.stderr)
            return st.ERROR, _one_line(f"SystemExit: {exc.code}"), EXIT_ERROR
        except BaseException as exc:  # noqa: BLE001 - the user's own error: show it, record it
            traceback.print_exc()
            return st.ERROR, _one_line(f"{type(exc).__name__}: {exc}"), EXIT_ERROR
        return st.FINISHED, None, 0

    def prepare_debug(self, directory: str | os.PathLike[str] | None = None) -> Path:
        """Write a ``params.yml`` (overwriting one there) into ``directory`` (created if needed) or a fresh
        temporary folder, for a debug run (``--debug``); its path, ready for :meth:`execute`.

        (Not called ``debug()``: ``debug`` is too common a parameter name to reserve.)"""
        with _os_errors("create the debug folder"):
            if directory:
                folder = Path(directory).absolute()
                folder.mkdir(parents=True, exist_ok=True)
            else:
                folder = Path(tempfile.mkdtemp(prefix=f"xmen-debug-{type(self).__name__}-"))
            data = self._params_data(folder.name, os.fspath(folder.parent), st.REGISTERED, "debug")
            target = folder / PARAMS_FILE
            with files.locked(target):
                files.write_yaml(target, data, params_comments(type(self)))
        return target

    # -- command line ---------------------------------------------------------------------------------------------

    def parse_args(self, argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
        """Parse the experiment's command line (``sys.argv[1:]`` by default); ``--help`` shows the parameters."""
        return class_parser(type(self), prog).parse_args(argv)

    def main(self, args: argparse.Namespace | None = None) -> None:
        """Do what the command line asked. Errors: one ``error: ...`` line on stderr and a non-zero exit."""
        if args is None:
            args = self.parse_args()
        try:
            code = self._dispatch(args)
        except XmenError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(exc.exit_code) from None
        if code:
            raise SystemExit(code)

    def _dispatch(self, args: argparse.Namespace) -> int:
        args.debug = debug_folder(args.debug)
        actions = [flag for flag in ("to_defaults", "to_root", "register", "debug") if getattr(args, flag) is not None]
        if args.execute is not None:
            if args.update is not None:
                raise UsageError("--execute cannot be combined with --update (the parameters come from PARAMS)")
            if actions:
                raise UsageError(f"--execute cannot be combined with --{actions[0]}")
        elif not actions and not args.name:
            raise UsageError("nothing to do: use --execute, --to_root, --to_defaults, --register, --debug or --name")
        if args.update is not None:
            self.update(parse_update(args.update))
        if args.name:
            print(type(self).__name__)
        if args.to_defaults is not None:
            self.to_defaults(args.to_defaults)
        if args.to_root is not None:
            self.to_root(args.to_root)
        if args.register is not None:
            root, name = args.register
            self.register(root, name, args.purpose or "")
        if args.debug is not None:
            target = self.prepare_debug(args.debug or None)
            print(f"xmen: debug run in {target.parent}", file=sys.stderr, flush=True)
            self.execute(target)
            return self.exit_code
        if args.execute is not None:
            self.execute(args.execute)
            return self.exit_code
        return 0


#: Public names of the base class: a parameter with one of these names would hide the API.
_RESERVED = frozenset(
    name for name, value in vars(Experiment).items() if not name.startswith("_") and not isinstance(value, _Recorded)
)

#: Members read from params.yml (``name``, ``root``...): a parameter of the same name replaces them.
_RECORDED = frozenset(name for name, value in vars(Experiment).items() if isinstance(value, _Recorded))

#: The original xmen's metaclass. Parameters are read by ``Experiment.__init_subclass__`` here, so no metaclass is
#: needed; the alias keeps ``from xmen.experiment import TypedMeta`` and ``metaclass=TypedMeta`` working.
TypedMeta = type


__all__ = [
    "DEFAULTS_FILE",
    "Experiment",
    "TypedMeta",
    "experiment_parser",
    "OUT_FILE",
    "PARAMS_FILE",
    "SCRIPT_FILE",
    "defaults_dict",
    "params_comments",
    "params_table",
]

# The public path of the class (what help(), pydoc and pickles name): xmen.experiment re-exports this module.
Experiment.__module__ = "xmen.experiment"
