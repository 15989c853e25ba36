"""Side-by-side benchmarks (`make bench`): coldtrail against peers and physical limits."""
