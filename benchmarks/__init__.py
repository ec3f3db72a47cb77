"""Benchmarks run by `make bench`; instructors' tools, never imported by the lessons."""
