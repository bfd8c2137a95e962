"""`heavy mcp --http` held to `heavy serve`'s rules: real `heavy mcp` processes on loopback addresses, answering
from the simulated model (no network, no key), each stopped by its PID.

* Cross-site and DNS-rebinding requests are refused on every loopback form (127.0.0.0/8, [::1],
  0:0:0:0:0:0:0:1, localhost): a foreign Host is a 421, a foreign Origin a 403, a body that is not JSON a 415
  (the MCP specification requires servers to validate Origin); the banner prints a URL a client can use.
* A body must arrive within --body-timeout (408), one client has at most --max-concurrent requests in flight
  (429), bodies are size-limited and plain JSON (413, 400).
* A call names only models the operator allows (the configured ones, and --allow-model PATTERN).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from heavy.mcp_server import HeavyTools
from heavy.settings import RunSettings

from test_mcp import QUESTION, RIGHT, SLOW
from test_serve_guard import bound

ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}}


def mcp_http(folder: Path, *args: str, host: str = "127.0.0.1"):
    """`heavy mcp --http --host HOST --port P ARGS`: yields the URL its banner prints (…/mcp), stopped by PID."""
    return bound("mcp --http", folder, host, *args)


def post(url: str, body: dict | bytes = INIT, **headers: str) -> httpx.Response:
    head = {**ACCEPT, **{k.replace("_", "-"): v for k, v in headers.items()}}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with httpx.Client(timeout=10) as client:
        r = client.post(url, content=content, headers=head)
        r.read()
        return r


# --- cross-site requests and DNS rebinding -----------------------------------------------------------------


@pytest.mark.parametrize("host, shown", [("127.0.0.2", "127.0.0.2"), ("::1", "[::1]"), ("[::1]", "[::1]"),
                                         ("0:0:0:0:0:0:0:1", "[::1]"), ("localhost", "localhost")])
def test_every_loopback_form_refuses_foreign_hosts_origins_and_bodies(tmp_path, host, shown):
    with mcp_http(tmp_path, "-m", RIGHT, host=host) as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert url == f"http://{shown}:{port}/mcp", url  # the banner's URL is one a client can use
        ok = post(url)
        assert ok.status_code == 200 and "mcp-session-id" in ok.headers, ok.text
        r = post(url, host=f"evil.example:{port}")
        assert r.status_code == 421, r.text
        r = post(url, origin="http://evil.example")
        assert r.status_code == 403 and "--allow-origin" in r.json()["error"]["message"], r.text
        r = post(url, content_type="text/plain")
        assert r.status_code == 415, r.text
        assert post(url, origin=f"http://{shown}:{port}").status_code == 200
        assert post(url, origin="http://localhost:5173").status_code == 200  # a loopback page


def test_allow_origin_and_a_keyed_server(tmp_path):
    with mcp_http(tmp_path / "a", "-m", RIGHT, "--allow-origin", "https://agent.example") as url:
        assert post(url, origin="https://agent.example").status_code == 200
        assert post(url, origin="https://other.example").status_code == 403
    with mcp_http(tmp_path / "b", "-m", RIGHT, "--api-key", "s3cret-key") as url:
        key = {"authorization": "Bearer s3cret-key"}
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert post(url, host=f"heavy.example.org:{port}", **key).status_code == 200  # the key guards it
        assert post(url, origin="http://evil.example", **key).status_code == 403


# --- slow bodies, one greedy client, hostile bodies ----------------------------------------------------------


def test_a_body_that_does_not_arrive_in_time_is_a_408(tmp_path):
    with mcp_http(tmp_path, "-m", RIGHT, "--body-timeout", "1") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        body = json.dumps(INIT).encode()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                  b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % (port, len(body))
                  + body[:10])
        started = time.monotonic()
        s.settimeout(1)
        reply, took = b"", None
        for i in range(10, 30):  # one more byte a second, as the attacker did, until the server answers
            try:
                s.sendall(body[i:i + 1])
                piece = s.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            took = took or time.monotonic() - started
            if not piece:
                break  # closed after the answer
            reply += piece
        s.close()
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"--body-timeout" in reply and took is not None and took < 3.0, took
        assert post(url).status_code == 200  # and the server still serves


@pytest.mark.anyio
async def test_one_client_has_a_bounded_number_of_requests_in_flight(tmp_path):
    with mcp_http(tmp_path, "-m", SLOW, "-n", "1", "--max-concurrent", "2") as url:
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(url, content=json.dumps(INIT), headers=ACCEPT)
            assert r.status_code == 200, r.text
            head = {**ACCEPT, "mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
            r = await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=head)
            assert r.status_code == 202, r.text

            def call(i: int) -> dict:
                return {"jsonrpc": "2.0", "id": 10 + i, "method": "tools/call", "params": {
                    "name": "ask", "arguments": {"question": QUESTION}}}

            async with client.stream("POST", url, json=call(1), headers=head) as one, \
                    client.stream("POST", url, json=call(2), headers=head) as two:
                assert one.status_code == two.status_code == 200
                r = await client.post(url, json=call(3), headers=head)
                assert r.status_code == 429 and "--max-concurrent" in r.json()["error"]["message"], r.text
                assert r.headers["retry-after"] == "1"
                # another client (another address) is served meanwhile
                other = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
                async with httpx.AsyncClient(transport=other, timeout=10) as second:
                    r = await second.post(url, content=json.dumps(INIT), headers=ACCEPT)
                    assert r.status_code == 200, r.text
        # the two calls' streams closed: their slots are free again
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(50):
                r = await client.post(url, content=json.dumps(INIT), headers=ACCEPT)
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text


def test_hostile_bodies_are_refused(tmp_path):
    with mcp_http(tmp_path, "-m", RIGHT, "--max-body-bytes", "4096") as url:
        deep = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":' + b"[" * 5000 + b"]" * 5000 + b"}"
        assert post(url, deep).status_code in (400, 413)
        deep = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":' + b"[" * 100 + b"]" * 100 + b"}"
        r = post(url, deep)
        assert r.status_code == 400 and "nests" in r.json()["error"]["message"], r.text
        lone = json.dumps(INIT).replace('"test"', '"\\ud800"').encode()
        r = post(url, lone)
        assert r.status_code == 400 and "surrogate" in r.json()["error"]["message"], r.text
        r = post(url, json.dumps({**INIT, "pad": "x" * 5000}).encode())
        assert r.status_code == 413, r.text
        assert post(url).status_code == 200


# --- the models a call may name ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_call_names_only_models_the_operator_allows(monkeypatch):
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:9/v1")
    tools = HeavyTools(RunSettings.build(model=[RIGHT], n=2))
    try:
        for arguments, where in (
                ({"models": ["ollama:x"]}, "models"),
                ({"models": [RIGHT, "sim:heavy-simulated@latency=30"]}, "models"),
                ({"aggregator": "ollama:x", "strategy": "judge"}, "aggregator"),
                ({"strategy": "moa", "options": {"layers": 2, "layer_models": [["ollama:x"]]}},
                 "options.layer_models")):
            result = await tools.call("ask", {"question": QUESTION, **arguments})
            message = result.content[0].text
            assert result.is_error and "heavy mcp --allow-model" in message and where in message, message
        result = await tools.call("ask", {"question": QUESTION, "models": [RIGHT], "aggregator": RIGHT})
        assert not result.is_error and result.content[0].text.splitlines()[0] == "411"
    finally:
        await tools.aclose()
    tools = HeavyTools(RunSettings.build(model=[RIGHT], n=2), allow_models=["sim:*"])
    try:
        result = await tools.call("ask", {"question": QUESTION, "models": ["sim:heavy-simulated@accuracy=1,latency=0"]})
        assert not result.is_error, result.content[0].text
        assert (await tools.call("ask", {"question": QUESTION, "models": ["ollama:x"]})).is_error
    finally:
        await tools.aclose()
