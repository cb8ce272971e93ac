"""Example experiments: the tutorial experiment."""
