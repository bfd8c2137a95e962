"""Raw ASGI plumbing shared by heavy's two servers, the proxy (:mod:`heavy.serve`) and the simulator
(:mod:`heavy.sim`): reading a request's body and noticing that its client went away.

Both servers handle their requests at the ASGI level so that a disconnect is noticed at once, even while
nothing is due to be sent. This module imports no web framework, so the simulator (which must run
without one) and the proxy (a shell, which has one) can both use it. Each server turns the exceptions
below into an error answer of its own wire format.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["BodyTooLarge", "BadContentLength", "read_body", "watch_disconnect"]


class BodyTooLarge(Exception):
    """The request body is larger than ``limit`` bytes; ``declared`` is the Content-Length that said so in
    advance (``None`` when the body was counted while it arrived)."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit, self.declared = limit, declared


class BadContentLength(Exception):
    """The request's Content-Length header is not a number."""


async def read_body(receive: Any, limit: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes | None:
    """The whole request body, or ``None`` if the client disconnected first.

    Raises :class:`BodyTooLarge` past *limit* bytes: before reading anything when the Content-Length of
    *headers* (the ASGI scope's) announces more, else as soon as the bytes received exceed it; and
    :class:`BadContentLength` when that header is not a number.
    """
    for name, value in headers:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise BadContentLength(value) from None
            if declared > limit:
                raise BodyTooLarge(limit, declared)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        piece = message.get("body", b"")
        size += len(piece)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(piece)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def watch_disconnect(receive: Any) -> None:
    """Completes when the client disconnects (or the connection can no longer tell us anything)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # a broken receive channel means the client is gone just the same
        return
