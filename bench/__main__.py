"""`python -m bench`: the same as the `bench` console script."""

from bench.cli import main

main()
