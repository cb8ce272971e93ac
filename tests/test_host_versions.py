"""xmen.host's version gate: xmen's patches on Snakemake and on the SLURM executor plugin apply only to the versions
they were written against (xmen.host.versions, pinned in setup.py too); anything else is refused with one line that
names the found and the supported versions, before any patch is applied. A run that does not use the plugin does not
depend on its version."""
from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from xmen.host import patches, plugin, slurm_submit, versions
from xmen.host.snakemake_run import builds_dag_for_a_run, executor_in_use
from xmen.host.versions import SLURM_JOBSTEP, SLURM_PLUGIN, SNAKEMAKE, HostRefusal

slurm_plugin = pytest.importorskip("snakemake_executor_plugin_slurm")

REFUSAL_290 = ("xmen: snakemake-executor-plugin-slurm 2.9.0 is not a version xmen supports "
               "(snakemake-executor-plugin-slurm>=2.8,<2.9); install one: pip install "
               "'snakemake-executor-plugin-slurm>=2.8,<2.9'")
PATCHED = ("query_job_status", "Executor.check_active_jobs", "Executor.report_job_success",
           "Executor.report_job_error", "Executor.format_job_exec", "Executor._report_job_submission_threadsafe",
           "Executor._report_job_error_threadsafe", "Executor.run_job", "Executor.run_array_jobs",
           "Executor.clean_old_logs")


def _fake_version(monkeypatch, distribution: str, version: str | None) -> None:
    real = versions.installed_version
    monkeypatch.setattr(versions, "installed_version", lambda name: version if name == distribution else real(name))


def _plugin_now() -> dict[str, object]:
    """What the plugin has now under each name xmen patches (None: it has no such thing)."""
    found = {}
    for path in PATCHED:
        value: object = slurm_plugin
        for name in path.split("."):
            value = getattr(value, name, None)
        found[path] = value
    return found


def _xmens(function: object) -> bool:
    return bool(getattr(function, "_xmen_slurm", False) or getattr(function, "_xmen_capped_interval", False))


@pytest.fixture
def restored_plugin(monkeypatch):
    """The real plugin as it comes (without what an earlier test in this process patched), and whatever a test
    patches on it undone after it."""
    for path in PATCHED:
        owner_path, _, name = path.rpartition(".")
        owner = slurm_plugin.Executor if owner_path else slurm_plugin
        own = inspect.unwrap(getattr(owner, name), stop=lambda function: not _xmens(function))
        monkeypatch.setattr(owner, name, own)
    return monkeypatch


@pytest.mark.parametrize("supported, version, admitted", [
    (SLURM_PLUGIN, "2.8.0", True), (SLURM_PLUGIN, "2.8.7", True), (SLURM_PLUGIN, "2.8.1rc1", True),
    (SLURM_PLUGIN, "2.7.9", False), (SLURM_PLUGIN, "2.9.0", False), (SLURM_PLUGIN, "2.9.0rc1", False),
    (SLURM_PLUGIN, "3.0", False), (SLURM_PLUGIN, None, False), (SLURM_PLUGIN, "not a version", False),
    (SNAKEMAKE, "9.27.1", True), (SNAKEMAKE, "9.40.0", True), (SNAKEMAKE, "9.26.0", False),
    (SNAKEMAKE, "10.0.0", False), (SLURM_JOBSTEP, "0.6.1", True), (SLURM_JOBSTEP, "1.0.0", False),
])
def test_supported_ranges(supported, version, admitted):
    assert supported.admits(version) is admitted


def test_the_installed_versions_are_supported():
    """What CI installs (setup.py's pins) is what the gate admits."""
    for supported in (SNAKEMAKE, SLURM_PLUGIN, SLURM_JOBSTEP):
        assert versions.check(supported) == versions.installed_version(supported.distribution)
    patches.check(patches.SNAKEMAKE_PATCHES)
    patches.check(patches.SLURM_PATCHES)


def test_every_patch_has_a_name_of_its_own_and_lives_in_xmen_host():
    import importlib

    registry = patches.SNAKEMAKE_PATCHES + patches.SLURM_PATCHES
    assert len({patch.name for patch in registry}) == len(registry)
    for patch in registry:
        assert patch.module.startswith("xmen.host.") and importlib.import_module(patch.module)
        assert patch.replaces and set(patch.replaces.values()) <= {patches.PROPERTY, patches.FUNCTION,
                                                                    patches.COROUTINE, patches.ASYNC_GENERATOR}


def test_setup_pins_the_supported_ranges():
    setup = (Path(__file__).resolve().parent.parent / "setup.py").read_text(encoding="utf-8")
    pinned = re.findall(r'"((?:snakemake)[a-z-]*[<>=!~][^"]*)"', setup)
    assert sorted(pinned) == sorted(s.requirement for s in (SNAKEMAKE, SLURM_PLUGIN, SLURM_JOBSTEP))


def test_an_unknown_plugin_version_is_refused_in_one_line_and_nothing_is_patched(restored_plugin):
    _fake_version(restored_plugin, SLURM_PLUGIN.distribution, "2.9.0")
    before = _plugin_now()
    with pytest.raises(HostRefusal) as refused:
        plugin.install()
    assert str(refused.value) == REFUSAL_290
    assert _plugin_now() == before
    _fake_version(restored_plugin, SLURM_PLUGIN.distribution, None)
    with pytest.raises(HostRefusal, match=r"^xmen: snakemake-executor-plugin-slurm \(version unknown\) is not a "):
        plugin.check()


