"""The HTTP edge: the only module of heavy that imports httpx.

Providers speak wire formats; this module moves bytes. Keeping httpx here means the transport under
every provider can be swapped (or faked with ``httpx.MockTransport`` / an in-process ASGI app) in one
place, and that transport errors become heavy's own error types before they reach anything else.
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import importlib.util
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import constants as C
from .http1 import HTTP1Transport, Origin, Timeouts, encode_head, origin_of
from .http1 import httptools as _httptools
from .errors import (AUTH_STATUSES, ConfigError, ProviderConnectionError, ProviderResponseError, ProviderTimeout,
                     error_for_status, register_secret)

__all__ = ["Timeout", "HTTPClient", "HTTPResponse", "SSEEvent", "StreamingASGITransport", "transport_names",
           "default_transport"]


def transport_names() -> list[str]:
    """HTTP transports usable here: ``heavy`` (heavy's own HTTP/1.1 pool, :mod:`heavy.http1`) and ``httpx``
    (httpx's own) always, ``aiohttp`` when httpx-aiohttp is installed."""
    names = ["heavy", "httpx"] if _httptools is not None else ["httpx"]  # httptools: see heavy/http1.py
    # Looked up, not imported: importing aiohttp costs ~0.1 s of CPU that a run not using it should not pay.
    if importlib.util.find_spec("httpx_aiohttp") is not None:
        names.append("aiohttp")
    return names


def default_transport() -> str:
    """``$HEAVY_HTTP_TRANSPORT`` if set, else the fastest available (see bench/overhead.py)."""
    import os

    chosen = os.environ.get("HEAVY_HTTP_TRANSPORT", "").strip().lower()
    available = transport_names()
    if chosen:
        if chosen not in available:
            raise ConfigError(f"HEAVY_HTTP_TRANSPORT={chosen!r} is not available here; choose one of "
                              f"{', '.join(available)} (aiohttp needs `pip install httpx-aiohttp`)")
        return chosen
    return next((t for t in C.HTTP_TRANSPORT_PREFERENCE if t in available), "httpx")


def _make_transport(kind: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    if kind == "heavy":
        return HTTP1Transport(limits=limits)
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    return httpx.AsyncHTTPTransport(limits=limits)


@dataclass(frozen=True)
class Timeout:
    """Network timeouts of one request, in seconds (a value object: override per call with ``replace``)."""

    connect: float = C.CONNECT_TIMEOUT
    read: float = C.READ_TIMEOUT
    write: float = C.WRITE_TIMEOUT
    pool: float = C.POOL_TIMEOUT



@dataclass
class HTTPResponse:
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


class _HttpxExchange:
    """An ``httpx.Response`` read through the interface of :class:`heavy.http1.Exchange`."""

    __slots__ = ("_resp",)

    def __init__(self, resp: httpx.Response) -> None:
        self._resp = resp

    @property
    def status(self) -> int:
        return self._resp.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._resp.headers

    async def read(self) -> bytes:
        try:
            return await self._resp.aread()
        finally:
            await self._resp.aclose()

    def iter_bytes(self) -> AsyncIterator[bytes]:
        return self._resp.aiter_bytes()

    async def aclose(self) -> None:
        await self._resp.aclose()


class HTTPClient:
    """One pooled HTTP client per provider, sized to admit the whole fan-out.

    ``where`` (provider, model) only labels errors. ``transport`` injects an httpx transport (tests,
    alternative transports, :class:`StreamingASGITransport` to serve requests from an in-process ASGI app);
    by default it is :func:`default_transport`'s, normally heavy's own :class:`~heavy.http1.HTTP1Transport`,
    which this client drives directly with request heads built once per path.
    ``auth_hint`` replaces the message of a 401/403 answer (the upstream's own message is kept after it):
    it is how a caller explains that a key was deliberately not sent. Credentials in ``headers`` are
    registered as secrets, so no error built from upstream text can repeat them.
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
        if transport is None:
            limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=C.HTTP_MAX_KEEPALIVE)
            transport = _make_transport(default_transport(), limits)
        self.provider = provider
        self.auth_hint = auth_hint
        self.base_url = base_url.rstrip("/")
        for name, value in (headers or {}).items():
            if name.lower() in _AUTH_HEADERS:
                register_secret(value)
                register_secret(value.partition(" ")[2])  # the token of "Bearer TOKEN" on its own
        # Transports are driven directly, never through httpx.AsyncClient: its layer (cookies, auth flows,
        # redirects, event hooks) does nothing heavy needs and costs ~0.4 ms of CPU per call, which at a
        # thousand hypotheses in flight is the difference between keeping up and not.
        self._transport: httpx.AsyncBaseTransport = transport
        self._h1 = transport if isinstance(transport, HTTP1Transport) else None
        self._headers = _lower({"user-agent": f"heavy/{_version()}", "accept": "application/json",
                                "accept-encoding": "gzip, deflate", **dict(headers or {})})
        try:  # a key pasted with its newline would end the header early: refuse it before anything is sent
            encode_head("GET", b"/", self._headers.items())
        except httpx.LocalProtocolError as exc:
            raise ConfigError(f"{exc} (is there a newline in a key or header value?)") from None
        self._timeout = _timeouts(timeout or Timeout())
        self._urls: dict[str, httpx.URL] = {}
        self._heads: dict[tuple[Any, ...], tuple[Origin, bytes]] = {}

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _url(self, path: str) -> httpx.URL:
        # Parsed once per path: URL parsing is a visible share of per-call CPU at high fan-out.
        url = self._urls.get(path)
        if url is None:
            url = httpx.URL(path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}")
            if len(self._urls) < 256:
                self._urls[path] = url
        return url

    def _merged(self, body: bytes | None, headers: Mapping[str, str] | None) -> dict[str, str]:
        extra = {"content-type": "application/json"} if body is not None else {}
        return {**self._headers, **extra, **_lower(headers or {})}

    def _prepared(self, method: str, path: str, url: httpx.URL, body: bytes | None,
                  headers: Mapping[str, str] | None) -> tuple[Origin, bytes]:
        """Where to send, and the request head for heavy's own transport: all but its length built once per
        (method, path, headers), since at high fan-out every call would otherwise rebuild the same bytes."""
        key = (method, path, body is None, tuple(headers.items()) if headers else ())
        cached = self._heads.get(key)
        if cached is None:
            host = httpx.Request(method, url).headers["host"]  # httpx's own rendering (IDNA, IPv6, default ports)
            cached = origin_of(url), encode_head(method, url.raw_path,
                                                 [("host", host), *self._merged(body, headers).items()])
            if len(self._heads) < 256:
                self._heads[key] = cached
        origin, head = cached
        return origin, head + (b"content-length: %d\r\n\r\n" % len(body) if body is not None else b"\r\n")

    async def _send(self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None,
                    headers: Mapping[str, str] | None, timeout: Timeout | None, model: str | None) -> Any:
        """Send one request; return its exchange once the status and headers are in (the body is unread)."""
        timeouts = _timeouts(timeout) if timeout else self._timeout
        url = self._url(path)
        if params:
            url = url.copy_merge_params({k: str(v) for k, v in params.items()})
            path = str(url)
        try:
            if self._h1 is not None:
                origin, head = self._prepared(method, path, url, body, headers)
                return await self._h1.exchange(origin, head, body, timeouts)
            request = httpx.Request(method, url, content=body, headers=self._merged(body, headers),
                                    extensions={"timeout": dict(zip(("connect", "read", "write", "pool"), timeouts))})
            return _HttpxExchange(await self._transport.handle_async_request(request))
        except httpx.LocalProtocolError as exc:  # a header heavy was asked to send cannot be sent
            raise ConfigError(str(exc)) from None
        except httpx.HTTPError as exc:
            raise self._fail(exc, model) from None

    def _fail(self, exc: Exception, model: str | None) -> Exception:
        kind = type(exc).__name__
        cause = exc.__cause__
        if cause is not None and isinstance(exc, httpx.TimeoutException) and not (
                isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__):
            # httpx-aiohttp maps every aiohttp connection error (a refused connection too) to ConnectTimeout;
            # the underlying error says what really happened.
            kind = type(cause).__name__
            return ProviderConnectionError(f"connection failed ({kind}: {cause})", provider=self.provider,
                                           model=model, retryable=True)
        if isinstance(exc, httpx.TimeoutException):
            return ProviderTimeout(f"timed out ({kind})", provider=self.provider, model=model, retryable=True)
        return ProviderConnectionError(f"connection failed ({kind}: {exc})", provider=self.provider, model=model, retryable=True)

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
        try:
            raw = await ex.read()
        except httpx.HTTPError as exc:
            raise self._fail(exc, model) from None
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
            yield ex.headers, self._events(ex.iter_bytes(), model)
        except httpx.HTTPError as exc:
            raise self._fail(exc, model) from None
        finally:
            await ex.aclose()

    async def _events(self, chunks: AsyncIterator[bytes], model: str | None) -> AsyncIterator[SSEEvent]:
        data: list[str] = []
        fields: dict[str, str] = {}
        try:
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
        except httpx.HTTPError as exc:
            raise self._fail(exc, model) from None


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


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def _timeouts(t: Timeout) -> Timeouts:
    return t.connect, t.read, t.write, t.pool


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


class _QueueStream(httpx.AsyncByteStream):
    """Response body fed chunk by chunk from the ASGI app's ``send`` calls."""

    def __init__(self, queue: "asyncio.Queue[bytes | BaseException | None]", task: "asyncio.Task[None]",
                 disconnected: asyncio.Event) -> None:
        self._queue, self._task, self._disconnected = queue, task, disconnected

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def aclose(self) -> None:
        self._disconnected.set()  # the app sees http.disconnect, as it would from a real client
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Serve requests from an in-process ASGI app, streaming the body as the app sends it.

    httpx's own ``ASGITransport`` buffers the whole response before returning it, so an in-process
    server's SSE would arrive all at once; with this one, deltas arrive as they are produced, exactly as
    over a socket, and closing the response early disconnects the app.
    """

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        url = request.url
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw], "scheme": url.scheme,
            "path": url.path, "raw_path": url.raw_path.split(b"?")[0], "query_string": url.query,
            "server": (url.host, url.port or (443 if url.scheme == "https" else 80)), "client": self.client,
            "root_path": "",
        }
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        started = asyncio.Event()
        disconnected = asyncio.Event()
        head: dict[str, Any] = {}
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                head["status"], head["headers"] = message["status"], message.get("headers", [])
                started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    queue.put_nowait(message["body"])
                if not message.get("more_body", False):
                    queue.put_nowait(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                head.setdefault("error", exc)
                queue.put_nowait(exc)
            finally:
                queue.put_nowait(None)
                started.set()

        task = asyncio.create_task(run())
        await started.wait()
        if "status" not in head:
            await asyncio.gather(task, return_exceptions=True)
            raise httpx.RemoteProtocolError(f"ASGI app sent no response ({head.get('error')!r})", request=request)
        return httpx.Response(head["status"], headers=head["headers"], stream=_QueueStream(queue, task, disconnected),
                              request=request)
