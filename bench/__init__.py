"""Benchmarks (not tests): each measures a baseline in the same run and prints the ratio."""