def test_while_snakemake_parses_the_snakefile_a_plugin_that_does_not_fit_is_left_alone(restored_plugin):
    """The executor is not known yet: the refusal waits for a run that uses the plugin (prepare)."""
    restored_plugin.setattr(slurm_submit, "HOOKS", slurm_submit._Hooks())
    _fake_version(restored_plugin, SLURM_PLUGIN.distribution, "2.9.0")
    before = _plugin_now()
    assert plugin.install_if_fits("/nowhere") is False
    assert _plugin_now() == before and slurm_submit.HOOKS.workdir != "/nowhere"


def test_while_snakemake_parses_the_snakefile_only_what_it_takes_with_the_executor_is_patched(restored_plugin):
    """The executor registers its clean_old_logs with atexit when Snakemake makes it; the rest waits for a run that
    uses the slurm executor (prepare), so a local run leaves the plugin's status loop and submissions alone."""
    restored_plugin.setattr(slurm_submit, "HOOKS", slurm_submit._Hooks())
    before = _plugin_now()
    assert plugin.install_if_fits("/somewhere") is True
    changed = {path for path, value in _plugin_now().items() if value is not before[path]}
    assert changed == {"Executor.clean_old_logs"} and slurm_submit.HOOKS.workdir == "/somewhere"
    plugin.install()
    assert {path for path, value in _plugin_now().items() if value is not before[path]} == set(PATCHED)


def test_a_patch_that_does_not_fit_is_refused_by_name_and_nothing_is_patched(restored_plugin):
    restored_plugin.delattr(slurm_plugin.Executor, "clean_old_logs")
    before = _plugin_now()
    with pytest.raises(HostRefusal) as refused:
        plugin.install()
    line = str(refused.value)
    version = versions.installed_version(SLURM_PLUGIN.distribution)
    assert line == (f"xmen: snakemake-executor-plugin-slurm {version} does not fit xmen's patch \"keep empty SLURM "
                    f"log folders\" (no Executor.clean_old_logs); xmen supports {SLURM_PLUGIN.requirement}")
    assert _plugin_now() == before


def test_a_snakemake_job_property_that_is_not_one_is_refused(monkeypatch):
    from snakemake.jobs import Job

    monkeypatch.setattr(Job, "restart_times", 3)
    with pytest.raises(HostRefusal) as refused:
        patches.install(patches.SNAKEMAKE_PATCHES)
    version = versions.installed_version("snakemake")
    assert str(refused.value) == (f"xmen: snakemake {version} does not fit xmen's patch \"give each experiment its "
                                  f"own retries\" (Job.restart_times is not a property); xmen supports "
                                  f"{SNAKEMAKE.requirement}")
    _fake_version(monkeypatch, "snakemake", "10.0.0")
    with pytest.raises(HostRefusal, match=r"^xmen: snakemake 10\.0\.0 is not a version xmen supports \(snakemake>="):
        patches.check(patches.SNAKEMAKE_PATCHES)


def _workflow(executor: str | None, scheduler: object = None) -> SimpleNamespace:
    return SimpleNamespace(executor_plugin=None if executor is None else SimpleNamespace(name=executor),
                           scheduler=scheduler)


def test_only_a_run_with_the_slurm_executor_depends_on_the_plugin_version(monkeypatch):
    """A local run, a command that runs nothing (no executor yet) and --touch leave the plugin alone, whatever its
    version; a dry run for SLURM is checked; a run with it is checked and patched."""
    _fake_version(monkeypatch, SLURM_PLUGIN.distribution, "2.9.0")
    for executor in (None, "local", "touch"):
        assert plugin.prepare(_workflow(executor), "/nowhere") == (False, False)
    for executor in ("slurm", "dryrun"):
        monkeypatch.setattr("xmen.host.plugin.executor_in_use", lambda workflow, dry_run=False, e=executor: (
            "slurm" if dry_run else e))
        with pytest.raises(HostRefusal, match=re.escape(REFUSAL_290)):
            plugin.prepare(_workflow(executor), "/nowhere")


def test_what_the_workflow_says_of_the_run():
    assert executor_in_use(_workflow(None)) is None  # parsing the Snakefile, or --summary, --dag...
    assert executor_in_use(_workflow("slurm")) == "slurm"
    assert executor_in_use(_workflow("slurm"), dry_run=True) == "slurm"
    assert executor_in_use(_workflow("dryrun")) == "dryrun"
    assert executor_in_use(_workflow("dryrun"), dry_run=True) is None  # not inside Snakemake's execute_workflow
    assert builds_dag_for_a_run(_workflow(None)) is False
    assert builds_dag_for_a_run(_workflow("local")) is True  # execute's own DAG: no scheduler yet
    assert builds_dag_for_a_run(_workflow("local", scheduler=object())) is False  # no Workflow.execute on the stack


SNAKEFILE = """\
from xmen.host import versions
_real = versions.installed_version
versions.installed_version = lambda name: {version!r} if name == "snakemake-executor-plugin-slurm" else _real(name)
from xmen.snakemake_glue import XmenWorkflow
_xmen = XmenWorkflow(workflow, config)
rule all:
    default_target: True
    input: _xmen.targets_input()
"""


@pytest.mark.parametrize("flags", [["--executor", "slurm", "-j1"], ["-n", "--executor", "slurm", "-j1"]])
def test_snakemake_with_the_slurm_executor_and_an_unknown_plugin_ends_with_the_one_line(tmp_path, flags):
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(version="2.9.0"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", *flags], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1] == REFUSAL_290, proc.stderr
    assert [line for line in lines if "xmen" in line] == [REFUSAL_290], proc.stderr


def test_a_local_run_does_not_depend_on_the_plugin_version(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(version="2.9.0"))
    for flags in (["-c1"], ["-c1", "-n"], ["-c1", "--summary"]):
        proc = subprocess.run([sys.executable, "-m", "snakemake", *flags], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "xmen:" not in proc.stderr
