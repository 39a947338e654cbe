"""Benchmarks and the synthetic traffic generator (not part of the installed package)."""
