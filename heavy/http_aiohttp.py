"""heavy's HTTP requests over aiohttp's ``ClientSession``, used directly: the default under
:class:`heavy.http.HTTPClient` (a caller's own httpx transport goes through httpx instead).

Why aiohttp, and used directly: at a thousand calls in flight the client's CPU per call decides whether
sampling keeps up with the server, and aiohttp's own session reached 0.88x of a hand-written lower bound
at 0.26 ms per call where it reached 0.65x under httpx's API (bench/overhead.py, docs/benchmarks.md). Its
parser (llhttp) bounds response heads, its pool never replays a POST, and it reads bodies of any size.

What heavy adds on top: the pool's limit and its own timeout (a semaphore, so that waiting for a slot is
told apart from connecting), the proxy the environment names (:func:`heavy.http_env.proxy_for`, per
origin, never aiohttp's ``trust_env``, which would read ``~/.netrc`` and ask a thread per request), the
CA bundle (:func:`heavy.http_env.ssl_context`), no redirects and no cookies, and aiohttp's errors
translated into heavy's (:func:`failure`) before they leave this module.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import http_exceptions
from yarl import URL

from . import constants as C
from .errors import ConfigError, ProviderConnectionError, ProviderError, ProviderResponseError, ProviderTimeout
from .http_env import Proxy, proxy_for, ssl_context

if TYPE_CHECKING:
    from .http import Timeout

__all__ = ["AiohttpBackend"]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_CERT_HINT = ("set SSL_CERT_FILE, HEAVY_CA_BUNDLE or the config file's [http] ca_bundle to trust a private "
              "certificate authority")


class AiohttpBackend:
    """One aiohttp session per client and event loop, created on first use (a session cannot outlive its
    loop; ``ask_sync`` runs a loop per call), closed by :meth:`aclose` and opened again if used after."""

    def __init__(self, base_url: str, headers: Mapping[str, str], *, max_connections: int,
                 provider: str | None) -> None:
        self.base_url = base_url
        self.provider = provider
        self._headers = dict(headers)
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None
        self._urls: dict[str, URL] = {}
        self._proxies: dict[tuple[str, str | None, int | None], tuple[str, dict[str, str] | None] | None] = {}
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        url = URL(base_url)
        if (url.user or url.password) and "authorization" in self._headers:
            raise ConfigError("the base URL carries user:password@ and the client sends its own Authorization "
                              "header (the API key): drop the credentials from the base URL")
        # Settled now, so a bad proxy variable or CA bundle fails before anything is sent.
        self._proxy(url)
        self._ssl = ssl_context() if base_url.lower().startswith("https://") else None

    # --- the session ---------------------------------------------------------------------------------

    def _open(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or self._loop is not loop or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=0,  # the semaphore below is the one limit, with its own timeout
                ssl=self._ssl if self._ssl is not None else True,  # see send: an https URL of an http client
                ttl_dns_cache=C.HTTP_DNS_TTL, keepalive_timeout=C.HTTP_KEEPALIVE_EXPIRY)
            session = self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None), auto_decompress=True, trust_env=False,
                max_line_size=C.HTTP_MAX_HEADER_LINE, max_field_size=C.HTTP_MAX_HEADER_LINE,
                max_headers=C.HTTP_MAX_HEADERS)
            self._loop, self._slots = loop, asyncio.Semaphore(self._max)
        assert self._slots is not None
        return session, self._slots

    async def aclose(self) -> None:
        """Close every connection; the client opens new ones if it is used again."""
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()

    # --- one request -----------------------------------------------------------------------------------

    def _url(self, path: str) -> URL:
        # Parsed once per path: URL parsing is a visible share of per-call CPU at high fan-out.
        url = self._urls.get(path)
        if url is None:
            url = URL(path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}")
            if len(self._urls) < 256:
                self._urls[path] = url
        return url

    def _proxy(self, url: URL) -> tuple[str, dict[str, str] | None] | None:
        """``(proxy URL, its Proxy-Authorization header or None)`` for *url*'s origin, or ``None``: direct."""
        key = (url.scheme, url.host, url.port)
        if key not in self._proxies:
            proxy: Proxy | None = proxy_for(str(url.origin()))
            auth = proxy.authorization if proxy is not None else None
            self._proxies[key] = None if proxy is None else (proxy.url, {"Proxy-Authorization": auth} if auth else None)
        return self._proxies[key]

    def _timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        found = self._timeouts.get(timeout)
        if found is None:
            # connect covers the name lookup, the TCP and TLS handshakes (and a proxy's tunnel); sock_read is
            # silence between reads, not total time. aiohttp has no write timeout: bodies here are small.
            found = aiohttp.ClientTimeout(total=None, connect=timeout.connect, sock_connect=timeout.connect,
                                          sock_read=timeout.read)
            if len(self._timeouts) < 64:  # a caller computing a timeout per call must not grow this forever
                self._timeouts[timeout] = found
        return found

    async def send(self, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | None,
                   headers: Mapping[str, str] | None, timeout: Timeout, model: str | None) -> "Exchange":
        """Send one request; return its exchange once the status and headers are in (the body unread)."""
        session, slots = self._open()
        url = self._url(path)
        if params:
            url = url.update_query({k: str(v) for k, v in params.items()})
        proxy_url = proxy_headers = None
        if (proxy := self._proxy(url)) is not None:
            proxy_url, proxy_headers = proxy
            if proxy_headers and url.scheme == "http":  # absolute form: the credentials ride on the request
                headers = {**(headers or {}), **proxy_headers}
        # An http:// client asked for an absolute https:// URL: heavy's trust, settled on first use.
        tls = ssl_context() if self._ssl is None and url.scheme == "https" else True
        if slots.locked():  # every connection busy: wait for one, at most the pool timeout
            try:
                async with asyncio.timeout(timeout.pool):
                    await slots.acquire()
            except TimeoutError:
                raise ProviderTimeout(f"timed out (PoolTimeout: no free connection within {timeout.pool:g} s, "
                                      f"all {self._max} in use)", provider=self.provider, model=model,
                                      retryable=True) from None
        else:
            await slots.acquire()
        try:
            # aiohttp re-sends only idempotent methods on a reused connection the server closed (RFC 9112
            # 9.3.1): a POST that may have been seen is never replayed here.
            resp = await session.request(
                method, url, data=body, headers=headers, timeout=self._timeout(timeout), allow_redirects=False, ssl=tls,
                proxy=proxy_url, proxy_headers=proxy_headers)  # proxy_headers: a CONNECT's
        except BaseException as exc:
            slots.release()
            if isinstance(exc, (aiohttp.ClientError, TimeoutError)):
                raise failure(exc, self.provider, model, timeout, method) from None
            if isinstance(exc, ValueError):  # aiohttp refuses the request as given (credentials twice, ...)
                raise ConfigError(f"the request cannot be sent: {exc}") from None
            raise
        return Exchange(resp, slots, self.provider, model, timeout)


