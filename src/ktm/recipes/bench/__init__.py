"""Benchmarks (measurements, not tests): prefill speed and training throughput."""
