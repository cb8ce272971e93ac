"""A run.sh header that changes the environment (export PATH=..., conda activate, a venv's activate) takes effect
for the run: the job runner and a python experiment's script.sh run on the ``python`` the header put first on
PATH when it has xmen, else on the interpreter xmen was installed with; without a header nothing changes."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from xmen.store import files
from xmen.cli import main
from xmen.sets.expset import ExperimentSet

MODULE = '''from xmen.experiment import Experiment


class Hello(Experiment):
    def __init__(self):
        """Says hello with the interpreter it runs on."""
        super(Hello, self).__init__()
        self.a: str = 'h'  # @p A parameter

    def run(self):
        import sys
        with open(self.directory + "/interpreter.txt", "w") as f:
            f.write(sys.executable)
'''


def fake_python(folder: Path, log: Path, works: bool = True) -> Path:
    """A ``python`` that records each use in ``log`` and then execs the real interpreter (or fails)."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "python"
    body = f'exec {sys.executable} "$@"' if works else "exit 1"
    wrapper.write_text(f'#!/bin/bash\necho "$@" >> {log}\n{body}\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def python_set(xmen_home, tmp_path, monkeypatch) -> Path:
    module = tmp_path / "code" / "hello.py"
    module.parent.mkdir()
    module.write_text(MODULE)
    assert main(["config", "--add", str(module)]) == 0
    root = tmp_path / "set"
    assert main(["init", "-n", "Hello", "-r", str(root)]) == 0
    return root


def run_all(root: Path, capsys) -> None:
    code = main(["run", "*", "-r", str(root), "bash"])
    _, err = capsys.readouterr()
    assert code == 0, err


def test_a_header_putting_python_first_on_path_runs_the_job_and_experiment_on_it(python_set, tmp_path, capsys):
    log = tmp_path / "used.txt"
    fake_python(tmp_path / "env" / "bin", log)
    header = f"export PATH={tmp_path / 'env' / 'bin'}:$PATH"
    assert main(["register", "{a: x}", "-r", str(python_set), "-H", header]) == 0
    run_all(python_set, capsys)
    used = log.read_text()
    assert "-m xmen.job" in used  # the job runner
    assert "--execute" in used  # the experiment itself (script.sh)
    assert ExperimentSet(python_set).status_of("a=x") == "finished"


def test_without_a_header_the_install_interpreter_runs_even_if_path_has_another_python(
    python_set, tmp_path, capsys, monkeypatch
):
    log = tmp_path / "used.txt"
    fake_python(tmp_path / "env" / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'env' / 'bin'}:{os.environ['PATH']}")
    assert main(["register", "{a: y}", "-r", str(python_set), "-H", ""]) == 0
    run_all(python_set, capsys)
    assert not log.exists()
    assert (python_set / "a=y" / "interpreter.txt").read_text() == sys.executable
    assert ExperimentSet(python_set).status_of("a=y") == "finished"


def test_a_header_whose_python_lacks_xmen_falls_back_to_the_install_interpreter(python_set, tmp_path, capsys):
    log = tmp_path / "used.txt"
    fake_python(tmp_path / "broken" / "bin", log, works=False)
    header = f"export PATH={tmp_path / 'broken' / 'bin'}:$PATH"
    assert main(["register", "{a: z}", "-r", str(python_set), "-H", header]) == 0
    run_all(python_set, capsys)
    assert "import xmen" in log.read_text()  # it was asked, and said no
    assert (python_set / "a=z" / "interpreter.txt").read_text() == sys.executable
    assert ExperimentSet(python_set).status_of("a=z") == "finished"


def test_a_shell_experiment_sees_the_header_environment(xmen_home, tmp_path, capsys):
    (tmp_path / "script.sh").write_text('#!/bin/bash\necho "$FROM_HEADER" > "$(dirname "$1")/env.txt"\n')
    (tmp_path / "defaults.yml").write_text("a: 1\n")
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    assert main(["register", "{a: 2}", "-r", str(root), "-H", "export FROM_HEADER=yes"]) == 0
    run_all(root, capsys)
    assert (root / "a=2" / "env.txt").read_text().strip() == "yes"
    assert files.read_yaml(root / "a=2" / "params.yml")["_status"] == "finished"
