"""Benchmarks: measure the engine and dashboard from outside, each against a baseline in the same run."""
