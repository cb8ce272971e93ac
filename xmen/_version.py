"""The version of xmen (read by setup.py; recorded with every run) and where it is installed."""
import os

__version__ = "0.1.0"


def import_path() -> str:
    """The folder ``import xmen`` found this xmen in (what a snakemake or a SLURM job from another environment puts
    on ``sys.path``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
