"""Functional experiments: a function with a ``Root`` first argument, documented and run like a class."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import xmen
from xmen.store import status as st
from xmen.cli import main
from xmen.errors import ExperimentError, UsageError
from xmen.define.loading import find_experiment_classes, load_class
from xmen.define.functional import Root, autodoc, functional_experiment, is_functional, read_params
from xmen.define.parameters import parse_function_source

HELLO = textwrap.dedent('''
    """Hello world, the functional way and the class way."""
    import xmen


    @xmen.autodoc
    def hello_world(
        root: xmen.Root,   # the experiment: its folder and messages
        a: str = 'Hello',  # the first
        # argument
        b: str = 'World',   # the second argument
    ):
        """A hello world experiment written as a function."""
        print(f'{a}  {b}')
        with open(root.directory + '/out.txt', 'w') as f:
            f.write(f'{a} {b}')
        root.message({'a': a, 'b': b})


    class HelloWorld(xmen.Experiment):
        """A hello world experiment written as a class."""
        a: str = 'Hello'  # @p The first argument
        b: str = 'World'  # @p The second argument

        def run(self):
            print(f'{self.a} {self.b}!')
            self.message({'a': self.a, 'b': self.b})


    if __name__ == '__main__':
        from xmen.define.functional import functional_experiment
        Exp = functional_experiment(hello_world)
        Exp().main()
''')


def test_parse_function_source_reads_comments_as_help() -> None:
    source = textwrap.dedent('''
        def f(root: Root,  # not a parameter
              lr: float = 1e-3,  # @p learning
              # rate, continued
              layers: list = [
                  64, 64],  # widths
              plain=3,
              *, flag: bool = False,  # a keyword-only one
              ):  # not help
            # body comment
            pass
    ''')
    params = parse_function_source(source, "f")
    assert list(params) == ["lr", "layers", "plain", "flag"]
    assert (params["lr"].type, params["lr"].default, params["lr"].help) == ("float", "1e-3", "learning rate, continued")
    assert params["layers"].default == "[64, 64]" and params["layers"].help == "widths"
    assert (params["plain"].type, params["plain"].default, params["plain"].help) == (None, "3", "")
    assert params["flag"].help == "a keyword-only one" and params["flag"].default == "False"


def test_is_functional() -> None:
    def yes(root: Root, a: int = 1) -> None: ...

    def spelled(root: "xmen.Root") -> None: ...

    def no(root, a: int = 1) -> None: ...

    assert is_functional(yes) and is_functional(spelled) and not is_functional(no) and not is_functional(Root)


@pytest.fixture
def hello(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "hello_world.py"
    script.write_text(HELLO)
    monkeypatch.syspath_prepend(str(tmp_path))
    return script


def test_the_class_has_the_parameters_docs_and_runs(hello: Path, tmp_path: Path) -> None:
    Exp = load_class(f"{hello}:hello_world")
    assert Exp.__name__ == "hello_world" and issubclass(Exp, Root)
    assert Exp.__doc__ == (
        "A hello world experiment written as a function.\n\n"
        "Parameters:\n"
        "    a (str): the first argument (default='Hello')\n"
        "    b (str): the second argument (default='World')"
    )
    exp = Exp()
    assert exp.parameters() == {"a": "Hello", "b": "World"}
    exp.update({"a": "Hi"})
    exp.register(tmp_path / "set", "one")
    with pytest.raises(AttributeError):
        exp.a = "Bye"
    assert exp() == st.FINISHED
    assert (tmp_path / "set" / "one" / "out.txt").read_text().startswith("Hi World")
    assert exp.messages == {"a": "Hi", "b": "World"}
    # autodoc documented the function itself too, like a class
    fn = sys.modules[Exp.__module__].hello_world
    assert "a (str): the first argument (default='Hello')" in fn.__doc__


def test_mutable_defaults_are_per_instance_and_bad_functions_refused() -> None:
    def sweep(root: Root, widths: list = [64, 64]) -> None:  # noqa: B006 - the point of the test
        root.message({"n": len(widths)})

    Exp = functional_experiment(sweep)
    one, two = Exp(), Exp()
    one.widths.append(1)
    assert two.widths == [64, 64] and read_params(sweep)["widths"].default == "[64, 64]"

    def starred(root: Root, *args) -> None: ...

    def status(root: Root, status: str = "x") -> None: ...

    with pytest.raises(ExperimentError, match="cannot be a parameter"):
        functional_experiment(starred)
    with pytest.raises(ExperimentError, match="would hide"):
        functional_experiment(status)
    assert autodoc(sweep) is sweep and "widths (list)" in sweep.__doc__


def test_load_class_refuses_a_function_without_root(tmp_path: Path) -> None:
    script = tmp_path / "plain.py"
    script.write_text("def f(x, a=1):\n    pass\n")
    with pytest.raises(UsageError, match="not annotated Root"):
        load_class(f"{script}:f")


def test_script_help_and_debug(hello: Path, tmp_path: Path) -> None:
    helped = subprocess.run([sys.executable, str(hello), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0, helped.stderr
    assert "A hello world experiment written as a function." in helped.stdout
    assert "    a (str): the first argument (default='Hello')" in helped.stdout
    ran = subprocess.run([sys.executable, str(hello), "--update", "{b: You}", "--debug", str(tmp_path / "dbg")],
                         capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "Hello  You" in ran.stdout and "_status: finished" in (tmp_path / "dbg" / "params.yml").read_text()


def test_config_add_init_register_run(hello: Path, tmp_path: Path, xmen_home: Path, capfd, monkeypatch) -> None:
    assert find_experiment_classes(hello) == ["hello_world", "HelloWorld"]
    assert main(["config", "--add", str(hello)]) == 0
    assert "Added hello_world, HelloWorld" in capfd.readouterr().err
    root = tmp_path / "set_f"
    assert main(["init", "-n", "hello_world", "-r", str(root)]) == 0
    defaults = (root / "defaults.yml").read_text()
    assert "a: Hello  # (str) the first argument (default='Hello')" in defaults
    assert "class: hello_world" in defaults
    monkeypatch.chdir(root)
    assert main(["register", "{a: Hi | Bye}"]) == 0
    capfd.readouterr()
    assert main(["run", "*", "sh"]) == 0
    out = capfd.readouterr().out
    assert "Hi  World" in out and "Bye  World" in out
    for name, word in (("a=Hi", "Hi"), ("a=Bye", "Bye")):
        params = (root / name / "params.yml").read_text()
        assert "_status: finished" in params and f"a: {word}" in params
        assert (root / name / "out.txt").read_text().startswith(f"{word} World")
    assert main(["list", "-m", "--csv"]) == 0
    assert "Hi,World" in capfd.readouterr().out
