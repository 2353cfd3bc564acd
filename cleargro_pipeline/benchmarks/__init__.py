"""Benchmarks that drive the real Dagster stack: tenants through the instance's queue, a daemon,
the production run launcher (`instance`), and the fleet benchmark built on it (`fleet`)."""
