"""``heavy serve``: Heavy behind an OpenAI-compatible Chat Completions endpoint (needs ``heavy[serve]``).

Any OpenAI client becomes a Heavy client by pointing its base URL here and naming a heavy model::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused-on-127.0.0.1")
    r = client.chat.completions.create(model="heavy/vote/openai:gpt-4.1-mini",
                                       messages=[{"role": "user", "content": "What is 17 * 24 + 3?"}])
    print(r.choices[0].message.content, r.model_extra["heavy"]["votes"])

:func:`create_app` builds the ASGI app (starlette) and :func:`serve` runs it with uvicorn on a socket
that :func:`listen` bound first (so a bad or busy port is one clear error, not a traceback). :mod:`.protocol`
(request/response shapes, model names) imports no web framework; what the proxy shares with the other
shells (the operator's policy, progress lines, the decision summary, error shapes, the socket and the
uvicorn runner) lives in :mod:`heavy.remote`.
"""

from __future__ import annotations

from typing import Any

from ..remote.listener import (DEFAULT_PORT, build_server, header_timed_protocol, is_loopback, listen,
                               require_server_deps, serve)

__all__ = ["create_app", "serve", "listen", "build_server", "header_timed_protocol", "is_loopback",
           "require_server_deps", "DEFAULT_PORT"]


def create_app(defaults: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """The ASGI app (see :func:`heavy.serve.app.create_app`)."""
    require_server_deps()
    from .app import create_app as build

    return build(defaults, **kwargs)
