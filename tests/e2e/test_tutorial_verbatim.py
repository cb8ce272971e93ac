"""The original xmen tutorial, typed verbatim: every command in order, outputs compared with the printed ones.

The tutorial's files are written as printed; its commands run in bash exactly as typed (notebook magics ``%cmd`` and
``!cmd`` become the shell command ``cmd``; ``%alias xmen ...`` only made the command available in the notebook).
What legitimately differs is normalised in the comparison, never skipped: the set lives in a temporary folder
instead of ``/tmp/experiments`` (the tutorial's own ``/private/tmp`` is macOS's name for it), and dates, commits,
MAC, host, user and home are this machine's.
"""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.timeout(300)

# -------------------------------------------------------------------------------------- the tutorial, as printed

EXPERIMENT_PY = '''\
from xmen.experiment import Experiment, experiment_parser
import os
import time


class AnExperiment(Experiment):
    def __init__(self):
        """A basic python experiment demonstrating the features of the xmen api."""
        super(AnExperiment, self).__init__()
        # Lets define some parameters. This is done using the @p identifier.
        # By using Python typing you are able to define the name, type, default
        # And help for a parameter all in a single line. The TypedMeta metaclass
        # automatically takes care of identifying parameters and managing
        # doucmentation even before the class is instantiated!
        self.a: str = 'h'  # @p A parameter
        self.b: int = 17  # @p Another parameter

        # Normal attributes are still allowed
        self.c: int = 5  # This is not a parameter

    def run(self):
        # The execution of an experiement is created by overloading the run method.
        print(f'a = {self.a}, b = {self.b}')

        # In order to be executed an experiment must be linked with a directory
        # in which a params.yml file is created recording designed to allow the
        # execution environement to be reproduced. The experiments status is updated
        # to running within the experiment.
        print(f'The experiment state inside run is {self.status}')

        # The experiment class ``message`` facilitates experiment communication.
        # The time is now added to the _messages dictionary in params.yml.
        self.message({'time': time.time()})

        # Each experiment has its own unique directory. You are encourage to
        # write out data acumulated through the execution (snapshots, logs etc.)
        # to this directory.
        with open(os.path.join(self.directory, 'logs.txt'), 'w') as f:
            f.write('This was written from a running experiment')


if __name__ == '__main__':
    # Now we expose the command line interface
    exp = AnExperiment()
    args = exp.parse_args()
    exp.main(args)
'''

HEADER_TXT = """\
#SBATCH --nodes=1
#SBATCH --job-name=single_job
#SBATCH --time=1-00:00:00
#SBATCH --gres=gpu:rtx:1
#SBATCH --partition=htc-nova
#SBATCH --cpus-per-task=2
#SBATCH --mail-user=robw@robots.ox.ac.uk
#SBATCH --mail-type=ALL
#SBATCH --account=engs-a2i
# Author: Rob Weston
# Email: robw@robots.ox.ac.uk

# Lets activate an environment
conda active xmen


# Maybe we want to set some environement variables
PATH1="..."
PATH2="..."
"""

HELP_PRINTED = """\
usage: experiment.py [-h] [--update YAML_STRING] [--execute PARAMS]
                     [--to_root DIR] [--to_defaults DIR]
                     [--register ROOT NAME] [--debug DEBUG] [--name]

A basic python experiment demonstrating the features of the xmen api.

optional arguments:
  -h, --help            show this help message and exit
  --update YAML_STRING  Update the parameters given by a yaml string.
  --execute PARAMS      Execute the experiment from the given params.yml file. Cannot be called with update.
  --to_root DIR         Generate a run script and defaults.yml file for interfacing with the experiment manager.
  --to_defaults DIR     Generate a defaults.yml file from the experiment defaults in the given directory
  --register ROOT NAME  Register an experiment at root (1st positional) name (2ndpo
"""

PYDOC_PRINTED = """\
Help on class AnExperiment in module experiment:

class AnExperiment(xmen.experiment.Experiment)
 |  Parameters:
 |      a (str): A parameter (default='h')
 |      b (int): Another parameter (default=17)
 |  Method resolution order:
 |      AnExperiment
 |      xmen.experiment.Experiment
 |      builtins.object
 |  Methods defined here:
 |  __init__(self)
 |      A basic python experiment demonstrating the features of the xmen api.
 |      Parameters:
 |          a (str): A parameter (default='h')
 |          b (int): Another parameter (default=17)
 |  run(self)
 |  Methods inherited from xmen.experiment.Experiment:
 |  __call__(self, *args, **kwargs)
 |      Used to run experiment. Upon entering the experiment status is updated to
"""

