"""The host adapter: the only package that touches Snakemake's or the SLURM executor plugin's internals.

- ``glue``: what the shipped Snakefiles call (XmenWorkflow; ``xmen.snakemake_glue`` is its old path).
- ``patches``: every change to the hosts' internals, by name, checked before any is applied.
- ``versions``: the versions those changes were written against (setup.py pins them), and the one-line refusal.
- ``snakemake_run``: which executor Snakemake runs with, and whether a DAG is a run's.
- ``plugin``: the SLURM plugin in a run: its patches installed, or refused.
- ``jobs``, ``slurm_status``, ``slurm_submit``, ``poll``: the patches themselves.
"""
