"""xmen.parameters: the @p table read from source, comment parsing, type checks, YAML-safe values."""
from __future__ import annotations

import enum
from pathlib import PurePosixPath

import pytest

from xmen.errors import UsageError
from xmen.define.parameters import Param, check_value, coerce_value, merge_tables, parse_class_source, parse_comment, render_block, to_yaml_safe, with_block, yaml_comment

TUTORIAL = '''\
class AnExperiment(Experiment):
    def __init__(self):
        """A basic python experiment demonstrating the features of the xmen api."""
        super(AnExperiment, self).__init__()
        self.a: str = 'h'  # @p A parameter
        self.b: int = 17  # @p Another parameter

        # Normal attributes are still allowed
        self.c: int = 5  # This is not a parameter
'''


def test_tutorial_table() -> None:
    table = parse_class_source(TUTORIAL, "AnExperiment").params
    assert list(table) == ["a", "b"]
    assert table["a"] == Param("a", "str", "'h'", "A parameter", "AnExperiment")
    assert table["b"] == Param("b", "int", "17", "Another parameter", "AnExperiment")
    assert render_block(table) == (
        "Parameters:\n    a (str): A parameter (default='h')\n    b (int): Another parameter (default=17)"
    )


def test_tricky_source() -> None:
    source = '''\
class Tricky(Experiment):
    """A '#' in a docstring is not a comment: self.x: int = 1  # @p not me"""
    body: float = 1e-3  # @p Class-body parameter
    plain = 'x # @p not a comment'
    ann_only: int  # @p Declared without a value

    def __init__(self, *args):
        super().__init__()
        self.s: str = 'a # b = c: "d"'  # @p tricky
        self.t: str = "it's # @p"  #   @p   Help  with   spaces
        self.l: List[
            float
        ] = [1.0,
             2.0]  # @p Multi-line
        self.d: Dict[str, int] = {  # @p Marker on the first line
            'k': 1,
        }
        if args:
            self.o: Optional[int] = None  # @p Conditional, still a parameter
        self.m = self.n = 3  # @p Two at once
        self.c: int = 5  # no marker @param
        self.e = 1  # email me @pcs
        def inner(other):
            other.z: int = 1  # @p not self, not __init__

    def run(self):
        self.r: int = 1  # @p only __init__ declares parameters
'''
    table = parse_class_source(source, "Tricky").params
    assert list(table) == ["body", "ann_only", "s", "t", "l", "d", "o", "m", "n"]
    assert table["body"] == Param("body", "float", "1e-3", "Class-body parameter", "Tricky")
    assert table["ann_only"].default is None and table["ann_only"].type == "int"
    assert table["s"].default == "'a # b = c: \"d\"'" and table["s"].help == "tricky"
    assert table["t"].default == '"it\'s # @p"' and table["t"].help == "Help with spaces"
    assert table["l"].type == "List[float]" and table["l"].default == "[1.0, 2.0]"
    assert table["d"].help == "Marker on the first line"
    assert table["o"].type == "Optional[int]"
    assert table["m"].help == table["n"].help == "Two at once" and table["m"].type is None


def test_indented_class_with_column_zero_docstring() -> None:
    # Nested classes come indented; a docstring line at column 0 defeats textwrap.dedent.
    source = '''    class Inner(Experiment):
        """Doc
first column"""
        x: int = 1  # @p X
'''
    assert list(parse_class_source(source).params) == ["x"]


def test_merge_inherits_and_overrides_in_place() -> None:
    parent = parse_class_source(TUTORIAL)
    child = parse_class_source(
        '''\
class Child(AnExperiment):
    def __init__(self):
        self.b = 99  # before the parent's __init__: overwritten, so not a new default
        super().__init__()
        self.a: str = 'z'  # @p
        self.d: bool = False  # @p New one
'''
    )
    merged = merge_tables([parent, child])
    assert list(merged) == ["a", "b", "d"]
    assert merged["a"] == Param("a", "str", "'z'", "A parameter", "")  # help kept from the parent
    assert merged["b"].default == "17"
    grandchild = parse_class_source(
        "class G(Child):\n    def __init__(self):\n        super().__init__()\n        self.b = 3\n"
    )
    assert merge_tables([parent, child, grandchild])["b"].default == "3"


