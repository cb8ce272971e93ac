"""The Python API users of the original xmen (2020/2021) wrote against: imports, members, context manager, forms."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import List

import pytest

from xmen.store import status as st
from xmen.errors import XmenError
from xmen.define.experiment import Experiment, TypedMeta, experiment_parser


class Base(Experiment):
    """A base experiment."""

    t = "cat"  # @p
    w = 3  # @p w has a help
    h: int = 10  # @p h is typed

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.a: str = "h"  # @p A parameter
        self.c: int = 5  # not a parameter


class Derived(Base):
    """An experiment deriving from another one."""

    x: List[float] = [3.0, 2.0]  # @p A mutable class-body default
    m: str = "Derived"  # @p m

    def run(self) -> None:
        self.message({"total": sum(self.x)})

    @property
    def h(self) -> str:  # replaces the parameter h: no longer a parameter
        return "property"


class Other(Base):
    m: str = "Other"  # @p m in Other


class Multi(Other, Derived):
    pass


class Plain(Experiment):
    """Only class-body parameters."""

    a: int = 1  # @p A

    def run(self) -> None:
        print(f"a = {self.a}")


def test_the_tutorial_imports_and_the_metaclass_alias() -> None:
    class WithMeta(Experiment, metaclass=TypedMeta):
        b: int = 2  # @p B

    assert WithMeta().b == 2 and "b (int): B (default=2)" in WithMeta.__doc__
    # The parser every class's command line is made from: the class's parser shares its arguments.
    flags = {o for action in experiment_parser._actions for o in action.option_strings}
    assert {"--update", "--execute", "--to_root", "--to_defaults", "--register", "--debug", "--name"} <= flags
    assert Plain().parse_args(["--update", "{a: 3}"]).update == "{a: 3}"


def test_an_argument_added_to_experiment_parser_reaches_every_class(tmp_path: Path) -> None:
    script = tmp_path / "exp.py"
    script.write_text(textwrap.dedent("""
        from xmen.experiment import Experiment, experiment_parser
        experiment_parser.add_argument('--gpus', type=int, default=0, help='GPUs to use')

        class E(Experiment):
            a: int = 1  # @p A

        if __name__ == '__main__':
            e = E()
            args = e.parse_args()
            print('gpus', args.gpus)
    """))
    helped = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True)
    assert "--gpus GPUS" in helped.stdout and "GPUs to use" in helped.stdout
    ran = subprocess.run([sys.executable, str(script), "--gpus", "2"], capture_output=True, text=True)
    assert ran.stdout.strip() == "gpus 2", ran.stderr


def test_class_body_defaults_are_copied_per_instance() -> None:
    one, two = Derived(), Derived()
    one.x += [4.0]
    assert one.x == [3.0, 2.0, 4.0] and two.x == [3.0, 2.0] and Derived.x == [3.0, 2.0]
    shared = Derived(copy_params=False)
    assert shared.x is Derived.x


def test_a_property_replacing_a_parameter_is_no_longer_one() -> None:
    assert "h" not in Derived._xmen_params and "h" in Base._xmen_params
    assert Derived().h == "property"
    assert list(Multi._xmen_params) == ["t", "w", "a", "x", "m"]
    assert Multi().m == "Other"  # the method resolution order decides, left to right


def test_parameters_are_frozen_after_register(tmp_path: Path) -> None:
    exp = Derived()
    exp.a = "before"
    exp.update({"t": "dog"})
    exp.register(tmp_path, "one", purpose="testing")
    with pytest.raises(AttributeError, match="cannot change after register"):
        exp.a = "after"
    with pytest.raises(AttributeError, match="cannot change after register"):
        exp.update({"t": "fish"})
    exp.c = 6  # ordinary attributes stay free
    assert exp.a == "before" and exp.t == "dog"
    params = (tmp_path / "one" / "params.yml").read_text()
    assert "a: before" in params and "t: dog" in params
    # Executing a params.yml attaches to it and freezes too.
    other = Derived()
    other.execute(tmp_path / "one" / "params.yml")
    assert other.t == "dog"
    with pytest.raises(AttributeError):
        other.t = "cow"
    exp.detach()
    exp.t = "cow"  # detached: parameters can change again
    assert exp.directory is None and exp.status == st.DEFAULT


def test_recorded_members_note_and_repr(tmp_path: Path) -> None:
    exp = Derived()
    assert (exp.root, exp.name, exp.created, exp.purpose, exp.version, exp.notes) == (None, None, None, None, None, [])
    assert repr(exp).splitlines()[:3] == ["Derived(status=default)", "parameters:", "  t: 'cat'"]
    exp.register(tmp_path, "first", purpose="A test")
    assert exp.root == str(tmp_path) and exp.name == "first" and exp.purpose == "A test"
    assert len(exp.created) == len("2020-03-09-16-42-13")
    assert exp.version["class"] == "Derived" and exp.version["module"] == __file__
    exp.note("a thought")
    exp.note("another")
    exp.note("a thought", remove=True)
    assert exp.notes == ["another"]
    text = repr(exp)
    for line in ("Derived(status=registered)", f"root: {tmp_path}", "name: first", "purpose: A test",
                 "  x: [3.0, 2.0]"):
        assert line in text.splitlines()
    with pytest.raises(AttributeError, match="recorded by xmen"):
        exp.name = "other"


def test_a_parameter_named_like_a_member_wins(tmp_path: Path) -> None:
    class Named(Experiment):
        name: str = "x"  # @p A name

        def __init__(self) -> None:
            super().__init__()
            self.version: int = 2  # @p A version

    exp = Named()
    exp.name = "y"
    exp.register(tmp_path, "folder")
    assert exp.name == "y" and exp.version == 2 and exp.root == str(tmp_path)


def test_with_block_runs_as_the_experiment(tmp_path: Path) -> None:
    exp = Derived()
    exp.register(tmp_path, "ctx")
    with exp as e:
        assert e.status == st.RUNNING
        print("inside the block")
        e.message({"sum": sum(e.x)})
    assert exp.status == st.FINISHED
    params = (tmp_path / "ctx" / "params.yml").read_text()
    assert "_status: finished" in params and "sum: 5.0" in params
    assert "inside the block" in (tmp_path / "ctx" / "out.txt").read_text()
    with pytest.raises(ValueError, match="boom"):
        with exp:
            raise ValueError("boom")
    assert exp.status == st.ERROR and "ValueError: boom" in (tmp_path / "ctx" / "params.yml").read_text()
    with pytest.raises(KeyboardInterrupt):
        with exp:
            raise KeyboardInterrupt
    assert exp.status == st.STOPPED
    with pytest.raises(XmenError, match="register"):
        with Derived():
            pass


def test_root_name_forms(tmp_path: Path) -> None:
    base = Experiment(tmp_path, "ex1")  # the original's monitor example
    assert base.status == st.REGISTERED and base.directory == str(tmp_path / "ex1")
    assert (tmp_path / "ex1" / "params.yml").is_file()
    folder = Experiment(tmp_path / "ex2")  # 2021: the experiment's own folder
    assert folder.name == "ex2" and folder.root == str(tmp_path)
    # A subclass registers once its whole __init__ ran: its __init__ parameters are in params.yml.
    derived = Derived(tmp_path, "ex3", purpose="p", t="dog")
    assert derived.status == st.REGISTERED
    params = (tmp_path / "ex3" / "params.yml").read_text()
    assert "a: h" in params and "t: dog" in params and "_purpose: p" in params
    with pytest.raises(AttributeError):
        derived.a = "x"


SCRIPT = textwrap.dedent("""
    from xmen.experiment import Experiment

    class Dbg(Experiment):
        a: int = 1  # @p A

        def run(self):
            print(f'debug run in {self.directory}')

    if __name__ == '__main__':
        exp = Dbg()
        exp.main(exp.parse_args())
""")


@pytest.mark.parametrize("value", ["True", "true"])
def test_debug_true_is_the_boolean_form(tmp_path: Path, value: str) -> None:
    script = tmp_path / "dbg.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), "--debug", value], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / value).exists()
    assert "debug run in" in proc.stdout and "xmen-debug-Dbg-" in proc.stdout


def test_debug_false_runs_nothing(tmp_path: Path) -> None:
    script = tmp_path / "dbg.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), "--debug", "False"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode != 0 and "nothing to do" in proc.stderr
    assert not (tmp_path / "False").exists() and "debug run" not in proc.stdout


def test_a_signal_inside_a_with_block_ends_it_as_a_timeout(tmp_path: Path) -> None:
    import os
    import signal
    import time

    exp = Derived()
    exp.register(tmp_path, "sig")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(BaseException) as caught:
        with exp:
            os.kill(os.getpid(), signal.SIGTERM)  # what SLURM sends at the time limit
            time.sleep(5)
    assert not isinstance(caught.value, Exception)  # the scheduler's request is not a user error
    assert exp.status == st.TIMEOUT
    assert "received SIGTERM" in (tmp_path / "sig" / "params.yml").read_text()
    assert signal.getsignal(signal.SIGTERM) == before  # the block's trap is gone
