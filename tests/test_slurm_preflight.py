"""The SLURM preflight (xmen.slurm_queue.problems / preflight) against recorded ``sinfo`` text: what sbatch would
reject, decided as the SLURM plugin (2.8) builds the sbatch call (cpus_per_task before threads, --mem-per-cpu
instead of --mem) and as SLURM 22.05 answers (a comma list of partitions, the partition's time limit).

The real cluster's side (a list of partitions that runs, a refused member of a pack) is in
tests/slurm/test_resources_slurm.py.
"""
from __future__ import annotations

import subprocess
from typing import Any

import pytest

from xmen.slurm import queue as slurm_queue
from xmen.host import slurm_submit
from xmen.slurm import partitions

# The test cluster (tests/slurm/up.sh): one node of 2 CPUs and 8000 MB in both partitions, no time limit; "other"
# here also has a bigger node kind (a second sinfo line of the same partition).
SINFO = "main*|8000|2|(null)|infinite\nother|8000|2|(null)|infinite\nother|16000|8|gpu:2(S:0),tmpdisk:100|infinite\n"
# A cluster with time limits, as `sinfo -h -o '%P|%m|%c|%G|%l'` prints them.
LIMITED = ("short*|64000|32|(null)|1:00:00\nlong|64000|32|(null)|7-00:00:00\n"
           "gpu|256000|64|gpu:a100:4(S:0-1)|2-00:00:00\ndebug|4000|4|(null)|30:00\n")


def check(options: dict[str, Any], sinfo: str = SINFO, max_threads: int | None = None) -> list[str]:
    limit = {"max_threads": max_threads} if max_threads else {}
    return partitions.problems(options, partitions.parse_sinfo(sinfo), **limit)


@pytest.mark.parametrize("partition", ["main,other", "other,main", "main, other", ["main,other", "nope"]])
def test_a_list_of_known_partitions_passes(partition) -> None:
    """sbatch -p main,other runs the job in whichever starts it first (measured: --test-only accepts it)."""
    assert check({"resources": {"slurm_partition": partition}}) == []


def test_a_list_naming_an_unknown_partition_is_refused() -> None:
    """SLURM 22.05 refuses the whole list (measured: `sbatch -p main,nope` -> invalid partition specified: nope)."""
    assert check({"resources": {"slurm_partition": "main,nope"}}) == [
        "unknown partition 'nope' in 'main,nope' (sbatch refuses a list naming one) (this cluster has: main, other)"]


def test_a_list_passes_when_one_of_its_partitions_would_take_the_job() -> None:
    assert check({"resources": {"slurm_partition": "main,other", "mem_mb": 12000}, "threads": 6}) == []
    assert check({"resources": {"slurm_partition": "main,other", "mem_mb": 20000}}) == [
        "no partition of 'main,other' would take it: mem_mb=20000 is more than any node of partition 'main' has "
        "(8000 MB); mem_mb=20000 is more than any node of partition 'other' has (16000 MB)"]


@pytest.mark.parametrize("options, max_threads, expected", [
    # The plugin sends --cpus-per-task=<cpus_per_task> when it is set, whatever the rule's threads.
    ({"threads": 4, "resources": {"cpus_per_task": 2}}, None, []),
    ({"threads": 4, "resources": {"cpus_per_task": [1, 4]}}, None, []),
    ({"threads": 1, "resources": {"cpus_per_task": 4}}, None,
     ["cpus_per_task=4 is more than any node of partition 'main' has (2 CPUs)"]),
    # A negative cpus_per_task sends no CPU flag at all (SLURM's default: 1).
    ({"threads": 4, "resources": {"cpus_per_task": -1}}, None, []),
    # Without cpus_per_task xmen's rule gives the plugin the experiment's threads, within --max-threads.
    ({"threads": 4}, None, ["threads=4 is more than any node of partition 'main' has (2 CPUs)"]),
    ({"threads": 4}, 2, []),
])
def test_the_cpus_checked_are_those_that_reach_sbatch(options, max_threads, expected) -> None:
    assert check(options, max_threads=max_threads) == expected


@pytest.mark.parametrize("resources, expected", [
    ({"runtime": 60}, []),
    ({"runtime": 61}, ["runtime=61 min is above the time limit of partition 'short' (60 min): SLURM rejects the "
                       "job or, with EnforcePartLimits=NO, keeps it pending for ever"]),
    ({"runtime": [30, 600]}, []),  # a retry asking for more is checked by SLURM when it is submitted
    ({"runtime": 600, "slurm_partition": "long"}, []),
    ({"runtime": 600, "slurm_partition": "short,long"}, []),
    ({"runtime": 31, "slurm_partition": "debug"},
     ["runtime=31 min is above the time limit of partition 'debug' (30 min): SLURM rejects the job or, with "
      "EnforcePartLimits=NO, keeps it pending for ever"]),
    ({"runtime": 3000, "slurm_partition": "gpu", "gpu": 1}, [
        "runtime=3000 min is above the time limit of partition 'gpu' (2880 min): SLURM rejects the job or, with "
        "EnforcePartLimits=NO, keeps it pending for ever"]),
])
def test_runtime_is_checked_against_the_partition_time_limit(resources, expected) -> None:
    assert check({"resources": resources}, LIMITED) == expected


