"""The fast paths of issue 6 (register at 10k, the Snakefile at 10k, plan) give exactly what the plain code gave.

register writes each params.yml from cached per-(key, value) YAML chunks and a literal ``_name:`` line, without a
per-file fsync (one file-system sync before experiment.yml, the commit point); the Snakefile skips the input
function when no experiment has requirements; plan parses experiment.yml once. Each test compares against the
plain code path (files.dump_params, render_run_script, the old loader) or against text the old code wrote.
"""
from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from xmen.run import engine
from xmen.sets import expset, runscript
from xmen.store import files, layout, status
from xmen.sets.expset import ExperimentSet

REPO = Path(__file__).resolve().parent.parent
LONG = "word " * 40
DEFAULTS = (
    "a: h  # (str) A parameter\n"
    "b: 17  # (int) Another parameter\n"
    "c: 0.5  # (float) A float\n"
    "d: [1, 2]  # (list) A list\n"
    "e:  # A nested mapping\n  x: 1\n  y: [a, b]\n"
    "f: null  # (Optional[int]) Maybe an int\n"
    f"g: {LONG.strip()}  # A long text\n"
    "u: ü  # Unicode\n"
    "t: true\n"
    "_version: {git: abc}\n"
)
# Written by the code before the fast paths (xmen at the start of issue 6's register work), for this DEFAULTS and
# the sweeps below; ROOT, CREATED, the _meta block and HOME are filled in.
GOLDEN_X_Y = """\
_name: 'a=x: y__b=1'  # The name of the experiment (its folder)
_root: ROOT  # The experiment set it belongs to
_status: registered  # default | registered | running | finished | error | stopped | timeout | cancelled
_created: CREATED  # The date the experiment was created
_purpose: 'sweep #1'  # A description of the experiment purpose
_version:  # Experiment version information
  git: abc
_meta:  # Machine and user that registered the experiment
META
_messages: {}  # Messages left by the experiment
a:  # (str) A parameter
  x: y
b: 1  # (int) Another parameter
c: 0.5  # (float) A float
d:  # (list) A list
- 1
- 2
e:  # A nested mapping
  x: 1
  y:
  - a
  - b
f: null  # (Optional[int]) Maybe an int
# g: A long text
g: word word word word word word word word word word word word word word word word word word word word word word word word
  word word word word word word word word word word word word word word word word
u: ü  # Unicode
t: true
"""
GOLDEN_YES = """\
_name: 'yes'  # The name of the experiment (its folder)
_root: ROOT  # The experiment set it belongs to
_status: registered  # default | registered | running | finished | error | stopped | timeout | cancelled
_created: CREATED  # The date the experiment was created
_purpose: ''  # A description of the experiment purpose
_version:  # Experiment version information
  git: abc
_meta:  # Machine and user that registered the experiment
META
_messages: {}  # Messages left by the experiment
a: h  # (str) A parameter
b: 5  # (int) Another parameter
c: 0.5  # (float) A float
d:  # (list) A list
- 1
- 2
e:  # A nested mapping
  x: 1
  y:
  - a
  - b
f: null  # (Optional[int]) Maybe an int
# g: A long text
g: 'multi

  line'
u: ü  # Unicode
t: true
"""
TRICKY_NAMES = [
    "123", "yes", "null", "1e3", "0x1F", "2026-01-01", "a=", "=", "x: y", "é", "a b", "~", "%x", "@x", "a=x y",
    "true", "Off", "1_000", "0o17", "+1", "1:30", "a" * 200, "i=0__j=1", "a=1.0__b=None", "x#y", "a=.inf",
]


