"""xmen.monitor without torch: counters, hooks, rotating checkpoints, messages, limits, time left, resuming."""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

from xmen.store import files
from xmen.store import status as st
from xmen.define.experiment import Experiment
from xmen.define.monitor import Monitor, Spec, TimeLimit, checkpoint_files, local_runtime, slurm_end_time

from cli_helpers import wait_until


class Model:
    """A stand-in for a network: state_dict / load_state_dict, no torch."""

    def __init__(self) -> None:
        self.w = 0

    def state_dict(self) -> dict:
        return {"w": self.w}

    def load_state_dict(self, state: dict) -> None:
        self.w = state["w"]


@pytest.fixture(autouse=True)
def no_limits(monkeypatch):
    for key in ("SLURM_JOB_END_TIME", "SLURM_JOB_ID", "SLURM_JOBID", "XMEN_RUNTIME", "runtime"):
        monkeypatch.delenv(key, raising=False)


def test_spec_parsing() -> None:
    spec = Spec("^model$@5s")
    assert (spec.regex, spec.modulo, spec.trigger) == ("^model$", 5, "step")
    assert (Spec("opt@1e").trigger, Spec("@2er").trigger, Spec("x@3epoch").trigger) == ("epoch", "era", "epoch")
    assert Spec("loss").trigger is None and str(Spec("a|b@2s")) == "a|b@2s"
    for bad in ("x@s", "x@0s", "x@3q"):
        with pytest.raises(ValueError, match="REGEX@N<trigger>"):
            Spec(bad)


def test_nested_loops_count_steps_and_epochs(capsys) -> None:
    m = Monitor(log="^loss$@2e", limit=None)
    loss = 0.0
    for _ in m(range(4)):
        for i in m(range(5)):
            loss = i / 2
    assert (m.step, m.epoch) == (20, 4)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].endswith("step=10 epoch=2]: loss = 2.0") and "step=20 epoch=4" in out[1]
    single = Monitor()
    for _ in single(range(7)):
        pass
    assert single.counters() == {"step": 7}


def test_checkpoints_rotate_and_only_ours_are_deleted(tmp_path: Path) -> None:
    theirs = tmp_path / "checkpoints" / "model" / "notes.txt"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("mine")
    m = Monitor(directory=tmp_path, ckpt=["^model$@2s", "^opt$@1e"], ckpt_keep=[3, None])
    model, opt = Model(), {"lr": 0.1}
    for _ in m(range(2)):
        for _ in m(range(5)):
            model.w += 1
    assert [s for s, _ in checkpoint_files(tmp_path / "checkpoints" / "model")] == [6, 8, 10]
    assert [p.name for _, p in checkpoint_files(tmp_path / "checkpoints" / "opt")] == ["5.pkl", "10.pkl"]
    assert theirs.read_text() == "mine"
    restored = Model()
    fresh = Monitor(directory=tmp_path)
    assert fresh.load(model=restored, opt=None)["opt"] == {"lr": 0.1}
    assert restored.w == 10 and (fresh.step, fresh.epoch) == (10, 2)  # the furthest checkpoint: opt's
    runs = 0
    for _ in fresh(range(2)):
        for _ in fresh(range(5)):
            runs += 1
    assert runs == 0 and (fresh.step, fresh.epoch) == (10, 2)  # everything was done already
    at_eight = Model()
    Monitor(directory=tmp_path).load(step=8, model=at_eight)
    assert at_eight.w == 8


def test_messages_go_to_the_experiment(tmp_path: Path) -> None:
    exp = Experiment(tmp_path, "ex1")
    other = Experiment(tmp_path, "ex2")
    m = Monitor(exp, msg=["^loss$@5s", "^acc$->^other$@1e"])
    loss = acc = 0.0
    for _ in m(range(2)):
        for i in m(range(5)):
            loss, acc = 1.0 / (i + 1), i / 10
    assert exp.messages == {"step": 10, "epoch": 1, "loss": 0.2}
    assert other.messages == {"step": 10, "epoch": 2, "acc": 0.4}
    # params.yml gets the latest values within a second or so (message() throttles its rewrites, see xmen.history).
    wanted = {"ex1": exp.messages, "ex2": other.messages}

    def messages_seen() -> dict:
        return {n: files.read_yaml(tmp_path / n / "params.yml").get("_messages") for n in wanted}

    wait_until(lambda: messages_seen() == wanted, 10, "the latest messages in params.yml", interval=0.1)
    seen = messages_seen()
    assert seen == wanted
    del other


def test_limit_stops_every_loop() -> None:
    m = Monitor(limit="@7s")
    seen = 0
    for _ in m(range(3)):
        for _ in m(range(5)):
            seen += 1
    assert seen == 7 and m.step == 7


