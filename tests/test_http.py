"""heavy's HTTP edge over real sockets: HTTPClient over aiohttp (its default) and over a caller's httpx
transport, against small servers on 127.0.0.1 that misbehave on purpose (the network edge is the only thing
faked): keep-alive, chunked and close-delimited and gzip bodies, SSE split anywhere, 1xx answers, timeouts,
the pool's limit, cancellation, error mapping and keys. The defects of the hand-written transport heavy had
before (big bodies, replayed POSTs, huge heads, proxies, CA bundles, bad base URLs): tests/test_http_hostile.py."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
import time

import httpx
import pytest

from heavy.errors import ConfigError, FatalRequestError, ProviderConnectionError, ProviderHTTPError, ProviderTimeout
from heavy.errors import redact
from heavy.http import HTTPClient, Timeout
from heavy.http_aiohttp import AiohttpBackend

pytestmark = pytest.mark.anyio


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes] | None:
    """One request off the wire: its request line, headers (lower-cased) and body; None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *rest = head[:-4].split(b"\r\n")
    headers = {}
    for raw in rest:
        name, _, value = raw.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return line, headers, body


def reply(body: bytes | str, status: str = "200 OK", headers: tuple[str, ...] = ()) -> bytes:
    data = body.encode() if isinstance(body, str) else body
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(data)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


