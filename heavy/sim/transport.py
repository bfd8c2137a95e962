"""An httpx transport that serves requests from an in-process ASGI app, streaming: how the ``sim`` preset reaches
its simulator without a socket, and how tests put heavy's own apps (the simulator, ``heavy serve``) under a client.

It lives with the simulator, not in heavy's HTTP edge (:mod:`heavy.http`): the edge only knows that a caller may
hand it an httpx transport of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx

__all__ = ["StreamingASGITransport"]


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
