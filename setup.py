"""Packaging for xmen.

The Snakemake assets live at the top level of the repository (rules/, workflow/, config/) so that people find
them; they are installed inside the package as xmen._assets.* so that a regular (non-editable) install has them.
"""
import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "xmen" / "_version.py").read_text()).group(1)
ASSET_GLOBS = ["*.smk", "Snakefile", "*.yaml", "*.yml", "*.md", "*/*.yaml", "*/*.md"]

setup(
    name="xmen",
    version=VERSION,
    description="An experiment manager for researchers, built on Snakemake",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=[
        "xmen",
        "xmen.store",
        "xmen.define",
        "xmen.slurm",
        "xmen.sets",
        "xmen.run",
        "xmen.look",
        "xmen.host",
        "xmen.cli",
        "xmen.examples",
        "xmen._assets",
        "xmen._assets.rules",
        "xmen._assets.workflow",
        "xmen._assets.config",
    ],
    package_dir={
        "xmen": "xmen",
        "xmen._assets.rules": "rules",
        "xmen._assets.workflow": "workflow",
        "xmen._assets.config": "config",
    },
    package_data={
        "xmen._assets.rules": ASSET_GLOBS,
        "xmen._assets.workflow": ASSET_GLOBS,
        "xmen._assets.config": ASSET_GLOBS,
    },
    install_requires=[
        # xmen.host patches internals of these: the versions the patches were written against and CI tests
        # (xmen.host.versions refuses others in one line; keep both in step).
        "snakemake>=9.27,<10",
        "snakemake-executor-plugin-slurm>=2.8,<2.9",
        "snakemake-executor-plugin-slurm-jobstep>=0.6,<1",
        "pyyaml>=6",
        "pandas>=2",
        "click>=8.1",
    ],
    extras_require={
        # xmen plot and the plots of xmen report; the tests use them too.
        "plot": ["matplotlib>=3.7"],
        "test": ["pytest>=8", "pytest-timeout>=2.3", "matplotlib>=3.7", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["xmen = xmen.cli:entry_point"]},
)
