"""Talking to SLURM: its queue (squeue), its verdicts (sacct) and its partitions (sinfo)."""
