"""The `bench` command. Each group of commands lives in its own module and registers on `app`."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="bench",
    help="thinkbench: can transformers that think solve serially hard problems? One command per experiment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
perf_app = typer.Typer(help="Speed benchmarks: data generation, training steps.", no_args_is_help=True)
app.add_typer(perf_app, name="perf")


def _register_commands() -> None:
    # Importing a command module attaches its commands to `app` (or `perf_app`).
    import importlib
    import pkgutil

    import bench

    for module in pkgutil.iter_modules(bench.__path__):
        if module.name.startswith("commands_"):
            importlib.import_module(f"bench.{module.name}")


_register_commands()

if __name__ == "__main__":
    app()
