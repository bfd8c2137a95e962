"""The HTTP edge: the only modules of heavy that send HTTP are this one and its backends.

Providers speak wire formats; this module moves bytes. :class:`HTTPClient` is heavy's one small client
interface (``post_json``, ``get_json``, ``stream_sse``, ``aclose``, ``base_url``); under it, one rule:

- a caller's own httpx transport (``transport=``: ``httpx.MockTransport``, :class:`heavy.sim.transport.StreamingASGITransport`
  serving an in-process ASGI app) is driven through httpx (:class:`_HttpxBackend`, below);
- otherwise requests go over aiohttp's ``ClientSession``, used directly (:mod:`heavy.http_aiohttp`), through
  the proxy the environment names and trusting the CA bundle heavy is given (:mod:`heavy.http_env`).

Either way, errors leave as heavy's own types (:mod:`heavy.errors`) and never show a key.
"""

from __future__ import annotations

import codecs
import email.utils
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import constants as C
from .errors import (AUTH_STATUSES, ConfigError, ProviderConnectionError, ProviderResponseError, ProviderTimeout,
                     error_for_status, register_secret)
from .http_env import check_base_url

__all__ = ["Timeout", "HTTPClient", "HTTPResponse", "SSEEvent"]


@dataclass(frozen=True)
class Timeout:
    """Network timeouts of one request, in seconds (a value object: override per call with ``replace``).

    ``connect``: name lookup and handshakes; ``read``: silence from the server (not total time); ``pool``:
    waiting for a free connection; ``write``: sending the body (httpx transports only: aiohttp has none).
    """

    connect: float = C.CONNECT_TIMEOUT
    read: float = C.READ_TIMEOUT
    write: float = C.WRITE_TIMEOUT
    pool: float = C.POOL_TIMEOUT


@dataclass
class HTTPResponse:
    """A whole response: its status, headers (names lower-cased) and body text."""

    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class SSEEvent:
    """One server-sent event: ``event`` name (``None`` when unnamed) and its joined ``data`` lines."""

    data: str
    event: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "cf-ray")


#: Request headers that carry a credential (their values are registered as secrets).
_AUTH_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key",
                 "x-subscription-token")


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or HTTP-date); ``None`` if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _version() -> str:
    from . import __version__

    return __version__


