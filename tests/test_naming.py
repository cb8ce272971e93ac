"""Experiment folder names are pinned: changing them orphans users' folders."""
import pytest

from xmen.store import naming
from xmen.errors import UsageError


@pytest.mark.parametrize(
    "texts, name",
    [
        ({"a": "1.0", "b": "None"}, "a=1.0__b=None"),
        ({"a": "2.0", "b": "cat"}, "a=2.0__b=cat"),
        ({"lr": "1e-3"}, "lr=1e-3"),
        ({}, ""),
    ],
)
def test_experiment_name(texts, name):
    assert naming.experiment_name(texts) == name


def test_repeat_name():
    assert naming.repeat_name("a=1", 2) == "a=1__rep=2"
    assert naming.repeat_name("", 1) == "rep=1"


@pytest.mark.parametrize("name", ["a=1.0__b=None", "lr=1e-3", "x y", "a=-1", "a=1:2,3@4%5~6+7"])
def test_safe_names(name):
    assert naming.check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", ".hidden", "a=../x", "a=x/y", "a=$(id)", "a=`id`", "a='q'", 'a="q"', "a=x\ny", "a=\x01",
     "-rf", "a=*", "a=[1, 2]", "a={x: 1}", "a=x;y", "a=x|y", " a", "a" * 300, "a=x\\y"],
)
def test_unsafe_names_rejected(name):
    with pytest.raises(UsageError):
        naming.check_name(name)


@pytest.mark.parametrize("key, text, message", [
    ("a", "x__b=5", "holds '__'"),
    ("a", "__", "holds '__'"),
    ("a=b", "1", "holds '='"),
    ("rep", "1", "repeat suffix"),
])
def test_parts_that_would_make_names_ambiguous(key, text, message):
    """{a: 'x__b=5'} and {a: x, b: 5} named one folder; {rep: 1} and -x 2 of nothing too."""
    with pytest.raises(UsageError, match=message):
        naming.check_part(key, text)


@pytest.mark.parametrize("key, text", [("a", "x_"), ("a", "_x"), ("a", "b=5"), ("my__param", "1"), ("a", "1e-3")])
def test_parts_that_read_back_one_way(key, text):
    naming.check_part(key, text)
