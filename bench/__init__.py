"""The benchmark: `make bench` (docs/benchmarks.md)."""
