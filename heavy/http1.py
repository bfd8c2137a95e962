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

Not here: HTTP/2, proxies, ``Expect: 100-continue`` and protocol upgrades (heavy's other transports do
not offer them either).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

try:
    import httptools
except ImportError:  # a declared dependency; an environment installed before heavy needed it may lack it
    httptools = None

__all__ = ["HTTP1Transport", "Exchange", "Origin", "Timeouts", "origin_of", "encode_head"]

#: ``(scheme, host, port)``: where a connection goes; connections are pooled per origin.
Origin = tuple[str, str, int]
#: ``(connect, read, write, pool)`` seconds, ``None`` meaning no limit (httpx's timeout extension, as a tuple).
Timeouts = tuple[float | None, float | None, float | None, float | None]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A streamed body buffered beyond this many bytes stops reading from the socket until the reader catches up.
_HIGH_WATER = 1 << 20
_default_ssl: ssl.SSLContext | None = None
#: Seconds a host's resolved addresses are reused (aiohttp's default too).
_DNS_TTL = 10.0


def origin_of(url: httpx.URL) -> Origin:
    """The pool key of *url*; anything but http(s) is :class:`httpx.UnsupportedProtocol`."""
    scheme = url.scheme
    if scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(f"heavy's HTTP/1.1 transport speaks http and https, not {scheme!r}")
    return scheme, url.raw_host.decode("ascii"), url.port or _DEFAULT_PORTS[scheme]


def encode_head(method: str, target: bytes, headers: Any) -> bytes:
    """A request head without its closing blank line: the request line and *headers* (name/value pairs of
    str or bytes). A line break inside a name or value is refused: it would smuggle a header of its own."""
    lines = [f"{method} ".encode("ascii") + target + b" HTTP/1.1"]
    for name, value in headers:
        n = name if isinstance(name, bytes) else name.encode("ascii")
        v = value if isinstance(value, bytes) else value.encode("utf-8")
        if b"\r" in n or b"\n" in n or b"\r" in v or b"\n" in v or b":" in n or not n:
            raise httpx.LocalProtocolError(f"header {n.decode('ascii', 'replace')!r} holds a line break or is "
                                           "malformed; it cannot be sent")
        lines.append(n + b": " + v)
    return b"\r\n".join(lines) + b"\r\n"


class _Stale(Exception):
    """The connection closed before a single byte of the answer: on a reused connection, worth one retry."""


class Exchange:
    """One request and its response on one pooled connection.

    Read the body with :meth:`read` (all of it) or :meth:`iter_bytes` / :meth:`iter_raw` (as it arrives);
    the connection goes back to the pool when the body is complete, or is closed by :meth:`release` when
    it is not. ``status`` and ``raw_headers`` are set once :meth:`HTTP1Transport.exchange` returns.
    """

    __slots__ = ("_conn", "status", "raw_headers", "_chunks", "_buffered", "headers_done", "done", "keep_alive",
                 "error", "_waiter", "got_bytes", "_interim", "_released", "_last", "_read_timeout",
                 "_head_only", "_close_delimited", "_framed", "_coding")

    def __init__(self, conn: "_Connection", read_timeout: float | None, head_only: bool) -> None:
        self._conn = conn
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._buffered = 0
        self.headers_done = self.done = self.keep_alive = self.got_bytes = False
        self._interim = self._released = self._close_delimited = self._framed = False
        self._coding: bytes | None = None  # Content-Encoding, as sent
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_timeout = read_timeout
        self._head_only = head_only
        self._last = time.monotonic()
        if read_timeout is not None:
            conn.pool._clock.watch(self, read_timeout)

    # --- fed by the connection ---------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _finish(self, keep_alive: bool) -> None:
        self.done, self.keep_alive = True, keep_alive
        self._conn.pool._clock.forget(self)
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self.done or self.error is not None:
            return
        self.error = exc
        self._conn.pool._clock.forget(self)
        self._wake()

    def expired(self, now: float) -> bool:
        """Called by the clock: has the server been silent for the read timeout? Then fail and close."""
        if self.done or self.error is not None:
            return True
        if now - self._last < self._read_timeout:  # type: ignore[operator]
            return False
        self._fail(httpx.ReadTimeout(f"no data from the server for {self._read_timeout:g} s"))
        self._conn.close()
        return True

    # --- read by the caller --------------------------------------------------------------------------

    async def _wait(self) -> None:
        self._waiter = waiter = self._conn.loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    async def _head(self) -> None:
        while not self.headers_done:
            if self.error is not None:
                raise self.error
            await self._wait()

    @property
    def headers(self) -> dict[str, str]:
        """The response headers, names lower-cased (repeated names joined with ``", "``)."""
        out: dict[str, str] = {}
        for name, value in self.raw_headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            out[key] = f"{out[key]}, {text}" if key in out else text
        return out

    async def read(self) -> bytes:
        """The whole body (content-decoded); the connection is released when it is in."""
        try:
            while not self.done:
                if self.error is not None:
                    raise self.error
                await self._wait()
            chunks = self._chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
        finally:
            self.release()
        decoder = _decoder(self._coding)
        return body if decoder is None else _decode(decoder, body)

    async def iter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, as sent (not content-decoded); released when complete or abandoned."""
        try:
            while True:
                if self._chunks:
                    chunks, self._chunks, self._buffered = self._chunks, [], 0
                    self._conn.reading(True)
                    for chunk in chunks:
                        yield chunk
                    continue
                if self.done:
                    return
                if self.error is not None:
                    raise self.error
                await self._wait()
        finally:
            self.release()

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """The body as it arrives, content-decoded (gzip, deflate)."""
        decoder = _decoder(self._coding)
        async for chunk in self.iter_raw():
            out = chunk if decoder is None else _decode(decoder, chunk, final=False)
            if out:
                yield out
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                yield tail

    async def aclose(self) -> None:
        """:meth:`release`, for callers that close httpx responses and exchanges alike."""
        self.release()

    def release(self) -> None:
        """Give the connection back: to the pool after a complete answer, closed otherwise. Safe to repeat."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.pool._clock.forget(self)
        conn.ex = None
        conn.reading(True)
        conn.pool._release(conn, self.done and self.keep_alive and not conn.lost)


