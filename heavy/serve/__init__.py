"""``heavy serve``: Heavy behind an OpenAI-compatible Chat Completions endpoint (needs ``heavy[serve]``).

Any OpenAI client becomes a Heavy client by pointing its base URL here and naming a heavy model::

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused-on-127.0.0.1")
    r = client.chat.completions.create(model="heavy/vote/openai:gpt-4.1-mini",
                                       messages=[{"role": "user", "content": "What is 17 * 24 + 3?"}])
    print(r.choices[0].message.content, r.model_extra["heavy"]["votes"])

:func:`create_app` builds the ASGI app (starlette) and :func:`serve` runs it with uvicorn. The modules
:mod:`.protocol` (request/response shapes, model names), :mod:`.progress` (progress lines) and
:mod:`.errors` (OpenAI error shapes) import no web framework.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

__all__ = ["create_app", "serve", "is_loopback", "DEFAULT_PORT"]

DEFAULT_PORT = 8000


def _require_server_deps() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ConfigError("heavy serve needs starlette and uvicorn: pip install 'heavy[serve]'") from None


def create_app(defaults: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """The ASGI app (see :func:`heavy.serve.app.create_app`)."""
    _require_server_deps()
    from .app import create_app as build

    return build(defaults, **kwargs)


def is_loopback(host: str) -> bool:
    """Whether binding *host* keeps the server reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(app: Any, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_level: str = "info") -> None:
    """Serve *app* with uvicorn until interrupted (blocks)."""
    _require_server_deps()
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, lifespan="on")
