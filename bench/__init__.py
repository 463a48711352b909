"""Benchmarks; a package so that tests can `from bench.tabular_data import mixed`."""
