"""``heavy serve``: an OpenAI-compatible Heavy endpoint (needs ``heavy[serve]``)."""

from __future__ import annotations

from typing import Any

import click

from .. import constants as C
from ..settings import SERVE
from . import fail, run_guarded
from .flags import operator_flags, run_flags


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback requires --api-key.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@run_flags(SERVE)
@operator_flags("request")
@click.option("--max-body-bytes", type=int, default=4 * 1024 * 1024, show_default=True,
              help="Largest request body accepted (413 beyond).")
@click.option("--max-concurrent", "max_concurrent_per_client", type=int, default=32, show_default=True,
              help="Requests in flight per client address (429 beyond).")
@click.option("--header-timeout", type=float, default=C.SERVE_HEADER_TIMEOUT_S, show_default=True,
              help="Seconds a client has to send a request's headers (408 and closed beyond).")
@click.option("--body-timeout", type=float, default=C.SERVE_BODY_TIMEOUT_S, show_default=True,
              help="Seconds a client has to send a request's body (408 beyond).")
def serve(host: str, port: int, api_key: str | None, max_body_bytes: int, max_concurrent_per_client: int,
          max_n: int, option_limits: tuple[str, ...], header_timeout: float, body_timeout: float, log_level: str,
          **flags: Any) -> None:
    """Serve Heavy as an OpenAI-compatible API: POST /v1/chat/completions, GET /v1/models, GET /health.

    Model names: `heavy` (these defaults, over the config file and HEAVY_<OPTION> variables),
    `heavy/<strategy>`, `heavy/<strategy>/<provider:model>`.
    Upstream endpoints and keys come from this process's environment (OPENAI_API_KEY, OPENAI_BASE_URL, …),
    exactly as for `heavy ask`; clients never send or see them. Code runs on this machine only if the
    operator enables it: strategies such as `execute` need `--tools python`.
    """

    def go() -> None:
        from ..serve import is_loopback, listen, require_server_deps

        require_server_deps("heavy serve")
        from ..serve import create_app
        from ..config import run_settings
        from ..serve import serve as run_server

        if not is_loopback(host) and not api_key:
            fail(f"binding {host} exposes the server beyond this machine: give --api-key (or HEAVY_SERVER_KEY)")
        from ..serve.app import ServeSettings

        try:
            settings = ServeSettings(api_key=api_key or None, max_body_bytes=max_body_bytes,
                                     max_concurrent_per_client=max_concurrent_per_client, max_n=max_n,
                                     option_limits=list(option_limits), header_timeout=header_timeout,
                                     body_timeout=body_timeout)
        except ValueError as exc:
            from ..errors import describe_validation

            fail(f"invalid server setting: {describe_validation(exc)}")
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
        auth = "clients need the bearer key" if api_key else "no client key: loopback only"
        click.echo(f"heavy serve: OpenAI-compatible Heavy on http://{host}:{port}/v1 ({auth}); "
                   f"model `heavy` samples {shown}", err=True)
        run_server(app, host=host, port=port, log_level=log_level, sock=sock)

    run_guarded(go)
