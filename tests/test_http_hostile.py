"""The defects of the hand-written HTTP/1.1 transport heavy had, each against a hostile server on 127.0.0.1
started by the test: a big non-streaming body (it hung until the read timeout), a POST whose answer was
dropped on a reused connection (it was sent twice: two identical batch jobs, paid twice) and a response
head of 20 MB (accepted, 111 MB of memory). Proxies, CA bundles and bad base URLs: test_http_network.py."""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc

import pytest

from heavy.errors import ProviderConnectionError, ProviderResponseError
from heavy.http import HTTPClient, Timeout
from test_http import Server, answering, read_request, reply

pytestmark = pytest.mark.anyio

BIG = 4 << 20


async def test_a_4_mb_non_streaming_body_is_read_at_once():
    body = json.dumps({"text": "x" * (BIG - 12)}).encode()
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(body[i:i + 65536]), body[i:i + 65536]) for i in range(0, len(body), 65536)) + b"0\r\n\r\n"

    def answer(req):
        return chunked if req[0].split()[1].endswith(b"/chunked") else reply(body)

    async with Server(answering(answer)) as server:
        # A read timeout of 5 s: the old transport stopped reading at 1 MiB and waited out the whole timeout.
        http = HTTPClient(server.url + "/v1", timeout=Timeout(read=5))
        for path in ("batches/out/content", "chunked", "batches/out/content"):
            t0 = time.monotonic()
            resp = await http.get_json(path)
            assert len(resp.text) == len(body) and resp.json()["text"][:3] == "xxx", path
            assert time.monotonic() - t0 < 3, path
        await http.aclose()
    assert server.connections == 1, "the connection is reused after a big body"


async def test_a_post_whose_answer_is_dropped_on_a_reused_connection_is_not_sent_again():
    async def handler(reader, writer, server):
        server.requests.append(await read_request(reader))
        writer.write(reply(json.dumps({"id": "batch_1"})))
        await writer.drain()
        server.requests.append(await read_request(reader))  # received, acted on, and the answer dropped
        # (the server dies, or its keep-alive timer fires just as the request arrives)

    async with Server(handler) as server:
        http = HTTPClient(server.url + "/v1", provider="openai")
        assert (await http.post_json("batches", {"input_file_id": "file-1"})).json() == {"id": "batch_1"}
        with pytest.raises(ProviderConnectionError, match="without answering") as dropped:
            await http.post_json("batches", {"input_file_id": "file-2"})
        await http.aclose()
        await asyncio.sleep(0.1)  # a replay, if any, would have reached the server by now
    posts = [r for r in server.requests if r and r[0].startswith(b"POST")]
    assert [json.loads(r[2])["input_file_id"] for r in posts] == ["file-1", "file-2"], "each POST sent once"
    assert server.connections == 1
    assert "POST is not sent again" in str(dropped.value)


async def test_a_post_on_a_new_connection_dropped_unanswered_is_sent_once():
    async def handler(reader, writer, server):
        server.requests.append(await read_request(reader))  # and hang up

    async with Server(handler) as server:
        http = HTTPClient(server.url + "/v1")
        with pytest.raises(ProviderConnectionError):
            await http.post_json("batches", {})
        await http.aclose()
        await asyncio.sleep(0.1)
    assert len([r for r in server.requests if r]) == 1 and server.connections == 1


def head_streamer(lines):
    """A handler that answers with a response head made of *lines* (an iterable of bytes), written piece by
    piece so the server holds no more than a piece in memory; it counts the bytes the client took."""

    async def handler(reader, writer, server):
        await read_request(reader)
        server.sent = 0
        writer.write(b"HTTP/1.1 200 OK\r\n")
        try:
            for piece in lines:
                writer.write(piece)
                await writer.drain()
                server.sent += len(piece)
            writer.write(b"\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
        except ConnectionError:
            pass

    return handler


def one_huge_header():
    chunk = b"a" * 65536
    yield b"X-Huge: "
    for _ in range(320):  # 20 MiB
        yield chunk
    yield b"\r\n"


def many_headers():
    line = b"X-Many: " + b"b" * 8000 + b"\r\n"
    for _ in range(2600):  # 20 MiB in 8 KB lines, each within the line limit
        yield line


@pytest.mark.parametrize("lines", [one_huge_header, many_headers])
async def test_a_20_mb_response_head_is_refused_quickly_without_big_memory(lines):
    async with Server(head_streamer(lines())) as server:
        http = HTTPClient(server.url + "/v1", provider="test")
        tracemalloc.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(ProviderResponseError, match="over heavy's limits"):
                await asyncio.wait_for(http.post_json("x", {}), 10)
            elapsed = time.monotonic() - t0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        await http.aclose()
    assert elapsed < 3
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MiB allocated while refusing the head"
    assert server.sent < 20 << 20, "the client hung up long before the end of the head"
