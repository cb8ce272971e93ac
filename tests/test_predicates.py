"""The ``-p`` grammar: which texts are regexes, which are predicates, what they match, and what is rejected."""
from __future__ import annotations

import pytest

from xmen.errors import UsageError
from xmen.look.predicates import ColumnPattern, Comparison, Predicate, parse_param_filter, parse_param_filters

# text -> (name, ((op, value, quoted), ...)) with the parameter always on the left of each comparison.
PARSED = [
    ("lr<0.01", ("lr", (("<", "0.01", False),))),
    ("lr <= 0.01", ("lr", (("<=", "0.01", False),))),
    ("a>=2", ("a", ((">=", "2", False),))),
    ("a>2", ("a", ((">", "2", False),))),
    ("b==cat", ("b", (("==", "cat", False),))),
    ("b=cat", ("b", (("==", "cat", False),))),
    ("b!=cat", ("b", (("!=", "cat", False),))),
    ("b=='1.0'", ("b", (("==", "1.0", True),))),
    ('b!="x y"', ("b", (("!=", "x y", True),))),
    ("0.01>lr", ("lr", (("<", "0.01", False),))),
    ("2<=a", ("a", ((">=", "2", False),))),
    ("1<a<=2", ("a", ((">", "1", False), ("<=", "2", False)))),
    ("2>=a>1", ("a", (("<=", "2", False), (">", "1", False)))),
    ("w_cycle_a==2.0", ("w_cycle_a", (("==", "2.0", False),))),
]


@pytest.mark.parametrize("text, expected", PARSED)
def test_predicates_parse(text, expected):
    parsed = parse_param_filter(text)
    assert isinstance(parsed, Predicate)
    name, comparisons = expected
    assert parsed.name == name
    assert parsed.comparisons == tuple(Comparison(*c) for c in comparisons)
    assert parsed.text == text


@pytest.mark.parametrize(
    "text, column, selected",
    [
        (".*", "anything", True),
        ("w_.*", "w_cycle_a", True),
        ("w_.*", "lr", False),
        ("lr", "lr", True),
        ("lr", "lr_decay", False),  # full match: 'lr' is not a prefix filter
        ("lr|seed", "seed", True),
        ("(?<=x)y", "y", False),  # '(?' always starts a regex, even with '<=' inside
        ("(?P<n>a)", "a", True),
    ],
)
def test_regexes_select_columns_by_full_match(text, column, selected):
    parsed = parse_param_filter(text)
    assert isinstance(parsed, ColumnPattern)
    assert parsed.selects(column) is selected


@pytest.mark.parametrize(
    "text",
    ["", "   ", "a<<1", "<1", "a<", "a<=", "==cat", "a<1<2<3", "1<2", "'a'<1", "1<2<3", "a=<1", "[", "w_(", "a**"],
)
def test_bad_filters_are_one_line_usage_errors(text):
    with pytest.raises(UsageError) as info:
        parse_param_filter(text)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


MISSING = object()
# (filter, parameter value or MISSING, matches)
MATCHES = [
    ("lr<0.01", 0.001, True),
    ("lr<0.01", 0.01, False),
    ("lr<=0.01", 0.01, True),
    ("lr<0.01", "1e-3", True),  # YAML 1.1 reads 1e-3 as a string; it is still a number
    ("lr<0.01", "small", False),  # ordering a non-number never matches
    ("lr<0.01", None, False),
    ("lr<0.01", MISSING, False),  # experiments without the parameter are dropped
    ("lr!=0.01", MISSING, False),
    ("1<a<=2", 1, False),
    ("1<a<=2", 1.5, True),
    ("1<a<=2", 2, True),
    ("1<a<=2", 2.5, False),
    ("a>=2", 2, True),
    ("a>=2", True, False),  # booleans are not numbers
    ("a==2", 2.0, True),
    ("a==2.0", 2, True),
    ("a==2", "2", True),
    ("a=='2'", 2, True),  # quoted: text comparison of str(2)
    ("a=='2.0'", 2, False),
    ("b==cat", "cat", True),
    ("b==cat", "dog", False),
    ("b!=cat", "dog", True),
    ("b!=cat", "cat", False),
    ("b==cat", 1.0, False),
    ("b==None", None, True),
    ("b==null", None, True),
    ("b!=None", "cat", True),
    ("b==None", "None", True),
    ("flag==true", True, True),
    ("flag==True", True, True),
    ("flag==false", True, False),
    ("flag!=false", True, True),
    ("big==12345678901234567890", 12345678901234567890, True),
    ("big<12345678901234567891", 12345678901234567890, True),
    ("x==nan", float("nan"), True),  # "nan" is not a number literal: text comparison finds NaNs
    ("x!=1", float("nan"), True),
    ("l==[1, 2]", [1, 2], True),
    ("-1<t<1", 0, True),
    ("t>-1.5e3", -100, True),
]


@pytest.mark.parametrize("text, value, expected", MATCHES)
def test_predicate_matching(text, value, expected):
    predicate = parse_param_filter(text)
    assert isinstance(predicate, Predicate)
    params = {} if value is MISSING else {predicate.name: value}
    assert predicate.matches(params) is expected


def test_parse_param_filters_keeps_order_and_kinds():
    filters = parse_param_filters([".*", "lr<0.1", "w_.*"])
    assert [type(f) for f in filters] == [ColumnPattern, Predicate, ColumnPattern]
    assert [f.text for f in filters] == [".*", "lr<0.1", "w_.*"]


def test_nothing_is_evaluated():
    predicate = parse_param_filter("a==__import__('os').system('false')")
    assert isinstance(predicate, Predicate)
    assert predicate.matches({"a": "__import__('os').system('false')"})
