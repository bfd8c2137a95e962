"""heavy's own HTTP/1.1 client transport: a keep-alive connection pool over asyncio protocols, with every
response parsed by httptools (llhttp, the C parser of Node.js, also under uvicorn).

Why heavy has one: at a thousand hypotheses in flight, the HTTP client's CPU per call decides whether
sampling keeps up with the server (bench/overhead.py, docs/benchmarks.md "Overhead"). httpx's own pool
spends 8-28 ms of CPU per call there and aiohttp under httpx's API about 1 ms; this one does what a
hand-written client does (one protocol object per connection; no stream reader, task, timer or timeout
context per request) while the parsing — chunked bodies, keep-alive rules, malformed answers — is left
to a parser far more widely tested than anything written here.

:class:`HTTP1Transport` is an httpx transport (``httpx.AsyncClient(transport=HTTP1Transport())`` works),
and :class:`~heavy.http.HTTPClient` drives it directly through :meth:`HTTP1Transport.exchange` with request
heads it builds once per path, skipping httpx's Request and Response objects. Failures are httpx's
exception types either way, so everything above maps them alike whichever transport runs.

One connection's side (request heads, the protocol fed to httptools, the :class:`Exchange` a caller reads)
is :mod:`heavy.http1_wire`; the pool, timeouts and name lookups are here.

Not here: HTTP/2, proxies, ``Expect: 100-continue`` and protocol upgrades (heavy's other transports do
not offer them either).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from .http1_wire import Exchange, _Connection, _Stale, encode_head, httptools

__all__ = ["HTTP1Transport", "Exchange", "Origin", "Timeouts", "origin_of", "encode_head"]

#: ``(scheme, host, port)``: where a connection goes; connections are pooled per origin.
Origin = tuple[str, str, int]
#: ``(connect, read, write, pool)`` seconds, ``None`` meaning no limit (httpx's timeout extension, as a tuple).
Timeouts = tuple[float | None, float | None, float | None, float | None]

_DEFAULT_PORTS = {"http": 80, "https": 443}
_default_ssl: ssl.SSLContext | None = None
#: Seconds a host's resolved addresses are reused (aiohttp's default too).
_DNS_TTL = 10.0


def origin_of(url: httpx.URL) -> Origin:
    """The pool key of *url*; anything but http(s) is :class:`httpx.UnsupportedProtocol`."""
    scheme = url.scheme
    if scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"heavy's HTTP/1.1 transport speaks http and https, not {scheme!r}")
    return scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme]


class _Deadline:
    """A task that must get past an ``await`` by a deadline (connecting), cancelled by the clock if not."""

    __slots__ = ("task", "at", "fired")

    def __init__(self, task: "asyncio.Task[Any]", at: float) -> None:
        self.task, self.at, self.fired = task, at, False

    def expired(self, now: float) -> bool:
        if now >= self.at:
            self.fired = True
            self.task.cancel()
            return True
        return False


class _Clock:
    """Every timeout of one transport, checked by a single repeating timer while any is pending.

    A timer of its own per request costs a heap push, a cancel and a pop among a thousand others (and
    asyncio.timeout more): measurable per call at high fan-out. Here watching is a set insertion; the
    price is precision — a timeout fires between its due time and a quarter of it (at most a second) later.
    """

    def __init__(self) -> None:
        self._watched: set[Any] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._tick = float("inf")

    def watch(self, item: Any, timeout: float) -> None:
        """Check ``item.expired(now)`` until it returns True or :meth:`forget` is called."""
        self._watched.add(item)
        tick = min(1.0, max(0.005, timeout / 4))
        if tick < self._tick:
            if self._handle is not None:
                self._handle.cancel()
            self._tick = tick
            self._handle = asyncio.get_running_loop().call_later(tick, self._sweep)

    def forget(self, item: Any) -> None:
        self._watched.discard(item)

    def _sweep(self) -> None:
        now = time.monotonic()
        for item in list(self._watched):
            if item.expired(now):
                self._watched.discard(item)
        if self._watched:
            self._handle = asyncio.get_running_loop().call_later(self._tick, self._sweep)
        else:
            self._handle, self._tick = None, float("inf")

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._tick = None, float("inf")
        self._watched.clear()


class HTTP1Transport(httpx.AsyncBaseTransport):
    """A pooled HTTP/1.1 client transport (see the module docstring).

    ``limits`` as httpx's: at most ``max_connections`` open (others wait up to the pool timeout), at most
    ``max_keepalive_connections`` kept idle, each for ``keepalive_expiry`` seconds. ``verify``: ``True``
    (the certificates httpx trusts), ``False``, or an :class:`ssl.SSLContext`.
    """

    def __init__(self, *, limits: httpx.Limits | None = None, verify: ssl.SSLContext | bool = True) -> None:
        if httptools is None:
            raise ImportError("heavy's HTTP transport needs httptools: `pip install httptools` "
                              "(or reinstall heavy), or set HEAVY_HTTP_TRANSPORT=httpx")
        limits, inf = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20), float("inf")
        self._max = inf if limits.max_connections is None else limits.max_connections
        self._max_idle = inf if limits.max_keepalive_connections is None else limits.max_keepalive_connections
        self._expiry = inf if limits.keepalive_expiry is None else limits.keepalive_expiry
        self._verify = verify
        self._idle: dict[Origin, list[_Connection]] = {}
        self._n_idle = 0
        self._busy = 0  # connections lent out or being opened
        self._open: set[_Connection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._clock = _Clock()
        self._dns: dict[tuple[str, int], tuple[float, list[Any]]] = {}
        self._lookups: dict[tuple[str, int], asyncio.Future[list[Any]]] = {}

    # --- the pool --------------------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        global _default_ssl
        if isinstance(self._verify, ssl.SSLContext):
            return self._verify
        if self._verify is False:
            return httpx.create_ssl_context(verify=False)
        if _default_ssl is None:  # loading the CA bundle costs tens of ms: once per process, on first https
            _default_ssl = httpx.create_ssl_context()
        return _default_ssl

    async def _connect(self, origin: Origin, timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        context = self._ssl_context() if scheme == "https" else None
        conn = _Connection(self, origin, loop)
        deadline = None
        if timeout is not None:
            task = asyncio.current_task()
            assert task is not None
            cancelling = task.cancelling()
            deadline = _Deadline(task, time.monotonic() + timeout)
            self._clock.watch(deadline, timeout)
        try:
            sock = await self._socket(host, port)
            await loop.create_connection(lambda: conn, sock=sock, ssl=context,
                                         server_hostname=host if context else None)
        except asyncio.CancelledError:
            conn.close()
            # Our clock's cancel (and nobody else's) is a timeout, as asyncio.timeout decides it.
            if deadline is not None and deadline.fired and deadline.task.uncancel() <= cancelling:
                raise httpx.ConnectTimeout(f"connecting to {host}:{port} took over {timeout:g} s") from None
            raise
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"{exc or type(exc).__name__} ({host}:{port})") from exc
        finally:
            if deadline is not None:
                self._clock.forget(deadline)
        self._open.add(conn)
        return conn

    async def _socket(self, host: str, port: int) -> socket.socket:
        """A socket connected to *host*:*port*, trying its addresses in turn (as asyncio does)."""
        loop = asyncio.get_running_loop()
        error: OSError | None = None
        for family, kind, proto, _, address in await self._addresses(host, port):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, address)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
            except BaseException:
                sock.close()
                raise
        raise error or OSError(f"{host} has no address")

    async def _addresses(self, host: str, port: int) -> list[Any]:
        """*host*'s addresses, looked up once per ``_DNS_TTL`` seconds however many connections open at once.

        Without this, each of a thousand new connections to one API is its own getaddrinfo call on the
        event loop's small thread pool (asyncio resolves per connection): the fan-out would queue on DNS.
        """
        key = (host, port)
        cached = self._dns.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:  # an address already: nothing to look up (no trip through the executor's threads)
            ip = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            found = [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port))]
            self._dns[key] = (float("inf"), found)
            return found
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = asyncio.ensure_future(self._lookup(host, port))
            lookup.add_done_callback(lambda t: t.cancelled() or t.exception())  # seen, even if no one waits
        return await asyncio.shield(lookup)  # one caller cancelled must not cancel the others' lookup

    async def _lookup(self, host: str, port: int) -> list[Any]:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        finally:
            self._lookups.pop((host, port), None)
        if not found:
            raise OSError(f"{host} has no address")
        self._dns[(host, port)] = (time.monotonic() + _DNS_TTL, found)
        return found

    async def _acquire(self, origin: Origin, timeouts: Timeouts, fresh: bool) -> tuple[_Connection, bool]:
        while True:
            idle = None if fresh else self._idle.get(origin)
            while idle:
                conn = idle.pop()  # the most recently used: the least likely to have been closed by the server
                self._n_idle -= 1
                if conn.lost or time.monotonic() - conn.idle_since > self._expiry:
                    conn.close()
                    continue
                self._busy += 1
                return conn, True
            if self._busy + self._n_idle < self._max:
                break
            if self._n_idle:
                self._evict()
                continue
            await self._wait_for_slot(timeouts[3])
        self._busy += 1
        try:
            return await self._connect(origin, timeouts[0]), False
        except BaseException:
            self._busy -= 1
            self._wake_one()
            raise

    def _evict(self) -> None:
        """Close the oldest idle connection (of any origin) to make room for a new one."""
        for conns in self._idle.values():
            if conns:
                conns.pop(0).close()
                self._n_idle -= 1
                return

    async def _wait_for_slot(self, timeout: float | None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken, then cancelled or timed out before using the turn: pass it on
            waiter.cancel()
            if isinstance(exc, TimeoutError):
                raise httpx.PoolTimeout(f"no free connection within {timeout:g} s "
                                        f"(all {self._max:g} in use)") from None
            raise

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _release(self, conn: _Connection, reusable: bool) -> None:
        self._busy -= 1
        if reusable and self._n_idle < self._max_idle:
            conn.idle_since = now = time.monotonic()
            idle = self._idle.setdefault(conn.origin, [])
            while idle and (idle[0].lost or now - idle[0].idle_since > self._expiry):
                idle.pop(0).close()
                self._n_idle -= 1
            idle.append(conn)
            self._n_idle += 1
        else:
            conn.close()
        if self._waiters:
            self._wake_one()

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)

    # --- requests --------------------------------------------------------------------------------------

    async def exchange(self, origin: Origin, head: bytes, body: bytes | None, timeouts: Timeouts, *,
                       head_only: bool = False) -> Exchange:
        """Send one request (*head* complete with its closing blank line, then *body*) and return once the
        response's status and headers are in. A reused connection that turns out closed before answering
        is retried once on a new one (the server never saw the request)."""
        for attempt in (0, 1):
            conn, reused = await self._acquire(origin, timeouts, fresh=attempt > 0)
            ex = conn.send(head, body, timeouts[1], head_only)
            try:
                if conn._paused_writing:
                    await conn.drained(timeouts[2])
                await ex._head()
            except _Stale:
                ex.release()
                if reused and attempt == 0:
                    continue
                raise httpx.RemoteProtocolError("the server closed the connection without answering") from None
            except BaseException:
                ex.release()
                raise
            return ex
        raise AssertionError("unreachable")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """httpx's transport interface: the same pool for any ``httpx.AsyncClient``."""
        origin = origin_of(request.url)
        body = await request.aread()
        headers = [(n, v) for n, v in request.headers.raw if n.lower() not in (b"content-length", b"transfer-encoding")]
        if body or request.method in ("POST", "PUT", "PATCH"):
            headers.append((b"content-length", str(len(body)).encode()))
        head = encode_head(request.method, request.url.raw_path, headers) + b"\r\n"
        t: Mapping[str, Any] = request.extensions.get("timeout") or {}
        ex = await self.exchange(origin, head, body, (t.get("connect"), t.get("read"), t.get("write"), t.get("pool")),
                                 head_only=request.method == "HEAD")
        return httpx.Response(ex.status, headers=ex.raw_headers, stream=_ResponseStream(ex),
                              extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        """Close every connection, idle or busy (busy exchanges fail as disconnected). Like httpx's own
        pools, the transport can still be used afterwards: it opens new connections."""
        self._clock.stop()
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        self._n_idle = 0
        while self._waiters:
            self._wake_one()
        await asyncio.sleep(0)  # let the closed sockets' connection_lost run before the loop may stop


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, ex: Exchange) -> None:
        self._ex = ex

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._ex.iter_raw()

    async def aclose(self) -> None:
        self._ex.release()
