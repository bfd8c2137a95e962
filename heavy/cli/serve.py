"""``heavy serve``: an OpenAI-compatible Heavy endpoint (needs ``heavy[serve]``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from .. import constants as C
from ..settings import SERVE
from . import fail, run_guarded
from .flags import operator_flags, run_flags


def remote_flags(caller: str) -> Callable[[Any], Any]:
    """The flags every shell serving remote callers over HTTP shares (`heavy serve`, `heavy mcp --http`): body
    size and time, the per-client limit, and the web origins and models a *caller* may use."""
    flags = [
        click.option("--allow-origin", "allow_origins", multiple=True, metavar="URL",
                     help="A web page origin (scheme://host[:port]) allowed to call the server, beside loopback "
                          "pages (e.g. a local web UI); repeatable. Any other Origin gets 403."),
        click.option("--allow-model", "allow_models", multiple=True, metavar="PATTERN",
                     help=f"Models a {caller} may name (fnmatch, e.g. 'openai:*'), beside the configured ones "
                          "(-m, --aggregator-model, [defaults]); repeatable. Any other is refused; '*' allows all."),
        click.option("--max-body-bytes", type=click.IntRange(min=1024), default=C.SERVE_MAX_BODY_BYTES,
                     show_default=True, help="Largest request body accepted (413 beyond)."),
        click.option("--max-concurrent", "max_concurrent_per_client", type=click.IntRange(min=1),
                     default=C.SERVE_MAX_CONCURRENT_PER_CLIENT, show_default=True,
                     help="Requests in flight per client address (429 beyond)."),
        click.option("--header-timeout", type=click.FloatRange(min=0, min_open=True),
                     default=C.SERVE_HEADER_TIMEOUT_S, show_default=True,
                     help="Seconds a client has to send a request's headers (408 and closed beyond)."),
        click.option("--body-timeout", type=click.FloatRange(min=0, min_open=True), default=C.SERVE_BODY_TIMEOUT_S,
                     show_default=True, help="Seconds a client has to send a request's body (408 beyond)."),
    ]

    def decorate(fn: Any) -> Any:
        for flag in reversed(flags):
            fn = flag(fn)
        return fn

    return decorate


def remote_settings(cls: type, api_key: str | None, **values: Any) -> Any:
    """*cls* (a :class:`heavy.remote.guard.RemoteSettings`) of the flags; a bad value is one line and exit 1."""
    try:
        return cls(api_key=api_key or None, **{k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
    except ValueError as exc:
        from ..errors import describe_validation

        fail(f"invalid server setting: {describe_validation(exc)}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback requires --api-key.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@run_flags(SERVE)
@operator_flags("request")
@remote_flags("request")
@click.option("--max-tools", type=click.IntRange(min=1), default=C.SERVE_MAX_TOOLS, show_default=True,
              help="Most tools one request may offer (400 beyond; OpenAI accepts 128).")
def serve(host: str, port: int, api_key: str | None, max_n: int, option_limits: tuple[str, ...], log_level: str,
          max_tools: int, allow_origins: tuple[str, ...], allow_models: tuple[str, ...], max_body_bytes: int,
          max_concurrent_per_client: int, header_timeout: float, body_timeout: float, **flags: Any) -> None:
    """Serve Heavy as an OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models, GET /health.

    Model names: `heavy` (these defaults, over the config file and HEAVY_<OPTION> variables),
    `heavy/<strategy>`, `heavy/<strategy>/<provider:model>`.
    Upstream endpoints and keys come from this process's environment (OPENAI_API_KEY, OPENAI_BASE_URL, …),
    exactly as for `heavy ask`; clients never send or see them, and name only the configured models (and
    those of --allow-model). Code runs on this machine only if the operator enables it: strategies such as
    `execute` need `--tools python`. Without --api-key, on loopback, no web page can call it (Host, Origin and
    Content-Type are checked; --allow-origin for a local web UI).
    """

    def go() -> None:
        from ..serve import is_loopback, listen, require_server_deps

        require_server_deps("heavy serve")
        from ..serve import create_app
        from ..config import run_settings
        from ..serve import serve as run_server
        from ..remote.guard import url_host

        if not is_loopback(host) and not api_key:
            fail(f"binding {host} exposes the server beyond this machine: give --api-key (or HEAVY_SERVER_KEY)")
        from ..serve.app import ServeSettings

        settings = remote_settings(ServeSettings, api_key, max_body_bytes=max_body_bytes,
                                   max_concurrent_per_client=max_concurrent_per_client, max_n=max_n,
                                   option_limits=list(option_limits), header_timeout=header_timeout,
                                   body_timeout=body_timeout, max_tools=max_tools, allow_origins=allow_origins,
                                   allow_models=allow_models)
        from ..remote.errors import APIError

        sock = listen(host, port)  # first: a busy port is one line before anything else happens
        try:
            app = create_app(run_settings(flags), settings=settings)
        except APIError as exc:  # the defaults do not make a valid run (e.g. an unknown strategy)
            sock.close()
            fail(exc.message)
        except BaseException:
            sock.close()
            raise
        server = app.state.heavy
        shown = ", ".join(server.planner.default_models)
        auth = "clients need the bearer key" if api_key else "no client key: loopback only, no web pages"
        click.echo(f"heavy serve: OpenAI-compatible Heavy on http://{url_host(host)}:{port}/v1 ({auth}); "
                   f"model `heavy` samples {shown}", err=True)
        run_server(app, host=host, port=port, log_level=log_level, sock=sock)

    run_guarded(go)