def test_time_left_sources(tmp_path: Path, monkeypatch) -> None:
    assert Monitor().time_left() is None and slurm_end_time() is None
    monkeypatch.setenv("XMEN_RUNTIME", "2")
    assert 110 < Monitor().time_left() <= 120
    monkeypatch.setenv("SLURM_JOB_END_TIME", str(int(time.time()) + 3600))
    assert 3590 < Monitor().time_left() <= 3600
    monkeypatch.delenv("SLURM_JOB_END_TIME")
    # squeue / scontrol for $SLURM_JOB_ID: fakes on PATH print what SLURM prints (local time)
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 1800))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "scontrol").write_text(f"#!/bin/sh\necho 'JobId=$3 JobName=x'\necho '   StartTime=x EndTime={end} D=1'\n")
    (bindir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    if not any((Path(p) / "squeue").exists() for p in os.environ["PATH"].split(os.pathsep)):
        assert 1790 < Monitor().time_left() <= 1800  # from scontrol
    (bindir / "squeue").write_text(f"#!/bin/sh\n[ \"$4\" = 42 ] || exit 1\necho {end}\n")
    (bindir / "squeue").chmod(0o755)
    assert 1790 < slurm_end_time() - time.time() <= 1800
    monkeypatch.setenv("XMEN_RUNTIME", "soon")
    with pytest.raises(ValueError, match="minutes"):
        local_runtime()


def test_stop_before_outside_xmen_raises_after_checkpointing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XMEN_RUNTIME", "1")  # 60 s, and stop_before 90 s: the first step is too late
    m = Monitor(directory=tmp_path, ckpt="^model$@100s", stop_before=90)
    model = Model()
    with pytest.raises(TimeLimit):
        for _ in m(range(10)):
            model.w += 1
    assert [p.name for _, p in checkpoint_files(tmp_path / "checkpoints" / "model")] == ["1.pkl"]


class Training(Experiment):
    """A training loop that checkpoints before its time limit and resumes where it stopped."""

    epochs: int = 4  # @p Epochs to train

    def run(self) -> None:
        model = Model()
        m = Monitor(self, ckpt="^model$@1e", ckpt_keep=2, msg="^w$@1e", stop_before=30)
        m.load(model=model)
        for _ in m(range(self.epochs)):
            for _ in m(range(3)):
                model.w += 1
                w = model.w  # noqa: F841 - messaged by the monitor
        self.message({"final": model.w})


def test_an_experiment_times_out_then_resumes(tmp_path: Path, monkeypatch) -> None:
    exp = Training()
    exp.register(tmp_path, "train")
    monkeypatch.setenv("XMEN_RUNTIME", "0.4")  # 24 s left < 30 s: checkpoint at the first step, then time out
    assert exp() == st.TIMEOUT
    params = files.read_yaml(tmp_path / "train" / "params.yml")
    assert params["_status"] == st.TIMEOUT
    # The cause says what happened (it said "received SIGUSR1", as if the scheduler had sent it)
    assert re.match(rf"{st.STOPPED_ITSELF} \d+s before the time limit \(stop_before=30s\): checkpointed at step 1",
                    params["_error"]), params
    assert [p.name for _, p in checkpoint_files(tmp_path / "train" / "checkpoints" / "model")] == ["1.pkl"]
    monkeypatch.delenv("XMEN_RUNTIME")
    assert exp() == st.FINISHED
    messages = files.read_yaml(tmp_path / "train" / "params.yml")["_messages"]
    # Resumed at step 1 (w=1, one step into epoch 0): the inner loop skips its first item, then goes on.
    assert messages["epoch"] == 4 and messages["step"] == 12 and messages["final"] == messages["w"] == 4 * 3
    assert [s for s, _ in checkpoint_files(tmp_path / "train" / "checkpoints" / "model")] == [9, 12]


def test_no_torch_is_imported() -> None:
    import subprocess

    code = "import sys, xmen.monitor; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_original_checkpoint_example(tmp_path: Path) -> None:
    """The original's documented checkpoint example (three objects, three frequencies, three kept counts) gives
    its documented tree, with pickle instead of torch."""
    from xmen.define.monitor import TorchMonitor

    model, model2, optimiser = Model(), Model(), {"lr": 1e-3}
    m = TorchMonitor(str(tmp_path), ckpt=["^model$@5s", "opt@1e", "^model2$@20s"], ckpt_keep=[5, 1, None])
    for _ in m(range(10)):
        for _ in m(range(20)):
            model.w += 1
    tree = {name: sorted(s for s, _ in checkpoint_files(tmp_path / "checkpoints" / name))
            for name in ("model", "model2", "optimiser")}
    assert tree == {"model": [180, 185, 190, 195, 200], "model2": list(range(20, 201, 20)), "optimiser": [200]}
    del model2, optimiser