class Server:
    """A TCP server on 127.0.0.1 whose every connection runs ``handler(reader, writer, server)``."""

    def __init__(self, handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler, self.ssl_context = handler, ssl_context
        self.connections = 0
        self.open = 0
        self.peak = 0
        self.requests: list[tuple[bytes, dict[str, str], bytes]] = []

    async def __aenter__(self) -> "Server":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"
        return self

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        await self._server.wait_closed()


def answering(make_reply, delay: float = 0.0):
    """A keep-alive handler: every request gets ``make_reply(request)`` (bytes, or None to hang up), after
    *delay* seconds."""

    async def handler(reader, writer, server):
        while (req := await read_request(reader)) is not None:
            server.requests.append(req)
            if delay:
                await asyncio.sleep(delay)
            out = make_reply(req)
            if out is None:
                return
            writer.write(out)
            await writer.drain()

    return handler


def client(server: Server, **kw) -> HTTPClient:
    return HTTPClient(server.url + "/v1", provider="test", **kw)


def test_aiohttp_is_the_default_and_a_callers_httpx_transport_goes_through_httpx():
    assert isinstance(HTTPClient("http://127.0.0.1:1")._backend, AiohttpBackend)
    mock = HTTPClient("http://mock.test/v1", transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    assert not isinstance(mock._backend, AiohttpBackend)


async def test_a_callers_httpx_transport_gets_the_request_and_its_errors_are_heavys():
    seen = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/down"):
            raise httpx.ConnectError("refused", request=request)
        if request.url.path.endswith("/slow"):
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, json={"got": json.loads(request.content or b"null")}, headers={"x-request-id": "m-1"})

    http = HTTPClient("http://mock.test/v1", transport=httpx.MockTransport(answer), provider="test",
                      headers={"authorization": "Bearer sk-mock-key-123"})
    resp = await http.post_json("chat", {"a": 1})
    assert resp.json() == {"got": {"a": 1}} and resp.headers["x-request-id"] == "m-1"
    assert str(seen[0].url) == "http://mock.test/v1/chat" and seen[0].headers["authorization"] == "Bearer sk-mock-key-123"
    assert (await http.get_json("models", {"q": "a b"})).status == 200
    assert seen[1].url.query == b"q=a+b"
    with pytest.raises(ProviderConnectionError, match="ConnectError"):
        await http.post_json("down", {})
    with pytest.raises(ProviderTimeout, match="ReadTimeout"):
        await http.post_json("slow", {})
    await http.aclose()


async def test_posts_json_and_reuses_one_keep_alive_connection():
    async with Server(answering(lambda req: reply(json.dumps({"echo": json.loads(req[2])}),
                                                  headers=("X-Request-Id: r-1",)))) as server:
        http = client(server, headers={"authorization": "Bearer sk-test-key"})
        for i in range(5):
            resp = await http.post_json("chat/completions", {"i": i, "text": "héllo"})
            assert resp.status == 200 and resp.json() == {"echo": {"i": i, "text": "héllo"}}
            assert resp.headers["x-request-id"] == "r-1"  # names lower-cased
        await http.aclose()
    assert server.connections == 1, "sequential calls share one connection"
    line, headers, _ = server.requests[0]
    assert line == b"POST /v1/chat/completions HTTP/1.1"
    assert headers["host"] == f"127.0.0.1:{server.port}" and headers["authorization"] == "Bearer sk-test-key"
    assert headers["content-type"] == "application/json" and headers["user-agent"].startswith("heavy/")


async def test_get_with_params():
    async with Server(answering(lambda req: reply(json.dumps({"line": req[0].decode()})))) as server:
        http = client(server)
        resp = await http.get_json("models", {"q": "a b", "n": 3})
        await http.aclose()
    assert resp.json() == {"line": "GET /v1/models?q=a+b&n=3 HTTP/1.1"}


async def test_a_thousand_requests_in_flight_at_once():
    async with Server(answering(lambda req: reply(req[2]), delay=0.3)) as server:
        http = client(server, max_connections=1000)
        t0 = time.monotonic()
        out = await asyncio.gather(*(http.post_json("x", {"i": i}) for i in range(1000)))
        wall = time.monotonic() - t0
        await http.aclose()
    assert [r.json()["i"] for r in out] == list(range(1000))
    assert server.peak > 500 and wall < 15, "the calls overlap instead of queueing"


async def test_the_pool_limit_queues_calls_and_its_timeout_is_a_provider_timeout():
    async with Server(answering(lambda req: reply(req[2]), delay=0.2)) as server:
        http = client(server, max_connections=2)
        out = await asyncio.gather(*(http.post_json("x", {"i": i}) for i in range(6)))
        assert [r.json()["i"] for r in out] == list(range(6)) and server.peak == 2
        short = Timeout(pool=0.1)
        results = await asyncio.gather(*(http.post_json("x", {}, timeout=short) for _ in range(3)),
                                       return_exceptions=True)
        await http.aclose()
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and isinstance(failed[0], ProviderTimeout) and "PoolTimeout" in str(failed[0])


async def test_a_get_on_a_keep_alive_connection_the_server_dropped_is_sent_again():
    # A GET may be repeated (RFC 9112 9.3.1); a POST never is (tests/test_http_hostile.py).
    async def handler(reader, writer, server):
        server.requests.append(await read_request(reader))
        writer.write(reply("ok"))
        await writer.drain()
        server.requests.append(await read_request(reader))  # the next request on it is dropped unanswered,
        # as when a server's keep-alive timer fires just as a request arrives

    async with Server(handler) as server:
        http = client(server)
        assert (await http.get_json("x", {"n": 1})).text == "ok"
        assert (await http.get_json("x", {"n": 2})).text == "ok"
        await http.aclose()
    assert server.connections == 2
    assert [r[0] for r in server.requests if r] == [b"GET /v1/x?n=1 HTTP/1.1", b"GET /v1/x?n=2 HTTP/1.1",
                                                     b"GET /v1/x?n=2 HTTP/1.1"], "sent again on a new connection"


async def test_a_connection_closed_while_idle_is_not_used_again():
    async def handler(reader, writer, server):
        server.requests.append(await read_request(reader))
        writer.write(reply("ok"))
        await writer.drain()

    async with Server(handler) as server:
        http = client(server)
        assert (await http.post_json("x", {})).text == "ok"
        await asyncio.sleep(0.05)  # the server has hung up by now
        assert (await http.post_json("x", {})).text == "ok"
        await http.aclose()
    assert server.connections == 2 and len(server.requests) == 2


async def test_chunked_close_delimited_gzip_and_interim_answers():
    body = json.dumps({"ok": True}).encode()
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (1, body[i:i + 1]) for i in range(len(body))) + b"0\r\n\r\n")
    zipped = gzip.compress(body)
    answers = {
        b"/v1/chunked": chunked,
        b"/v1/gzip": reply(zipped, headers=("Content-Encoding: gzip",)),
        b"/v1/interim": b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + reply(body),
        b"/v1/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body,
    }

    async def handler(reader, writer, server):
        while (req := await read_request(reader)) is not None:
            target = req[0].split()[1]
            writer.write(answers[target])
            await writer.drain()
            if target == b"/v1/close":
                return

    async with Server(handler) as server:
        http = client(server)
        for path in ("chunked", "gzip", "interim", "close", "chunked"):
            assert (await http.post_json(path, {})).json() == {"ok": True}, path
        await http.aclose()
    assert server.connections == 2, "reused until the server said close"


