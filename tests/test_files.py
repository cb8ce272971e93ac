"""xmen.files: atomic writes under kill -9 and full disks, and locked read-modify-writes under contention."""
from __future__ import annotations

import errno
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from xmen.store import files
from xmen.errors import StateFileError


def _version(i: int) -> dict:
    """A ~100 KB document that identifies itself: any mix of two versions would not equal either."""
    return {"version": i, "blob": f"{i:09d}-" * 10_000, "lines": [f"{i}-{j}" for j in range(100)], "end": i}


def _writer(path: str, start: int, use_update: bool, ready: int) -> None:
    """Child process: write successive versions forever (until killed); say so on ``ready`` after the first."""
    i = start
    while True:
        i += 1
        if use_update:
            files.update_yaml(path, lambda data, i=i: _version(i), {"version": "which version"})
        else:
            files.write_yaml(path, _version(i), {"version": "which version"})
        if i == start + 1:
            os.write(ready, b"1")


def test_kill_9_during_writes_never_corrupts(tmp_path: Path) -> None:
    """SIGKILL a process looping over 100 KB atomic writes at random moments: the file is always one whole version."""
    path = tmp_path / "params.yml"
    files.write_yaml(path, _version(0))
    rng = random.Random(1234)
    mid_write = 0
    trials = 200
    for trial in range(trials):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            try:
                os.close(read_end)
                _writer(str(path), trial * 100_000, trial % 2 == 1, write_end)
            finally:
                os._exit(0)
        os.close(write_end)
        assert os.read(read_end, 1) == b"1"  # the writer is warm: its writes now take a few ms each
        os.close(read_end)
        time.sleep(rng.uniform(0.0, 0.008))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        data = files.read_yaml(path)  # raises if truncated, empty or unparseable
        assert data == _version(data["version"])  # one whole version, not a mix
        assert trial * 100_000 < data["version"] < (trial + 1) * 100_000  # and one this writer wrote
        leftovers = _leftovers(tmp_path)  # a temp file left behind: that kill landed inside a write
        mid_write += bool(leftovers)
        for name in leftovers:
            os.unlink(tmp_path / name)
    # Some kills did land in the middle of a write (typically a third of them; fewer on a loaded machine).
    assert mid_write >= 3


def _contender(path: str, key: str, increments: int) -> None:
    files.update_yaml(path, lambda data: data.__setitem__(key, os.getpid()))
    for _ in range(increments):
        files.update_yaml(path, lambda data: data.__setitem__("counter", data.get("counter", 0) + 1))


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "params.yml"
    files.write_yaml(path, {"counter": 0, "_messages": {}}, {"counter": "how many increments"})
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_contender, args=(str(path), f"key_{i}", 2 if i % 2 else 0)) for i in range(50)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    data = files.read_yaml(path)
    assert {f"key_{i}" for i in range(50)} <= set(data)
    assert data["counter"] == 50  # 25 processes x 2 increments
    assert files.read_comments(path)["counter"] == "how many increments"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("broken", ["fsync", "replace"])
def test_failed_write_keeps_original_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    path = tmp_path / "params.yml"
    files.write_yaml(path, {"a": 1}, {"a": "help"})
    before = path.read_bytes()

    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, broken, no_space)
    if broken == "replace":  # update_yaml swaps the file in with renameat2 where it can: break that step too
        monkeypatch.setattr(files, "_exchange", no_space)
    with pytest.raises(OSError) as info:
        files.write_yaml(path, {"a": 2})
    assert info.value.errno == errno.ENOSPC
    with pytest.raises(OSError):
        files.update_yaml(path, lambda data: data.update(a=3))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    files.update_yaml(path, lambda data: data.update(a=4))  # the lock was released
    assert files.read_yaml(path) == {"a": 4}
    assert files.read_comments(path) == {"a": "help"}


def test_failed_write_in_the_middle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "params.yml"
    files.write_yaml(path, {"a": 1})
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda *a, **k: Full(real_fdopen(*a, **k)))
    with pytest.raises(OSError):
        files.write_yaml(path, {"a": "x" * 10_000})
    monkeypatch.undo()
    assert files.read_yaml(path) == {"a": 1}
    assert _leftovers(tmp_path) == []


def test_read_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="no such file"):
        files.read_yaml(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [1, 2\nb: {")
    with pytest.raises(StateFileError) as info:
        files.read_yaml(bad)
    assert "\n" not in str(info.value)
    bad.write_text("- a list\n")
    with pytest.raises(StateFileError, match="mapping"):
        files.read_yaml(bad)


def test_comments_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "defaults.yml"
    data = {
        "_version": {"module": "/x.py", "git": {"commit": "abc"}},
        "a": "h",
        "s": 'a # b = c: "d"  # e',
        "l": [1, 2],
        "n": None,
    }
    comments = {
        "_version": "Version",
        "a": "(str) A parameter (default='h')",
        "s": "(str) tricky",
        "l": "(List[int]) L",
    }
    files.write_yaml(path, data, comments)
    text = path.read_text()
    assert "a: h  # (str) A parameter (default='h')\n" in text
    assert files.read_yaml(path) == data
    assert list(files.read_yaml(path)) == list(data)
    assert files.read_comments(path) == comments
    # a long text is folded over several lines by the dumper; its comment goes above it and survives updates
    long_text = "word " * 60
    files.update_yaml(path, lambda d: d.update(_purpose=long_text), {"_purpose": "Why"})
    files.update_yaml(path, lambda d: d.update(a="i"))
    assert files.read_yaml(path)["_purpose"] == long_text
    assert files.read_comments(path) == {**comments, "_purpose": "Why"}


@pytest.mark.parametrize("text, expected", [
    ("a: 1\nb: {x: 1, x: 2}\n", "F: duplicate key 'x' (line 2)"),
    ("a:\n- {k: 1}\n- {k: 1, k: 1}\n", "F: duplicate key 'k' (line 3)"),
    ("<<: [{a: 1}, {a: 2}]\nb: 1\nb: 2\n", "F: duplicate key 'b' (line 3)"),
    ("a: !!set {x, x}\n", "F: duplicate key 'x' (line 1)"),
    # a merge (<<) brings keys an explicit key may override, also through aliases merged again: no duplicates
    ("a: 1\n<<: {a: 2, z: 3}\n", {"a": 1, "z": 3}),
    ("x: {m: &m {<<: {k: 1}, k: 2}}\ny: {<<: *m, k: 5}\n", {"x": {"m": {"k": 2}}, "y": {"k": 5}}),
    ("a: &x {k: 1}\nb: *x\nc: *x\n", {"a": {"k": 1}, "b": {"k": 1}, "c": {"k": 1}}),
])
def test_every_state_file_read_refuses_a_key_given_twice(tmp_path, text, expected):
    """The one YAML reader refuses a key given twice at any depth (the second would silently win), in one line
    naming the key and its line; keys a merge brings in are not given twice."""
    if isinstance(expected, str):
        with pytest.raises(StateFileError) as caught:
            files.load_yaml_text(text, "F")
        assert str(caught.value) == expected
        path = tmp_path / "state.yml"
        path.write_text(text)
        assert files.read_mapping(path) is None  # a reader that skips what it cannot read skips it
    else:
        assert files.load_yaml_text(text, "F") == expected