XMEN_HELP_COMMANDS = ["config", "note", "init", "register", "list", "run", "reset", "clean", "rm", "unlink", "relink"]

LIST_VERBOSE_PRINTED = """\
    root           name              created          type purpose             mac                    host       user              home      status                                    commit    a     b
0  set_a  a=1.0__b=None  2020-03-09-16-42-25  AnExperiment          0x6c96cfdb71b9  dhcp45.robots.ox.ac.uk  robweston  /Users/robweston  registered  bbe75180debc80b03c520c5574f4d7e88d262909  1.0  None
1  set_a   a=1.0__b=cat  2020-03-09-16-42-25  AnExperiment          0x6c96cfdb71b9  dhcp45.robots.ox.ac.uk  robweston  /Users/robweston  registered  bbe75180debc80b03c520c5574f4d7e88d262909  1.0   cat
2  set_a  a=2.0__b=None  2020-03-09-16-42-25  AnExperiment          0x6c96cfdb71b9  dhcp45.robots.ox.ac.uk  robweston  /Users/robweston  registered  bbe75180debc80b03c520c5574f4d7e88d262909  2.0  None
3  set_a   a=2.0__b=cat  2020-03-09-16-42-25  AnExperiment          0x6c96cfdb71b9  dhcp45.robots.ox.ac.uk  robweston  /Users/robweston  registered  bbe75180debc80b03c520c5574f4d7e88d262909  2.0  
"""

LIST_LONG_PRINTED = """\
 0 /private/tmp/experiments/set_a
     |- a=1.0__b=None
     |- a=1.0__b=cat
     |- a=2.0__b=None
     |- a=2.0__b=cat
     Purpose: 
     Created: 2020-03-09-16-42-13
     Type: AnExperiment
     Notes: 
       A test of the xmen experiment suite
       Another random thought worth mentioning
"""

LIST_STATUS_PRINTED = """\
    root           name      status
0  set_a  a=1.0__b=None  registered
1  set_a   a=1.0__b=cat  registered
2  set_a  a=2.0__b=None  registered
3  set_a   a=2.0__b=cat  registered

Roots relative to: /private/tmp/experiments
"""

RUN_PRINTED = """\
Running: sh /private/tmp/experiments/set_a/a=1.0__b=cat/run.sh
a = 1.0, b = cat
The experiment state inside run is running
AnExperiment

Running: sh /private/tmp/experiments/set_a/a=1.0__b=None/run.sh
a = 1.0, b = None
The experiment state inside run is running
AnExperiment

Running: sh /private/tmp/experiments/set_a/a=2.0__b=cat/run.sh
a = 2.0, b = cat
The experiment state inside run is running
AnExperiment

Running: sh /private/tmp/experiments/set_a/a=2.0__b=None/run.sh
a = 2.0, b = None
The experiment state inside run is running
AnExperiment
"""

LIST_MESSAGES_PRINTED = """\
    root           name          time
0  set_a  a=1.0__b=None  1.583772e+09
1  set_a   a=1.0__b=cat  1.583772e+09
2  set_a  a=2.0__b=None  1.583772e+09
3  set_a   a=2.0__b=cat  1.583772e+09

Roots relative to: /private/tmp/experiments
"""

DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}\b")


# -------------------------------------------------------------------------------------- the session


