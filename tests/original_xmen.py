"""Files as the original xmen (robw4/xmen) wrote them, for the tests of reading and migrating its sets.

Each layout follows the original's writers, not a guess:

- experiment.yml: ``ExperimentManager._to_yml`` dumps the manager's public attributes in their ``__init__``
  order (root, defaults, script, experiments, overides, created, purpose, notes, type) with ruamel's
  RoundTripDumper; every path absolute; ``initialise`` sets ``defaults``/``script`` to ``{root}/defaults.yml`` and
  ``{root}/script.sh``; ``register`` appends ``{root}/{name}`` to ``experiments`` and the overrides to ``overides``.
- params.yml of 2020 (the tutorial's version): the defaults (less ``_created``/``_version``/``_meta``) with
  ``_root`` (the set's root), ``_name``, ``_status``, ``_created``, ``_purpose``, ``_messages``, ``_version`` and
  ``_meta`` inserted first, each with its ``#  help`` comment.
- params.yml of 2021: ``_root`` (the experiment's folder), ``_status``, ``_purpose``, ``_notes``, ``_user``,
  ``_host``, ``_timestamps``, ``_messages``, ``_version``, ``_meta`` first.
- run.sh: ``#!/bin/bash``, the configured header, then ``/bin/bash {script} {exp}/params.yml`` (2020) or
  ``exec /bin/bash ...`` followed by ``echo EXPERIMENT FINISHED!`` (2021).
- ~/.xmen/config.yml (``GlobalExperimentManager._to_yml``): python_experiments, python_paths,
  prompt_for_message, (2021: save_conda, redirect_stdout, requeue,) experiments (root -> created/type/purpose/
  notes), meta, header (2021: host, port).
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = """_created: 2020-03-09-16-42-13  #  The date the experiment was created (default=now_time)
_version: #  Experiment version information. See `get_version` (default=None)
  path: /home/robweston/xmen/examples/script.sh
_meta: #  The global configuration for the experiment manager (default=None)
  mac: '0x6c96cfdb71b9'
  host: dhcp45.robots.ox.ac.uk
  user: robweston
  home: /home/robweston
a: h #  A parameter (default='h')
b: 17 #  Another parameter (default=17)
"""

# A shell experiment: it records, beside the params.yml it is given, that it ran (and with which a).
SCRIPT = """#!/bin/bash
echo "contents of params.yml file ${1}"
grep '^a:' "${1}" > "$(dirname "${1}")/ran.txt"
"""

META = """  mac: '0x6c96cfdb71b9'
  host: dhcp45.robots.ox.ac.uk
  user: robweston
  home: /home/robweston
