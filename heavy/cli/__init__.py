"""The ``heavy`` command line: a thin shell over the library API.

Subcommands are imported only when invoked, so ``heavy --help`` stays fast and imports neither rich's
live view nor any strategy.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

__all__ = ["main", "cli"]

# name -> (module, attribute, one-line help). Help text lives here so listing commands imports nothing.
_COMMANDS = {
    "ask": ("heavy.cli.ask", "ask", "Ask a question: sample N hypotheses in parallel and print one answer."),
    "config": ("heavy.cli.misc", "config",
               "Print the effective configuration (keys masked) and where each run option comes from."),
    "eval": ("heavy.cli.eval", "eval_command", "Score strategies on a JSONL dataset (resumable; record/replay pools)."),
    "strategies": ("heavy.cli.misc", "strategies", "List the registered strategies, one per line."),
    "tune": ("heavy.cli.tune", "tune_command",
             "Choose the strategy on your own data: every configuration replayed on one pool, checked on a held-out half."),
    "tools": ("heavy.cli.tools", "tools", "List the registered tools (opt-in with `heavy ask --tools`); --sandbox: what it isolates here."),
    "sim": ("heavy.cli.misc", "sim", "Serve the simulated LLM (OpenAI-compatible) on 127.0.0.1."),
    "serve": ("heavy.cli.serve", "serve", "Serve Heavy as an OpenAI-compatible API (/v1/chat/completions) on 127.0.0.1."),
    "mcp": ("heavy.cli.mcp", "mcp", "Serve Heavy as an MCP server (tools ask and strategies) on stdio or HTTP."),
    "local": ("heavy.cli.local", "local",
              "Set up, start and stop heavy's local model server (a real small LLM on this CPU)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attr, _ = _COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="heavy", prog_name="heavy")
def cli() -> None:
    """heavy: Heavy-style parallel test-time compute for any LLM API.

    Samples several hypotheses in parallel, then a strategy (vote, judge, synthesize, ...) decides one
    answer. Only the answer goes to stdout; progress goes to stderr.
    """


def fail(message: str) -> None:
    """Print one clear line on stderr and exit 1 (the shells' way to report bad input)."""
    click.echo(f"heavy: error: {message}", err=True)
    sys.exit(1)


def run_guarded(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call *fn*; turn heavy's errors (and stray exceptions) into one line on stderr and exit 1.

    ``HEAVY_DEBUG=1`` re-raises so the traceback shows.
    """
    from ..errors import HeavyError, redact

    try:
        return fn(*args, **kwargs)
    except KeyboardInterrupt:
        click.echo("heavy: interrupted", err=True)
        sys.exit(130)
    except (HeavyError, ValueError) as exc:
        if os.environ.get("HEAVY_DEBUG"):
            raise
        fail(redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)
    except Exception as exc:  # never a traceback for users; HEAVY_DEBUG=1 shows it
        if os.environ.get("HEAVY_DEBUG"):
            raise
        fail(f"unexpected {type(exc).__name__}: {redact(str(exc))} (HEAVY_DEBUG=1 shows the traceback)")


def main() -> None:
    """Entry point of the ``heavy`` script: usage errors exit 1 with one line, like every other bad input."""
    try:
        cli.main(prog_name="heavy", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("heavy: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
        click.echo(f"heavy: error: {exc.format_message()}{hint}", err=True)
        sys.exit(1)
    except SystemExit:
        raise
