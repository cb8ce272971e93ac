"""xmen.listing on sets written straight to tmp_path: finding sets, rows, filters, the index cache, formatting."""
from __future__ import annotations

import datetime
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from xmen.store.terminal import plain
from xmen.store import files
from xmen.look import index, listing
from xmen.errors import UsageError

from cli_helpers import COMMIT, write_set


def unlink(root: Path, name: str) -> None:
    def drop(data: dict[str, Any]) -> None:
        del data["experiments"][name]

    files.update_yaml(root / "experiment.yml", drop)


def set_status(root: Path, name: str, status: str) -> None:
    files.update_yaml(root / name / "params.yml", lambda d: d.update(_status=status))


@pytest.fixture
def settled(monkeypatch):
    """Trust files written a moment ago (tests cannot wait out the 2 s racy window)."""
    monkeypatch.setattr(index, "RACY_NS", 0)


@pytest.fixture
def reads(monkeypatch):
    """Count params.yml reads (the work the index saves)."""
    calls: list[str] = []
    real = index._read_params

    def counting(path: str, *args: Any):
        calls.append(path)
        return real(path, *args)

    monkeypatch.setattr(index, "_read_params", counting)
    return calls


def statuses(result: listing.ListResult) -> dict[str, str]:
    return {row["name"]: row["status"] for row in result.rows}


def index_of(root: Path) -> Path:
    return Path(index.cache_folder(root)) / "index.json"


# ------------------------------------------------------------------------------------------ finding sets
def test_find_sets_walks_below_cwd_but_not_into_experiments_hidden_folders_or_environments(tmp_path):
    a = write_set(tmp_path, 2, name="set_a")
    b = write_set(tmp_path / "project" / "deep", 1, name="set_b")
    # Sets hidden where a walk must not look: inside a linked experiment, a hidden folder, .snakemake.
    write_set(a / "i=0", 1, name="inside_experiment")
    write_set(tmp_path / ".hidden", 1, name="set_h")
    write_set(a / ".snakemake", 1, name="set_s")
    write_set(tmp_path / "venv" / "lib", 1, name="set_v")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr\n")
    write_set(tmp_path / "node_modules", 1, name="set_n")
    nested = write_set(a / "sub", 1, name="nested")  # an ordinary subfolder of a set may hold a set
    assert listing.find_sets(cwd=tmp_path) == sorted([a, b, nested])
    assert listing.find_sets(cwd=tmp_path / "project") == [b]
    assert listing.find_sets(cwd=a) == [a, nested]


def test_find_sets_skips_unlinked_experiment_folders(tmp_path):
    a = write_set(tmp_path, 2)
    unlink(a, "i=1")
    write_set(a / "i=1", 1, name="inside_unlinked")
    assert listing.find_sets(cwd=tmp_path) == [a]


def test_globs_match_set_roots_folders_and_experiment_paths(tmp_path):
    a = write_set(tmp_path, 4, name="set_a")
    b = write_set(tmp_path, 2, name="set_b")
    c = write_set(tmp_path / "group", 1, name="set_c")

    def listed(*globs, cwd=tmp_path):
        return [(Path(r["root"]).name, r["name"]) for r in listing.collect(list(globs), cwd=cwd).rows]

    assert listed("set_*") == [("set_a", f"i={i}") for i in range(4)] + [("set_b", "i=0"), ("set_b", "i=1")]
    assert listed("set_b") == [("set_b", "i=0"), ("set_b", "i=1")]
    assert listed("group") == [("set_c", "i=0")]  # a folder selects every set below it
    assert listed("*") == listed()  # '*' matches set_a, set_b and group
    assert listed("set_a/i=[13]") == [("set_a", "i=1"), ("set_a", "i=3")]
    assert listed(str(a / "i=2")) == [("set_a", "i=2")]  # absolute
    assert listed("*", cwd=a) == [("set_a", f"i={i}") for i in range(4)]  # inside a set: its experiments
    assert listed("i=1", cwd=a) == [("set_a", "i=1")]
    assert listed(cwd=a / "i=2") == [("set_a", "i=2")]  # inside an experiment folder: that experiment
    assert listed("**/set_c") == [("set_c", "i=0")]
    assert listed("**/i=0") == [("set_c", "i=0"), ("set_a", "i=0"), ("set_b", "i=0")]  # sets in path order
    assert listed("set_a/i=1", "set_a") == [("set_a", f"i={i}") for i in range(4)]  # union, no duplicates
    with pytest.raises(UsageError, match="no such folder: .*set_z$"):  # a typo is an error, not "no experiments"
        listed("set_z")
    assert listed("set_a/i=9") == []
    assert listing.find_sets(["set_a/i=1", "group/*"], cwd=tmp_path) == [c, a]