"""

# name -> (a, b) as register "{a: 1.0 | 2.0, b: None | cat}" made them
EXPERIMENTS = {"a=1.0__b=None": ("1.0", "None"), "a=1.0__b=cat": ("1.0", "cat"), "a=2.0__b=None": ("2.0", "None"),
               "a=2.0__b=cat": ("2.0", "cat")}


def _value(text: str) -> str:
    return f" {text}" if text else ""


def params_2020(root: str, name: str, a: str, b: str) -> str:
    return (
        f"_root: {root} #  The root directory of the experiment (default=None)\n"
        f"_name: {name} #  The name of the experiment (under root) (default=None)\n"
        "_status: registered #  One of ['default' | 'created' | 'running' | 'error' | 'finished'] (default='default')\n"
        "_created: 2020-03-09-16-42-25 #  The date the experiment was created (default=None)\n"
        "_purpose: '' #  A description of the experiment purpose (default=None)\n"
        "_messages: {} #  Messages left by the experiment (default={})\n"
        "_version: #  Experiment version information. See `get_version` (default=None)\n"
        "  path: /home/robweston/xmen/examples/script.sh\n"
        "_meta: #  The global configuration for the experiment manager (default=None)\n"
        f"{META}"
        f"a:{_value(a)} #  A parameter (default='h')\n"
        f"b:{_value(b)} #  Another parameter (default=17)\n"
    )


def params_2021(root: str, name: str, a: str, b: str) -> str:
    return (
        f"_root: {root}/{name} #  The root directory of the experiment\n"
        "_status: registered #  One of ['default' | 'created' | 'running' | 'error' | 'finished']\n"
        "_purpose: '' #  A description of the experiment purpose\n"
        "_notes: #  Notes attached to the experiment\n"
        "_user: robweston #  The user of the experiment\n"
        "_host: dhcp45.robots.ox.ac.uk #  The name of the default host\n"
        "_timestamps: #  timestamps attached to the experiment\n"
        "  created: 02:01PM March 03, 2021\n"
        "  start:\n"
        "  stopped:\n"
        "  last:\n"
        "  registered: 02:01PM March 03, 2021\n"
        "_messages: {} #  Messages left by the experiment\n"
        "_version: #  Experiment version information. See `get_version`\n"
        "  path: /home/robweston/xmen/examples/script.sh\n"
        "_meta: #  The global configuration for the experiment manager\n"
        f"{META}"
        f"a:{_value(a)} #  A parameter (default='h')\n"
        f"b:{_value(b)} #  Another parameter (default=17)\n"
    )


def experiment_yml(root: str, names: list[str]) -> str:
    overides = "".join(
        f"- a: {EXPERIMENTS[n][0]}\n  b:{_value(EXPERIMENTS[n][1])}\n" for n in names
    )
    return (
        f"root: {root}\n"
        f"defaults: {root}/defaults.yml\n"
        f"script: {root}/script.sh\n"
        "experiments:\n" + "".join(f"- {root}/{n}\n" for n in names) +
        "overides:\n" + overides +
        "created: 2020-03-09-16-42-13\n"
        "purpose: A test of the original\n"
        "notes:\n"
        "- A test of the xmen experiment suite\n"
        "type:\n"
    )


def run_sh(root: str, name: str, version: int, header: str = "") -> str:
    command = f"/bin/bash {root}/script.sh {root}/{name}/params.yml"
    if version == 2020:
        return f"#!/bin/bash\n{header}\n{command}"
    return "\n".join([f"#!/bin/bash\n{header}", f"exec {command}", "echo EXPERIMENT FINISHED!"])


def make_original_set(root: Path, version: int = 2020, names: list[str] | None = None, header: str = "") -> Path:
    """An original-format set of the tutorial's four experiments at ``root`` (its absolute paths name ``root``)."""
    names = list(EXPERIMENTS) if names is None else names
    root.mkdir(parents=True)
    text_root = str(root)
    (root / "defaults.yml").write_text(DEFAULTS)
    (root / "script.sh").write_text(SCRIPT)
    os.chmod(root / "script.sh", 0o755)
    (root / "experiment.yml").write_text(experiment_yml(text_root, names))
    params = params_2020 if version == 2020 else params_2021
    for name in names:
        folder = root / name
        folder.mkdir()
        a, b = EXPERIMENTS[name]
        (folder / "params.yml").write_text(params(text_root, name, a, b))
        (folder / "run.sh").write_text(run_sh(text_root, name, version, header))
    return root


def original_config(module: str, sets: list[str], prompt: bool = False, header: str = "") -> str:
    """~/.xmen/config.yml as the original's ``GlobalExperimentManager._to_yml`` (2021 keys) wrote it."""
    experiments = "".join(
        f"  {s}:\n    created: 2020-03-09-16-42-13\n    type: AnExperiment\n    purpose: ''\n    notes: []\n"
        for s in sets
    )
    header_text = f"header: '{header}'\n" if header else "header: ''\n"
    return (
        "python_experiments:\n"
        f"  AnExperiment: {module}\n"
        "python_paths:\n"
        f"- {os.path.dirname(module)}\n"
        f"prompt_for_message: {'true' if prompt else 'false'}\n"
        "save_conda: true\n"
        "redirect_stdout: true\n"
        "requeue: true\n"
        "experiments:\n" + experiments +
        "meta:\n" + META + header_text +
        "host: dhcp45.robots.ox.ac.uk\n"
        "port: 2030\n"
    )


