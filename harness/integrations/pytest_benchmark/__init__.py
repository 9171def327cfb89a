"""Run the lab's verified scenarios under pytest-benchmark: `pytest --pyargs harness.integrations.pytest_benchmark`."""
