"""ASGI plumbing of the simulator: headers, JSON answers, request bodies, disconnects and sleeping
(the body reader and the disconnect watcher are :mod:`heavy.asgi`'s, shared with the proxy)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..asgi import BodyTooLarge, read_body as _read_body
from .wire import SimHTTPError

__all__ = ["MAX_BODY", "headers", "send_json", "read_body", "sleep_until", "allow"]

MAX_BODY = 16 * 1024 * 1024  # a chat request bigger than this is a bug, not a prompt


def headers(content_type: str, request_id: str, extra: tuple[tuple[str, str], ...] = (),
            id_header: str = "x-request-id") -> list[tuple[bytes, bytes]]:
    pairs = [("content-type", content_type), (id_header, request_id), ("x-heavy-simulated", "true"), *extra]
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def send_json(send: Any, status: int, payload: dict | list, request_id: str,
                    extra: tuple[tuple[str, str], ...] = (), id_header: str = "x-request-id") -> None:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    head = headers("application/json", request_id, extra, id_header) + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def read_body(receive: Any) -> bytes | None:
    """The whole request body (413 past :data:`MAX_BODY`), or ``None`` if the client disconnected first."""
    try:
        return await _read_body(receive, MAX_BODY)
    except BodyTooLarge:
        raise SimHTTPError(413, f"Request body larger than {MAX_BODY} bytes.", "request_too_large") from None


async def sleep_until(deadline: float, watcher: asyncio.Task) -> bool:
    """Sleep until *deadline* (loop time); ``False`` as soon as the client disconnects."""
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0 and not watcher.done():
        # Waiting on the watcher task itself: no extra task per sleep, and a disconnect wakes us.
        await asyncio.wait({watcher}, timeout=delay)
    return not watcher.done()


def allow(method: str, path: str, *allowed: str) -> None:
    """A 405 unless *method* is one of *allowed* for *path*."""
    if method not in allowed:
        raise SimHTTPError(405, f"Method {method} is not allowed for {path}.", "method_not_allowed")
