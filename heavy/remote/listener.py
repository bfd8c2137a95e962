"""Binding a socket and running an ASGI app on it with uvicorn, for every shell that serves HTTP.

:func:`listen` binds first, so a bad or busy port is one clear error rather than a traceback; uvicorn is
imported only when a server starts (the ``serve`` extra), so importing this module needs no web framework.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from .. import constants as C
from ..errors import ConfigError

__all__ = ["serve", "listen", "build_server", "header_timed_protocol", "is_loopback", "require_server_deps",
           "DEFAULT_PORT"]

DEFAULT_PORT = 8000


def require_server_deps(command: str = "heavy serve", modules: tuple[str, ...] = ("starlette", "uvicorn")) -> None:
    """:class:`ConfigError` naming the install command unless the ``serve`` extra's *modules* import."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"{command} needs the serve extra: pip install 'heavy[serve]'") from None


def is_loopback(host: str) -> bool:
    """Whether binding *host* keeps the server reachable from this machine only."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to *host*:*port*, ready for :func:`serve`; a :class:`ConfigError` of one line when the
    port is out of range, taken, or the address is not this machine's."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range: give --port between 1 and 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP. Without it,
    # a response's second write waited for the client's delayed ACK: every request after the first on a keep-alive
    # connection took ~40 ms longer (bench/gateway.py).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by the accepted connections
        # as uvicorn does: a restarted server may bind while old connections are in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        hint = ("another program listens there: stop it or choose another --port"
                if isinstance(exc, OSError) and exc.errno == 98 else "choose another --host or --port")
        raise ConfigError(f"cannot listen on {host}:{port}: {reason.lower()} ({hint})") from None
    sock.set_inheritable(True)
    return sock


def build_server(app: Any, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_level: str = "info",
                 header_timeout: float | None = None) -> Any:
    """A ``uvicorn.Server`` for *app* whose connections must send each request's head within
    *header_timeout* seconds (default: the app's ``ServeSettings.header_timeout`` if it has one)."""
    require_server_deps(modules=("uvicorn",))  # serving needs uvicorn only (`heavy sim` serves a raw ASGI app)
    import uvicorn

    if header_timeout is None:
        settings = getattr(getattr(getattr(app, "state", None), "heavy", None), "settings", None)
        header_timeout = getattr(settings, "header_timeout", C.SERVE_HEADER_TIMEOUT_S)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                            http=header_timed_protocol(header_timeout))
    return uvicorn.Server(config)


def serve(app: Any, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_level: str = "info",
          sock: socket.socket | None = None, header_timeout: float | None = None) -> None:
    """Serve *app* with uvicorn until interrupted (blocks), on *sock* if given (see :func:`listen`)."""
    sock = sock or listen(host, port)
    server = build_server(app, host, port, log_level=log_level, header_timeout=header_timeout)
    server.run(sockets=[sock])
    if not server.started:
        raise ConfigError(f"the server on {host}:{port} did not start (see the log above)")


def header_timed_protocol(seconds: float) -> type:
    """uvicorn's HTTP protocol class with a deadline of *seconds* on each request head.

    uvicorn (as of 0.54) has no such timeout: its keep-alive timer restarts on every byte and is not armed
    before the first request, so a client trickling its headers holds a connection forever. Here the clock
    starts when a connection opens or a response completes, and stops when a request's head is complete;
    when it runs out, a client that has begun a request gets a 408 and every such connection is closed.
    """
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class HeaderTimedProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _head_timer: Any = None
        _head_bytes = 0

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_head_timer()

        def data_received(self, data: bytes) -> None:
            self._head_bytes += len(data)
            super().data_received(data)
            if self._in_request():
                self._disarm_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_timer()
            super().connection_lost(exc)

        def _in_request(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is not None and not cycle.response_complete

        def _arm_head_timer(self) -> None:
            self._disarm_head_timer()
            if self._in_request() or self.transport.is_closing():
                return  # a pipelined request already started
            self._head_bytes = 0
            self._head_timer = self.loop.call_later(seconds, self._head_timed_out)

        def _disarm_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self._in_request() or self.transport.is_closing():
                return
            if self._head_bytes:  # a request had begun: say why it ends (an idle connection just closes)
                body = json.dumps({"error": {
                    "message": f"the request head did not arrive within {seconds:g} seconds; send it at once "
                               "(the server's operator sets this with `heavy serve --header-timeout`)",
                    "type": "invalid_request_error", "param": None, "code": "request_timeout"}}).encode()
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                                     b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                                     + body)
            self.transport.close()

    return HeaderTimedProtocol
