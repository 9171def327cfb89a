"""Measuring: the scenario contract, the runner (counters pass, interleaved timed rounds, worker
processes), deterministic counters, statistics, and the load generators for HTTP scenarios."""
