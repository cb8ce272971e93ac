"""The original public path of the Experiment class: ``from xmen.experiment import Experiment,
experiment_parser``, and ``python -m xmen.experiment SCRIPT.py:ClassName`` (written in the run.sh of classes that
are not their script's ``__main__``). The class lives in xmen.define.experiment, its loading in xmen.define.loading.
"""
import sys

from xmen.define.argv import experiment_parser
from xmen.define.experiment import (DEFAULTS_FILE, OUT_FILE, PARAMS_FILE, SCRIPT_FILE, Experiment, TypedMeta,
                                    defaults_dict, params_comments, params_table)
from xmen.define.loading import find_experiment_classes, load_class, main

__all__ = [
    "DEFAULTS_FILE", "Experiment", "OUT_FILE", "PARAMS_FILE", "SCRIPT_FILE", "TypedMeta", "defaults_dict",
    "experiment_parser", "find_experiment_classes", "load_class", "params_comments", "params_table",
]

if __name__ == "__main__":
    sys.exit(main())
