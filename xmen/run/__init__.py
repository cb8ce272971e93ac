"""Deciding and running: the planner, the one run lifecycle (runner), xmen's rule job, xmen run, cancel."""