@pytest.fixture
def tricky_set(xmen_home: Path, tmp_path: Path) -> ExperimentSet:
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text(DEFAULTS)
    s = ExperimentSet.init(tmp_path / "set", script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    # null and ~ are both None: one of them only (equal values may not make two folders).
    s.register({"a": "1.0 | yes | x y | x: y | é | 日本 | null | 0x1F", "b": "1 | 2.5 | None"}, purpose="sweep #1")
    s.register("{c: 1e-3 | 2 | .inf, t: false | on | 1}", repeats=2, resources="mem_mb=1000,2000", threads=2)
    for name in TRICKY_NAMES[:22]:
        s.register({"b": 5, "g": "multi\nline"}, name=name, requires=["a=1.0__b=1"])
    return s


def _fill(golden: str, s: ExperimentSet, params: dict) -> str:
    meta = files.dump_params({"_meta": params["_meta"]}).split("\n", 1)[1].rstrip("\n")
    return golden.replace("ROOT", str(s.root)).replace("CREATED", params["_created"]).replace("META", meta)


def _comments(s: ExperimentSet) -> dict[str, str]:
    comments = layout.comments(layout.REGISTER_KEYS)
    comments.update({k: v for k, v in files.read_comments(s.root / "defaults.yml").items() if not k.startswith("_")})
    return comments


def test_register_writes_what_the_old_code_wrote(tricky_set: ExperimentSet) -> None:
    s = tricky_set
    for name, golden in (("a=x: y__b=1", GOLDEN_X_Y), ("yes", GOLDEN_YES)):
        text = (s.root / name / "params.yml").read_text(encoding="utf-8")
        assert text == _fill(golden, s, files.read_yaml(s.root / name / "params.yml"))


def test_every_params_file_is_dump_params_of_its_values(tricky_set: ExperimentSet) -> None:
    """Each params.yml is byte for byte what files.dump_params (the old writer) makes of the expected values."""
    s = tricky_set
    defaults = files.read_yaml(s.root / "defaults.yml")
    comments = _comments(s)
    names = s.experiments
    assert len(names) == 24 + 18 + 22
    for name in names:
        path = s.root / name / "params.yml"
        written = files.read_yaml(path)
        expected = {
            "_name": name, "_root": str(s.root), "_status": "registered", "_created": written["_created"],
            "_purpose": written["_purpose"], "_version": {"git": "abc"}, "_meta": written["_meta"], "_messages": {},
        }
        if "__rep=" in name:
            expected["_repeat"] = int(name.rpartition("=")[2])
        expected.update({k: v for k, v in defaults.items() if not k.startswith("_")})
        expected.update({k: v for k, v in written.items() if k in defaults})  # the overrides, checked by name below
        assert list(written) == list(expected)
        assert path.read_text(encoding="utf-8") == files.dump_params(expected, comments)
        run = (s.root / name / "run.sh").read_text(encoding="utf-8")
        assert run == expset.render_run_script(s.root / name, s.root / "script.sh", "", os.sys.executable)
    assert files.read_yaml(s.root / "a=x y__b=2.5" / "params.yml")["b"] == 2.5
    assert files.read_yaml(s.root / "c=1e-3__t=on__rep=2" / "params.yml")["t"] is True
    assert files.read_yaml(s.root / "a=None__b=None" / "params.yml")["a"] is None  # null is named None
    assert files.read_yaml(s.root / "c=1e-3__t=on__rep=2" / "params.yml")["c"] == 0.001  # a float, not '1e-3'
    assert files.read_yaml(s.root / "c=1e-3__t=on__rep=2" / "params.yml")["_repeat"] == 2


def test_experiment_yml_is_dump_params_of_its_data(tricky_set: ExperimentSet) -> None:
    s = tricky_set
    text = s.set_file.read_text(encoding="utf-8")
    assert text == files.dump_params(s.data(), layout.SET_COMMENTS)
    assert "resources: &id001" in text  # shared run options keep their YAML alias, as before


@pytest.mark.parametrize("seed", range(3))
def test_plain_str_entry_matches_the_dumper(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "abcXYZ019_.=+-:# '\"~!@%&*?[]{}|>,\\\n\tüé日"
    names = list(TRICKY_NAMES) + ["", " a", "a ", "-a", ".a", "---", "...", "a\u2028b", "1.5", ".5", "1_0", "0b1",
                                  "y", "n", "NO", "on", "Null", "NULL", "<<", "=", "2001-12-14t21:59:43.10-05:00"]
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    names += ["".join(rng.choice("ab=_.+-019") for _ in range(rng.randint(1, 300))) for _ in range(300)]
    for name in names:
        for note in (None, "The name of the experiment (its folder)"):
            assert files.plain_str_entry("_name", name, note) == files.param_entry("_name", name, note), name


def test_params_text_matches_dump_params() -> None:
    shared = {"x": [1, {"y": "z"}], "s": "a: b"}
    comments = {"k": "help  text", "m": "more", "s": "a string"}
    render = files.ParamsText(comments, plain_keys=("k",))
    for data in (
        {"k": "i=0", "m": shared, "s": shared["s"], "n": None},
        {"k": "yes", "m": shared, "s": "x" * 300 + " y", "n": 1.5},
        {"k": 3, "m": [], "s": "multi\nline", "n": {}},
        {"k": "i=0", "m": shared, "s": shared["s"], "n": None},
    ):
        assert render.render(data) == files.dump_params(data, comments)


@pytest.mark.parametrize("header, header_lines", [
    ("", ""), ("  \n", ""), ("#SBATCH --mem=1G\nmodule load x\n", "#SBATCH --mem=1G\nmodule load x\n"),
])
def test_run_script_text_is_what_the_old_code_wrote(header: str, header_lines: str) -> None:
    """run.sh byte for byte as before the fast renderer, every path shell-quoted."""
    root = Path("/data/my set's root")
    text = expset.render_run_script(root / "$(x) a=1", root / "script.sh", header, "/usr/bin/python 3")
    assert text == (
        "#!/bin/bash\n" + header_lines
        + "# Generated by xmen: runs the set's script.sh on this experiment's params.yml through xmen's job runner,\n"
        "# which records running/finished/error/timeout in params.yml.\n"
        "cd '/data/my set'\"'\"'s root/$(x) a=1' || exit 1\n"
        + (runscript._header_python("/usr/bin/python 3") + 'exec "$xmen_python"' if header_lines else
           "exec '/usr/bin/python 3'")
        + " -m xmen.job '/data/my set'\"'\"'s root/$(x) a=1/params.yml' "
        "'/data/my set'\"'\"'s root/script.sh'\n"
    )


def test_new_files_get_exact_modes_whatever_the_umask(xmen_home: Path, tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: 1\n")
    s = ExperimentSet.init(tmp_path / "set", script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    old = os.umask(0o077)
    try:
        s.register("{a: 1 | 2}")
    finally:
        os.umask(old)
    for name in ("a=1", "a=2"):
        assert stat.S_IMODE((s.root / name / "params.yml").stat().st_mode) == 0o644
        assert stat.S_IMODE((s.root / name / "run.sh").stat().st_mode) == 0o755
    with pytest.raises(FileExistsError):  # new files are never written over an existing one
        files.write_new_file(s.root / "a=1" / "run.sh", "x")


def test_files_are_synced_before_the_commit_point_and_a_failure_rolls_back(
    xmen_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: 1\n")
    s = ExperimentSet.init(tmp_path / "set", script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    events: list[str] = []
    real_sync, real_write = files.sync_filesystem, files.write_yaml
    monkeypatch.setattr(files, "sync_filesystem", lambda path: (events.append("sync"), real_sync(path))[1])
    monkeypatch.setattr(files, "write_yaml", lambda path, *a, **k: (events.append(Path(path).name), real_write(path, *a, **k))[1])
    s.register("{a: 1 | 2}")
    assert events == ["sync", "experiment.yml"]

    before = s.set_file.read_bytes()
    calls = []
    real_new = files.write_new_file

    def failing(path, text, mode=0o644):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_new(path, text, mode)

    monkeypatch.setattr(files, "write_new_file", failing)
    with pytest.raises(OSError):
        s.register("{a: 3 | 4}")
    assert s.set_file.read_bytes() == before
    assert not (s.root / "a=3").exists() and not (s.root / "a=4").exists()


# ---------------------------------------------------------------------- the Snakefile's loader
# The Snakefile's Python moved from rules/xmen.smk into xmen.snakemake_glue (issue 11); these tests now check the
# module. Requirements are no longer resolved when a set is loaded (globs are resolved by the planner).
class _FakeWorkflow:
    def __init__(self, main: bool = True) -> None:
        self.is_main_process = main
        self.dag_settings = None


def _glue(config: dict | None = None, main: bool = True):
    from xmen.host.glue import XmenWorkflow

    return XmenWorkflow(_FakeWorkflow(main), config or {})


@pytest.mark.parametrize("set_dir", [".", "sub", "../other/set", "ABS", "a/./b/"])
def test_snakefile_loader_keys_paths_as_snakemake_sees_them(tmp_path: Path, monkeypatch, set_dir: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if set_dir == "ABS":
        set_dir = str(tmp_path / "abs" / "set")
    folder = work / set_dir
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "root": None,
        "options": {"threads": 2},
        "experiments": {
            "a=1": {}, "b": None, "x y": {"requires": ["a=1", "../t/z"]}, 12: {"threads": 3}, "c/..": {},
            "..": {}, "d/e": {"resources": {"mem_mb": [1, 2]}}, "é": {"requires": []},
        },
    }
    files.write_yaml(folder / "experiment.yml", data)
    loaded = _glue().load_set(set_dir)
    rel = os.path.relpath(folder, work)
    expected = [os.path.normpath(os.path.join(rel, str(n))) for n in data["experiments"]]
    assert list(loaded) == expected
    assert loaded[os.path.normpath(os.path.join(rel, "x y"))] == {"threads": 2, "requires": ["a=1", "../t/z"]}
    assert loaded[os.path.normpath(os.path.join(rel, "12"))] == {"threads": 3}


def test_requires_input_is_a_plain_list_only_when_nothing_requires(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    files.write_yaml(tmp_path / "experiment.yml", {"experiments": {"a": {}, "b": {}}})
    glue = _glue()
    glue.add_set(".")
    assert glue.requires_input() == []
    assert glue.target_paths(everything=False) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert glue.threads(type("W", (), {"exp": "a"})()) == 1

    # another set with requirements, loaded on demand for an explicit target: refused, never run out of order
    (tmp_path / "other").mkdir()
    files.write_yaml(tmp_path / "other" / "experiment.yml", {"experiments": {"c": {"requires": ["d"]}, "d": {}}})
    with pytest.raises(ValueError, match="has requirements"):
        glue.threads(type("W", (), {"exp": "other/c"})())

    # a set with requirements keeps the input function (with Snakemake's signature cache) ...
    glue = _glue()
    glue.add_set("other")
    requires = glue.requires_input()
    assert callable(requires) and list(requires._overwrite_params) == ["wildcards"]
    assert requires(type("W", (), {"exp": "other/c"})()) == ["other/d/xmen.done"]
    # ... and so does a cluster job's Snakemake process
    glue = _glue(main=False)
    glue.add_set(".")
    assert callable(glue.requires_input())


# ---------------------------------------------------------------------- plan
def test_match_with_given_names_is_match(tricky_set: ExperimentSet) -> None:
    s = tricky_set
    names = list(s.data()["experiments"])
    for patterns in (None, "*", ["a=*"], ["*b=1", "yes"], [str(s.root / "a=x*")], ["nothing"], ["*", "x"]):
        assert s.match(patterns, names=names) == s.match(patterns)


def test_plan_reasons_are_unchanged(xmen_home: Path, tmp_path: Path) -> None:
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: 1\n")
    s = ExperimentSet.init(tmp_path / "set", script=tmp_path / "script.sh", defaults=tmp_path / "defaults.yml")
    s.register("{a: 1 | 2 | 3 | 4 | 5 | 6}")
    s.register("{a: 7}", requires=["a=1"])
    s.register("{a: 8}", requires=["a=2"])

    def set_status(name: str, value: str, done: bool = False, **extra) -> None:
        files.update_yaml(s.root / name / "params.yml", lambda p: p.update(_status=value, **extra))
        if done:
            (s.root / name / status.DONE_FILE).write_text("finished\n")

    set_status("a=1", "finished", done=True)
    set_status("a=2", "finished")
    set_status("a=3", "error")
    set_status("a=4", "registered", _reset="2026")
    (s.root / "a=5" / "params.yml").write_text("a: [\n")
    set_status("a=8", "finished", done=True)
    os.utime(s.root / "a=8" / status.DONE_FILE, ns=(1, 1))
    pending, skipped = engine.plan(s)
    assert [(p.name, p.reason, p.status) for p in pending] == [
        ("a=2", "status file missing", "finished"),
        ("a=3", "failed (error)", "error"),
        ("a=4", "reset", "registered"),
        ("a=6", "new", "registered"),
        ("a=7", "new", "registered"),
        ("a=8", "requirement a=2 pending", "finished"),
    ]
    assert [(p.name, p.status) for p in skipped] == [("a=5", "corrupt")]
    pending, _ = engine.plan(s, ["a=[37]"])
    assert [p.name for p in pending] == ["a=3", "a=7"]
