"""The harness: CLI, train/eval loop, results store, sweeps, leaderboards, plots."""