def mark_finished(root: Path, names: list[str]) -> None:
    """Record ``names`` as finished, as the original's run did (``_status: finished``; it kept no status file)."""
    for name in names:
        params = root / name / "params.yml"
        params.write_text(params.read_text().replace("_status: registered", "_status: finished", 1))


def tree_bytes(top: Path) -> dict[str, bytes]:
    """Every file under ``top`` with its bytes (folders with b""), to show that a command wrote nothing."""
    found: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(top):
        for name in names + dirs:
            path = Path(folder, name)
            found[os.path.relpath(path, top)] = b"" if path.is_dir() else path.read_bytes()
    return found


# A 2021 module of a Python class: what `xmen python --add pkg.exps AnExperiment` registered and `xmen init -n` used.
CLASS_MODULE = '''import os

from xmen.experiment import Experiment


class AnExperiment(Experiment):
    def __init__(self):
        """A basic python experiment."""
        super(AnExperiment, self).__init__()
        self.a = 'h'  # @p A parameter
        self.b = 17  # @p Another parameter

    def run(self):
        with open(os.path.join(self.directory, 'ran.txt'), 'w') as out:
            out.write(f'a: {self.a}')
'''


def launcher(code: str, module: str = "pkg.exps", name: str = "AnExperiment") -> str:
    """The run script the original generated for a class (``xmen.utils.get_run_script``)."""
    return "\n".join([
        "#!/usr/bin/env python3", "# File generated on the 02:01PM March 03, 2021",
        "import sys", "import importlib", "import xmen", f'sys.path.append("{code}")', "import logging",
        "logger = logging.getLogger()", "logger.setLevel(logging.INFO)", "",
        f'mod = importlib.import_module("{module}")', f'X = getattr(mod, "{name}")',
        "if type(X) is not xmen.utils.TypedMeta:", "    from xmen.functional import functional_experiment",
        "    X = functional_experiment(X)", "X().main()",
    ])


def make_original_class_set(root: Path, code: Path, names: list[str] | None = None) -> Path:
    """A 2021 set of the Python class in ``code/pkg/exps.py``, as ``xmen init -n AnExperiment`` and ``xmen link``
    made it: script.sh execs the launcher ``Experiment.to_root`` wrote into the set's folder, by its absolute path."""
    (code / "pkg").mkdir(parents=True)
    (code / "pkg" / "__init__.py").write_text("")
    (code / "pkg" / "exps.py").write_text(CLASS_MODULE)
    make_original_set(root, 2021, names)
    launcher_path = root / "pkg.exps.AnExperiment"
    launcher_path.write_text(launcher(str(code)))
    os.chmod(launcher_path, 0o755)
    (root / "script.sh").write_text(f"#!/bin/bash\nexec {launcher_path} --execute ${{1}}")
    text = (root / "experiment.yml").read_text()
    (root / "experiment.yml").write_text(text.replace("type:\n", "type: AnExperiment\n"))
    return root


def original_xmen_yml(launcher_path: str, linked: list[str], prompt: bool = False, header: str = "") -> str:
    """$XMEN/xmen.yml as the original's 2021 ``Config.to_yml`` wrote it (ruamel's dump of its ``__dict__``)."""
    return (
        "server_host: xmen.rob-otics.co.uk\nserver_port: 8000\nuser: robweston\npassword: hunter2\n"
        "local_host: dhcp45.robots.ox.ac.uk\nlocal_user: robweston\n"
        f"prompt: {'true' if prompt else 'false'}\nsave_conda: true\nredirect_stdout: true\nrequeue: true\n"
        f"header: '{header}'\n"
        f"python_experiments:\n  AnExperiment: {launcher_path}\n"
        "linked:\n" + "".join(f"- {path}\n" for path in linked) +
        "_dir: /home/robweston/.xmen\n"
    )
