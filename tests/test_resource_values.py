"""`--resources` is read like shell words: quoted values keep spaces, `=` and commas; stray shell characters are
errors; slurm_extra reaches sbatch's shell line as quoted words."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from xmen.errors import UsageError
from xmen.store import files
from xmen.cli import main
from xmen.sets.run_options import parse_resources, sbatch_words


@pytest.mark.parametrize("spec, expected", [
    ("mem_mb=1000,2000 runtime=5 slurm_partition=main",
     {"mem_mb": [1000, 2000], "runtime": 5, "slurm_partition": "main"}),
    ("slurm_extra='--comment=two words'", {"slurm_extra": "--comment=two words"}),
    ("slurm_extra='--mail-type=END,FAIL --mail-user=\"a b\"' mem_mb=3",
     {"slurm_extra": '--mail-type=END,FAIL --mail-user="a b"', "mem_mb": 3}),
    ("constraint=a=b", {"constraint": "a=b"}),
    ("tag='5'", {"tag": "5"}),  # quoted: a string, as written
    ("tag='a,b',c", {"tag": ["a,b", "c"]}),  # one comma quoted, one separating attempts
    ("slurm_partition='main,other'", {"slurm_partition": "main,other"}),  # SLURM takes a list of partitions
    ("mem_mb=1\n runtime=2", {"mem_mb": 1, "runtime": 2}),
])
def test_values_with_quotes_equals_and_commas(spec, expected):
    assert parse_resources(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("mem_mb", "expected NAME=VALUE, got 'mem_mb'"),
    ("mem_mb=", "expected NAME=VALUE"),
    ("mem_mb=1;touch pwned", "expected NAME=VALUE, got 'pwned'"),
    ("slurm_partition=a;b", "invalid value 'a;b' for slurm_partition"),
    ("slurm_extra=a;b", "invalid value 'a;b' for slurm_extra (quote ';')"),
    # The plugin puts every value but slurm_extra unquoted on sbatch's shell line: quoting does not make it safe.
    ("gpu='1;touch pwned'", "only slurm_extra may hold ';'"),
    ("tasks='1 $(id)'", "only slurm_extra may hold ' '"),
    ('tag="x\\"y"', "only slurm_extra may hold '\"'"),
    ("tag=b\\ c", "only slurm_extra may hold ' '"),
    ("tag=$(id)", "invalid value"),
    ("tag='a", "unclosed ' in"),
    ("'tag'=3", "invalid resource name"),
    ("tag=a,,b", "invalid value '' for tag"),
    ("tag='a\tb'", "invalid value"),
    ("slurm_extra='--x=\"a'", "slurm_extra '--x=\"a': No closing quotation"),
])
def test_bad_values_are_one_clear_error(spec, message):
    with pytest.raises(UsageError) as caught:
        parse_resources(spec)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_hand_edited_unsafe_value_stops_the_run_before_anything_reaches_a_shell(xmen_home, tmp_path, capsys):
    """experiment.yml edited by hand (`gpu: 1;touch pwned`): Snakemake refuses to build the job, nothing runs."""
    (tmp_path / "script.sh").write_text("#!/bin/bash\necho ran\n")
    (tmp_path / "defaults.yml").write_text("a: 0  # (int) A (default=0)\n")
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    assert main(["register", "{a: 1}", "--resources", "gpu=1", "-r", str(root)]) == 0
    text = (root / "experiment.yml").read_text()
    assert "gpu: 1" in text
    (root / "experiment.yml").write_text(text.replace("gpu: 1", "gpu: 1;touch pwned"))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "resource gpu='1;touch pwned' holds ';', which only slurm_extra may hold" in proc.stdout + proc.stderr
    assert not (root / "pwned").exists() and not (root / "a=1" / "xmen.done").exists()


def test_slurm_extra_words_stay_whole_and_never_run():
    text = sbatch_words('--mail-user="a b" --mail-type=END,FAIL; touch pwned')
    assert text == "'--mail-user=a b' '--mail-type=END,FAIL;' touch pwned"  # the ';' is an argument, not a command
    assert shlex.split(text) == ["--mail-user=a b", "--mail-type=END,FAIL;", "touch", "pwned"]
    assert sbatch_words("--qos=long") == "--qos=long"


def test_local_runs_keep_threads_capped_by_cores(xmen_home, tmp_path, monkeypatch, capsys):
    """Locally `-j 1` still runs a 2-thread experiment with XMEN_THREADS=1 (Snakemake's --cores), and the SLURM-only
    cpus_per_task does not reach a local experiment."""
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    (tmp_path / "script.sh").write_text('#!/bin/bash\nenv | grep "^XMEN_THREADS=\\|^XMEN_CPUS" > "$(dirname "$1")/env.txt"\n')
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    monkeypatch.chdir(root)
    assert main(["register", "{a: x}", "--threads", "2"]) == 0
    run = subprocess.run([sys.executable, "-m", "xmen.cli", "run", "-j", "1"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "SLURM_CONF": "/dev/null"})
    assert run.returncode == 0, run.stderr
    assert (root / "a=x" / "env.txt").read_text().split() == ["XMEN_THREADS=1"]


def test_thread_variables_follow_the_experiments_threads(xmen_home, tmp_path, monkeypatch):
    """Libraries that start threads of their own (OpenMP, BLAS, numexpr) get the experiment's threads, as Snakemake
    gives any job's shell command: the run block's shell got none of its context, so they said 1."""
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    (tmp_path / "script.sh").write_text(
        '#!/bin/bash\nenv | grep "^OMP_NUM_THREADS=\\|^MKL_NUM_THREADS=\\|^XMEN_THREADS=" | sort > "$(dirname "$1")/env.txt"\n')
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    monkeypatch.chdir(root)
    assert main(["register", "{a: x}", "--threads", "2"]) == 0
    run = subprocess.run([sys.executable, "-m", "snakemake", "-j", "2"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "SLURM_CONF": "/dev/null"})
    assert run.returncode == 0, run.stderr
    assert (root / "a=x" / "env.txt").read_text().split() == ["MKL_NUM_THREADS=2", "OMP_NUM_THREADS=2",
                                                               "XMEN_THREADS=2"]


def test_the_readme_slurm_extra_command_runs_as_written(xmen_home, tmp_path, monkeypatch):
    """The README's slurm_extra example, through bash as a user types it; the SLURM test sends that value to sbatch."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    command = re.search(r"`(xmen register [^`]*--mail-user[^`]*)`", readme).group(1)
    (tmp_path / "defaults.yml").write_text("a: h  # (str) A parameter\n")
    (tmp_path / "script.sh").write_text("#!/bin/bash\n")
    root = tmp_path / "set"
    assert main(["init", "-s", str(tmp_path / "script.sh"), "-d", str(tmp_path / "defaults.yml"), "-r", str(root)]) == 0
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    proc = subprocess.run(["bash", "-c", command], cwd=root, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path, "SLURM_CONF": "/dev/null"})
    assert proc.returncode == 0, proc.stderr
    options = files.read_yaml(root / "experiment.yml")["experiments"]
    (resources,) = [o["resources"] for o in options.values()]
    assert resources == {"slurm_extra": '--mail-type=END,FAIL --mail-user="two words"'}
