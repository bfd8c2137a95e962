"""One HTTP/1.1 connection of heavy's own transport (:mod:`heavy.http1`): request heads, the asyncio
protocol that feeds each response to httptools (llhttp), and the :class:`Exchange` a caller reads it
through. The pool, timeouts and name lookups are :mod:`heavy.http1`'s.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

try:
    import httptools
except ImportError:  # a declared dependency; an environment installed before heavy needed it may lack it
    httptools = None

if TYPE_CHECKING:
    from .http1 import HTTP1Transport, Origin

__all__ = ["Exchange", "encode_head"]

#: A streamed body buffered beyond this many bytes stops reading from the socket until the reader catches up.
_HIGH_WATER = 1 << 20


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