def test_no_set_below_cwd_gives_no_rows(tmp_path):
    result = listing.collect(cwd=tmp_path)
    assert result.rows == [] and result.problems == [] and result.patterns == [str(tmp_path)]


# ------------------------------------------------------------------------------------------ rows and filters
def test_rows_hold_the_tutorial_columns_in_registration_order(tmp_path):
    root = write_set(tmp_path, 3, messages=lambda i: {"time": 1.5} if i == 0 else {}, exp_name=lambda i: f"e{2 - i}")
    (root / "unlinked").mkdir()
    files.write_yaml(root / "unlinked" / "params.yml", {"_status": "registered"})
    result = listing.collect(cwd=tmp_path)
    assert [r["name"] for r in result.rows] == ["e2", "e1", "e0"]
    row = result.rows[0]
    assert {k: row[k] for k in listing.FIXED_COLUMNS} == {
        "root": str(root),
        "name": "e2",
        "created": "2020-03-09-16-42-25",
        "type": "AnExperiment",
        "purpose": "testing",
        "mac": "0x6c96cfdb71b9",
        "host": "node01",
        "user": "rob",
        "home": "/home/rob",
        "status": "registered",
        "commit": COMMIT,
    }
    assert row["params"] == {"a": 1.0, "b": None, "i": 0}
    assert row["messages"] == {"time": 1.5}
    assert result.param_names() == ["a", "b", "i"]
    assert result.message_names() == ["time"]
    assert [(s.root, s.names, s.notes, s.type) for s in result.sets] == [
        (str(root), ["e2", "e1", "e0"], [], "AnExperiment")
    ]


def test_type_filter_matches_class_or_set_type_by_glob_or_regex(tmp_path):
    write_set(tmp_path, 2, name="set_a", klass="ThereAndBack")
    write_set(tmp_path, 2, name="set_b", klass="ThereAndBackCycleGan")
    write_set(tmp_path, 1, name="set_s", klass=None, type_="train.sh")  # a script set: no class

    def types(pattern):
        return sorted({r["type"] for r in listing.collect(cwd=tmp_path, type=pattern).rows})

    assert types("ThereAndBack") == ["ThereAndBack"]
    assert types("ThereAndBack*") == ["ThereAndBack", "ThereAndBackCycleGan"]
    assert types("There.*Gan") == ["ThereAndBackCycleGan"]
    assert types("train.sh") == ["train.sh"]
    assert types("Nothing") == []


def test_status_filter_and_predicates(tmp_path):
    write_set(tmp_path, 6, status=lambda i: ["registered", "finished", "error"][i % 3])
    result = listing.collect(cwd=tmp_path, status=["finished", "error"])
    assert [r["name"] for r in result.rows] == ["i=1", "i=2", "i=4", "i=5"]
    result = listing.collect(cwd=tmp_path, params=["i>=2", "b==cat", "w_.*"])
    assert [r["name"] for r in result.rows] == ["i=3", "i=5"]
    assert [r["name"] for r in listing.collect(cwd=tmp_path, params=["1<i<=3"]).rows] == ["i=2", "i=3"]
    assert listing.collect(cwd=tmp_path, params=["missing==1"]).rows == []
    with pytest.raises(UsageError):
        listing.collect(cwd=tmp_path, status=["done"])
    with pytest.raises(UsageError):
        listing.collect(cwd=tmp_path, params=["a<<1"])