class Session:
    """A user's shell: HOME, XMEN and the current folder carry over between commands, as in the notebook."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.base = tmp_path / "tmp" / "experiments"  # the tutorial's /tmp/experiments
        self.cwd = tmp_path
        self.env = dict(os.environ, HOME=str(self.home), XMEN=str(tmp_path / "xmen-config"),
                        XDG_CONFIG_HOME=str(tmp_path / "xdg"), PAGER="cat", GIT_CONFIG_NOSYSTEM="1")
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"

    def localise(self, text: str) -> str:
        """The only change made to what the tutorial types: its /tmp/experiments is a temporary folder here."""
        return re.sub(r"(/private)?/tmp/experiments", lambda _: str(self.base), text)

    def type(self, line: str, ok: bool = True) -> str:
        """Type one tutorial line (``%cmd`` / ``!cmd`` magics are shell commands); stdout + stderr."""
        command = self.localise(re.sub(r"^[%!]", "", line.strip()))
        script = f"cd {self.cwd} && {command} ; status=$? ; echo \"@@cwd=$PWD\" >&2 ; exit $status"
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=self.env, timeout=240)
        err, _, cwd = proc.stderr.rpartition("@@cwd=")
        self.cwd = Path(cwd.strip() or self.cwd)
        if ok:
            assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{err}"
        return proc.stdout + err


def rows(text: str) -> list[list[str]]:
    """A printed table as token rows (header first), up to the blank line before the footer."""
    lines = text.split("\n\n")[0].strip("\n").splitlines()
    return [line.split() for line in lines if line.strip()]


def normalise_row(tokens: list[str]) -> list[str]:
    """Machine-specific columns of `xmen list -v` (created, mac, host, user, home, commit) become placeholders."""
    out = list(tokens)
    for index, name in ((3, "DATE"), (5, "MAC"), (6, "HOST"), (7, "USER"), (8, "HOME"), (10, "COMMIT")):
        if index < len(out):
            out[index] = name
    return out


def git(folder: Path, *args: str, env: dict) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def test_the_tutorial_verbatim(tmp_path: Path) -> None:
    s = Session(tmp_path)
    # The tutorial's files: ~/xmen is the user's checkout (a git repository, so versions carry a commit).
    examples = s.home / "xmen" / "examples"
    examples.mkdir(parents=True)
    (s.home / "xmen" / "python").mkdir()
    (examples / "experiment.py").write_text(EXPERIMENT_PY)
    (examples / "header.txt").write_text(HEADER_TXT)
    genv = dict(s.env, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                GIT_COMMITTER_EMAIL="t@t")
    git(s.home / "xmen", "init", "-q", "-b", "master", env=genv)
    git(s.home / "xmen", "add", "-A", env=genv)
    git(s.home / "xmen", "commit", "-qm", "tutorial", env=genv)
    commit = git(s.home / "xmen", "rev-parse", "HEAD", env=genv)
    s.cwd = examples  # `!python3 experiment.py --help` runs next to the file

    # In [1]: !python3 experiment.py --help
    out = s.type("!python3 experiment.py --help")
    printed = HELP_PRINTED.splitlines()
    assert out.splitlines()[0] == printed[0]
    assert "A basic python experiment demonstrating the features of the xmen api." in out.splitlines()
    flags = lambda text: set(re.findall(r"\[(--?\w+)", text.split("\n\n")[0]))  # noqa: E731
    assert flags(HELP_PRINTED) <= flags(out)
    for line in printed[7:]:  # each option's line: the flag and the start of its help
        flag, _, words = line.strip().partition("  ")
        if flag.startswith("--debug"):
            continue
        ours = next(l for l in out.splitlines() if l.strip().startswith(flag.strip()))  # noqa: E741
        assert " ".join(words.split()[:4]) in " ".join(out.split()), (flag, ours)
    assert "--debug" in out  # `--debug DEBUG` (a boolean) is now `--debug [DIR]`; `--debug True` still works

    # In [2]: from experiment import AnExperiment; help(AnExperiment)
    out = s.type("python3 -c 'from experiment import AnExperiment\nhelp(AnExperiment)'")
    ours = [re.sub(r": '[^']*'|: \"[^\"]*\"| -> .*$", "", l).rstrip() for l in out.splitlines()]  # noqa: E741
    position = 0
    for line in PYDOC_PRINTED.splitlines():  # in order, annotations of our signatures removed
        matches = [i for i, l in enumerate(ours[position:], position) if l.startswith(line.rstrip())]  # noqa: E741
        assert matches, f"help(AnExperiment) lacks {line!r} after line {position}:\n{out}"
        position = matches[0] + 1

    # In [3]: the notebook's set-up
    s.type("%cd ~")
    s.type("%rm -rf /private/tmp/experiments/set_a")
    # `%alias xmen ~/xmen/python/xmen/main.py` only made `xmen` a notebook command; here it is on PATH
    s.type("%xmen config --disable_prompt")

    # In [4]: %xmen --help
    out = s.type("%xmen --help")
    listed = re.findall(r"^  (\w+)\s", out, re.M)
    assert set(XMEN_HELP_COMMANDS) <= set(listed), listed
    assert re.search(r"^  init\s+Initialise an experiment set\.$", out, re.M)
    assert re.search(r"^  register\s+Register a set of experiments", out, re.M)

    # In [5]
    s.type("%xmen config --add_path ~/xmen/python")
    s.type("%xmen config --add ~/xmen/examples/experiment.py")
    s.type("%xmen config -H ''")

    # In [6]
    s.type("%mkdir -p /tmp/experiments/set_a")
    s.type("%cd /tmp/experiments/set_a")
    assert s.cwd == s.base / "set_a"

    # In [7]: %xmen init -n AnExperiment
    out = s.type("%xmen init -n AnExperiment")
    assert f"Experiment root created at {s.base / 'set_a'}" in out.splitlines()

    # In [8]: !ls /private/tmp/experiments/set_a  (plus the Snakemake files of this xmen)
    out = s.type("!ls /private/tmp/experiments/set_a")
    assert {"defaults.yml", "experiment.yml", "script.sh"} <= set(out.split())

    # In [9]
    s.type('!echo "defaults.yml"')
    defaults = s.type("%cat defaults.yml")
    assert DATE.fullmatch(re.match(r"_created: (\S+)", defaults).group(1))
    for expected in ("_version:", f"  module: {examples / 'experiment.py'}", "  class: AnExperiment",
                     f"    local: {s.home / 'xmen'}", f"    commit: {commit}", "    branch: master", "_meta:",
                     "  mac: '0x", "  host: ", "  user: ", f"  home: {s.home}"):
        assert any(line.startswith(expected) for line in defaults.splitlines()), (expected, defaults)
    assert re.search(r"^a: h +#.*A parameter \(default='h'\)$", defaults, re.M)
    assert re.search(r"^b: 17 +#.*Another parameter \(default=17\)$", defaults, re.M)
    script = s.type("%cat script.sh").splitlines()
    assert script[0] == "#!/bin/bash" and script[1].startswith("# File generated on")
    for expected in (f"# - repo {s.home / 'xmen'}", "# - branch master", f"# - commit {commit}"):
        assert expected in script
    assert any(line.startswith("export PYTHONPATH=") and str(examples) in line for line in script)

    # In [10]: %xmen list
    out = s.type("%xmen list")
    assert out.splitlines()[0] == (f"No experiments found which match glob pattern {s.base / 'set_a'}. "
                                   "With parameter filter = None and type filter = None.")

    # In [11], In [12]
    s.type('%xmen register "{a: 1.0 | 2.0, b: None | cat}"')
    out = s.type('%xmen list -v -p ".*"')
    printed_rows, our_rows = rows(LIST_VERBOSE_PRINTED), rows(out)
    assert our_rows[0] == printed_rows[0]
    assert len(our_rows) == len(printed_rows)
    for printed_row, our_row in zip(printed_rows[1:], our_rows[1:]):
        assert normalise_row(our_row)[: len(printed_row)] == normalise_row(printed_row)
        assert our_row[10] == commit

    # In [13]
    s.type('%xmen note "A test of the xmen experiment suite"')
    s.type('%xmen note "Another random thought worth mentioning"')
    out = s.type("%xmen list -l")
    expected = DATE.sub("DATE", s.localise(LIST_LONG_PRINTED)).splitlines()
    assert DATE.sub("DATE", out).splitlines()[: len(expected)] == expected

    # In [14]
    out = s.type("%xmen list -sm")
    assert rows(out) == rows(LIST_STATUS_PRINTED)
    assert s.localise(LIST_STATUS_PRINTED).splitlines()[-1] in out.splitlines()

    # In [15]: xmen run "*" sh  (our order is sorted; the tutorial's was the folder listing's)
    out = s.type('xmen run "*" sh')
    blocks = lambda text: {tuple(b.strip().splitlines()[:3]) for b in text.strip().split("\n\n")}  # noqa: E731
    assert blocks(s.localise(RUN_PRINTED)) == blocks(out.split("\nWarning")[0].split("\nwarning")[0])

    # In [16]: %xmen list -m
    out = s.type("%xmen list -m")
    printed_rows, our_rows = rows(LIST_MESSAGES_PRINTED), rows(out)
    assert our_rows[0] == printed_rows[0]
    assert [row[:3] for row in our_rows[1:]] == [row[:3] for row in printed_rows[1:]]
    # The tutorial printed the time message raw (1.583772e+09); tables now show it as a date (issue 13), --csv raw.
    import datetime
    import time

    shown = [datetime.datetime.strptime(f"{row[3]} {row[4]}", "%Y-%m-%d %H:%M:%S") for row in our_rows[1:]]
    assert all(abs(stamp.timestamp() - time.time()) < 600 for stamp in shown)
    assert s.localise(LIST_MESSAGES_PRINTED).splitlines()[-1] in out.splitlines()

    # In [17]: !cat ~/xmen/examples/header.txt
    assert s.type("!cat ~/xmen/examples/header.txt") == HEADER_TXT

    # In [18], [19]: Scaling Up. The CSVs the tutorial reads came from other machines; here from this set.
    csv = s.type('xmen list --csv -v "*"')
    frame = pd.read_csv(io.StringIO(csv), index_col=0)
    for column in ("root", "name", "created", "type", "purpose", "mac", "host", "user", "home", "status", "commit"):
        assert column in frame.columns, column
    assert list(frame["name"]) == ["a=1.0__b=None", "a=1.0__b=cat", "a=2.0__b=None", "a=2.0__b=cat"]
    assert set(frame["status"]) == {"finished"} and set(frame["root"]) == {"set_a"}
    out = s.type('xmen list --csv "*" -p "w_.*" -n "ThereAndBack"')
    assert "No experiments found" in out  # this set has no ThereAndBack experiments: said, not an error
    out = s.type('xmen list --csv "*" -p "a" -n "AnExperiment"')
    frame = pd.read_csv(io.StringIO(out.split("\n\n")[0]), index_col=0)
    assert list(frame.columns) == ["root", "name", "a"] and len(frame) == 4


def test_list_csv_is_plain_csv_every_row_read_without_skipfooter(tmp_path: Path) -> None:
    """A decision, not the tutorial: `xmen list --csv` prints only the table (data on stdout, so `| ...` and
    `> all.csv` give a file any CSV reader takes whole). The tutorial's `pd.read_csv(..., skipfooter=1)` would drop
    the last experiment, so the README tells users of the original xmen to leave `skipfooter` out."""
    s = Session(tmp_path)
    (tmp_path / "script.sh").write_text("#!/bin/bash\ntrue\n")
    (tmp_path / "defaults.yml").write_text("a: 1  # (int) A\n")
    s.type(f"xmen init -s script.sh -d defaults.yml -r {tmp_path / 'set'}")
    s.type(f"xmen register '{{a: 1 | 2 | 3}}' -r {tmp_path / 'set'}")
    proc = subprocess.run(
        [sys.executable, "-m", "xmen.cli", "list", "--csv", "-v", str(tmp_path / "set")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (tmp_path / "all.csv").write_text(proc.stdout)
    frame = pd.read_csv(tmp_path / "all.csv", index_col=0)
    assert sorted(frame["name"]) == ["a=1", "a=2", "a=3"]
    assert "skipfooter" in Path(__file__).parents[2].joinpath("README.md").read_text()


# ------------------------------------------------------------------------------------ the original's examples

HELLO_WORLD = textwrap.dedent('''\
    """Greeting twice over: once as a function, once as a class (the shape of the original's hello world)."""
    import xmen


    @xmen.autodoc
    def hello_world(
        root: xmen.Root,   # given by xmen: the experiment's folder and messages
        a: str = 'Hello',  # the first
        # argument
        b: str = 'World',   # the second argument
    ):
        """Say hello, written as a function."""
        print(f'{a}  {b}')
        with open(root.directory + '/out.txt', 'w') as f:
            f.write(f'{a} {b}')
        root.message({'a': a, 'b': b})


    class HelloWorld(xmen.Experiment):
        """Say hello, written as a class."""
        a: str = 'Hello'  # @p The first argument
        b: str = 'World'  # @p The second argument

        def run(self):
            print(f'{self.a} {self.b}!')
            self.message({'a': self.a, 'b': self.b})


    if __name__ == '__main__':
        from xmen.functional import functional_experiment
        functional_experiment(hello_world)().main()
''')

INHERITANCE = textwrap.dedent('''\
    """Experiments inheriting parameters, used from Python as the original's inheritance example does."""
    import sys
    from typing import List

    from xmen.experiment import Experiment


    class Base(Experiment):
        """The parent."""
        kind = 'cat'   # @p
        size: int = 10  # @p a typed class-body parameter

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.a: str = 'h'  # @p set in __init__


    class Side(Base):
        m: str = 'from Side'  # @p m, first in the MRO of Both


    class Child(Base):
        """The child: more parameters, one overridden by a property."""
        x: List[float] = [3., 2.]  # @p a mutable default, copied per instance
        m: str = 'from Child'  # @p m

        def run(self):
            print(f'status inside run: {self.status}')
            self.message({'total': sum(self.x)})

        @property
        def size(self):
            return 'no longer a parameter'


    class Both(Side, Child):
        pass


    if __name__ == '__main__':
        root = sys.argv[1]
        help(Child)
        exp = Child()
        exp.a = 'hello'
        exp.update({'kind': 'dog'})
        exp.x += [4.]
        assert Child.x == [3., 2.] and Both().m == 'from Side'
        print(exp)
        exp.register(root, 'first', purpose='trying the API')
        try:
            exp.a = 'cat'
        except AttributeError:
            print('Parameters can no longer be changed!')
        exp()
        with exp as e:
            print(f'inside the block: {e.status}')
            e.message({'max': max(e.x)})
        print(exp)
        print(open(exp.directory + '/params.yml').read())
''')

MONITOR_EXAMPLE = textwrap.dedent('''\
    """Checkpoints and messages from a training loop, as the original's monitor documentation describes."""
    import xmen
    from xmen.monitor import Monitor


    class Model:
        def __init__(self):
            self.w = 0.0

        def state_dict(self):
            return {'w': self.w}

        def load_state_dict(self, state):
            self.w = state['w']


    class Train(xmen.Experiment):
        """Fit w to a target, checkpointing every 5 steps (keeping 2) and messaging the loss every epoch."""
        target: float = 3.0  # @p The value to fit
        epochs: int = 4  # @p Epochs

        def run(self):
            model = Model()
            m = Monitor(self, ckpt='^model$@5s', ckpt_keep=2, msg='^loss$@1e', log='^loss$@2e')
            m.load(model=model)
            for _ in m(range(self.epochs)):
                for _ in m(range(5)):
                    model.w += 0.5 * (self.target - model.w)
                    loss = (self.target - model.w) ** 2
            self.message({'w': model.w})


    if __name__ == '__main__':
        Train().main()
''')


def test_the_original_examples_run(tmp_path: Path) -> None:
    s = Session(tmp_path)
    (s.home / "examples").mkdir()
    (s.home / "examples" / "hello_world.py").write_text(HELLO_WORLD)
    (s.home / "examples" / "monitor.py").write_text(MONITOR_EXAMPLE)
    s.cwd = s.home
    out = s.type("python3 examples/hello_world.py --help")
    assert "Say hello, written as a function." in out
    assert "a (str): the first argument (default='Hello')" in out
    s.type("xmen config --disable_prompt")
    out = s.type("xmen config --add examples/hello_world.py")
    assert "Added hello_world, HelloWorld" in out
    s.type("xmen config --add examples/monitor.py")
    for name, sweep in (("hello_world", "{a: Hi | Bye}"), ("HelloWorld", "{b: There}"), ("Train", "{target: 2.0}")):
        s.type(f"mkdir -p ~/sets/{name} && cd ~/sets/{name}")
        s.type(f"xmen init -n {name}")
        s.type(f'xmen register "{sweep}"')
        s.type("xmen run")  # through Snakemake
        csv = pd.read_csv(io.StringIO(s.type("xmen list -s --csv").split("\n\n")[0]), index_col=0)
        assert set(csv["status"]) == {"finished"}, (name, csv)
        s.type("cd ~")
    hello = s.home / "sets" / "hello_world"
    assert (hello / "a=Hi" / "out.txt").read_text().startswith("Hi World")
    train = s.home / "sets" / "Train" / "target=2.0"
    assert sorted(p.name for p in (train / "checkpoints" / "model").iterdir()) == ["15.pkl", "20.pkl"]
    params = (train / "params.yml").read_text()
    assert "epoch: 4" in params and "step: 20" in params and "loss:" in params
    (s.home / "examples" / "inheritance.py").write_text(INHERITANCE)
    out = s.type("python3 examples/inheritance.py ~/an_experiment")
    for expected in ("class Child(Base)", "    x (List[float]): a mutable default, copied per instance (default=[3., 2.])",
                     "Parameters can no longer be changed!", "status inside run: running", "inside the block: running",
                     "  kind: 'dog'", "  x: [3.0, 2.0, 4.0]", "name: first", "purpose: trying the API",
                     "_status: finished", "  total: 9.0", "  max: 4.0", "a: hello"):
        assert any(line.lstrip(" |").startswith(expected.strip()) for line in out.splitlines()), (expected, out)
    assert "size (int)" not in out.split("Method resolution order")[0]
