"""``heavy tools``: the registered tools, and what the python sandbox isolates on this machine."""

from __future__ import annotations

import click

from . import run_guarded


@click.command()
@click.option("--sandbox", "show_sandbox", is_flag=True,
              help="Run a trivial program in the python sandbox and print what this machine let it isolate.")
def tools(show_sandbox: bool) -> None:
    """List the registered tools (one per line: name, then what it does); opt in with `heavy ask --tools`."""

    def go() -> None:
        if show_sandbox:
            import asyncio

            from ..tools.sandbox import run_python

            r = asyncio.run(run_python("pass"))
            iso = r.isolation
            click.echo(f"sandbox: {iso.summary()}")
            click.echo(f"network: {iso.network}")
            click.echo(f"pid namespace: {'yes' if iso.pid_namespace else 'no'}; /proc: {iso.proc}")
            click.echo(f"hidden: {', '.join(iso.hidden) or 'nothing'}")
            click.echo(f"RLIMIT_NPROC: {iso.nproc}")
            for note in iso.notes:
                click.echo(f"note: {note}")
            return
        from ..tools import load_tool, registered_tools

        for name, ep in registered_tools().items():
            try:
                summary = load_tool(name).description.split(". ")[0].rstrip(".") + "."
            except Exception as exc:  # a broken third-party plugin must not hide the others
                summary = f"(cannot load {ep.value}: {type(exc).__name__})"
            click.echo(f"{name}\t{summary}")

    run_guarded(go)
