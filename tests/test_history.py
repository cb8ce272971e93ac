"""Metric history (xmen.history, Experiment.message): every value kept in order, cheap appends, concurrent writers,
kill -9 mid-writing, torn lines, and the long table of to_dataframe(history=True)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xmen.store import files, history
from xmen.look import listing
from xmen.define.experiment import Experiment

from cli_helpers import wait_until

REPO = Path(__file__).resolve().parent.parent


class Trainer(Experiment):
    def __init__(self):
        """Sends a loss per step."""
        super().__init__()
        self.steps: int = 3  # @p how many steps
        self.lr: float = 0.1  # @p learning rate

    def run(self):
        for i in range(self.steps):
            self.message({"loss": 1.0 / (i + 1), "time": 1000.0 + i}, step=i)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def test_every_message_is_kept_in_order_with_time_and_step(tmp_path: Path) -> None:
    exp = Trainer()
    exp.update({"steps": 5})
    folder = exp.register(tmp_path, "t")
    before = time.time()
    assert Trainer().execute(folder / "params.yml") == "finished"
    records = history.read(folder)
    assert [r["step"] for r in records] == [0, 1, 2, 3, 4]
    assert [r["values"]["loss"] for r in records] == [1.0, 0.5, 1.0 / 3, 0.25, 0.2]
    # A message named 'time' is a value like any other: the record's own time is apart from it.
    assert [r["values"]["time"] for r in records] == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
    assert all(before <= r["time"] <= time.time() for r in records)
    assert files.read_yaml(folder / "params.yml")["_messages"] == {"loss": 0.2, "time": 1004.0}


def test_message_is_cheap_and_params_keeps_the_latest(tmp_path: Path) -> None:
    """Rewriting params.yml per call (the old message()) took ~14 ms a call: 2,000 calls took 28 s."""
    exp = Trainer()
    folder = exp.register(tmp_path, "t")
    start = time.perf_counter()
    for i in range(2000):
        exp.message({"loss": float(i)}, step=i)
    assert time.perf_counter() - start < 1.0
    wait_until(lambda: len(history.read(folder)) >= 2000, 5, "the background flush of the 2,000 records")
    assert [r["step"] for r in history.read(folder)] == list(range(2000))
    wait_until(lambda: files.read_yaml(folder / "params.yml")["_messages"] == {"loss": 1999.0}, 5,
               "the last message in params.yml")
    assert files.read_yaml(folder / "params.yml")["_messages"] == {"loss": 1999.0}


def test_a_bad_step_is_a_usage_error(tmp_path: Path) -> None:
    exp = Trainer()
    exp.register(tmp_path, "t")
    from xmen.errors import UsageError

    with pytest.raises(UsageError, match="step must be an integer"):
        exp.message({"loss": 1.0}, step="three")  # type: ignore[arg-type]


WRITER = textwrap.dedent(
    """
    import sys
    from xmen import history
    folder, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if tag.startswith('one-shot'):
        for i in range(n):
            history.append(folder, {'writer': tag, 'i': i}, step=i)
    else:
        writer = history.HistoryWriter(folder, flush_seconds=0.01)
        for i in range(n):
            writer.append({'writer': tag, 'i': i, 'pad': 'x' * (i % 300)}, step=i)
        writer.close()
    """
)


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    counts = {"buffered-1": 5000, "buffered-2": 5000, "buffered-3": 5000, "one-shot-1": 300, "one-shot-2": 300}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path), tag, str(n)], env=_env())
        for tag, n in counts.items()
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    lines = (tmp_path / history.HISTORY_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == sum(counts.values())  # every line whole
    records = history.read(tmp_path)
    for tag, n in counts.items():
        mine = [r for r in records if r["values"]["writer"] == tag]
        assert [r["values"]["i"] for r in mine] == list(range(n)) and [r["step"] for r in mine] == list(range(n))


def test_a_torn_line_is_skipped_and_never_swallows_the_next_record(tmp_path: Path) -> None:
    history.append(tmp_path, {"loss": 1.0}, step=0)
    with open(tmp_path / history.HISTORY_FILE, "ab") as handle:
        handle.write(b'{"time":1.0,"step":1,"values":{"lo')  # a writer killed mid-write
    assert [r["step"] for r in history.read(tmp_path)] == [0]
    history.append(tmp_path, {"loss": 3.0}, step=2)
    writer = history.HistoryWriter(tmp_path)
    writer.append({"loss": 4.0}, step=3)
    writer.close()
    assert [(r["step"], r["values"]["loss"]) for r in history.read(tmp_path)] == [(0, 1.0), (2, 3.0), (3, 4.0)]
    (tmp_path / history.HISTORY_FILE).write_bytes(b'{"time":1.0,"step":0,"values":{}}\n[1,2]\nnot json\n{"time"')
    assert history.read(tmp_path) == [{"time": 1.0, "step": 0, "values": {}}]
    assert history.read(tmp_path / "nothing-here") == []


LOOP = textwrap.dedent(
    """
    import sys, time
    from xmen.experiment import Experiment

    class Loop(Experiment):
        def __init__(self):
            \"\"\"Messages in a loop until killed.\"\"\"
            super().__init__()

        def run(self):
            i = 0
            while True:
                self.message({'loss': 1.0 / (i + 1), 'note': 'x' * (i % 50)}, step=i)
                if i % 200 == 0:
                    print(i, flush=True)
                i += 1
                time.sleep(0.0002)

    if __name__ == '__main__':
        exp = Loop()
        exp.main(exp.parse_args())
    """
)


def test_kill_9_mid_writing_loses_only_the_last_fraction_of_a_second(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text(LOOP)
    register = [sys.executable, str(script), "--register", str(tmp_path), "loop"]
    assert subprocess.run(register, env=_env()).returncode == 0
    folder = tmp_path / "loop"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--execute", str(folder / "params.yml")],
        env=_env(), stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    sent: list[tuple[float, int]] = []  # (when the parent saw it, step sent before that)
    while not sent or sent[-1][1] < 3000:
        line = proc.stdout.readline()
        assert line, "the experiment ended early"
        sent.append((time.monotonic(), int(line)))
    time.sleep(0.3)  # it goes on writing: the kill lands mid-writing
    killed_at = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    records = history.read(folder)
    steps = [r["step"] for r in records]
    assert steps == list(range(len(steps)))  # nothing corrupt, nothing out of order, no gap
    # Everything sent more than a second before the kill (flushes are 0.2 s apart; margin for a loaded machine).
    assert steps[-1] >= max(step for seen, step in sent if seen <= killed_at - 1.0)
    params = files.read_yaml(folder / "params.yml")  # still valid YAML, with some latest values
    assert params["_status"] == "running" and "loss" in params["_messages"]


def test_history_dataframe_is_the_long_table(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    root = tmp_path / "set"
    root.mkdir()
    linked = {}
    for name, lr in (("lr=0.1", 0.1), ("lr=0.01", 0.01)):
        exp = Trainer()
        exp.update({"lr": lr})
        folder = exp.register(root, name)
        assert Trainer().execute(folder / "params.yml") == "finished"
        linked[name] = {}
    files.write_yaml(root / "experiment.yml", {"root": str(root), "type": "Trainer", "experiments": linked})
    long = listing.to_dataframe([str(root)], history=True)
    assert list(long.columns) == ["root", "experiment", "step", "time", "key", "value"]
    assert len(long) == 2 * 3 * 2 and set(long["root"]) == {str(root)}
    loss = long[(long.key == "loss") & (long.experiment == "lr=0.1")]
    assert list(loss.step) == [0, 1, 2] and list(loss.value) == [1.0, 0.5, 1.0 / 3]
    only_loss = listing.to_dataframe([str(root)], history=True, messages="loss", params=["lr<0.05"])
    assert set(only_loss.key) == {"loss"} and set(only_loss.experiment) == {"lr=0.01"} and len(only_loss) == 3


def test_messages_go_to_the_folder_they_were_sent_in(tmp_path: Path) -> None:
    exp = Trainer()
    first = exp.register(tmp_path, "first")
    exp.message({"loss": 1.0}, step=0)
    second = exp.register(tmp_path, "second")
    exp.message({"loss": 2.0}, step=0)
    exp._flush_messages()
    wait_until(lambda: files.read_yaml(first / "params.yml")["_messages"] == {"loss": 1.0}, 5,
               "the first folder's message in its params.yml")
    assert files.read_yaml(first / "params.yml")["_messages"] == {"loss": 1.0}
    assert files.read_yaml(second / "params.yml")["_messages"] == {"loss": 2.0}
    assert [r["values"] for r in history.read(first)] == [{"loss": 1.0}]
    assert [r["values"] for r in history.read(second)] == [{"loss": 2.0}]
