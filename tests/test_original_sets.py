"""Sets and the global configuration written by the original xmen are read by every command and migrated, with a
backup, on the first write (fixtures: tests/original_xmen.py, built from the original's writers)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.store import config as global_config
from xmen.store import files, legacy
from xmen.sets.expset import ExperimentSet

from cli_helpers import xmen

sys.path.insert(0, str(Path(__file__).parent))
from original_xmen import (CLASS_MODULE, EXPERIMENTS, launcher, make_original_class_set,  # noqa: E402
                           make_original_set, mark_finished, original_config, original_xmen_yml, tree_bytes)

NAMES = list(EXPERIMENTS)


@pytest.fixture(params=[2020, 2021])
def original(request, xmen_home, tmp_path, monkeypatch) -> Path:
    root = make_original_set(tmp_path / "experiments" / "set_a", request.param, header="export FROM_HEADER=1")
    monkeypatch.chdir(root)
    return root


def test_list_reads_an_original_set(original, capsys):
    code, out, err = xmen(capsys, "list", "--csv", "-p", "a|b")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split(",")[:3] == ["", "root", "name"]
    rows = {line.split(",")[2]: line.split(",") for line in lines[1:]}
    assert sorted(rows) == sorted(NAMES)
    assert rows["a=2.0__b=cat"][-2:] == ["2.0", "cat"]
    code, out, err = xmen(capsys, "list", "--csv", "-d")
    import csv

    created = {row[2]: row[3] for row in list(csv.reader(out.strip().splitlines()))[1:]}
    assert set(created.values()) == {"2020-03-09-16-42-25" if "_name" in (original / NAMES[0] / "params.yml").read_text()
                                     else "02:01PM March 03, 2021"}
    assert not (original / "experiment.yml.orig-xmen").exists()  # reading never migrates


def test_register_migrates_experiment_yml_keeping_a_backup(original, capsys):
    before = (original / "experiment.yml").read_bytes()
    code, _, err = xmen(capsys, "register", "{a: x}")
    assert code == 0, err
    assert (original / "experiment.yml.orig-xmen").read_bytes() == before
    data = files.read_yaml(original / "experiment.yml")
    assert list(data["experiments"]) == NAMES + ["a=x"]
    assert data["script"] == "script.sh" and data["defaults"] == "defaults.yml"
    assert data["notes"] == ["A test of the xmen experiment suite"]
    assert data["purpose"] == "A test of the original"
    assert "overides" not in data
    # A second write keeps the first backup (the original's file), not our own version.
    assert xmen(capsys, "note", "again")[0] == 0
    assert (original / "experiment.yml.orig-xmen").read_bytes() == before


def test_run_runs_every_original_experiment_with_its_header(original, capsys):
    code, _, err = xmen(capsys, "run", "*", "sh")
    assert code == 0, err
    exp_set = ExperimentSet(original)
    for name in NAMES:
        assert (original / name / "ran.txt").read_text().strip() == f"a: {EXPERIMENTS[name][0]}"
        assert exp_set.status_of(name) == "finished"
        run_sh = (original / name / "run.sh").read_text()
        assert "export FROM_HEADER=1" in run_sh  # the original's header survives the rewrite
        assert "EXPERIMENT FINISHED" not in run_sh
    assert (original / "experiment.yml.orig-xmen").exists()


def test_relink_reset_note_unlink_clean_on_an_original_set(original, capsys):
    assert xmen(capsys, "relink")[0] == 0
    assert ExperimentSet(original).experiments == NAMES
    assert files.read_yaml(original / NAMES[0] / "params.yml")["_root"] == str(original)
    assert xmen(capsys, "reset", "*")[0] == 0
    assert xmen(capsys, "note", "a note")[0] == 0
    assert files.read_yaml(original / "experiment.yml")["notes"][-1] == "a note"
    code, _, err = xmen(capsys, "unlink", "a=2.0__b=cat")
    assert code == 0, err
    assert xmen(capsys, "clean", "-y")[0] == 0
    assert not (original / "a=2.0__b=cat").exists()
    assert ExperimentSet(original).experiments == NAMES[:3]


def test_finished_original_experiments_stay_finished(original, capsys):
    """The original kept no status file: what it recorded as finished is done for xmen run -n, xmen run and plain
    snakemake -n alike, and a dry run writes nothing (it still plans the set as it is)."""
    finished, pending = NAMES[:2], NAMES[2:]
    mark_finished(original, finished)
    before = tree_bytes(original)
    code, out, err = xmen(capsys, "run", "-n")
    assert code == 0, err
    assert tree_bytes(original) == before  # no Snakefile, profiles, backup or rewritten experiment.yml
    assert "Would relink" in err
    planned = [line.split()[0] for line in out.splitlines()[1:] if line.strip() and "would run" not in line]
    assert planned == pending
    code, out, err = xmen(capsys, "run", pending[0])  # the first command that writes migrates the set
    assert code == 0, err
    exp_set = ExperimentSet(original)
    for name in finished:
        assert exp_set.status_of(name) == "finished"
        assert not (original / name / "ran.txt").exists()  # not run again
        assert (original / name / "xmen.done").is_file()
    assert (original / pending[0] / "ran.txt").exists()
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=original,
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"{pending[1]}/xmen.done" in dry.stdout + dry.stderr
    assert not any(f"{name}/xmen.done" in dry.stdout + dry.stderr for name in finished + pending[:1])
    code, out, err = xmen(capsys, "run", "-n")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:] if line.strip() and "would run" not in line] == [
        pending[1]]


def test_a_set_an_older_xmen_migrated_keeps_its_finished_experiments(original, capsys):
    """An older xmen migrated original sets without writing the status files of finished experiments: xmen run -n
    plans them as done, and xmen run writes their status files (so plain snakemake agrees) without running them."""
    finished, pending = NAMES[:2], NAMES[2:]
    mark_finished(original, finished)
    assert xmen(capsys, "note", "migrate")[0] == 0  # the first write migrates the set, as older versions did...
    for name in finished:
        (original / name / "xmen.done").unlink()  # ...but without the status files
    code, out, err = xmen(capsys, "run", "-n")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:] if line.strip() and "would run" not in line] == pending
    assert not any((original / name / "xmen.done").exists() for name in finished)  # a dry run writes nothing
    code, _, err = xmen(capsys, "run", pending[0])
    assert code == 0, err
    assert "Recorded 2 experiment(s) the original xmen finished" in err
    for name in finished:
        assert (original / name / "xmen.done").is_file()
        assert not (original / name / "ran.txt").exists()
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=original,
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert not any(f"{name}/xmen.done" in dry.stdout + dry.stderr for name in finished)


def test_a_set_migrated_by_note_runs(original, capsys):
    """Whichever command writes first migrates the whole set: after `xmen note`, `xmen run` runs (it failed with no
    Snakefile and the original's run.sh files) and leaves the finished experiments alone."""
    mark_finished(original, NAMES[:1])
    assert xmen(capsys, "note", "first")[0] == 0
    code, _, err = xmen(capsys, "run")
    assert code == 0, err
    exp_set = ExperimentSet(original)
    assert [exp_set.status_of(n) for n in NAMES] == ["finished"] * 4
    assert not (original / NAMES[0] / "ran.txt").exists()
    for name in NAMES[1:]:
        assert (original / name / "ran.txt").read_text().strip() == f"a: {EXPERIMENTS[name][0]}"
        assert "export FROM_HEADER=1" in (original / name / "run.sh").read_text()


def test_a_2021_class_set_runs(xmen_home, tmp_path, monkeypatch, capsys):
    """Its script.sh exec'd the original's launcher (which needs the original's xmen.utils.TypedMeta) by an absolute
    path: migration rewrites it to run the same class with xmen, keeping a backup; the launcher is left as it was."""
    root = make_original_class_set(tmp_path / "experiments" / "set_c", tmp_path / "code")
    launcher_before = (root / "pkg.exps.AnExperiment").read_bytes()
    monkeypatch.chdir(root)
    code, _, err = xmen(capsys, "run")
    assert code == 0, err
    exp_set = ExperimentSet(root)
    for name in NAMES:
        assert exp_set.status_of(name) == "finished", (root / name / "xmen.log").read_text()
        assert (root / name / "ran.txt").read_text() == f"a: {EXPERIMENTS[name][0]}"
    assert (root / "pkg.exps.AnExperiment").read_bytes() == launcher_before
    assert "exec " + str(root) in (root / "script.sh.orig-xmen").read_text()
    assert "xmen.experiment" in (root / "script.sh").read_text()


@pytest.mark.parametrize("command", [["reset", "a=1*"], ["note", "n"], ["unlink", "a=1*"], ["clean", "-y"]])
def test_each_command_reads_an_unmigrated_original_set(original, capsys, command):
    code, _, err = xmen(capsys, *command)
    assert code == 0, err
    assert "Traceback" not in err


def test_convert_keeps_unknown_keys_and_never_names_absolute_paths():
    data = {"root": "/x/s", "defaults": "/x/s/defaults.yml", "script": "/elsewhere/script.sh",
            "experiments": ["/x/s/a=1", "/x/s/a=2/"], "overides": [{"a": 1}, {"a": 2}],
            "created": "c", "purpose": None, "notes": None, "type": "T", "mine": 1}
    converted = legacy.convert_set(data)
    assert converted["experiments"] == {"a=1": {}, "a=2": {}}
    assert converted["script"] == "script.sh" and converted["defaults"] == "defaults.yml"
    assert converted["mine"] == 1 and converted["notes"] == [] and converted["purpose"] == ""
    assert legacy.convert_set({"experiments": {}}) == {"experiments": {}}


# ---------------------------------------------------------------------------------------------- config
MODULE = '''from xmen.experiment import Experiment


class AnExperiment(Experiment):
    def __init__(self):
        """A basic python experiment."""
        super(AnExperiment, self).__init__()
        self.a: str = 'h'  # @p A parameter
        self.b: int = 17  # @p Another parameter

    def run(self):
        print(f'a = {self.a}, b = {self.b}')
'''


@pytest.fixture
def original_config_home(xmen_home, tmp_path, monkeypatch) -> Path:
    """The original's ~/.xmen/config.yml at the default location (no $XMEN), naming a real module."""
    monkeypatch.delenv("XMEN")
    module = tmp_path / "code" / "experiment.py"
    module.parent.mkdir()
    module.write_text(MODULE)
    config_file = xmen_home / ".xmen" / "config.yml"
    config_file.parent.mkdir()
    config_file.write_text(original_config(str(module), ["/data/old/set_a"], prompt=False, header="# from 2020"))
    return config_file


def test_original_config_is_read(original_config_home):
    assert global_config.config_path() == original_config_home
    conf = global_config.load()
    assert conf.prompt is False
    assert conf.experiments == {"AnExperiment": str(original_config_home.parents[2] / "code" / "experiment.py")}
    assert conf.header == "# from 2020"
    assert conf.sets == ["/data/old/set_a"]
    assert global_config.GlobalConfig.from_dict({"prompt_for_message": True}).prompt is True


def test_a_class_registered_by_the_original_inits_a_set(original_config_home, tmp_path, capsys):
    code, out, err = xmen(capsys, "init", "-n", "AnExperiment", "-r", str(tmp_path / "new"))
    assert code == 0, err
    assert files.read_yaml(tmp_path / "new" / "defaults.yml")["a"] == "h"


def test_first_config_write_keeps_the_original_keys_and_a_backup(original_config_home, tmp_path, capsys):
    before = original_config_home.read_bytes()
    code, _, err = xmen(capsys, "config", "--add_path", str(tmp_path))
    assert code == 0, err
    assert Path(f"{original_config_home}.orig-xmen").read_bytes() == before
    data = files.read_yaml(original_config_home)
    for key in ("meta", "save_conda", "redirect_stdout", "requeue", "host", "port"):
        assert key in data, key
    assert data["prompt"] is False and data["header"] == "# from 2020"
    assert str(tmp_path) in data["python_paths"]
    assert global_config.load().experiments["AnExperiment"].endswith("experiment.py")


def test_a_2021_generated_run_script_resolves_to_its_module(tmp_path):
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "exps.py").write_text(MODULE)
    script = tmp_path / "pkg.exps.AnExperiment"
    script.write_text(
        "#!/usr/bin/env python3\nimport sys\nimport importlib\nimport xmen\n"
        f'sys.path.append("{code}")\nimport logging\n\nmod = importlib.import_module("pkg.exps")\n'
        'X = getattr(mod, "AnExperiment")\nX().main()'
    )
    assert legacy.experiment_module(str(script)) == str(code / "pkg" / "exps.py")
    assert legacy.experiment_module("/some/module.py") == "/some/module.py"


