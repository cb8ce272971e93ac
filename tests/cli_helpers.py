"""Helpers shared by the tests: run xmen's CLI (in this process, or as a subprocess), make a set of a plain shell
experiment, write a set's files directly, and wait for a condition instead of sleeping.

The fixtures are in conftest.py (``shell_experiment`` writes an experiment's files under the temporary home). This
is a module, not conftest.py: tests/ and tests/slurm/ each have a conftest.py, and ``import conftest`` gets
whichever one pytest loaded last.
"""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

from xmen.cli import main
from xmen.store import files

T = TypeVar("T")


# ------------------------------------------------------------------------------------------------------ waiting
def wait_until(condition: Callable[[], T], timeout: float, what: str, *, interval: float = 0.05,
               proc: subprocess.Popen | None = None, details: Callable[[], str] | None = None) -> T:
    """Call ``condition()`` every ``interval`` seconds until it returns something true, and return that.

    Fails the test, naming ``what`` (what was waited for), after ``timeout`` seconds, or as soon as ``proc`` (the
    process that should bring the condition about) has ended; ``details()`` is added to the failure message (a
    log's tail, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            value = condition()  # it may have come true just before the process ended
            if value:
                return value
            pytest.fail(f"the process ended (exit code {proc.returncode}) before {what}{_output(proc)}"
                        f"{_details(details)}")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}{_details(details)}")
        time.sleep(interval)


def _output(proc: subprocess.Popen) -> str:
    """What an ended process wrote to its pipes, if it has any."""
    if proc.stdout is None and proc.stderr is None:
        return ""
    try:
        out, err = proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):  # a child still holds the pipe, or it was read already
        return ""
    text = "".join(part if isinstance(part, str) else part.decode(errors="replace") for part in (out, err) if part)
    return f"\n{text[-3000:]}" if text else ""


def _details(details: Callable[[], str] | None) -> str:
    return f"\n{details()}" if details is not None else ""


# ---------------------------------------------------------------------------------------------------- the CLI
def xmen(capsys: pytest.CaptureFixture[str] | None, *args: str) -> tuple[int, str, str]:
    """Run ``xmen ARGS`` in this process: (exit code, stdout, stderr). Without ``capsys`` (None) the output is
    captured here."""
    if capsys is not None:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err
    out_buffer, err_buffer = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_buffer), contextlib.redirect_stderr(err_buffer):
        code = main(list(args))
    return code, out_buffer.getvalue(), err_buffer.getvalue()


def run_xmen(*args: str, cwd: Path, check: bool = True, timeout: float = 300,
             **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``python -m xmen.cli ARGS`` in ``cwd`` (text output captured, no stdin); with ``check``, a non-zero exit
    fails with the command's output."""
    proc = subprocess.run([sys.executable, "-m", "xmen.cli", *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"xmen {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_set(env: Path, name: str = "set_a", sweep: str | None = "{a: x | y | z}", *extra: str,
             script: str = "script.sh", defaults: str = "defaults.yml") -> Path:
    """``xmen init`` a set ``env/name`` of ``env/script`` with ``env/defaults``, and ``xmen register sweep EXTRA``
    (None: nothing), in this process; the set's folder."""
    root = env / name
    code, _, err = xmen(None, "init", "-s", str(env / script), "-d", str(env / defaults), "-r", str(root))
    assert code == 0, err
    if sweep:
        code, _, err = xmen(None, "register", sweep, *extra, "-r", str(root))
        assert code == 0, err
    return root


# ------------------------------------------------------------------------------------- sets written directly
COMMIT = "bbe75180debc80b03c520c5574f4d7e88d262909"
#: The tutorial's sweep (a in 1.0 | 2.0, b in None | cat): its experiments' names and parameters, in order.
TUTORIAL_NAMES = ["a=1.0__b=None", "a=1.0__b=cat", "a=2.0__b=None", "a=2.0__b=cat"]
TUTORIAL_PARAMS = [{"a": 1.0, "b": None}, {"a": 1.0, "b": "cat"}, {"a": 2.0, "b": None}, {"a": 2.0, "b": "cat"}]


def default_params(i: int) -> dict[str, Any]:
    return {"a": float(i % 2 + 1), "b": None if i % 2 == 0 else "cat", "i": i}


def write_set(
    base: Path,
    n: int = 4,
    *,
    name: str = "set_a",
    type_: str = "AnExperiment",
    klass: str | None = "AnExperiment",
    status: str | Callable[[int], str] = "registered",
    params: Callable[[int], dict[str, Any]] = default_params,
    messages: Callable[[int], dict[str, Any]] = lambda i: {},
    notes: tuple[str, ...] = (),
    exp_name: Callable[[int], str] = lambda i: f"i={i}",
    purpose: str = "a purpose",
) -> Path:
    """A set of ``n`` experiments as the register code writes it (experiment.yml, one params.yml per folder),
    without running xmen."""
    root = base / name
    root.mkdir(parents=True)
    linked = {}
    for i in range(n):
        exp = exp_name(i)
        (root / exp).mkdir()
        data: dict[str, Any] = {
            "_name": exp,
            "_root": str(root),
            "_status": status(i) if callable(status) else status,
            "_created": "2020-03-09-16-42-25",
            "_purpose": "testing",
            "_version": {
                "module": "/x/experiment.py",
                "class": klass,
                "git": {"local": "/x", "remote": "r", "commit": COMMIT, "branch": "main", "dirty": False},
            },
            "_meta": {"mac": "0x6c96cfdb71b9", "host": "node01", "user": "rob", "home": "/home/rob"},
            "_messages": messages(i),
        }
        data.update(params(i))
        files.write_yaml(root / exp / "params.yml", data)
        linked[exp] = {}
    files.write_yaml(
        root / "experiment.yml",
        {
            "root": str(root),
            "type": type_,
            "created": "2020-03-09-16-42-13",
            "purpose": purpose,
            "notes": list(notes),
            "script": "script.sh",
            "defaults": "defaults.yml",
            "experiments": linked,
        },
    )
    return root


def write_tutorial_set(
    base: Path,
    n: int = 4,
    *,
    name: str = "set_a",
    klass: str = "AnExperiment",
    status: Callable[[int], str] = lambda i: "registered",
    messages: Callable[[int], dict[str, Any]] = lambda i: {},
    notes: tuple[str, ...] = (),
) -> Path:
    """The tutorial's set (:data:`TUTORIAL_NAMES`), repeated for n > 4 (``__1``, ...), written as register writes
    it (:func:`write_set`), without a purpose."""
    return write_set(base, n, name=name, type_=klass, klass=klass, status=status, messages=messages, notes=notes,
                     exp_name=lambda i: TUTORIAL_NAMES[i % 4] + (f"__{i // 4}" if i >= 4 else ""),
                     params=lambda i: dict(TUTORIAL_PARAMS[i % 4]), purpose="")
