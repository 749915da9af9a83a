"""Measurements of the encoders: throughput benchmarks against peer implementations."""