def test_the_2021_xmen_yml_is_read(xmen_home, tmp_path, capsys):
    """$XMEN/xmen.yml (2021): its registered classes (run scripts it generated), prompt, header and linked
    experiments' sets are ours; the first write makes our config.yml of it, without the server password, and leaves
    xmen.yml as it was."""
    config_dir = global_config.config_dir()
    code = tmp_path / "code"
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "exps.py").write_text(CLASS_MODULE)
    (config_dir / "experiments").mkdir(parents=True)
    generated = config_dir / "experiments" / "pkg.exps.AnExperiment"
    generated.write_text(launcher(str(code)))
    linked = ["/data/old/set_a/a=1", "/data/old/set_a/a=2", "/data/old/set_b/x"]
    (config_dir / "xmen.yml").write_text(original_xmen_yml(str(generated), linked, header="# from 2021"))
    before = (config_dir / "xmen.yml").read_bytes()
    conf = global_config.load()
    assert conf.prompt is False and conf.header == "# from 2021"
    assert conf.experiments == {"AnExperiment": str(code / "pkg" / "exps.py")}
    assert conf.sets == ["/data/old/set_a", "/data/old/set_b"]
    result, _, err = xmen(capsys, "init", "-n", "AnExperiment", "-r", str(tmp_path / "new"))
    assert result == 0, err
    assert files.read_yaml(tmp_path / "new" / "defaults.yml")["a"] == "h"
    written = files.read_yaml(config_dir / "config.yml")
    assert written["prompt"] is False and written["header"] == "# from 2021"
    assert "password" not in written and "_dir" not in written
    assert str(tmp_path / "new") in written["sets"] and "/data/old/set_b" in written["sets"]
    assert (config_dir / "xmen.yml").read_bytes() == before


