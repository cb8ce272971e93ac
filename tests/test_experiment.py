"""xmen.experiment: the tutorial's AnExperiment end to end, parameter tables, the command line and its errors,
the status lifecycle (error, SIGTERM, SIGINT), messages, the ``-m xmen.experiment path:Class`` entry, provenance."""
from __future__ import annotations

import os
import pydoc
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
import yaml

from xmen.store import files
from xmen.run import runner as job
from xmen.store import provenance
from xmen.store import status as st
from xmen.errors import ExperimentError, UsageError, XmenError
from xmen.examples import experiment as example
from xmen.examples.experiment import AnExperiment
from xmen.define.experiment import Experiment, defaults_dict, params_comments, params_table
from xmen.define.loading import find_experiment_classes

from cli_helpers import wait_until

pytestmark = pytest.mark.usefixtures("xmen_home")

EXAMPLE = os.path.abspath(example.__file__)


def xmen_run(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


# ------------------------------------------------------------------------------------------ the tutorial


def test_help_flag_prints_the_parameter_block() -> None:
    proc = xmen_run(EXAMPLE, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: experiment.py [-h] [--update YAML_STRING] [--execute PARAMS]")
    assert (
        "A basic python experiment demonstrating the features of the xmen api.\n\n"
        "Parameters:\n"
        "    a (str): A parameter (default='h')\n"
        "    b (int): Another parameter (default=17)\n"
    ) in proc.stdout
    for flag in ("--update YAML_STRING", "--execute PARAMS", "--to_root DIR", "--to_defaults DIR",
                 "--register ROOT NAME", "--debug [DIR]", "--name"):
        assert flag in proc.stdout


def test_help_and_docstrings() -> None:
    text = pydoc.render_doc(AnExperiment, renderer=pydoc.plaintext)
    assert "a (str): A parameter (default='h')" in text
    assert "b (int): Another parameter (default=17)" in text
    assert "c (int)" not in text and "not a parameter" not in text
    assert AnExperiment.__doc__ == (
        "A basic python experiment demonstrating the features of the xmen api.\n\n"
        "Parameters:\n    a (str): A parameter (default='h')\n    b (int): Another parameter (default=17)"
    )
    assert AnExperiment.__init__.__doc__ == AnExperiment.__doc__
    assert Experiment.__doc__ and "Parameters:" not in Experiment.__doc__


def test_tutorial_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "set_a"
    proc = xmen_run(EXAMPLE, "--to_root", str(root))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    defaults = files.read_yaml(root / "defaults.yml")
    assert list(defaults) == ["_created", "_version", "_meta", "a", "b"]
    assert defaults["a"] == "h" and defaults["b"] == 17
    assert defaults["_version"]["module"] == EXAMPLE and defaults["_version"]["class"] == "AnExperiment"
    assert set(defaults["_meta"]) == {"mac", "host", "user", "home"}
    assert defaults["_meta"]["home"] == os.environ["HOME"]
    text = (root / "defaults.yml").read_text()
    assert "\na: h  # (str) A parameter (default='h')\n" in text
    assert "\nb: 17  # (int) Another parameter (default=17)\n" in text
    assert text.startswith("_created: ") and "  # The date the experiment was created\n" in text
    script = (root / "script.sh").read_text()
    assert stat.S_IMODE(os.stat(root / "script.sh").st_mode) == 0o755
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[1].startswith("# File generated on ")
    assert any(line.startswith("# GIT:") for line in lines)
    assert 'export PYTHONPATH="${PYTHONPATH:+${PYTHONPATH}:}"' in script and os.path.dirname(EXAMPLE) in script
    assert lines[-1].endswith(f'{EXAMPLE} --execute "$1"') and lines[-1].startswith("exec ")

    proc = xmen_run(EXAMPLE, "--register", str(root), "exp1", "--purpose", "a test")
    assert proc.returncode == 0, proc.stderr
    params_path = root / "exp1" / "params.yml"
    params = files.read_yaml(params_path)
    assert params["_status"] == st.REGISTERED and params["_name"] == "exp1" and params["_root"] == str(root)
    assert params["_purpose"] == "a test" and params["_messages"] == {}
    assert list(params)[:3] == ["_created", "_version", "_meta"] and list(params)[-2:] == ["a", "b"]

    proc = subprocess.run(["bash", str(root / "script.sh"), str(params_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a = h, b = 17\nThe experiment state inside run is running\n"
    params = files.read_yaml(params_path)
    assert params["_status"] == st.FINISHED
    assert isinstance(params["_messages"]["time"], float)
    assert params["_run"]["returncode"] == 0 and params["_run"]["pid"] > 0
    assert (root / "exp1" / "logs.txt").read_text() == "This was written from a running experiment"
    assert (root / "exp1" / "out.txt").read_text() == proc.stdout
    assert files.read_comments(params_path)["a"] == "(str) A parameter (default='h')"


def test_execute_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = AnExperiment()
    assert exp.status == st.DEFAULT and exp.directory is None
    folder = exp.register(tmp_path, "one")
    assert exp.status == st.REGISTERED and exp.directory == str(folder)
    other = AnExperiment()
    assert other.execute(folder / "params.yml") == st.FINISHED
    assert other.status == st.FINISHED and other.exit_code == 0 and "time" in other.messages
    assert sys.stdout is not None and "The experiment state inside run is running" in capsys.readouterr().out
    assert not hasattr(sys.stdout, "_log")  # the tee is gone


# -------------------------------------------------------------------------------------- parameter tables


class BodyParams(Experiment):
    """Parameters declared in the class body."""

    lr: float = 1e-3  # @p Learning rate
    name: str = "x"  # @p A name
    steps = 10  # not a parameter

    def run(self) -> None:
        pass


class Parent(Experiment):
    def __init__(self) -> None:
        """Parent experiment."""
        super().__init__()
        self.a: int = 1  # @p A
        self.b: str = "b"  # @p B


class Child(Parent):
    def __init__(self) -> None:
        super().__init__()
        self.b: str = "child"  # @p B overridden
        self.c: List[float] = [1.0, 2.0]  # @p C


class Unrelated(Experiment):
    def __init__(self) -> None:
        super().__init__()
        self.z: Optional[int] = None  # @p Z
        self.s: str = 'a # b = c: "d"'  # @p tricky


def test_class_body_parameters() -> None:
    assert {k: (p.type, p.default, p.help) for k, p in params_table(BodyParams).items()} == {
        "lr": ("float", "1e-3", "Learning rate"),
        "name": ("str", '"x"', "A name"),
    }
    exp = BodyParams()
    assert exp.parameters() == {"lr": 1e-3, "name": "x"}
    exp.update({"lr": "1e-2"})  # YAML 1.1 reads 1e-2 as a string: converted for a float parameter
    assert exp.lr == 0.01 and BodyParams.lr == 1e-3
    assert BodyParams.__doc__.startswith("Parameters declared in the class body.\n\nParameters:\n    lr (float)")


def test_inheritance_and_separate_tables() -> None:
    assert list(params_table(Parent)) == ["a", "b"]
    table = params_table(Child)
    assert list(table) == ["a", "b", "c"]
    assert (table["b"].default, table["b"].help) == ('"child"', "B overridden")
    assert Child().parameters() == {"a": 1, "b": "child", "c": [1.0, 2.0]}
    assert Parent().parameters() == {"a": 1, "b": "b"}
    assert list(params_table(Unrelated)) == ["z", "s"]
    assert "z" not in params_table(Child) and "a" not in params_table(Unrelated)
    assert Child.__doc__.startswith("Parent experiment.\n\nParameters:\n    a (int): A (default=1)\n")
    assert "c (List[float]): C (default=[1.0, 2.0])" in Child.__doc__
    assert "c (List" not in Parent.__doc__  # the parent's docs are untouched


class TypedBase(Experiment):
    """A base with a text parameter."""

    a: str = "h"  # @p A parameter


class RetypedInBody(TypedBase):
    a: float = 0.5


class RetypedInInit(TypedBase):
    def __init__(self):
        super().__init__()
        self.a: float = 0.5


@pytest.mark.parametrize("cls", [RetypedInBody, RetypedInInit])
def test_help_shows_the_type_a_subclass_gives_a_parameter(cls) -> None:
    """``a: float = 0.5`` in a subclass (no @p: the help stays the base's) is a float parameter in help()."""
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert "a (float): A parameter (default=0.5)" in text
    assert "a (str)" not in text
    assert params_table(cls)["a"].type == "float"
    assert 'a (str): A parameter (default="h")' in pydoc.render_doc(TypedBase, renderer=pydoc.plaintext)


def test_tricky_default(tmp_path: Path) -> None:
    exp = Unrelated()
    assert exp.s == 'a # b = c: "d"'
    assert params_table(Unrelated)["s"].default == "'a # b = c: \"d\"'"
    exp.to_defaults(tmp_path)
    assert files.read_yaml(tmp_path / "defaults.yml")["s"] == 'a # b = c: "d"'
    assert files.read_comments(tmp_path / "defaults.yml")["s"] == "(str) tricky (default='a # b = c: \"d\"')"


def test_unavailable_source_degrades_to_no_parameters() -> None:
    namespace = {"Experiment": Experiment}
    exec("class Dynamic(Experiment):\n    def __init__(self):\n        self.a: int = 1  # @p A\n", namespace)
    dynamic = namespace["Dynamic"]
    assert params_table(dynamic) == {}
    exp = dynamic()
    with pytest.raises(UsageError, match="has no parameter 'a'"):
        exp.update({"a": 2})
    with pytest.raises(ExperimentError, match="no source file"):
        exp.to_root("unused")


def test_reserved_parameter_names() -> None:
    with pytest.raises(ExperimentError, match="would hide Experiment.status"):

        class Clash(Experiment):
            status: str = "x"  # @p clashes

    with pytest.raises(ExperimentError, match="reserved"):

        class Private(Experiment):
            _x: int = 1  # @p private


def test_helpers_for_the_set_code() -> None:
    comments = params_comments(AnExperiment)
    assert comments["a"] == "(str) A parameter (default='h')" and "_created" in comments
    data = defaults_dict(AnExperiment())
    assert list(data) == ["_created", "_version", "_meta", "a", "b"]
    assert yaml.safe_load(files.dump_params(data, comments)) == data


def test_find_experiment_classes(tmp_path: Path) -> None:
    script = tmp_path / "many.py"
    script.write_text(
        "import xmen\nfrom xmen.experiment import Experiment\n"
        "class A(Experiment): pass\nclass B(xmen.Experiment): pass\nclass C(A): pass\nclass D(object): pass\n"
        "def f():\n    class Hidden(Experiment): pass\n"
    )
    assert find_experiment_classes(script) == ["A", "B", "C"]
    assert find_experiment_classes(EXAMPLE) == ["AnExperiment"]
    (tmp_path / "bad.py").write_text("class (:\n")
    with pytest.raises(UsageError, match="invalid Python"):
        find_experiment_classes(tmp_path / "bad.py")


# --------------------------------------------------------------------------------------------- command line


def cli(capsys: pytest.CaptureFixture[str], exp: Experiment, *argv: str) -> tuple[int, str, str]:
    try:
        exp.main(exp.parse_args(list(argv)))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def test_update_then_register(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, AnExperiment(), "--update", "{a: x, b: 3}", "--register", str(tmp_path), "e", "--name")
    assert (code, out, err) == (0, "AnExperiment\n", "")
    params = files.read_yaml(tmp_path / "e" / "params.yml")
    assert (params["a"], params["b"]) == ("x", 3)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--update", "{zz: 1}", "--name"], "error: AnExperiment has no parameter 'zz' (parameters: a, b)"),
        (["--update", "{b: notint}", "--name"], "error: parameter b: expected int, got str 'notint'"),
        (["--update", "{a: 1}", "--name"], "error: parameter a: expected str, got int 1"),
        (["--update", "[1, 2]", "--name"], "error: --update expects a YAML mapping"),
        (["--update", "{a: [", "--name"], "error: --update: invalid YAML"),
        (["--update", "{a: x}", "--execute", "p.yml"], "error: --execute cannot be combined with --update"),
        (["--execute", "p.yml", "--to_root", "d"], "error: --execute cannot be combined with --to_root"),
        ([], "error: nothing to do"),
        (["--bogus"], "error: unrecognized arguments: --bogus"),
        (["--register", "only-root"], "error: argument --register: expected 2 arguments"),
        (["--register", "r", "../escape"], "error: invalid experiment name '../escape'"),
        (["--execute", "missing.yml"], "error: "),
    ],
)
def test_command_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = cli(capsys, AnExperiment(), *argv)
    assert code != 0 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err
    assert os.listdir(work) == []  # a refused command writes nothing


def test_update_never_executes_yaml_tags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    payload = f"!!python/object/apply:os.system ['touch {marker}']"
    code, _, err = cli(capsys, AnExperiment(), "--update", payload, "--name")
    assert code != 0 and err.startswith("error: --update: invalid YAML") and err.count("\n") == 1
    nested = f"{{a: !!python/object/apply:os.system ['touch {marker}']}}"
    code, _, err = cli(capsys, AnExperiment(), "--update", nested, "--name")
    assert code != 0 and err.count("\n") == 1
    assert not marker.exists()


def test_errors_from_a_real_process_have_no_traceback(tmp_path: Path) -> None:
    proc = xmen_run(EXAMPLE, "--update", "{zz: 1}", "--to_root", str(tmp_path / "r"))
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr == "error: AnExperiment has no parameter 'zz' (parameters: a, b)\n"
    assert not (tmp_path / "r").exists()


def test_register_refuses_an_existing_experiment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    AnExperiment().register(tmp_path, "e")
    before = (tmp_path / "e" / "params.yml").read_bytes()
    code, _, err = cli(capsys, AnExperiment(), "--update", "{b: 1}", "--register", str(tmp_path), "e")
    assert code == 1 and "already exists" in err and err.count("\n") == 1
    assert (tmp_path / "e" / "params.yml").read_bytes() == before


def test_execute_refuses_parameters_the_class_lacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = AnExperiment().register(tmp_path, "e")
    files.update_yaml(folder / "params.yml", lambda d: d.update(zz=1))
    code, out, err = cli(capsys, AnExperiment(), "--execute", str(folder / "params.yml"))
    assert code == 2 and "has no parameter 'zz'" in err and out == ""
    data = files.read_yaml(folder / "params.yml")
    assert data["_status"] == st.ERROR and "zz" in data["_error"]


def test_execute_runs_a_registered_value_of_another_type_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tutorial registers b: None | cat for an int (register warned) and runs them."""
    folder = AnExperiment().register(tmp_path, "e")
    files.update_yaml(folder / "params.yml", lambda d: d.update(b="cat"))
    code, out, err = cli(capsys, AnExperiment(), "--execute", str(folder / "params.yml"))
    assert code == 0 and "b = cat" in out
    assert "warning: parameter b: expected int, got str 'cat'" in err
    assert files.read_yaml(folder / "params.yml")["_status"] == st.FINISHED


def test_execute_refuses_while_another_process_runs_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = AnExperiment().register(tmp_path, "e")
    fd = job.try_lock(folder)
    try:
        code, _, err = cli(capsys, AnExperiment(), "--execute", str(folder / "params.yml"))
    finally:
        job.release(fd)
    assert code == 1 and "being run by another process" in err
    assert files.read_yaml(folder / "params.yml")["_status"] == st.REGISTERED


# ----------------------------------------------------------------------------------------- lifecycle

SCRIPT = '''\
import os
import sys
import threading
import time
from typing import Optional

from xmen.experiment import Experiment


class Worker(Experiment):
    def __init__(self):
        """Does what its mode says."""
        super().__init__()
        self.mode: str = 'ok'  # @p ok, fail, sleep, exit
        self.code: Optional[int] = None  # @p exit code for mode exit

    def run(self):
        print('working', flush=True)
        if self.mode == 'ok':
            def send(i):
                for j in range(5):
                    self.message({f'thread_{i}': j, 'shared': i})
            threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elif self.mode == 'fail':
            raise ValueError('boom')
        elif self.mode == 'sleep':
            open(os.path.join(self.directory, 'started'), 'w').close()
            time.sleep(30)
        elif self.mode == 'exit':
            sys.exit(self.code)


class Other(Worker):
    def run(self):
        print('other ran')


if __name__ == '__main__':
    exp = Worker()
    exp.main(exp.parse_args())
'''


@pytest.fixture
def worker(tmp_path: Path) -> Path:
    # A folder name that breaks any unquoted use in script.sh.
    folder = tmp_path / "odd dir's $HOME; (x)"
    folder.mkdir()
    path = folder / "worker.py"
    path.write_text(SCRIPT)
    return path


def test_messages_from_threads_are_all_kept(worker: Path, tmp_path: Path) -> None:
    proc = xmen_run(str(worker), "--debug", str(tmp_path / "dbg"))
    assert proc.returncode == 0, proc.stderr
    assert f"xmen: debug run in {tmp_path / 'dbg'}" in proc.stderr
    params = files.read_yaml(tmp_path / "dbg" / "params.yml")
    assert params["_status"] == st.FINISHED
    assert {f"thread_{i}": 4 for i in range(8)}.items() <= params["_messages"].items()


def test_error_in_run(worker: Path, tmp_path: Path) -> None:
    proc = xmen_run(str(worker), "--update", "{mode: fail}", "--debug", str(tmp_path / "dbg"))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "ValueError: boom" in proc.stderr
    params = files.read_yaml(tmp_path / "dbg" / "params.yml")
    assert params["_status"] == st.ERROR and params["_error"] == "ValueError: boom"
    out = (tmp_path / "dbg" / "out.txt").read_text()
    assert "working" in out and "ValueError: boom" in out


@pytest.mark.parametrize("code, status, exit_code", [(0, st.FINISHED, 0), (5, st.ERROR, 5)])
def test_sys_exit_in_run(worker: Path, tmp_path: Path, code: int, status: str, exit_code: int) -> None:
    proc = xmen_run(str(worker), "--update", f"{{mode: exit, code: {code}}}", "--debug", str(tmp_path / "dbg"))
    assert proc.returncode == exit_code
    assert files.read_yaml(tmp_path / "dbg" / "params.yml")["_status"] == status


@pytest.mark.parametrize(
    "sig, status, exit_code",
    [(signal.SIGTERM, st.TIMEOUT, 143), (signal.SIGUSR1, st.TIMEOUT, 138), (signal.SIGINT, st.STOPPED, 130)],
)
def test_signals_while_running(worker: Path, tmp_path: Path, sig: int, status: str, exit_code: int) -> None:
    folder = tmp_path / "dbg"
    proc = subprocess.Popen(
        [sys.executable, str(worker), "--update", "{mode: sleep}", "--debug", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until((folder / "started").exists, 20, "run() started", interval=0.01, proc=proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == exit_code, err
    params = files.read_yaml(folder / "params.yml")
    assert params["_status"] == status
    assert params["_error"] == f"received {signal.Signals(sig).name}"
    assert params["_run"]["returncode"] == exit_code
    assert "Traceback" not in err


def test_module_entry_for_a_class_that_is_not_main(worker: Path, tmp_path: Path) -> None:
    spec = f"{worker}:Other"
    root = tmp_path / "set a"
    proc = xmen_run("-m", "xmen.experiment", spec, "--name", "--to_root", str(root))
    assert proc.returncode == 0 and proc.stdout == "Other\n", proc.stderr
    script = (root / "script.sh").read_text()
    assert f"-m xmen.experiment {shlex.quote(spec)} --execute \"$1\"" in script
    defaults = files.read_yaml(root / "defaults.yml")
    assert defaults["_version"]["class"] == "Other" and list(defaults)[3:] == ["mode", "code"]
    proc = xmen_run("-m", "xmen.experiment", spec, "--register", str(root), "e 1")
    assert proc.returncode == 0, proc.stderr
    params = root / "e 1" / "params.yml"
    # a clean environment, as on a cluster node: script.sh alone must make everything importable
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(["bash", str(root / "script.sh"), str(params)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout == "other ran\n", proc.stderr
    assert files.read_yaml(params)["_status"] == st.FINISHED


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no-colon", "error: expected SCRIPT.py:ClassName"),
        ("{dir}/missing.py:X", "no such file"),
        ("{worker}:Nope", "has no class 'Nope' (Experiment classes: Worker, Other)"),
        ("{worker}:Optional", "is not a subclass of xmen.experiment.Experiment"),
    ],
)
def test_module_entry_errors(worker: Path, tmp_path: Path, spec: str, message: str) -> None:
    proc = xmen_run("-m", "xmen.experiment", spec.format(dir=tmp_path, worker=worker), "--name")
    assert proc.returncode != 0 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


# ------------------------------------------------------------------------------------------- provenance


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(folder), *args],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def test_provenance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(provenance.now_time()) == 19 and provenance.parse_time(provenance.now_time()) is not None
    meta = provenance.get_meta()
    assert meta["mac"].startswith("0x") and len(meta["mac"]) == 14 and meta["home"] == os.environ["HOME"]

    outside = tmp_path / "plain"
    outside.mkdir()
    (outside / "m.py").write_text("")
    assert provenance.get_version(outside / "m.py", "C") == {"module": str(outside / "m.py"), "class": "C"}

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "m.py").write_text("x = 1\n")
    provenance.clear_cache()
    assert provenance.get_version(repo / "m.py", "C")["git"] == {
        "local": str(repo), "remote": None, "commit": None, "branch": "main", "dirty": False,
    }
    _git(repo, "add", "m.py")
    _git(repo, "commit", "-q", "-m", "one")
    _git(repo, "remote", "add", "upstream", "https://example.invalid/x.git")
    commit = _git(repo, "rev-parse", "HEAD")
    provenance.clear_cache()
    git = provenance.get_version(repo / "m.py", "C")["git"]
    assert git == {"local": str(repo), "remote": "https://example.invalid/x.git", "commit": commit,
                   "branch": "main", "dirty": False}
    # cached: no git process the second time, even for another file of the same repository
    monkeypatch.setattr(provenance.subprocess, "run", lambda *a, **k: pytest.fail("git queried twice"))
    assert provenance.get_version(repo / "m.py", "D")["git"] == git
    monkeypatch.undo()
    (repo / "m.py").write_text("x = 2\n")
    _git(repo, "checkout", "-q", "--detach")
    provenance.clear_cache()
    git = provenance.get_git(repo)
    assert git is not None and git["branch"] is None and git["commit"] == commit and git["dirty"] is True
    provenance.clear_cache()


def test_import_budget() -> None:
    code = (
        "import sys, xmen, xmen.experiment, xmen.job, xmen.store.heartbeat\n"
        "heavy = [m for m in ('click', 'pandas', 'snakemake', 'numpy') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    assert xmen_run("-c", code).stdout.strip() == "[]"


def test_message_outside_a_folder_stays_in_memory() -> None:
    exp = AnExperiment()
    exp.message({"loss": 0.5})
    assert exp.messages == {"loss": 0.5}
    with pytest.raises(UsageError):
        exp.message(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(XmenError, match="register"):
        exp()