def test_running_with_stale_heartbeat_is_lost_even_from_the_index(tmp_path, settled):
    root = write_set(tmp_path, 2, status="running")
    for name in ("i=0", "i=1"):
        (root / name / ".xmen-heartbeat").touch()
    assert statuses(listing.collect(cwd=tmp_path)) == {"i=0": "running", "i=1": "running"}
    old = time.time() - 3600
    os.utime(root / "i=1" / ".xmen-heartbeat", (old, old))
    result = listing.collect(cwd=tmp_path)  # params.yml unchanged: rows come from the index
    assert statuses(result) == {"i=0": "running", "i=1": "lost"}
    assert [r["name"] for r in listing.collect(cwd=tmp_path, status=["lost"]).rows] == ["i=1"]


def test_unreadable_experiments_are_reported_and_the_rest_listed(tmp_path):
    root = write_set(tmp_path, 4)
    (root / "i=1" / "params.yml").write_text("a: [unclosed\n")
    (root / "i=2" / "params.yml").write_text("- a list\n")
    os.remove(root / "i=3" / "params.yml")
    broken = write_set(tmp_path, 1, name="set_broken")
    (broken / "experiment.yml").write_text("experiments: {\n")
    result = listing.collect(cwd=tmp_path)
    assert [r["name"] for r in result.rows] == ["i=0"]
    problems = dict(result.problems)
    assert set(problems) == {str(root / "i=1"), str(root / "i=2"), str(root / "i=3"), str(broken)}
    assert "invalid YAML" in problems[str(root / "i=1")]
    assert "mapping" in problems[str(root / "i=2")]
    assert "params.yml" in problems[str(root / "i=3")]
    assert "invalid YAML" in problems[str(broken)]
    assert all("\n" not in reason for reason in problems.values())


def test_odd_yaml_values_are_the_same_cold_and_warm(tmp_path, settled):
    root = write_set(tmp_path, 1)
    path = root / "i=0" / "params.yml"
    text = path.read_text() + "day: 2020-01-02\nnested: {1: [x, 2.5], k: .nan}\nbig: 123456789012345678901234567890\n"
    path.write_text(text)
    cold = listing.collect(cwd=tmp_path).rows[0]["params"]
    warm = listing.collect(cwd=tmp_path).rows[0]["params"]
    assert cold["day"] == "2020-01-02" and cold["big"] == 123456789012345678901234567890
    assert json.dumps(cold, sort_keys=True) == json.dumps(warm, sort_keys=True)


# ------------------------------------------------------------------------------------------ reading params.yml
ODD_DOCUMENTS = [
    "a: 1\nb: x  # comment\n",
    "# leading comment\n\na: 1\n",
    "\ufeffa: 1\nb: 2\n",
    "a:\n- 1\n- [2, 3]\nb:\n  c: {d: e}\n",
    "a: 'x\ny'\nb: 1\n",  # quoted value continued at column 0
    'a: "x\nb: y"\n',
    "a: {x: 1,\ny: 2}\n",
    "a: [1,\n2]\n",
    "a: b\nc\n",  # invalid: both parsers must reject it
    "a: |\n  line\n\n  more\nb: >\n  folded\n  text\n",
    "a: &x {k: 1}\nb: *x\n",  # alias across entries
    "a: 1\n<<: {a: 2, z: 3}\n",  # merge key: explicit keys win whatever the order
    "---\na: 1\n",
    "a: 1\n...\n",
    "%YAML 1.1\n---\na: 1\n",
    "? a\n: 1\n",
    "a: 1\na: 2\n",  # a key given twice: both parsers refuse it (damage)
    "-x: 1\n-y: [2]\n",
    "1: one\nnull: nothing\ntrue: yes\n",
    "a: 1\r\nb: 2\r\n",
    "a: 1\n\tb: 2\n",
    "",
    "# only a comment\n",
    "- a\n- b\n",
    "just text\n",
    "a: 2020-01-02\nb: 1e-3\nc: 1.0e-3\nd: 0x1f\ne: ~\nf: .inf\n",
]