@pytest.mark.parametrize("prompt", [True, False])
def test_prompt_for_message_of_the_original_config_is_honoured(prompt, xmen_home, tmp_path, monkeypatch):
    """``init`` on a terminal asks for a purpose exactly when the original's ``prompt_for_message`` says so."""
    import pty
    import select
    import subprocess
    import time

    monkeypatch.delenv("XMEN")
    config_file = xmen_home / ".xmen" / "config.yml"
    config_file.parent.mkdir()
    config_file.write_text(original_config(str(tmp_path / "m.py"), [], prompt=prompt))
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: 1\n")
    master, slave = pty.openpty()
    command = [sys.executable, "-m", "xmen.cli", "init", "-s", "script.sh", "-d", "defaults.yml", "-r", "s"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    output, deadline = b"", time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            try:
                output += os.read(master, 1024)
            except OSError:
                break
            if b"Purpose" in output:
                os.write(master, b"asked\n")
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, output
    assert (b"Purpose" in output) is prompt
    assert files.read_yaml(tmp_path / "s" / "experiment.yml")["purpose"] == ("asked" if prompt else "")


def test_ci_dry_run_writes_nothing_in_an_original_set(original, capsys):
    """xmen ci -n plans the original sets below the folder as they are: no Snakefile, profiles, backup or rewritten
    experiment.yml (as xmen run -n); the run that follows migrates them. (Snakemake's own dry run makes its
    .snakemake/ folder in the folder it runs in, as plain snakemake -n does; nothing else changes.)"""
    mark_finished(original, NAMES[:2])
    top = original.parent
    before = tree_bytes(top)
    code, out, err = xmen(capsys, "ci", str(top), "-n")
    assert code == 0, err
    assert f"Would relink {original}" in err
    after = {path: data for path, data in tree_bytes(top).items() if path.split(os.sep)[0] != ".snakemake"}
    assert after == before
    code, out, err = xmen(capsys, "ci", str(top))
    assert code == 0, err
    assert f"Relinked {original}" in err
    assert [(original / name / "ran.txt").exists() for name in NAMES] == [False, False, True, True]