class Exchange:
    """One response of :class:`AiohttpBackend`: ``status`` and ``headers`` (names lower-cased) are in; read the
    body with :meth:`read` or :meth:`iter_bytes`. The connection's slot is freed once the body is in or the
    exchange is closed (:meth:`aclose`: a half-read connection is closed, never reused)."""

    __slots__ = ("_resp", "_slots", "provider", "model", "_timeout", "status", "headers")

    def __init__(self, resp: aiohttp.ClientResponse, slots: asyncio.Semaphore | None, provider: str | None,
                 model: str | None, timeout: Timeout) -> None:
        self._resp, self._slots = resp, slots
        self.provider, self.model, self._timeout = provider, model, timeout
        self.status = resp.status
        self.headers = _lowered(resp.headers)

    async def read(self) -> bytes:
        """The whole body, content-decoded."""
        try:
            return await self._resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise failure(exc, self.provider, self.model, self._timeout) from None
        finally:
            self._done()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives, content-decoded."""
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise failure(exc, self.provider, self.model, self._timeout) from None

    async def aclose(self) -> None:
        self._done()

    def _done(self) -> None:
        slots, self._slots = self._slots, None
        if slots is None:
            return
        if self._resp.content.at_eof():
            self._resp.release()
        else:
            self._resp.close()  # unread bytes would be read as the next answer: never reused
        slots.release()


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _causes(exc: BaseException) -> list[BaseException]:
    out = [exc]
    while (nxt := out[-1].__cause__ or out[-1].__context__) is not None and len(out) < 8:
        out.append(nxt)
    return out


def failure(exc: BaseException, provider: str | None, model: str | None, timeout: Timeout,
            method: str | None = None) -> ProviderError | ConfigError:
    """aiohttp's *exc* as heavy's error: timeouts (connect, read) apart, a refused or broken connection, a
    response heavy will not parse (a head over the limits is named), a proxy or certificate refusal."""
    kind = type(exc).__name__
    where = {"provider": provider, "model": model}
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ProviderTimeout(f"timed out (ConnectTimeout: no connection within {timeout.connect:g} s)",
                               retryable=True, **where)
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError)):
        return ProviderTimeout(f"timed out (ReadTimeout: no data from the server for {timeout.read:g} s)",
                               retryable=True, **where)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return ProviderConnectionError(f"connection failed (ConnectError: {exc.certificate_error}; {_CERT_HINT})",
                                       **where)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return ProviderConnectionError(f"connection failed (ProxyError: cannot reach the proxy: {exc})",
                                       retryable=True, **where)
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return ProviderConnectionError(f"connection failed (ProxyError: the proxy answered {exc.status} "
                                       f"{exc.message})", retryable=exc.status >= 500, **where)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ProviderConnectionError(f"connection failed (ConnectError: {exc})", retryable=True, **where)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        what = "the server closed the connection without answering"
        if method is not None and method not in _IDEMPOTENT:
            what += f" (a {method} is not sent again by the HTTP client: the server may have acted on it)"
        return ProviderConnectionError(f"connection failed (RemoteProtocolError: {what})", retryable=True, **where)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ProviderConnectionError(f"connection failed (ReadError: connection lost mid-response: {exc})",
                                       retryable=True, **where)
    if isinstance(exc, aiohttp.InvalidURL):
        return ConfigError(f"cannot send to {exc.url!s}: not a valid URL")
    if isinstance(exc, aiohttp.ClientResponseError):  # raised while the response head was parsed
        causes = _causes(exc)
        if any(isinstance(c, http_exceptions.LineTooLong) or "Too many headers" in str(c) for c in causes):
            return ProviderResponseError(
                f"the response's head is over heavy's limits ({C.HTTP_MAX_HEADERS} header lines of at most "
                f"{C.HTTP_MAX_HEADER_LINE} bytes each): {exc.message}", **where)
        return ProviderConnectionError(f"connection failed (RemoteProtocolError: malformed HTTP response: "
                                       f"{exc.message})", retryable=True, **where)
    return ProviderConnectionError(f"connection failed ({kind}: {exc})", retryable=True, **where)
