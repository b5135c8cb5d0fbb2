"""The harness: CLI (cli/), one run's lifecycle (run/), sweeps (sweep/), reading results (analysis/), speed (perf/)."""