@pytest.mark.parametrize("text", ODD_DOCUMENTS)
def test_entry_by_entry_parsing_equals_the_whole_document(tmp_path, text):
    path = tmp_path / "params.yml"
    path.write_bytes(text.encode("utf-8"))
    try:
        expected: Any = files.read_yaml(path)
    except Exception as exc:  # noqa: BLE001 - compare failures too
        expected = type(exc)
    memo: dict[str, Any] = {}
    for _ in range(2):  # the second time from the memo
        try:
            got: Any = listing._read_params(str(path), memo)[1]
        except Exception as exc:  # noqa: BLE001
            got = type(exc)
        assert got == expected and (not isinstance(got, dict) or list(got) == list(expected))


def test_entry_by_entry_parsing_of_generated_params(tmp_path):
    rng = random.Random(7)
    atoms = [0, -3, 1.5, 1e-3, "1e-3", True, None, "", "yes", "a: b", "x #y", "multi\nline\n", "'q'", '"dq"',
             "2020-01-02", "~", "- dash", "#hash", "tab\tin", "é", [], {}, [1, [2]], {"k": {"n": [None]}}]
    memo: dict[str, Any] = {}
    for i in range(200):
        data = {f"k{j}" if j % 3 else f"_k{j}": rng.choice(atoms) for j in range(rng.randint(1, 8))}
        comments = {k: rng.choice(["help", "with: colon", "# hash"]) for k in data if rng.random() < 0.5}
        path = tmp_path / f"p{i}.yml"
        path.write_text(files.dump_params(data, comments))
        got = listing._read_params(str(path), memo)[1]
        assert got == files.read_yaml(path) == data


# ------------------------------------------------------------------------------------------ the index
def test_second_listing_reads_no_unchanged_file(tmp_path, settled, reads):
    root = write_set(tmp_path, 5)
    first = listing.collect(cwd=tmp_path)
    assert len(reads) == 5 and index_of(root).is_file()
    reads.clear()
    written = index_of(root).stat().st_mtime_ns, index_of(root).stat().st_ino
    second = listing.collect(cwd=tmp_path)
    assert reads == []
    assert second.rows == first.rows
    assert (index_of(root).stat().st_mtime_ns, index_of(root).stat().st_ino) == written  # not rewritten


def test_a_status_change_shows_at_once_and_only_that_file_is_read(tmp_path, settled, reads):
    root = write_set(tmp_path, 5)
    listing.collect(cwd=tmp_path)
    reads.clear()
    set_status(root, "i=3", "finished")
    assert statuses(listing.collect(cwd=tmp_path))["i=3"] == "finished"
    assert reads == [f"{root}/i=3/params.yml"]


def test_same_size_same_mtime_in_place_edit_is_seen(tmp_path, settled):
    root = write_set(tmp_path, 2, status="running")
    listing.collect(cwd=tmp_path)
    path = root / "i=0" / "params.yml"
    before = path.stat()
    text = path.read_text()
    assert "_status: running" in text
    with open(path, "r+") as handle:  # same inode, same size ...
        handle.write(text.replace("_status: running", "_status: stopped"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and the old mtime: only ctime differs
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert statuses(listing.collect(cwd=tmp_path))["i=0"] == "stopped"


def test_racy_files_are_not_trusted_from_the_index(tmp_path, reads):
    write_set(tmp_path, 3)  # just written: within RACY_NS of now
    listing.collect(cwd=tmp_path)
    listing.collect(cwd=tmp_path)
    assert len(reads) == 6


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "{not json",
        '{"format": "xmen-list-index", "version": 1, "set": null, "contexts": [], "exp',  # truncated
        "[]",
        '{"format": "other", "version": 1}',
        '{"format": "xmen-list-index", "version": 999, "contexts": [], "experiments": {}}',
        '{"format": "xmen-list-index", "version": 1, "set": [1, 2, 3], "contexts": 5, "experiments": []}',
    ],
)
def test_corrupt_index_is_ignored_and_rebuilt(tmp_path, settled, garbage):
    root = write_set(tmp_path, 3, status=lambda i: ["registered", "finished", "error"][i])
    expected = listing.collect(cwd=tmp_path).rows
    index_of(root).write_text(garbage)
    assert listing.collect(cwd=tmp_path).rows == expected
    assert json.loads(index_of(root).read_text())["format"] == "xmen-list-index"