def _decoder(coding: bytes | None) -> Any:
    if coding is None:
        return None
    coding = coding.strip().lower()
    if coding in (b"gzip", b"x-gzip", b"deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib framing, told apart by the header
    if coding not in (b"", b"identity"):
        raise httpx.DecodingError(f"the server answered in {coding.decode('latin-1')!r} encoding, "
                                  "which heavy does not decode (it asks for gzip or deflate)")
    return None


def _decode(decoder: Any, data: bytes, final: bool = True) -> bytes:
    try:
        return decoder.decompress(data) + (decoder.flush() if final else b"")
    except zlib.error as exc:
        raise httpx.DecodingError(f"could not decode the compressed body: {exc}") from None


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


class _Connection(asyncio.Protocol):
    """One socket to one origin: an asyncio protocol that feeds httptools and hands events to its exchange."""

    __slots__ = ("pool", "origin", "loop", "sock", "parser", "ex", "lost", "idle_since", "_paused_writing",
                 "_paused_reading", "_drain", "__weakref__")

    def __init__(self, pool: "HTTP1Transport", origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.pool, self.origin, self.loop = pool, origin, loop
        self.sock: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.ex: Exchange | None = None
        self.lost = False
        self.idle_since = 0.0
        self._paused_writing = False
        self._paused_reading = False
        self._drain: asyncio.Future[None] | None = None

    def send(self, head: bytes, body: bytes | None, read_timeout: float | None, head_only: bool) -> Exchange:
        ex = self.ex = Exchange(self, read_timeout, head_only)
        if self.lost or self.sock is None or self.sock.is_closing():
            ex._fail(_Stale())
        else:
            self.sock.write(head + body if body else head)
        return ex

    async def drained(self, timeout: float | None) -> None:
        """Wait until the socket takes more (a large body); past *timeout*: :class:`httpx.WriteTimeout`."""
        while self._paused_writing and not self.lost:
            self._drain = self.loop.create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._drain
            except TimeoutError:
                self.close()
                raise httpx.WriteTimeout(f"the server took no data for {timeout:g} s") from None

    def reading(self, on: bool) -> None:
        """Resume (*on*) or pause reading from the socket: a reader that falls behind holds the server back."""
        if self.sock is None or self.lost or on != self._paused_reading:
            return  # already in that state
        self._paused_reading = not on
        if on:
            self.sock.resume_reading()
            if self.ex is not None:
                self.ex._last = time.monotonic()  # our pause is not the server's silence
        else:
            self.sock.pause_reading()

    def close(self) -> None:
        self.lost = True  # never reused, even before connection_lost arrives
        if self.sock is not None:
            self.sock.close()

    # --- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sock = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ex = self.ex
        if ex is None:  # bytes nobody asked for, on an idle connection: it cannot be trusted again
            self.close()
            return
        ex._last = time.monotonic()
        ex.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            ex._fail(httpx.RemoteProtocolError("the server switched protocols, which heavy does not speak"))
            self.close()
        except httptools.HttpParserError as exc:
            # After a complete answer, extra bytes only make the connection unusable; before, they are the error.
            ex.keep_alive = False
            ex._fail(httpx.RemoteProtocolError(f"malformed HTTP response ({exc})"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.pool._forget(self)
        # The parser holds our bound methods: dropping it breaks the cycle, so refcounting frees the
        # connection at once instead of leaving a dozen objects per connection to the cyclic GC.
        self.parser = None  # type: ignore[assignment]
        ex = self.ex
        if ex is not None and not ex.done:
            if ex.headers_done and ex._close_delimited:
                ex._finish(False)  # a body without a length ends where the connection does
            elif not ex.got_bytes:
                ex._fail(_Stale(str(exc) if exc else "closed"))
            elif exc is not None:
                ex._fail(httpx.ReadError(f"connection lost mid-response ({exc})"))
            else:
                ex._fail(httpx.RemoteProtocolError("the server closed the connection mid-response"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # --- httptools callbacks (only ever called from data_received, so an exchange is current) -----------

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.ex
        assert ex is not None
        ex.raw_headers.append((name, value))
        low = name.lower()
        if low == b"content-encoding":
            ex._coding = value
        elif low == b"content-length" or low == b"transfer-encoding":
            ex._framed = True

    def on_headers_complete(self) -> None:
        ex = self.ex
        assert ex is not None
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue, 103 Early Hints: the real answer follows
            ex._interim, ex.raw_headers, ex._framed, ex._coding = True, [], False, None
            return
        ex.status, ex.headers_done = status, True
        ex._close_delimited = not ex._framed and status not in (204, 304)
        if ex._head_only:
            ex._finish(False)  # the parser would wait for a body a HEAD answer never has: not reusable
        else:
            ex._wake()

    def on_body(self, body: bytes) -> None:
        ex = self.ex
        assert ex is not None
        if ex.done:
            return
        ex._chunks.append(body)
        ex._buffered += len(body)
        if ex._buffered > _HIGH_WATER:
            self.reading(False)
        ex._wake()

    def on_message_complete(self) -> None:
        ex = self.ex
        assert ex is not None
        if ex._interim:
            ex._interim = False
        elif not ex.done:
            ex._finish(self.parser.should_keep_alive())


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
