"""Reading stored runs: leaderboards, the frontier, plots, experiment reports; shortcut floors and answer scoring."""