def test_index_entries_of_the_wrong_shape_are_read_again(tmp_path, settled, reads):
    root = write_set(tmp_path, 3)
    expected = listing.collect(cwd=tmp_path).rows
    data = json.loads(index_of(root).read_text())
    data["experiments"]["i=0"][4] = 99  # no such context
    data["experiments"]["i=1"][6] = "not a dict"
    data["experiments"]["i=2"] = [1, 2]
    index_of(root).write_text(json.dumps(data))
    reads.clear()
    assert listing.collect(cwd=tmp_path).rows == expected
    assert sorted(reads) == [f"{root}/i={i}/params.yml" for i in range(3)]


def test_deleted_index_and_stale_index_from_a_concurrent_lister(tmp_path, settled):
    root = write_set(tmp_path, 3)
    listing.collect(cwd=tmp_path)
    old_index = index_of(root).read_bytes()
    set_status(root, "i=1", "finished")
    assert statuses(listing.collect(cwd=tmp_path))["i=1"] == "finished"
    index_of(root).write_bytes(old_index)  # a slower concurrent `xmen list` wrote last
    assert statuses(listing.collect(cwd=tmp_path))["i=1"] == "finished"
    index_of(root).unlink()
    assert statuses(listing.collect(cwd=tmp_path)) == {"i=0": "registered", "i=1": "finished", "i=2": "registered"}
    assert index_of(root).is_file()


def delta_of(root: Path) -> Path:
    return Path(index.cache_folder(root)) / "index-delta.json"


def test_changes_go_to_a_small_delta_until_it_is_folded_into_the_index(tmp_path, settled, reads, monkeypatch):
    monkeypatch.setattr(index, "DELTA_MIN", 3)
    root = write_set(tmp_path, 5)
    listing.collect(cwd=tmp_path)
    base = index_of(root).stat()
    assert not delta_of(root).exists()
    set_status(root, "i=1", "finished")
    set_status(root, "i=2", "error")
    reads.clear()
    assert statuses(listing.collect(cwd=tmp_path))["i=1"] == "finished"
    assert len(reads) == 2
    assert (index_of(root).stat().st_ino, index_of(root).stat().st_mtime_ns) == (base.st_ino, base.st_mtime_ns)
    assert sorted(json.loads(delta_of(root).read_text())["experiments"]) == ["i=1", "i=2"]
    reads.clear()
    assert statuses(listing.collect(cwd=tmp_path)) == {
        "i=0": "registered", "i=1": "finished", "i=2": "error", "i=3": "registered", "i=4": "registered",
    }
    assert reads == []  # the delta serves the changed ones
    set_status(root, "i=3", "stopped")
    set_status(root, "i=4", "stopped")
    reads.clear()
    assert statuses(listing.collect(cwd=tmp_path))["i=4"] == "stopped"
    assert not delta_of(root).exists()  # four changes > DELTA_MIN: folded into the base
    assert json.loads(index_of(root).read_text())["experiments"]["i=4"][5] == "stopped"
    reads.clear()
    listing.collect(cwd=tmp_path)
    assert reads == []


@pytest.mark.parametrize("garbage", ["", "{", "[]", '{"format": "xmen-list-index", "version": 1, "contexts": [], '
                                     '"experiments": {"i=0": [1, 2, 3, 4, -1, "finished", {}, {}, null]}}'])
def test_corrupt_delta_is_ignored(tmp_path, settled, garbage):
    root = write_set(tmp_path, 2)
    set_status(root, "i=0", "finished")
    listing.collect(cwd=tmp_path)
    delta_of(root).parent.mkdir(exist_ok=True)
    delta_of(root).write_text(garbage)
    assert statuses(listing.collect(cwd=tmp_path)) == {"i=0": "finished", "i=1": "registered"}