async def test_sse_events_arrive_as_sent_and_lines_split_anywhere():
    first_read = asyncio.Event()
    events = [b"data: {\"n\": 1}\r\n\r\n", "event: note\r\ndata: a\u2028b\r\n".encode(), b"data: c\r", b"\n\r\n",
              b": keep-alive\n\n", b"data: [DONE]\n\n"]

    async def handler(reader, writer, server):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i, event in enumerate(events):
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
            if i == 0:
                await asyncio.wait_for(first_read.wait(), 5)  # the client must see event 1 before the rest exists
        writer.write(b"0\r\n\r\n")

    async with Server(handler) as server:
        http = client(server)
        got = []
        async with http.stream_sse("chat/completions", {"stream": True}) as (headers, stream):
            assert headers["content-type"] == "text/event-stream"
            async for event in stream:
                got.append((event.event, event.data))
                first_read.set()
        await http.aclose()
    assert got == [(None, '{"n": 1}'), ("note", "a\u2028b\nc"), (None, "[DONE]")]


async def test_http_errors_keep_their_meaning_and_never_show_the_key():
    def answer(req):
        path = req[0].split()[1]
        if path.endswith(b"/limited"):
            return reply(json.dumps({"error": {"message": "slow down"}}), "429 Too Many Requests",
                         ("Retry-After: 2", "x-request-id: req-9"))
        return reply(json.dumps({"error": {"message": "bad key sk-secret-123456 given"}}), "401 Unauthorized")

    async with Server(answering(answer)) as server:
        http = client(server, headers={"authorization": "Bearer sk-secret-123456"})
        with pytest.raises(ProviderHTTPError) as limited:
            await http.post_json("limited", {})
        assert limited.value.status == 429 and limited.value.retryable and limited.value.retry_after == 2
        assert limited.value.request_id == "req-9" and "slow down" in str(limited.value)
        with pytest.raises(FatalRequestError) as denied:
            await http.post_json("denied", {})
        await http.aclose()
    assert "sk-secret-123456" not in redact(str(denied.value)) and denied.value.status == 401


async def test_a_silent_server_is_a_read_timeout_and_a_closed_port_a_connection_error():
    async def silent(reader, writer, server):
        await read_request(reader)
        await asyncio.sleep(10)

    async with Server(silent) as server:
        http = client(server, timeout=Timeout(read=0.3))
        t0 = time.monotonic()
        with pytest.raises(ProviderTimeout, match="ReadTimeout"):
            await http.post_json("x", {})
        assert time.monotonic() - t0 < 3
        await http.aclose()
    http = client(server)  # closed now
    with pytest.raises(ProviderConnectionError, match="ConnectError"):
        await http.post_json("x", {})
    await http.aclose()


async def test_the_read_timeout_is_silence_not_total_time():
    async def slow_stream(reader, writer, server):
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(6):  # 1.2 s in all, never quiet for 0.5 s
            await asyncio.sleep(0.2)
            writer.write(b"2\r\nab\r\n")
        writer.write(b"0\r\n\r\n")

    async with Server(slow_stream) as server:
        http = client(server, timeout=Timeout(read=0.5))
        assert (await http.post_json("x", {})).text == "ab" * 6
        await http.aclose()


