"""Experiment sets on disk: the ExperimentSet verbs, the generated Snakefile and run.sh, sync."""