def request_id(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        if name in headers:
            return headers[name]
    return None


class HTTPClient:
    """One pooled HTTP client per provider, sized to admit the whole fan-out.

    ``where`` (provider, model) only labels errors. ``transport`` injects an httpx transport (tests,
    ``httpx.MockTransport``, :class:`heavy.sim.transport.StreamingASGITransport` to serve requests from an in-process ASGI app),
    driven through httpx; without one, requests go over aiohttp (:mod:`heavy.http_aiohttp`) with at most
    ``max_connections`` open, through the environment's proxy. ``auth_hint`` replaces the message of a
    401/403 answer (the upstream's own message is kept after it): it is how a caller explains that a key was
    deliberately not sent. Credentials in ``headers`` are registered as secrets, so no error built from
    upstream text can repeat them. A base URL, header, proxy variable or CA bundle heavy cannot use is a
    :class:`~heavy.errors.ConfigError` here, before anything is sent.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout | None = None,
        transport: Any = None,
        provider: str | None = None,
        max_connections: int = C.HTTP_MAX_CONNECTIONS,
        auth_hint: str | None = None,
    ) -> None:
        self.provider = provider
        self.auth_hint = auth_hint
        self.base_url = check_base_url(base_url)
        for name, value in (headers or {}).items():
            if name.lower() in _AUTH_HEADERS:
                register_secret(value)
                register_secret(value.partition(" ")[2])  # the token of "Bearer TOKEN" on its own
        self._headers = _checked(_lower({"user-agent": f"heavy/{_version()}", "accept": "application/json",
                                         "accept-encoding": "gzip, deflate", **dict(headers or {})}))
        # A JSON body's type, unless the client's own headers already name one.
        self._json_type = {} if "content-type" in self._headers else {"content-type": "application/json"}
        self._timeout = timeout or Timeout()
        if transport is None:
            from .http_aiohttp import AiohttpBackend  # imported on use: a run over an ASGI app never pays for it

            self._backend: Any = AiohttpBackend(self.base_url, self._headers, max_connections=max_connections,
                                                provider=provider)
        else:
            self._backend = _HttpxBackend(transport, self.base_url, self._headers, provider)

    async def aclose(self) -> None:
        """Close every connection (the client opens new ones if it is used again)."""
        await self._backend.aclose()

    async def _send(self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None,
                    headers: Mapping[str, str] | None, timeout: Timeout | None, model: str | None) -> Any:
        """Send one request; return its exchange once the status and headers are in (the body is unread)."""
        if headers:
            headers = _checked(_lower(headers))
        if body is not None and self._json_type:
            headers = {**self._json_type, **(headers or {})}
        return await self._backend.send(method, path, params, body, headers, timeout or self._timeout, model)

    def _raise_for_status(self, status: int, headers: Mapping[str, str], text: str, model: str | None) -> None:
        if status < 400:
            return
        should = headers.get("x-should-retry")  # the server knows best (OpenAI and Anthropic send this)
        message = _error_message(text) or f"HTTP {status}"
        if self.auth_hint and status in AUTH_STATUSES:
            message = f"{self.auth_hint} (the server said: {message})"
        raise error_for_status(
            status, message, retryable=should == "true" if should in ("true", "false") else None,
            provider=self.provider, model=model, request_id=request_id(headers), body=text[: C.ERROR_BODY_EXCERPT],
            retry_after=retry_after(headers),
        )

    async def _complete(self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None,
                        headers: Mapping[str, str] | None, timeout: Timeout | None, model: str | None) -> HTTPResponse:
        """Send, read the whole body, and raise ProviderHTTPError on a 4xx/5xx."""
        ex = await self._send(method, path, params, body, headers, timeout, model)
        raw = await ex.read()
        out = HTTPResponse(ex.status, ex.headers, raw.decode("utf-8", "replace"))
        self._raise_for_status(out.status, out.headers, out.text, model)
        return out

    async def post_json(
        self, path: str, body: Any, *, headers: Mapping[str, str] | None = None, model: str | None = None,
        timeout: Timeout | None = None,
    ) -> HTTPResponse:
        """POST *body* as JSON; return the response, raising ProviderHTTPError on a 4xx/5xx."""
        return await self._complete("POST", path, None, _json_bytes(body), headers, timeout, model)

    async def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, headers: Mapping[str, str] | None = None,
        model: str | None = None, timeout: Timeout | None = None,
    ) -> HTTPResponse:
        """GET *path* with query *params*; return the response, raising ProviderHTTPError on a 4xx/5xx."""
        return await self._complete("GET", path, params, None, headers, timeout, model)

    @asynccontextmanager
    async def stream_sse(
        self, path: str, body: Any, *, headers: Mapping[str, str] | None = None, model: str | None = None,
        timeout: Timeout | None = None,
    ) -> AsyncIterator[tuple[Mapping[str, str], AsyncIterator[SSEEvent]]]:
        """POST *body* and yield ``(response headers, events)``; the connection closes on exit."""
        ex = await self._send("POST", path, None, _json_bytes(body), {"accept": "text/event-stream", **(headers or {})},
                              timeout, model)
        try:
            if ex.status >= 400:
                text = (await ex.read()).decode("utf-8", "replace")
                self._raise_for_status(ex.status, ex.headers, text, model)
            yield ex.headers, _events(ex.iter_bytes())
        finally:
            await ex.aclose()


async def _events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SSEEvent]:
    """The server-sent events of a byte stream."""
    data: list[str] = []
    fields: dict[str, str] = {}
    async for line in _lines(chunks):
        if not line:
            if data:
                yield SSEEvent("\n".join(data), fields.get("event"), fields)
            data, fields = [], {}
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            fields[name] = value
    if data:
        yield SSEEvent("\n".join(data), fields.get("event"), fields)


class _HttpxBackend:
    """A caller's own httpx transport, driven directly, never through ``httpx.AsyncClient``: its layer
    (cookies, auth flows, redirects, event hooks) does nothing heavy needs and costs CPU on every call."""

    def __init__(self, transport: httpx.AsyncBaseTransport, base_url: str, headers: Mapping[str, str],
                 provider: str | None) -> None:
        self._transport, self.base_url, self._headers, self.provider = transport, base_url, headers, provider
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}")
            if len(self._urls) < 256:
                self._urls[path] = url
        return url

    async def send(self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None,
                   headers: Mapping[str, str] | None, timeout: Timeout, model: str | None) -> "_HttpxExchange":
        url = self._url(path)
        if params:
            url = url.copy_merge_params({k: str(v) for k, v in params.items()})
        request = httpx.Request(method, url, content=body, headers={**self._headers, **(headers or {})},
                                extensions={"timeout": {"connect": timeout.connect, "read": timeout.read,
                                                        "write": timeout.write, "pool": timeout.pool}})
        try:
            return _HttpxExchange(await self._transport.handle_async_request(request), self.provider, model)
        except httpx.LocalProtocolError as exc:  # a header heavy was asked to send cannot be sent
            raise ConfigError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc, self.provider, model) from None

    async def aclose(self) -> None:
        await self._transport.aclose()


class _HttpxExchange:
    """An ``httpx.Response`` read through the exchange interface of :mod:`heavy.http_aiohttp`."""

    __slots__ = ("_resp", "provider", "model")

    def __init__(self, resp: httpx.Response, provider: str | None, model: str | None) -> None:
        self._resp, self.provider, self.model = resp, provider, model

    @property
    def status(self) -> int:
        return self._resp.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    async def read(self) -> bytes:
        try:
            return await self._resp.aread()
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc, self.provider, self.model) from None
        finally:
            await self._resp.aclose()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            raise _httpx_failure(exc, self.provider, self.model) from None

    async def aclose(self) -> None:
        await self._resp.aclose()


def _httpx_failure(exc: httpx.HTTPError, provider: str | None, model: str | None) -> Exception:
    kind = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(f"timed out ({kind})", provider=provider, model=model, retryable=True)
    return ProviderConnectionError(f"connection failed ({kind}: {exc})", provider=provider, model=model, retryable=True)


_EOL = re.compile(r"\r\n|\r|\n")


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The lines of a UTF-8 byte stream, split only where SSE ends lines (CRLF, LF, CR): unlike
    ``str.splitlines``, a U+2028 inside a JSON string does not break the line."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = ""
    async for chunk in chunks:
        text = pending + decoder.decode(chunk)
        held = ""
        if text.endswith("\r"):  # maybe half of a CRLF split across chunks
            text, held = text[:-1], "\r"
        *lines, pending = _EOL.split(text)
        pending += held
        for line in lines:
            yield line
    tail = pending + decoder.decode(b"", final=True)
    if tail:
        *lines, last = _EOL.split(tail)
        for line in lines:
            yield line
        if last:
            yield last


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _checked(headers: dict[str, str]) -> dict[str, str]:
    """*headers*, if every one can be sent: a line break would end the header early and smuggle one of its own
    (a key pasted with its newline), so it is refused before anything is sent, naming the header, not its value."""
    for name, value in headers.items():
        if not name or any(c in name for c in ":\r\n\0 \t") or any(c in value for c in "\r\n\0"):
            raise ConfigError(f"header {name!r} holds a line break or is malformed; it cannot be sent "
                              "(is there a newline in a key or header value?)")
    return headers


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _error_message(text: str) -> str | None:
    """The human message inside a JSON error body (OpenAI, Anthropic and Gemini shapes)."""
    try:
        body = json.loads(text)
    except (ValueError, TypeError):
        return None
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        msg = err.get("message")
        return str(msg) if msg else None
    if isinstance(err, str):
        return err
    return None


def decode_json(text: str, *, provider: str | None, model: str | None) -> Any:
    """Parse a 2xx body, turning garbage into a ProviderResponseError."""
    try:
        return json.loads(text)
    except ValueError:
        raise ProviderResponseError(
            "response is not JSON", provider=provider, model=model, body=text[: C.ERROR_BODY_EXCERPT]
        ) from None