@pytest.mark.parametrize(
    "comment, expected",
    [
        ("(int) Another parameter (default=17)", ("int", "Another parameter", "17")),
        ("(str) A parameter (default='h')", ("str", "A parameter", "'h'")),
        ("A parameter (default='h')", (None, "A parameter", "'h'")),  # the tutorial's own format
        ("# (int) x", ("int", "x", None)),
        ("(Optional[int]) maybe (default=None)", ("Optional[int]", "maybe", "None")),
        ("(Tuple[int, int]) shape (default=(1, 2))", ("Tuple[int, int]", "shape", "(1, 2)")),
        ("(str) tricky (default='a # b = c: \"d\"')", ("str", "tricky", "'a # b = c: \"d\"'")),
        ("help mentions (default=5) too (default='x')", (None, "help mentions (default=5) too", "'x'")),
        ("(default=3)", (None, "", "3")),
        ("just a help text", (None, "just a help text", None)),
        ("(a side remark) in parentheses", ("a side remark", "in parentheses", None)),
        ("", (None, "", None)),
        (None, (None, "", None)),
    ],
)
def test_parse_comment(comment: str | None, expected: tuple) -> None:
    assert parse_comment(comment) == expected


def test_comment_round_trip() -> None:
    for param in parse_class_source(TUTORIAL).params.values():
        assert parse_comment(yaml_comment(param)) == (param.type, param.help, param.default)


@pytest.mark.parametrize(
    "type_str, value, ok",
    [
        ("int", 3, True),
        ("int", True, False),
        ("int", 3.0, False),
        ("int", "notint", False),
        ("float", 1, True),
        ("float", 1.5, True),
        ("float", False, False),
        ("bool", True, True),
        ("bool", 1, False),
        ("str", "x", True),
        ("str", 1.0, False),
        ("str", None, False),
        ("Optional[int]", None, True),
        ("Optional[int]", 2, True),
        ("Optional[int]", "x", False),
        ("int | None", None, True),
        ("Union[int, str]", "x", True),
        ("Union[int, str]", 1.5, False),
        ("List[float]", [1, 2.0], True),
        ("List[float]", [1, "a"], False),
        ("list", "abc", False),
        ("list[int]", [1, 2], True),
        ("typing.List[int]", [1], True),
        ("Dict[str, int]", {"a": 1}, True),
        ("Dict[str, int]", {"a": "b"}, False),
        ("dict", [], False),
        ("Tuple[int, ...]", [1, 2, 3], True),
        ("Tuple[int, str]", [1, "a"], True),
        ("Tuple[int, str]", [1, 2], False),
        ("Tuple[int, str]", [1], False),
        ("Literal['a', 'b']", "a", True),
        ("Literal['a', 'b']", "c", False),
        ("Literal[1, 2]", True, False),
        ("'int'", 1, True),
        ("Any", object(), True),
        ("MyModel", "anything", True),  # user classes cannot be checked: accepted
        ("Union[int, MyModel]", "x", True),
        ("Callable[[int], int]", 3, True),
        (None, "anything", True),
        ("not a ( type", 1, True),
    ],
)
def test_check_value(type_str: str | None, value: object, ok: bool) -> None:
    assert check_value(type_str, value) is ok


def test_check_value_never_evaluates() -> None:
    # An annotation is interpreted as a syntax tree; a call in it is not run.
    assert check_value("__import__('os').system('exit 1')", 1) is True


def test_coerce_value() -> None:
    assert coerce_value("float", "1e-3") == 0.001  # YAML 1.1 reads 1e-3 as a string
    assert coerce_value("Optional[float]", "2E5") == 2e5
    assert coerce_value("str", "1e-3") == "1e-3"
    with pytest.raises(UsageError, match=r"^b: expected int, got str 'notint'$"):
        coerce_value("int", "notint", "b")
    with pytest.raises(UsageError, match="quote it"):
        coerce_value("str", 1, "a")


def test_docs_blocks() -> None:
    table = {"a": Param("a", None, None, ""), "b": Param("b", "int", None, "B")}
    assert render_block(table) == "Parameters:\n    a\n    b (int): B"
    assert render_block({}) == ""
    assert with_block("\n    Title.\n\n    More.\n    ", table).startswith("Title.\n\nMore.\n\nParameters:\n    a\n")
    assert with_block(None, table) == render_block(table)
    assert with_block("Doc", {}) == "Doc"


class Color(enum.Enum):
    RED = "red"


class FakeScalar:  # numpy-like
    def item(self) -> float:
        return 2.5


def test_to_yaml_safe() -> None:
    class Sub(float):
        pass

    value = {
        "t": (1, 2),
        "s": {3, 1},
        "e": Color.RED,
        "p": PurePosixPath("/x/y"),
        "n": FakeScalar(),
        "f": Sub(1.5),
        1: None,
        "o": object,
    }
    safe = to_yaml_safe(value)
    assert safe["t"] == [1, 2] and safe["s"] == [1, 3] and safe["e"] == "red" and safe["p"] == "/x/y"
    assert safe["n"] == 2.5 and type(safe["f"]) is float and safe[1] is None and safe["o"] == str(object)
