"""The version of xmen (read by setup.py; recorded with every run)."""
__version__ = "0.1.0"
