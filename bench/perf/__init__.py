"""Speed measurements behind `bench perf ...` (data generation, training steps, thinking steps)."""