def test_no_time_limit_means_no_runtime_problem() -> None:
    assert check({"resources": {"runtime": 100000}}) == []
    assert check({"resources": {"runtime": 100000}}, "main*|8000|2|(null)\n") == []  # an older format: no %l


@pytest.mark.parametrize("options, expected", [
    ({"resources": {"mem_mb_per_cpu": 5000}}, []),
    ({"threads": 2, "resources": {"mem_mb_per_cpu": 5000}},
     ["mem_mb_per_cpu=5000 x 2 CPU(s) is more than any node of partition 'main' has (8000 MB)"]),
    ({"resources": {"mem_mb_per_cpu": 100000}},
     ["mem_mb_per_cpu=100000 x 1 CPU(s) is more than any node of partition 'main' has (8000 MB)"]),
    # The plugin sends --mem-per-cpu and then no --mem: mem_mb does not reach SLURM.
    ({"resources": {"mem_mb_per_cpu": 1000, "mem_mb": 99999}}, []),
])
def test_memory_per_cpu_times_the_cpus_must_fit_a_node(options, expected) -> None:
    assert check(options) == expected


@pytest.mark.parametrize("text, minutes", [
    ("infinite", None), ("UNLIMITED", None), ("n/a", None), ("30", 30), ("30:00", 30), ("1:30:00", 90),
    ("2-00:00:00", 2880), ("2-12", 3600), ("1-02:03", 1563), ("0:00:30", 0.5),
])
def test_slurm_times_in_minutes(text, minutes) -> None:
    assert partitions.slurm_minutes(text) == minutes


def test_preflight_asks_sinfo_once_for_the_time_limit_too() -> None:
    calls: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, LIMITED, "")

    grouped = partitions.preflight({"a": {"resources": {"runtime": 90}}, "b": {"resources": {"runtime": 90}},
                                     "c": {"resources": {"runtime": 30}}}, run=run)
    assert calls == [["sinfo", "-h", "-o", "%P|%m|%c|%G|%l"]]
    assert list(grouped.values()) == [["a", "b"]]
    parts = partitions.parse_sinfo(LIMITED)
    assert [(p.name, p.default, p.max_minutes) for p in parts.values()] == [
        ("short", True, 60), ("long", False, 10080), ("gpu", False, 2880), ("debug", False, 30)]
    assert parts["gpu"].gres == {"gpu"}


def test_a_refused_experiment_is_in_no_pack(tmp_path, monkeypatch) -> None:
    """Snakemake forms packs (group jobs) from each job's ``group`` after the preflight ran: a job of xmen's rule
    whose experiment was refused answers None (a job of its own, refused alone), the others keep their pack."""
    from types import SimpleNamespace

    from snakemake.jobs import Job

    from xmen.host import glue

    assert glue.install_refused_alone() and glue.install_refused_alone()  # idempotent
    monkeypatch.chdir(tmp_path)
    workflow = SimpleNamespace()
    xmen_workflow = glue.XmenWorkflow.__new__(glue.XmenWorkflow)
    xmen_workflow.cwd = str(tmp_path)
    workflow._xmen_glue = xmen_workflow
    monkeypatch.setattr(slurm_submit.HOOKS, "refused", {str(tmp_path / "set" / "bad"): "unknown partition 'x'"})

    def job(exp: str, rule: str = glue.RULE) -> Any:
        return SimpleNamespace(_group="pack", rule=SimpleNamespace(name=rule, workflow=workflow),
                               wildcards=SimpleNamespace(exp=exp))

    assert [Job.group.fget(job(exp)) for exp in ("set/good", "set/bad", "set/../set/bad")] == ["pack", None, None]
    assert Job.group.fget(job("set/bad", rule="other")) == "pack"  # another rule keeps Snakemake's answer
    # An experiment this run adopted (its old pack's job, after a killed run) is in no new pack either.
    monkeypatch.setattr(slurm_submit.HOOKS, "adopted_dirs", {str(tmp_path / "set" / "old")})
    assert [Job.group.fget(job(exp)) for exp in ("set/good", "set/old")] == ["pack", None]


def test_a_refused_experiment_is_recorded_as_never_submitted(tmp_path) -> None:
    """The preflight kept it from sbatch: its ``_error`` says so (SLURM never saw it, it rejected nothing), and the
    retry policy reads it as a rejection, which is never retried."""
    from xmen.store import files, retry

    exp = tmp_path / "a=x"
    exp.mkdir()
    (exp / "params.yml").write_text("a: x\n_status: registered\n")
    slurm_submit.refuse({"unknown partition 'gpu'": ["a=x"]}, str(tmp_path), dry_run=False)
    data = files.read_yaml(exp / "params.yml")
    assert (data["_status"], data["_error"]) == ("error", "not submitted, SLURM would reject it: unknown partition 'gpu'")
    assert retry.cause_of(data) == retry.REJECTED
    slurm_submit.HOOKS.refused.clear()
