"""heavy.asgi: the request-body reader and disconnect watcher the proxy and the simulator share."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from heavy.asgi import BadContentLength, BodyTooLarge, read_body, watch_disconnect

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[1]


def receiver(*messages: dict):
    """An ASGI ``receive`` handing out *messages*, then waiting forever (as a live connection does)."""
    queue = list(messages)

    async def receive() -> dict:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


def chunk(body: bytes, more: bool = False) -> dict:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_the_body_arrives_whole_or_not_at_all():
    assert await read_body(receiver(chunk(b"ab", more=True), chunk(b"c")), 10) == b"abc"
    assert await read_body(receiver(chunk(b"ab", more=True), {"type": "http.disconnect"}), 10) is None


async def test_a_body_past_the_limit_is_refused_declared_or_counted():
    with pytest.raises(BodyTooLarge) as declared:
        await read_body(receiver(), 10, [(b"content-length", b"11")])  # refused before reading anything
    assert (declared.value.limit, declared.value.declared) == (10, 11)
    with pytest.raises(BodyTooLarge) as counted:
        await read_body(receiver(chunk(b"123456", more=True), chunk(b"78901")), 10)
    assert (counted.value.limit, counted.value.declared) == (10, None)
    with pytest.raises(BadContentLength):
        await read_body(receiver(chunk(b"x")), 10, [(b"content-length", b"many")])


async def test_the_watcher_ends_with_the_client():
    await asyncio.wait_for(watch_disconnect(receiver(chunk(b""), {"type": "http.disconnect"})), 1)

    async def broken() -> dict:
        raise RuntimeError("the connection is gone")

    await asyncio.wait_for(watch_disconnect(broken), 1)
    watcher = asyncio.create_task(watch_disconnect(receiver()))
    await asyncio.sleep(0.05)
    assert not watcher.done()  # a client still connected is not mistaken for a gone one
    watcher.cancel()


def test_no_web_framework_in_the_shared_plumbing():
    """The simulator imports this module, so it may import no framework and no shell (nor anything of heavy)."""
    tree = ast.parse((REPO / "heavy" / "asgi.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {"." * n.level + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "collections.abc", "typing"}, imported
