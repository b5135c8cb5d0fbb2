"""The `bench` command. Each group of commands lives in its own module (bench/cli/commands_*.py) and
registers on `app`; the command modules only parse options and show results, the work is done in
bench.run, bench.sweep, bench.analysis and bench.perf."""

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

    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("commands_"):
            importlib.import_module(f"{__name__}.{module.name}")


_register_commands()


def main() -> None:
    """The console script: like `app()`, but a usage error (an unknown option, a value of the wrong
    type) is one line on stderr with exit code 2 instead of click's multi-line box."""
    import sys

    try:  # typer >= 0.24 vendors click; older versions use the click package itself
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions as click_errors  # type: ignore[no-redef]

    try:
        result = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()  # `bench` alone, or a group alone: the help is the answer
        raise SystemExit(0) from None
    except click_errors.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        print(f"error: {exc.format_message()}{where}", file=sys.stderr)
        raise SystemExit(2) from None
    except typer.Abort:  # Ctrl-C at a prompt
        print("aborted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