async def test_a_server_dying_mid_answer_or_talking_nonsense_is_a_connection_error():
    answers = iter([b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial", b"NOT HTTP AT ALL\r\n\r\n"])

    async def handler(reader, writer, server):
        await read_request(reader)
        writer.write(next(answers))
        await writer.drain()

    async with Server(handler) as server:
        http = client(server)
        with pytest.raises(ProviderConnectionError, match="mid-response"):
            await http.post_json("x", {})
        with pytest.raises(ProviderConnectionError, match="malformed HTTP response"):
            await http.post_json("x", {})
        await http.aclose()


async def test_a_cancelled_call_closes_its_connection_and_frees_its_slot():
    async def handler(reader, writer, server):
        while (req := await read_request(reader)) is not None:
            if req[0].split()[1].endswith(b"/slow"):
                await asyncio.sleep(10)
            writer.write(reply("ok"))

    async with Server(handler) as server:
        http = client(server, max_connections=1)
        task = asyncio.create_task(http.post_json("slow", {}))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await http.post_json("fast", {}, timeout=Timeout(pool=1))).text == "ok"
        await http.aclose()
    assert server.connections == 2, "the half-answered connection was not reused"


async def test_a_closed_client_serves_again_on_new_connections():
    async with Server(answering(lambda req: reply("ok"))) as server:
        http = client(server)
        assert (await http.post_json("x", {})).text == "ok"
        await http.aclose()  # as Heavy.aclose does after every ask_sync
        assert (await http.post_json("x", {})).text == "ok"
        await http.aclose()
    assert server.connections == 2


async def test_a_client_used_in_another_event_loop_opens_its_own_connections():
    # ask_sync runs an event loop per call: a session (bound to its loop) must not be carried across.
    def run_in_new_loop(http: HTTPClient) -> str:
        result: list[str] = []
        import threading

        def go() -> None:
            async def call() -> None:
                result.append((await http.post_json("x", {})).text)
                await http.aclose()
            asyncio.run(call())

        t = threading.Thread(target=go)
        t.start()
        t.join(10)
        return result[0]

    async with Server(answering(lambda req: reply("ok"))) as server:
        http = client(server)
        assert (await http.post_json("x", {})).text == "ok"
        assert await asyncio.to_thread(run_in_new_loop, http) == "ok"
        assert (await http.post_json("x", {})).text == "ok"
        await http.aclose()


async def test_a_key_with_a_newline_is_refused_before_anything_is_sent():
    with pytest.raises(ConfigError, match="authorization") as exc:
        HTTPClient("http://127.0.0.1:1/v1", headers={"authorization": "Bearer sk-abc123\nX-Evil: 1"})
    assert "sk-abc123" not in str(exc.value)


async def test_a_connection_that_is_never_accepted_is_a_connect_timeout():
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: once the queue is full, further handshakes go unanswered
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            fillers.append(s)
        http = HTTPClient(f"http://127.0.0.1:{port}/v1", timeout=Timeout(connect=0.3))
        t0 = time.monotonic()
        with pytest.raises(ProviderTimeout, match="ConnectTimeout"):
            await http.post_json("x", {})
        assert time.monotonic() - t0 < 2
        await http.aclose()
        for s in fillers:
            s.close()


async def test_a_host_is_looked_up_once_for_many_connections(monkeypatch):
    loop = asyncio.get_running_loop()
    lookups = []
    real = loop.getaddrinfo

    async def counting(host, *args, **kw):  # the resolver is the network's edge: counted, not faked
        lookups.append(host)
        return await real(host, *args, **kw)

    monkeypatch.setattr(loop, "getaddrinfo", counting)

    async with Server(answering(lambda req: reply("ok"), delay=0.2)) as server:
        http = HTTPClient(f"http://localhost:{server.port}/v1", max_connections=1000)
        out = await asyncio.gather(*(http.post_json("x", {}) for _ in range(200)))
        await http.aclose()
        by_address = client(server)  # 127.0.0.1: nothing to look up
        assert (await by_address.post_json("x", {})).text == "ok"
        await by_address.aclose()
    assert all(r.text == "ok" for r in out) and server.peak > 100
    assert lookups == ["localhost"], "200 new connections, one lookup; none for an address"
