"""Sweep files, search spaces, algorithms, schedulers, the runner, results and the `hpo` CLI."""
