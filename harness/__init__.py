"""Perf Lab harness: the engine behind the `labs` command."""
