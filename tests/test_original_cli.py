"""Command-line forms of the original xmen: bare ``init`` on the folder's script.sh/defaults.yml, ``list -p`` with
a regex left of the comparison and with several values, and the 2021 ``note PATTERN MESSAGE``."""
from __future__ import annotations

from pathlib import Path

import pytest

from xmen.store import files
from xmen.cli import main
from xmen.cli.compat import spread_values
from xmen.look.predicates import parse_param_filter

from cli_helpers import xmen

DEFAULTS = "a: h  # (str) A parameter\nab: x  # (str) Another\nb: 17  # (int) A number\n"
SCRIPT = "#!/bin/bash\ntrue\n"


@pytest.fixture
def folder(xmen_home, tmp_path, monkeypatch) -> Path:
    root = tmp_path / "set_a"
    root.mkdir()
    (root / "script.sh").write_text(SCRIPT)
    (root / "defaults.yml").write_text(DEFAULTS)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def swept(folder, capsys) -> Path:
    assert main(["init"]) == 0
    assert main(["register", "{a: cat | dog, ab: cat | x}"]) == 0
    capsys.readouterr()
    return folder


def test_bare_init_uses_the_folders_script_and_defaults(folder, capsys):
    code, out, err = xmen(capsys, "init")
    assert code == 0, err
    assert (folder / "script.sh").read_text() == SCRIPT and (folder / "defaults.yml").read_text() == DEFAULTS
    data = files.read_yaml(folder / "experiment.yml")
    assert data["script"] == "script.sh" and data["defaults"] == "defaults.yml"
    assert xmen(capsys, "register", "{a: z}")[0] == 0


def test_bare_init_without_the_files_still_says_what_it_needs(xmen_home, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = xmen(capsys, "init")
    assert code != 0 and err.startswith("Error: give either -n NAME")


def test_list_p_with_a_regex_left_of_the_comparison(swept, capsys):
    code, out, err = xmen(capsys, "list", "--csv", "-p", "a.*==cat")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split(",")[1:] == ["root", "name", "a", "ab"]
    assert [line.split(",")[2] for line in lines[1:]] == ["a=cat__ab=cat"]  # every matching parameter is cat


def test_list_p_takes_several_values(swept, capsys):
    code, out, err = xmen(capsys, "list", "--csv", "-p", "a", "b")
    assert code == 0, err
    assert out.splitlines()[0].split(",")[1:] == ["root", "name", "a", "b"]
    code, out, err = xmen(capsys, "list", "--csv", "-p", "a==dog", "ab==x", "-s")
    assert code == 0, err
    assert [line.split(",")[2] for line in out.strip().splitlines()[1:]] == ["a=dog__ab=x"]


def test_spread_values():
    assert spread_values(["g", "-p", "a", "b", "-s", "c"], ["-p"]) == ["g", "-p", "a", "-p", "b", "-s", "c"]
    assert spread_values(["-p", "-x", "y"], ["-p"]) == ["-p", "-x", "-p", "y"]
    assert spread_values(["-p", "a", "--", "b"], ["-p"]) == ["-p", "a", "--", "b"]


def test_a_regex_predicate_needs_every_matching_parameter_to_hold():
    predicate = parse_param_filter("a.*==cat")
    assert predicate.names(["a", "ab", "b"]) == ["a", "ab"]
    assert predicate.matches({"a": "cat", "ab": "cat", "b": 1})
    assert not predicate.matches({"a": "cat", "ab": "dog"})
    assert not predicate.matches({"b": "cat"})
    assert parse_param_filter("lr<1").names(["lr", "lr2"]) == ["lr"]


def test_note_pattern_message_notes_the_matching_experiments(swept, capsys):
    code, _, err = xmen(capsys, "note", "a=cat*", "looks good")
    assert code == 0, err
    assert files.read_yaml(swept / "a=cat__ab=x" / "params.yml")["_notes"] == ["looks good"]
    assert not files.read_yaml(swept / "a=dog__ab=x" / "params.yml").get("_notes")
    assert files.read_yaml(swept / "experiment.yml")["notes"] == []
    assert xmen(capsys, "note", "-d", "a=cat*", "looks good")[0] == 0
    assert files.read_yaml(swept / "a=cat__ab=x" / "params.yml")["_notes"] == []
    # today's forms still work
    assert xmen(capsys, "note", "on the set")[0] == 0
    assert xmen(capsys, "note", "one", "-e", "a=dog*")[0] == 0
    assert files.read_yaml(swept / "experiment.yml")["notes"] == ["on the set"]
    code, _, err = xmen(capsys, "note", "a*", "msg", "-e", "b*")
    assert code != 0 and err.startswith("Error: give the experiments either as PATTERN or with -e")


SCRIPT_PY = '''from xmen.experiment import Experiment


class AnExperiment(Experiment):
    a: str = "h"  # @p A parameter

    def run(self):
        print(self.a)


if __name__ == "__main__":
    AnExperiment().main()
'''


@pytest.mark.parametrize("short, long", [("-u", "--update"), ("-x", "--execute"), ("-r", "--to_root"),
                                         ("-d", "--debug"), ("-p", "--purpose")])
def test_the_original_short_options_of_a_script_name_their_long_form(xmen_home, tmp_path, short, long):
    """The 2021 script options -u/-x/-r/-d/-p are gone: one line naming the long form, exit 2, nothing written."""
    import subprocess
    import sys

    (tmp_path / "exp.py").write_text(SCRIPT_PY)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "exp.py", short, "{a: x}"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and long in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