def test_concurrent_listings_while_statuses_change(tmp_path):
    import subprocess
    import sys

    root = write_set(tmp_path, 300)
    code = (
        "import sys; from xmen import listing; from xmen.look import index; index.RACY_NS = 0\n"
        "for _ in range(5): listing.collect(cwd=sys.argv[1])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env) for _ in range(4)]
    for i in range(0, 300, 7):
        set_status(root, f"i={i}", "finished")
    assert all(p.wait(timeout=120) == 0 for p in procs)
    expected = {f"i={i}": "finished" if i % 7 == 0 else "registered" for i in range(300)}
    assert statuses(listing.collect(cwd=tmp_path)) == expected
    json.loads(index_of(root).read_text())  # whole, whoever wrote last
    assert not list(index_of(root).parent.glob("*.tmp"))


def test_unlinked_experiment_disappears_and_leaves_the_index(tmp_path, settled):
    root = write_set(tmp_path, 3)
    listing.collect(cwd=tmp_path)
    unlink(root, "i=1")
    assert [r["name"] for r in listing.collect(cwd=tmp_path).rows] == ["i=0", "i=2"]
    assert sorted(json.loads(index_of(root).read_text())["experiments"]) == ["i=0", "i=2"]


def test_listing_a_subset_keeps_the_other_index_entries(tmp_path, settled, reads):
    root = write_set(tmp_path, 3)
    listing.collect(cwd=tmp_path)
    set_status(root, "i=0", "finished")
    listing.collect(["set_a/i=0"], cwd=tmp_path)
    reads.clear()
    listing.collect(cwd=tmp_path)
    assert reads == []


def test_lists_when_the_index_cannot_be_written(tmp_path, settled, monkeypatch):
    write_set(tmp_path, 2)

    def refuse(path, text, mode=0o644):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(files, "write_text_atomic", refuse)
    assert statuses(listing.collect(cwd=tmp_path)) == {"i=0": "registered", "i=1": "registered"}


def test_lists_a_read_only_set(tmp_path, settled):
    root = write_set(tmp_path, 2)
    os.chmod(root, 0o555)
    try:
        assert statuses(listing.collect(cwd=tmp_path)) == {"i=0": "registered", "i=1": "registered"}
    finally:
        os.chmod(root, 0o755)


def test_scale_rows_equal_a_direct_read(tmp_path, settled):
    n = 2000
    choices = ["registered", "running", "finished", "error", "stopped", "timeout"]
    root = write_set(tmp_path, n, status=lambda i: choices[i % len(choices)], messages=lambda i: {"step": i})
    for i in range(0, n, 6 * 7):  # a few running ones with a fresh heartbeat
        (root / f"i={i + 1}" / ".xmen-heartbeat").touch()
    from xmen.store.heartbeat import effective_status

    def direct() -> list[tuple[str, str, dict[str, Any]]]:
        expected = []
        for name in files.read_yaml(root / "experiment.yml")["experiments"]:
            params = files.read_yaml(root / name / "params.yml")
            user = {k: v for k, v in params.items() if not k.startswith("_")}
            expected.append((name, effective_status(params, root / name), user, params["_messages"]))
        return expected

    def listed() -> list[tuple[str, str, dict[str, Any]]]:
        return [(r["name"], r["status"], r["params"], r["messages"]) for r in listing.collect(cwd=tmp_path).rows]

    assert listed() == direct()  # cold
    for i in random.Random(0).sample(range(n), 50):
        set_status(root, f"i={i}", "finished")
    assert listed() == direct()  # warm, some changed
    assert listed() == direct()  # warm


# ------------------------------------------------------------------------------------------ columns and output
def test_table_columns_default_flags_and_verbose(tmp_path):
    write_set(tmp_path, 2, params=lambda i: {"w_a": i, "w_b": 2 * i, "lr": 0.1}, messages=lambda i: {"loss": 0.5})
    result = listing.collect(cwd=tmp_path)

    def labels(**options):
        return listing.table_columns(result, **options)[0]

    assert labels() == ["root", "name", "status"]
    assert labels(status=True, messages=".*") == ["root", "name", "status", "loss"]
    assert labels(messages=".*") == ["root", "name", "loss"]
    assert labels(created=True, git=True, meta=True, purpose=True) == [
        "root", "name", "created", "purpose", "mac", "host", "user", "home", "commit",
    ]
    assert labels(params=["w_.*"]) == ["root", "name", "w_a", "w_b"]
    assert labels(params=["lr<1"]) == ["root", "name", "lr"]
    assert labels(verbose=True) == list(listing.FIXED_COLUMNS) + ["w_a", "w_b", "lr", "loss"]
    assert labels(verbose=True, params=["lr"], messages="nothing") == list(listing.FIXED_COLUMNS) + ["lr"]
    with pytest.raises(UsageError):
        labels(messages="*")
    labels_, columns = listing.table_columns(result, params=["w_b"])
    assert columns == [["set_a", "set_a"], ["i=0", "i=1"], [0, 2]]


def test_names_clashing_with_columns_are_suffixed(tmp_path):
    write_set(tmp_path, 1, params=lambda i: {"status": "param"}, messages=lambda i: {"status": "m", "name": "n"})
    labels, columns = listing.table_columns(listing.collect(cwd=tmp_path), verbose=True)
    assert labels[-3:] == ["status [param]", "status [message]", "name [message]"]
    assert columns[labels.index("status")] == ["registered"]


@pytest.mark.parametrize(
    "roots, prefix",
    [
        (["/x/experiments/set_a"], "/x/experiments"),
        (["/x/experiments/set_a", "/x/experiments/set_b"], "/x/experiments"),
        (["/x/arc/a/test_2", "/x/touchstone/b/c"], "/x"),
        (["/x/set_a", "/x/set_a/sub/set_n"], "/x"),
        (["/set_a"], "/"),
        ([], ""),
    ],
)
def test_common_root(roots, prefix):
    assert listing.common_root(roots) == prefix


def _string_cases():
    rng = random.Random(1)
    alphabet = "abc XYZ_=.-/éü0123"
    for n in (1, 9, 10, 11, 101):
        labels = ["root", "name", "status", "p"]
        columns = [
            [rng.choice(["set_a", "a/b/set_long_name"]) for _ in range(n)],
            ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))).strip() for _ in range(n)],
            [rng.choice(["registered", "finished", "lost", None, ""]) for _ in range(n)],
            [rng.choice(["x", "", "a  b"]) for _ in range(n)],  # header wider than every value
        ]
        yield labels, columns


