# xmen: the one wildcard rule that runs experiments, its Python side (the rule is in xmen_rule.smk). Do not edit.
#
# Experiments come from each set's experiment.yml (the single source of truth). What the default target asks for,
# the rule's input, threads, resources and the job itself are decided in xmen.snakemake_glue and xmen.planner
# (the planner `xmen run` uses too); this file only wires them to the names the rule below uses.
try:
    from xmen.snakemake_glue import XmenWorkflow as _XmenWorkflow
except ImportError:  # a snakemake installed apart from xmen: use the xmen that generated this Snakefile
    import os as _xmen_os
    import sys as _xmen_sys

    try:  # written by xmen register (and every command that regenerates this Snakefile)
        with open(_xmen_os.path.join(workflow.basedir, ".xmen", "xmen-path"), encoding="utf-8") as _xmen_handle:
            _xmen_sys.path.append(_xmen_handle.read().strip())
    except OSError:
        raise ImportError("xmen is not installed where this snakemake runs; install it there or use xmen run")
    from xmen.snakemake_glue import XmenWorkflow as _XmenWorkflow

_xmen = _XmenWorkflow(workflow, config)
xmen_add_set = _xmen.add_set
# The rule's run block calls this name: its text is what Snakemake's "code changed" check compares.
xmen_run_experiment = _xmen.run_experiment
