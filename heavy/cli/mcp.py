"""``heavy mcp``: Heavy as an MCP server for agents, on stdio or streamable HTTP (needs ``heavy[mcp]``)."""

from __future__ import annotations

import os
from typing import Any

import click

from ..settings import SERVE
from . import fail, run_guarded
from .flags import operator_flags, run_flags
from .serve import remote_flags, remote_settings


@click.command()
@click.option("--http", "use_http", is_flag=True,
              help="Serve streamable HTTP (at /mcp) instead of stdio.")
@click.option("--host", default=None, help="Address to bind with --http [default: 127.0.0.1]. Anything but "
                                           "loopback requires --api-key.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port with --http [default: 8001].")
@run_flags(SERVE)
@operator_flags("call")
@remote_flags("call")
def mcp(use_http: bool, host: str | None, port: int | None, api_key: str | None, max_n: int,
        option_limits: tuple[str, ...], log_level: str, allow_origins: tuple[str, ...], allow_models: tuple[str, ...],
        max_body_bytes: int, max_concurrent_per_client: int, header_timeout: float, body_timeout: float,
        **flags: Any) -> None:
    """Serve Heavy as an MCP server: tools `ask` (parallel hypotheses, a strategy decides, the answer first
    and then why) and `strategies`.

    On stdio by default (an MCP client starts `heavy mcp -m PROVIDER:MODEL`); `--http --port P` serves
    streamable HTTP on 127.0.0.1:P instead. Run options come from the config file's [defaults],
    HEAVY_<OPTION> variables and these flags; upstream keys from this process's environment, as for
    `heavy ask`. Code runs on this machine only if the operator enables it: strategies such as `execute`
    need `--tools python`; a call names only the configured models (and those of --allow-model). Over HTTP
    without --api-key, on loopback, no web page can call it (Host, Origin and Content-Type are checked;
    --allow-origin for a web client); the body limits and --max-concurrent are `heavy serve`'s.
    """

    def go() -> None:
        from ..errors import ConfigError

        try:
            import mcp.server  # noqa: F401
        except ImportError:
            raise ConfigError("heavy mcp needs the mcp extra: pip install 'heavy[mcp]'") from None
        if not use_http and (host or port or allow_origins):
            given = "--allow-origin is" if allow_origins and not (host or port) else "--host and --port are"
            fail(f"{given} for HTTP: add --http (on stdio the client starts this process)")
        address = host or "127.0.0.1"
        from ..remote.guard import RemoteSettings, url_host
        from ..remote.listener import is_loopback, listen
        from ..remote.policy import parse_limits

        if use_http and not is_loopback(address) and not api_key:
            fail(f"binding {address} exposes the server beyond this machine: give --api-key (or HEAVY_SERVER_KEY)")
        try:
            limits = parse_limits(list(option_limits))
        except ValueError as exc:
            fail(f"invalid server setting: {exc}")
        settings = remote_settings(RemoteSettings, api_key, max_body_bytes=max_body_bytes,
                                   max_concurrent_per_client=max_concurrent_per_client, header_timeout=header_timeout,
                                   body_timeout=body_timeout, allow_origins=allow_origins, allow_models=allow_models)
        from ..config import run_settings
        from ..mcp_server import DEFAULT_PORT, HeavyTools, run_http, run_stdio

        _log_to_stderr(log_level)
        at = port or DEFAULT_PORT
        sock = listen(address, at) if use_http else None  # a busy port: one line, before anything else
        try:
            tools = HeavyTools(run_settings(flags), max_n=max_n, option_limits=limits,
                               allow_models=settings.allow_models)
        except BaseException:
            if sock is not None:
                sock.close()
            raise
        models = ", ".join(tools.defaults.model)
        if not use_http:
            click.echo(f"heavy mcp: MCP server on stdio (pid {os.getpid()}); ask samples {models}", err=True)
            import anyio

            anyio.run(run_stdio, tools)
            return
        auth = "clients need the bearer key" if api_key else "no client key: loopback only, no web pages"
        click.echo(f"heavy mcp: MCP server on http://{url_host(address)}:{at}/mcp ({auth}); ask samples {models}",
                   err=True)
        run_http(tools, address, at, sock=sock, log_level=log_level, settings=settings)

    run_guarded(go)


def _log_to_stderr(level: str) -> None:
    """heavy mcp's own lines on stderr at *level*; other libraries' at warning and above (stdout is the protocol's)."""
    import logging
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("heavy mcp: %(message)s"))
    logger = logging.getLogger("heavy.mcp")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    chosen = getattr(logging, level.upper())
    logging.basicConfig(level=chosen if chosen == logging.DEBUG else max(logging.WARNING, chosen), stream=sys.stderr)
