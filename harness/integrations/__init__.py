"""Bridges to other tools (pytest-benchmark)."""
