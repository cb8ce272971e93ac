"""Snakemake assets of xmen (package data; see xmen._assets)."""
