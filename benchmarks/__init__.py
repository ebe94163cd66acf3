"""Throughput and allreduce benchmarks, the communication cost model, and the scaling report."""
