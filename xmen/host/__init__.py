"""The host adapter: the only package that touches Snakemake's or the SLURM plugin's internals."""
