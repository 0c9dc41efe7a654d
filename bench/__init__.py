"""Benchmarks of Stage Bridge against the real server process."""
