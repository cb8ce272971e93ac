"""xmen.sets.finding: the two ways xmen finds sets, side by side on one tree."""
from __future__ import annotations

from pathlib import Path

from xmen.sets.finding import LinkedNames, select_sets, sets_below, sets_selected

from cli_helpers import write_set


def test_sets_below_and_sets_selected_differ_only_where_they_should(tmp_path: Path) -> None:
    a = write_set(tmp_path, 2, name="set_a")
    nested = write_set(a, 1, name="nested")  # a folder of set_a that is a set itself
    b = write_set(tmp_path / "project" / "deep", 1, name="set_b")
    venv = tmp_path / "env"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    in_venv = write_set(venv / "lib", 1, name="set_v")
    write_set(a / "profiles", 1, name="set_p")  # a set's profiles folder
    write_set(tmp_path / ".hidden", 1, name="set_h")

    assert sorted(sets_below(tmp_path)) == sorted([a, nested, b, in_venv])  # acts on every set a user can cd into
    assert sets_selected(cwd=tmp_path) == sorted([a, a / "profiles" / "set_p", nested, b])  # what xmen list shows
    assert sets_selected(["set_a/i=1", "project/*/set_b"], cwd=tmp_path) == [b, a]
    assert list(sets_below(a, recursive=False)) == [a]
    assert list(sets_below(tmp_path, recursive=False)) == [a]


def test_select_sets_opens_each_set_once_with_the_callers_opener(tmp_path: Path) -> None:
    root = write_set(tmp_path, 3)
    opened: list[str] = []

    def opener(folder: str) -> LinkedNames:
        opened.append(folder)
        return LinkedNames(folder)

    patterns, selected = select_sets(["set_a/i=1", "set_a/i=2", "set_a"], str(tmp_path), opener)
    assert opened == [str(root)]
    assert [p.text for p in patterns] == [str(root / "i=1"), str(root / "i=2"), str(root)]
    state, matcher = selected[str(root)]
    assert state.names == ["i=0", "i=1", "i=2"] and state.problem is None and matcher is None


def test_a_set_whose_experiment_yml_cannot_be_read_is_found_but_not_entered(tmp_path: Path) -> None:
    root = write_set(tmp_path, 1)
    inner = write_set(root, 1, name="inner")
    (root / "experiment.yml").write_text("")
    assert "expected a YAML mapping" in (LinkedNames(str(root)).problem or "")
    assert sets_selected(cwd=tmp_path) == [root]
    assert sorted(sets_below(tmp_path)) == [root, inner]