@pytest.mark.parametrize("labels, columns", list(_string_cases()))
def test_plain_tables_are_exactly_what_pandas_prints(labels, columns):
    fast = listing._plain_table(labels, columns)
    assert fast is not None
    assert fast == listing._frame(labels, columns).to_string()
    assert listing.render_table(labels, columns) == fast


@pytest.mark.parametrize("odd", [" lead", "trail ", "tab\there", "new\nline", "\x1b[1m"])
def test_text_pandas_would_align_or_escape_differently_goes_through_pandas(odd):
    labels, columns = ["root", "name"], [["set_a", "set_a"], ["plain", odd]]
    assert listing._plain_table(labels, columns) is None
    shown = [[plain(v) for v in column] for column in columns]  # a terminal escape is never printed
    assert listing.render_table(labels, columns) == listing._frame(labels, shown).to_string()


def test_other_tables_go_through_pandas():
    labels = ["root", "name", "time"]
    columns = [["set_a", "set_a"], ["x" * 30, "y"], [1.583772e9, listing._MISSING]]
    text = listing.render_table(labels, columns)
    assert "1.583772e+09" in text and "NaN" in text
    truncated = listing.render_table(labels[:2], columns[:2], max_width=10)
    assert "xxxxxx..." in truncated and "x" * 10 not in truncated
    many = [["s"] * 50, [f"n{i}" for i in range(50)]]
    short = listing.render_table(labels[:2], many, max_rows=6)
    assert "n0" in short and "n49" in short and "n25" not in short and ".." in short


@pytest.mark.parametrize("max_width", [4, 5, 6, 7, 8, 30])
def test_max_width_matches_pandas_at_the_boundary(max_width):
    labels, columns = ["root", "name"], [["set_a", "s"], ["abcdef", "abcdefg"]]
    expected = listing._frame(labels, columns).to_string(max_colwidth=max_width)
    assert listing.render_table(labels, columns, max_width=max_width) == expected


