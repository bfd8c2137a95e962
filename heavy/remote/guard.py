"""What stands between the network and every shell that serves HTTP (`heavy serve`, `heavy mcp --http`).

* :class:`SiteGuard` (ASGI middleware): web pages and DNS rebinding. A server on a loopback address without a
  key trusts whoever can reach it, and every web page the operator visits can: a form posts to
  ``http://127.0.0.1:8000`` from any site, and a name rebound to 127.0.0.1 lets a page read the answers. So on
  a loopback connection of a server without a key, only requests whose ``Host`` is the bound loopback address
  (or ``localhost``) and port are served (421 otherwise), and a request with a body must say it is
  ``application/json`` (415 otherwise: what a form can send, ``text/plain``, is not). Whatever the binding, a
  request that carries an ``Origin`` must come from a loopback page or one the operator allowed
  (``--allow-origin URL``), else 403: the MCP specification requires the check, and with a key no other page
  can use the server anyway (it answers no CORS).
* :func:`read_request_body`: a body arrives in full within ``body_timeout`` (408) and ``max_body_bytes``
  (413) before anything counts it; :class:`ClientSlots`: at most ``max_concurrent_per_client`` requests of one
  client address in flight (429).
* :class:`RequestGate` (ASGI middleware): the two above, plus the plain-JSON check of
  :func:`heavy.remote.policy.decode_body`, for a shell whose framework reads bodies itself (the MCP SDK);
  ``heavy serve`` calls them from its own handler.
* :class:`RemoteSettings`: these limits, the clients' key and the allowlists, as every such shell takes them.

Errors are OpenAI's shape (``shape="openai"``) or a JSON-RPC error (``shape="jsonrpc"``, for MCP). No web
framework is imported here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import constants as C
from ..asgi import BadContentLength, BodyTooLarge, read_body
from .errors import APIError, excerpt
from .policy import decode_body

__all__ = ["RemoteSettings", "SiteGuard", "RequestGate", "ClientSlots", "read_request_body", "send_error",
           "normalize_origin", "url_host"]

Shape = Literal["openai", "jsonrpc"]


def normalize_origin(url: str) -> str:
    """*url* as the ``Origin`` header a browser sends for it (``scheme://host[:port]``, lower case, no default
    port); :class:`ValueError` for anything that is not an http(s) origin."""
    text = str(url).strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError(f"origin {excerpt(text)} is not a URL such as http://localhost:5173") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"origin {excerpt(text)}: give scheme://host[:port], e.g. http://localhost:5173 "
                         "(no path, no wildcard)")
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{url_host(host)}" + (f":{port}" if port is not None and port != default else "")


def url_host(host: str) -> str:
    """*host* as it is written in a URL: an IPv6 address in brackets and in its short form (``[::1]``)."""
    bare = host.strip("[]")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return host
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


class RemoteSettings(BaseModel):
    """The limits and access rules every shell that serves remote callers over HTTP shares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key: str | None = Field(None, min_length=1, repr=False, description="bearer token clients must send")
    max_body_bytes: int = Field(C.SERVE_MAX_BODY_BYTES, ge=1024, description="largest request body accepted "
                                "(413 beyond)")
    max_concurrent_per_client: int = Field(C.SERVE_MAX_CONCURRENT_PER_CLIENT, ge=1, description="requests in "
                                           "flight per client address (429 beyond)")
    header_timeout: float = Field(C.SERVE_HEADER_TIMEOUT_S, gt=0, description="seconds to send a request's head "
                                  "(408 and the connection closed beyond; applied by heavy.remote.listener.serve)")
    body_timeout: float = Field(C.SERVE_BODY_TIMEOUT_S, gt=0, description="seconds to send a request's body "
                                "(408 beyond)")
    allow_origins: list[str] = Field(default_factory=list, description="web origins (scheme://host[:port]) whose "
                                     "pages may call the server, beside loopback ones (403 for any other Origin)")
    allow_models: list[str] = Field(default_factory=list, description="fnmatch patterns of models a client may "
                                    "name, beside the ones the operator configured (403 for any other)")

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(normalize_origin(o) for o in v))

    @field_validator("allow_models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        patterns = [p.strip() for p in v]
        if not all(patterns):
            raise ValueError("an --allow-model pattern is empty: give one such as 'openai:*' or 'openai:gpt-4.1'")
        return list(dict.fromkeys(patterns))


# --- errors as each shell's clients read them ------------------------------------------------------------


def error_body(err: APIError, shape: Shape) -> bytes:
    if shape == "jsonrpc":  # the SDK's own transport errors: a JSON-RPC error without a request id
        code = -32700 if err.code == "invalid_json" else -32600
        payload: dict[str, Any] = {"jsonrpc": "2.0", "id": None, "error": {
            "code": code, "message": err.message, "data": {"status": err.status, "reason": err.code}}}
    else:
        payload = err.body()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def send_error(send: Any, err: APIError, shape: Shape = "openai",
                     extra: Iterable[tuple[str, str]] = ()) -> None:
    """Answer with *err* (a whole response)."""
    body = error_body(err, shape)
    head = [("content-type", "application/json"), *extra, *err.headers.items(), ("content-length", str(len(body)))]
    await send({"type": "http.response.start", "status": err.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# --- web pages and DNS rebinding --------------------------------------------------------------------------


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def _is_loopback_name(host: str) -> bool:
    ip = _ip(host)
    return host.lower() == "localhost" if ip is None else ip.is_loopback


class SiteGuard:
    """ASGI middleware refusing cross-site and DNS-rebinding requests (see the module's docstring).

    *keyed*: the server wants a bearer key, so the Host it is reached by is free (an attacker's page cannot send
    the key). *allow_origins* are origins (:func:`normalize_origin`) served beside loopback pages.
    """

    def __init__(self, app: Any, *, keyed: bool, allow_origins: Sequence[str] = (), shape: Shape = "openai",
                 command: str = "heavy serve") -> None:
        self.app, self.keyed, self.shape, self.command = app, keyed, shape, command
        self.allow_origins = frozenset(normalize_origin(o) for o in allow_origins)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            err = self.check(scope)
            if err is not None:
                await send_error(send, err, self.shape)
                return
        await self.app(scope, receive, send)

    def check(self, scope: dict) -> APIError | None:
        """The error answering this request, or ``None`` when it may be served."""
        hosts, origins, types = [], [], []
        for name, value in scope.get("headers") or ():
            if name == b"host":
                hosts.append(value.decode("latin-1"))
            elif name == b"origin":
                origins.append(value.decode("latin-1"))
            elif name == b"content-type":
                types.append(value.decode("latin-1"))
        server = scope.get("server") or (None, None)
        guarded = not self.keyed and server[0] is not None and _is_loopback_name(str(server[0]))
        if guarded and not (len(hosts) == 1 and self._host_ok(hosts[0], str(server[0]), server[1], scope)):
            shown = excerpt(hosts[0]) if len(hosts) == 1 else f"{len(hosts)} Host headers"
            return APIError(421, f"this server answers only requests addressed to it on this machine "
                            f"({url_host(str(server[0]))}:{server[1]} or localhost:{server[1]}), not {shown}: "
                            "a page on another site, or a name rebound to a loopback address, must not reach it",
                            "host_not_allowed")
        if origins and not (len(origins) == 1 and self._origin_ok(origins[0])):
            shown = excerpt(origins[0]) if len(origins) == 1 else f"{len(origins)} Origin headers"
            return APIError(403, f"requests from the web page {shown} are refused: only loopback pages, and "
                            f"those the operator allows with `{self.command} --allow-origin URL`, may call this "
                            "server", "origin_not_allowed")
        if guarded and scope.get("method") in ("POST", "PUT", "PATCH") and not (
                len(types) == 1 and types[0].split(";", 1)[0].strip().lower() == "application/json"):
            shown = excerpt(types[0]) if len(types) == 1 else "none" if not types else "several"
            return APIError(415, f"the request body must be sent as Content-Type: application/json (got "
                            f"{shown}): what a web form can send is refused", "unsupported_media_type")
        return None

    @staticmethod
    def _host_ok(value: str, server_host: str, server_port: int | None, scope: dict) -> bool:
        value = value.strip().lower()
        if value.startswith("["):
            name, bracket, rest = value[1:].partition("]")
            if not bracket:
                return False
        else:
            name = value.partition(":")[0]
            rest = value[len(name):]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return False
        port = int(rest[1:]) if rest else (443 if scope.get("scheme") in ("https", "wss") else 80)
        if server_port is not None and port != server_port:
            return False
        if name == "localhost":
            return True
        ip, own = _ip(name), _ip(server_host)
        if ip is None:
            return False
        return ip == own if own is not None else ip.is_loopback

    def _origin_ok(self, origin: str) -> bool:
        try:
            normal = normalize_origin(origin)
        except ValueError:
            return False  # "null" (a sandboxed frame, a file), or anything a browser would not send
        if normal in self.allow_origins:
            return True
        host = urlsplit(normal).hostname or ""
        return _is_loopback_name(host)


# --- bodies and clients -------------------------------------------------------------------------------------


async def read_request_body(scope: dict, receive: Any, *, max_bytes: int, timeout: float,
                            command: str = "heavy serve") -> bytes | None:
    """The request's body, read in full within *timeout* seconds (408 beyond) and *max_bytes* (413 beyond), or
    ``None`` if the client left before sending it."""
    try:
        return await asyncio.wait_for(_read_body(scope, receive, max_bytes, command), timeout)
    except asyncio.TimeoutError:
        raise APIError(408, f"the request body did not arrive within {timeout:g} seconds; send it at once "
                       f"(the server's operator sets this with `{command} --body-timeout`)", "request_timeout",
                       headers={"connection": "close"}) from None


async def _read_body(scope: dict, receive: Any, limit: int, command: str) -> bytes | None:
    try:
        return await read_body(receive, limit, scope.get("headers", []))
    except BadContentLength:
        raise APIError(400, "invalid Content-Length header", "invalid_request") from None
    except BodyTooLarge as exc:
        size = f"request body of {exc.declared} bytes is" if exc.declared is not None else "request body"
        raise APIError(413, f"{size} larger than this server accepts ({limit} bytes; its operator sets this "
                       f"with `{command} --max-body-bytes`)", "request_too_large") from None


class ClientSlots:
    """Requests in flight per client address: :meth:`take` one (429 at *limit*), :meth:`give` it back."""

    def __init__(self, limit: int, command: str = "heavy serve") -> None:
        self.limit, self.command = limit, command
        self.in_flight: Counter[str] = Counter()

    def take(self, client: str) -> None:
        if self.in_flight[client] >= self.limit:
            raise APIError(429, f"too many requests in flight from this client (limit {self.limit}, the "
                           f"operator's `{self.command} --max-concurrent`); retry when one has finished",
                           "too_many_concurrent_requests", headers={"retry-after": "1"})
        self.in_flight[client] += 1

    def give(self, client: str) -> None:
        self.in_flight[client] -= 1
        if self.in_flight[client] <= 0:
            del self.in_flight[client]


def client_of(scope: dict) -> str:
    return str((scope.get("client") or ("unknown",))[0])


class RequestGate:
    """ASGI middleware for a framework that reads bodies itself: each POST's body is read first, within the
    time and size limits, checked as plain JSON (:func:`~heavy.remote.policy.decode_body`), counted against its
    client (:class:`ClientSlots`) while the app answers, and replayed to the app."""

    def __init__(self, app: Any, settings: RemoteSettings, *, command: str, shape: Shape = "jsonrpc") -> None:
        self.app, self.settings, self.command, self.shape = app, settings, command, shape
        self.slots = ClientSlots(settings.max_concurrent_per_client, command)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        client = client_of(scope)
        try:
            body = await read_request_body(scope, receive, max_bytes=self.settings.max_body_bytes,
                                           timeout=self.settings.body_timeout, command=self.command)
            if body is None:
                return  # the client left before sending its request
            decode_body(body)
            self.slots.take(client)
        except APIError as err:
            await send_error(send, err, self.shape)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        try:
            await self.app(scope, replay, send)
        finally:
            self.slots.give(client)
