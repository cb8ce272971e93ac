"""The sweep grammar: accepted and rejected input, pinned."""
import pytest

from xmen.store import sweep
from xmen.errors import UsageError


def texts(spec):
    return [{k: c.text for k, c in combo.items()} for combo in sweep.combinations(spec)]


def values(spec):
    return [{k: c.value for k, c in combo.items()} for combo in sweep.combinations(spec)]


def test_tutorial_sweep_first_key_varies_slowest():
    assert texts("{a: 1.0 | 2.0, b: None | cat}") == [
        {"a": "1.0", "b": "None"},
        {"a": "1.0", "b": "cat"},
        {"a": "2.0", "b": "None"},
        {"a": "2.0", "b": "cat"},
    ]
    assert values("{a: 1.0 | 2.0, b: None | cat}")[0] == {"a": 1.0, "b": None}


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("{a: 1}", [{"a": 1}]),
        ("{a: 1e-3 | 0.5}", [{"a": "1e-3"}, {"a": 0.5}]),  # PyYAML reads 1e-3 as text; kept as typed
        ("{a: true | false}", [{"a": True}, {"a": False}]),
        ("{a: [1, 2]}", [{"a": [1, 2]}]),
        ("{a: 'x | y'}", [{"a": "x"}, {"a": "y"}]),
        ("{}", [{}]),
        ("a: 3\nb: x", [{"a": 3, "b": "x"}]),
        ({"a": "1|2"}, [{"a": 1}, {"a": 2}]),
    ],
)
def test_accepted(spec, expected):
    assert values(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty sweep"),
        ("{a: 1", "invalid sweep YAML"),
        ("[1, 2]", "must be a YAML mapping"),
        ("just text", "must be a YAML mapping"),
        ("{a: 1 | }", "empty alternative"),
        ("{a: '|'}", "empty alternative"),
        ("{a: 1 | 1}", "duplicate alternative"),
        ("{1: x}", "parameter names must be"),
        ("!!python/object/apply:os.system ['echo hi']", "invalid sweep YAML"),
        ("{a: !!python/name:os.system x}", "invalid sweep YAML"),
    ],
)
def test_rejected(spec, message):
    with pytest.raises(UsageError, match=message):
        sweep.combinations(spec)


@pytest.mark.parametrize("spec, expected", [
    ("{b: None | 3}", ["None", "3"]),
    ("{b: none | 3}", ["None", "3"]),
    ("{b: null | 3}", ["None", "3"]),
    ("{b: ~ | 3}", ["None", "3"]),
    ("{b: none}", ["None"]),
    ("{b: null}", ["None"]),
    ("{b: 'None'}", ["None"]),
])
def test_every_none_spelling_is_named_none(spec, expected):
    """Equal values, one folder: {b: None} and {b: none} were two folders with equal parameters."""
    assert [t["b"] for t in texts(spec)] == expected
    assert values(spec)[0]["b"] is None


@pytest.mark.parametrize("spec, message", [
    ("{b: 1, b: 2}", "duplicate key 'b'"),
    ("{a: {x: 1, x: 2}}", "duplicate key 'x'"),
    ("{b: None | none}", "duplicate alternative 'None'"),
    ("{a: &x [1, *x]}", "refers to the node that contains it"),
    ("{a: [&a [x, x, x, x, x, x, x, x, x, x], " + ", ".join(
        f"&b{i} [" + ", ".join([f"*{'a' if i == 0 else f'b{i - 1}'}"] * 10) + "]" for i in range(6)) + "]}",
     "alias bomb"),
])
def test_rejected_before_building_values(spec, message):
    with pytest.raises(UsageError, match=message):
        sweep.parse(spec)


def test_small_aliases_are_fine():
    assert values("{a: &x [1, 2], b: *x}") == [{"a": [1, 2], "b": [1, 2]}]


def test_count_does_not_build_the_combinations():
    parsed = sweep.parse("{" + ", ".join(f"p{i}: " + " | ".join(map(str, range(10))) for i in range(12)) + "}")
    assert sweep.count(parsed) == 10**12
    assert sweep.count(sweep.parse("{}")) == 1