def test_frame_keeps_none_apart_from_missing():
    frame = listing._frame(["a", "b", "c"], [[1.0, listing._MISSING], [None, "cat"], [1, 2]])
    assert frame["a"].dtype == "float64" and frame["c"].dtype == "int64"
    assert frame["b"].dtype == object and frame["b"][0] is None


def test_render_csv_reads_back_with_pandas(tmp_path):
    import pandas as pd

    labels = ["root", "name", "b", "loss"]
    columns = [["set_a"] * 3, ["a,1", 'q"uote', "x\ny"], [None, "cat", listing._MISSING], [0.5, listing._MISSING, 2]]
    frame = pd.read_csv(__import__("io").StringIO(listing.render_csv(labels, columns)), index_col=0)
    assert list(frame.columns) == labels
    assert list(frame["name"]) == ["a,1", 'q"uote', "x\ny"]
    assert frame["b"].isna().tolist() == [True, False, True]
    assert frame["loss"].tolist()[0] == 0.5


def test_render_notebook_like_the_tutorial(tmp_path):
    root = write_set(
        tmp_path,
        4,
        exp_name=lambda i: ["a=1.0__b=None", "a=1.0__b=cat", "a=2.0__b=None", "a=2.0__b=cat"][i],
        notes=("A test of the xmen experiment suite", "Another random thought worth mentioning"),
    )
    files.update_yaml(root / "experiment.yml", lambda d: d.update(purpose=""))
    text = listing.render_notebook(listing.collect(cwd=tmp_path))
    assert text == (
        f" 0 {root}\n"
        "     |- a=1.0__b=None\n"
        "     |- a=1.0__b=cat\n"
        "     |- a=2.0__b=None\n"
        "     |- a=2.0__b=cat\n"
        "     Purpose: \n"
        "     Created: 2020-03-09-16-42-13\n"
        "     Type: AnExperiment\n"
        "     Notes: \n"
        "       A test of the xmen experiment suite\n"
        "       Another random thought worth mentioning"
    )


def test_to_dataframe(tmp_path, settled):
    root = write_set(tmp_path, 4, status=lambda i: "finished" if i < 2 else "error", messages=lambda i: {"t": i})
    frame = listing.to_dataframe(cwd=tmp_path)
    assert list(frame.columns) == list(listing.FIXED_COLUMNS) + ["a", "b", "i", "t"]
    assert frame["root"].tolist() == [str(root)] * 4
    assert frame["b"].tolist() == [None, "cat", None, "cat"]
    assert frame["a"].dtype == "float64"
    picked = listing.to_dataframe(str(root), params=["i>0"], status=["finished"])
    assert picked["name"].tolist() == ["i=1"]
    assert list(picked.columns) == list(listing.FIXED_COLUMNS) + ["i", "t"]
    relative = listing.to_dataframe(["set_a/i=3"], cwd=tmp_path, relative_roots=True, messages="nothing")
    assert relative[["root", "name"]].values.tolist() == [["set_a", "i=3"]]
    assert "t" not in relative.columns


def test_import_listing_does_not_import_pandas():
    import subprocess
    import sys

    code = "import sys, xmen.look.listing, xmen.cli.list; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_invalid_linked_names_are_reported(tmp_path):
    root = write_set(tmp_path, 2)

    def link_bad(data: dict[str, Any]) -> None:
        data["experiments"]["../escape"] = {}

    files.update_yaml(root / "experiment.yml", link_bad)
    result = listing.collect(cwd=tmp_path)
    assert [r["name"] for r in result.rows] == ["i=0", "i=1"]
    assert result.problems == [(str(root), "experiment.yml links an invalid experiment name '../escape'")]


def test_dates_in_experiment_yml_do_not_break_the_index(tmp_path, settled):
    root = write_set(tmp_path, 1)
    files.update_yaml(root / "experiment.yml", lambda d: d.update(created=datetime.date(2020, 1, 2)))
    listing.collect(cwd=tmp_path)
    result = listing.collect(cwd=tmp_path)
    assert result.sets[0].created == "2020-01-02"
