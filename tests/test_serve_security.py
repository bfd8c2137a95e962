"""`heavy serve` (and `heavy sim`) against hostile or careless clients and operators.

* Code execution is the operator's decision: `execute` (and any code-running strategy or option) needs
  `heavy serve --tools python`; sandbox limits are never a client's to set.
* Every numeric value a client sets has a server-side ceiling the operator can raise.
* Slow senders cannot lock other clients out (real sockets against a real uvicorn server on 127.0.0.1).
* Hostile JSON (deep nesting, lone surrogates) is a 400, never a 500/502 or a traceback.
* A bad or busy port, or a missing `serve` extra, is one line and exit 1.

In-process tests reuse test_serve's proxy (the upstream is heavy's simulated LLM in-process).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy import constants as C
from heavy.cli import cli
from heavy.sim.transport import StreamingASGITransport
from heavy.serve import build_server, create_app, listen
from heavy.serve.app import ServeSettings
from heavy.remote.errors import APIError
from heavy.remote.policy import OptionPolicy, check_json, parse_limits
from heavy.strategy import load_strategy, registered_strategies
from heavy.sim import SimConfig, SimulatedLLM, load_dataset

from helpers import free_port
from test_serve import MODEL, assert_openai_error, proxy, user

TASKS = Path(__file__).resolve().parents[1] / "bench" / "code_tasks.jsonl"
ROW = next(r for r in map(json.loads, TASKS.read_text().splitlines()) if r["id"] == "running-max")


# --- 1. code execution is the operator's decision -------------------------------------------------------


@pytest.mark.anyio
async def test_execute_is_refused_unless_the_operator_enables_python(monkeypatch):
    given = {"tests": "import os\nassert running_max([]) == []", "entry_point": "running_max"}
    async with proxy(monkeypatch) as (client, _, llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        for body, param in (
                ({"model": f"heavy/execute/{MODEL}", "messages": user(ROW["question"]),
                  "heavy": {"options": given}}, "model"),
                ({"model": "heavy", "messages": user(ROW["question"]),
                  "heavy": {"strategy": "execute"}}, "heavy.strategy"),
                ({"model": "heavy/execute", "messages": user(ROW["question"]), "stream": True}, "model")):
            err = assert_openai_error(await post(json=body), 400, "code_execution_disabled")
            assert "heavy serve --tools python" in err["message"] and err["param"] == param
        # sandbox limits: never a client's, with or without code execution
        err = assert_openai_error(await post(json={"model": "heavy/execute", "messages": user(), "heavy": {
            "options": {**given, "sandbox": {"memory_mb": 100000, "max_processes": 4096}}}}), 400)
        assert err["code"] in ("code_execution_disabled", "operator_only_option")
        err = assert_openai_error(await post(json={"model": "heavy/vote", "messages": user(), "heavy": {
            "options": {"sandbox": {}}}}), 400, "operator_only_option")
        assert err["param"] == "heavy.options.sandbox"
        assert llm.stats.chat_requests == 0, "nothing refused reached the upstream"
        assert (await post(json={"model": "heavy/vote", "messages": user(), "n": 2})).status_code == 200

    sim = SimConfig(seed=3, accuracy=1.0, dataset=load_dataset(TASKS))
    async with proxy(monkeypatch, sim, defaults={"model": MODEL, "tools": "python"}) as (client, _, _llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        # the operator enabled python: the client's tests run (a request may still narrow the agents' tools)
        r = await post(json={"model": f"heavy/execute/{MODEL}", "messages": user(ROW["question"]), "n": 3,
                             "heavy": {"options": {"tests": ROW["tests"]}, "tools": []}})
        assert r.status_code == 200, r.text
        h = r.json()["heavy"]
        assert h["method"] == "execute" and "given tests" in h["rationale"], h["rationale"]
        err = assert_openai_error(await post(json={"model": "heavy/execute", "messages": user(), "heavy": {
            "options": {"tests": ROW["tests"], "sandbox": {"memory_mb": 100000}}}}), 400, "operator_only_option")
        assert "operator" in err["message"] and err["param"] == "heavy.options.sandbox"


def test_a_default_strategy_that_runs_code_needs_python_at_startup(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")
    with pytest.raises(APIError) as caught:
        create_app({"model": MODEL, "strategy": "execute"})
    assert "heavy serve --tools python" in caught.value.message
    app = create_app({"model": MODEL, "strategy": "execute", "tools": "python"})
    assert app.state.heavy.planner.policy.runs_code
    monkeypatch.setenv("HEAVY_CONFIG", str(empty_config(tmp_path)))
    r = CliRunner().invoke(cli, ["serve", "-s", "execute", "--port", str(free_port())])
    assert r.exit_code == 1 and "heavy serve --tools python" in r.output and "Traceback" not in r.output


def test_code_running_options_are_found_by_name_or_by_field_metadata():
    from pydantic import BaseModel, ConfigDict, Field

    class MineOptions(BaseModel):
        model_config = ConfigDict(extra="forbid")
        verify: str | None = None
        checker: str | None = Field(None, json_schema_extra={"runs_code": True})
        budget: dict | None = Field(None, json_schema_extra={"operator_only": True})
        rounds: int = 1

    class Mine:
        Options = MineOptions

    closed, open_ = OptionPolicy(None), OptionPolicy("python,web_search")
    for name in ("verify", "checker"):
        with pytest.raises(APIError) as caught:
            closed.check_options("mine", Mine, {name: "python"})
        assert caught.value.code == "code_execution_disabled" and "heavy serve --tools python" in caught.value.message
        open_.check_options("mine", Mine, {name: "python"})
    for policy in (closed, open_):
        with pytest.raises(APIError) as caught:
            policy.check_options("mine", Mine, {"budget": {}})
        assert caught.value.code == "operator_only_option"
        policy.check_options("mine", Mine, {"rounds": 2})


# --- 2. ceilings on everything a client can make the server spend ---------------------------------------


@pytest.mark.anyio
async def test_numeric_options_above_their_ceiling_are_refused_naming_the_flag(monkeypatch):
    async with proxy(monkeypatch) as (client, _, llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        for strategy in ("judge", "usc"):
            for value in (300, "300"):  # a string the strategy would read as 300 is the same 300
                err = assert_openai_error(await post(json={"model": f"heavy/{strategy}", "messages": user(),
                                                           "heavy": {"options": {"retries": value}}}),
                                          400, "limit_exceeded")
                assert err["param"] == "heavy.options.retries"
                assert "limit of 3" in err["message"] and "heavy serve --option-limit retries=300" in err["message"]
        for options in ({"rounds": 10}, {"layers": 8}, {"agents": 64}, {"k": 15}):
            strategy = {"rounds": "debate", "layers": "moa", "agents": "moa", "k": "tournament"}[next(iter(options))]
            assert_openai_error(await post(json={"model": f"heavy/{strategy}", "messages": user(),
                                                 "heavy": {"options": options}}), 400, "limit_exceeded")
        err = assert_openai_error(await post(json={"model": "heavy", "messages": user(), "max_tokens": 10**6}),
                                  400, "limit_exceeded")
        assert err["param"] == "max_tokens" and "--option-limit max_tokens=1000000" in err["message"]
        err = assert_openai_error(await post(json={"model": "heavy", "messages": user(),
                                                   "max_completion_tokens": 10**6}), 400, "limit_exceeded")
        assert err["param"] == "max_completion_tokens"
        assert llm.stats.chat_requests == 0
        ok = await post(json={"model": "heavy/judge", "messages": user(), "n": 2,
                              "heavy": {"options": {"retries": 3, "shuffle_seed": 10**12}}})
        assert ok.status_code == 200, ok.text  # at the ceiling is allowed; seeds are identifiers, not amounts

    settings = ServeSettings(option_limits=["retries=5", "usc.retries=0", "*=0.5"])
    async with proxy(monkeypatch, settings=settings) as (client, _, _llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        r = await post(json={"model": "heavy/judge", "messages": user(), "n": 2, "heavy": {"options": {"retries": 5}}})
        assert r.status_code == 200, r.text
        assert_openai_error(await post(json={"model": "heavy/judge", "messages": user(),
                                             "heavy": {"options": {"retries": 6}}}), 400, "limit_exceeded")
        err = assert_openai_error(await post(json={"model": "heavy/usc", "messages": user(),
                                                   "heavy": {"options": {"retries": 1}}}), 400, "limit_exceeded")
        assert "limit of 0" in err["message"]
        # "*" is the ceiling of every option without its own entry (heavy's threshold has none)
        err = assert_openai_error(await post(json={"model": "heavy/heavy", "messages": user(),
                                                   "heavy": {"options": {"threshold": 0.6}}}), 400, "limit_exceeded")
        assert "limit of 0.5" in err["message"] and "--option-limit threshold=0.6" in err["message"]


def test_every_built_in_default_is_within_its_ceiling():
    policy = OptionPolicy()
    checked = 0
    for name in registered_strategies():
        cls = load_strategy(name)
        defaults = cls.parse_options({})
        given = {k: v for k, v in defaults.model_dump().items() if isinstance(v, (int, float))}
        policy.check_values(name, given, defaults)  # raises if a default were above its ceiling
        checked += len(given)
    assert checked > 20
    assert policy.limit("judge", "retries") == C.SERVE_OPTION_LIMITS["retries"]
    assert policy.limit("mine", "anything") == C.SERVE_DEFAULT_OPTION_LIMIT
    assert policy.limit("mine", "shuffle_seed") is None and policy.limit("mine", "seed") is None


def test_option_limits_are_validated_on_the_command_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HEAVY_CONFIG", str(empty_config(tmp_path)))
    assert parse_limits(["retries=5", "judge.retries=1", "per_test_timeout=2.5"]) == {
        "retries": 5, "judge.retries": 1, "per_test_timeout": 2.5}
    for bad in (["retries"], ["retries=lots"], ["retries=-1"], ["=3"]):
        with pytest.raises(ValueError):
            parse_limits(bad)
    r = CliRunner().invoke(cli, ["serve", "--port", str(free_port()), "--option-limit", "retries=lots"])
    assert r.exit_code == 1 and "retries" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


# --- 3. slow clients (real sockets, real server) ---------------------------------------------------------


@contextmanager
def real_server(settings: ServeSettings):
    """The proxy under uvicorn (heavy.serve.build_server) in a thread on 127.0.0.1; upstream in-process."""
    llm = SimulatedLLM(SimConfig(seed=1))
    app = create_app({"model": MODEL, "base_url": "http://sim.test/v1"}, settings=settings,
                     heavy_factory=functools.partial(Heavy, transport=StreamingASGITransport(llm)))
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = build_server(app, "127.0.0.1", port, log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(250):
            if server.started:
                break
            time.sleep(0.02)
        else:
            raise RuntimeError("the server did not start")
        yield port, server, app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive()


def head(port: int, length: int) -> bytes:
    """A request head as a local client sends it (its own Host and port: a loopback server refuses others)."""
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (port, length))


def read_all(s: socket.socket, limit: float = 5.0) -> bytes:
    """Everything the server sends until it closes the connection (at most *limit* seconds)."""
    s.settimeout(limit)
    out = b""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            piece = s.recv(65536)
        except (TimeoutError, OSError):
            break
        if not piece:
            break
        out += piece
    return out


def test_slow_senders_do_not_lock_out_other_clients_and_get_408():
    settings = ServeSettings(max_concurrent_per_client=2, body_timeout=1.0, header_timeout=1.0)
    body = json.dumps({"model": "heavy/vote", "messages": user(), "n": 2}).encode()
    with real_server(settings) as (port, server, app):
        slow = []
        for _ in range(4):  # twice the per-client limit, all from 127.0.0.1 like the client below
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(head(port, len(body)) + body[:10])
            slow.append(s)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (len(server.server_state.tasks) >= 4 or app.state.heavy.in_flight):
            time.sleep(0.01)  # until the app is reading every slow body (or, unfixed, they hold the slots)
        time.sleep(0.05)
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=body, timeout=10,
                       headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text  # not 429: a body still arriving holds no slot
        deadline = time.monotonic() + 2
        while app.state.heavy.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)  # the finished request leaves its slot just after its response
        assert not app.state.heavy.in_flight, "the slow senders hold no slot"

        # a body sent in pieces, all within the limit, is served
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(head(port, len(body)))
        for i in range(0, len(body), len(body) // 3 + 1):
            s.sendall(body[i:i + len(body) // 3 + 1])
            time.sleep(0.1)
        reply = read_all(s, 3.0)
        s.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]

        started = time.monotonic()
        for s in slow:  # the stalled bodies: 408 in OpenAI's shape, then the connection closes
            reply = read_all(s)
            s.close()
            status, _, payload = reply.partition(b"\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 408"), reply[:200]
            err = json.loads(payload)["error"]
            assert err["code"] == "request_timeout" and "--body-timeout" in err["message"]
        assert time.monotonic() - started < 3.0


def test_slow_or_idle_headers_are_cut_off():
    settings = ServeSettings(header_timeout=1.0)
    with real_server(settings) as (port, _server, _app):
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        trickle = socket.create_connection(("127.0.0.1", port), timeout=5)
        trickle.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        reply = b""
        for i in range(16):  # one header line every 0.2 s: never complete, never idle for long
            try:
                trickle.sendall(b"X-Slow-%d: 1\r\n" % i)
            except OSError:
                break
            ready, _, _ = select.select([trickle], [], [], 0.2)
            if ready:
                reply = read_all(trickle, 2.0)
                break
        took = time.monotonic() - started
        trickle.close()
        assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
        assert b"request_timeout" in reply and b"--header-timeout" in reply
        assert 0.8 < took < 2.5, took
        # a connection that never sends anything is closed too, silently (recv sees EOF, not a timeout)
        idle.settimeout(3.0)
        assert idle.recv(100) == b""
        assert time.monotonic() - started < 2.5
        idle.close()
        # and the server still serves
        r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert r.status_code == 200


# --- 4. hostile JSON ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_deep_nesting_and_lone_surrogates_are_400_without_a_traceback(monkeypatch, caplog):
    caplog.set_level(logging.DEBUG, logger="heavy.serve")
    async with proxy(monkeypatch) as (client, _, llm, _rec):
        post = functools.partial(client.post, "/chat/completions")
        head = b'{"model":"heavy","messages":[{"role":"user","content":"hi"}],"metadata":'
        for depth in (C.SERVE_MAX_JSON_DEPTH, 5000, 200_000):
            err = assert_openai_error(await post(content=head + b"[" * depth + b"]" * depth + b"}"), 400,
                                      "invalid_json")
            assert "nests" in err["message"] and str(C.SERVE_MAX_JSON_DEPTH) in err["message"]
        lone = b'{"model":"heavy","messages":[{"role":"user","content":"a \\ud800 b"}]}'
        err = assert_openai_error(await post(content=lone), 400, "invalid_value")
        assert "surrogate" in err["message"] and err["param"] == "messages.0.content"
        parts = (b'{"model":"heavy","messages":[{"role":"user","content":[{"type":"text","text":"\\udfff"}]}]}')
        err = assert_openai_error(await post(content=parts), 400, "invalid_value")
        assert err["param"] == "messages.0.content.0.text"
        key = b'{"model":"heavy","messages":[{"role":"user","content":"x"}],"metadata":{"\\ud800":1}}'
        assert_openai_error(await post(content=key), 400, "invalid_value")
        assert llm.stats.chat_requests == 0
        r = await post(content=head + b"[" * 20 + b"]" * 20 + b',"n":2}')
        assert r.status_code == 200, r.text  # ordinary nesting is fine
        pair = b'{"model":"heavy","messages":[{"role":"user","content":"' + Q_EMOJI + b'"}],"n":2}'
        assert (await post(content=pair)).status_code == 200  # a surrogate *pair* is one valid character
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


Q_EMOJI = b"What is 17 * 24 + 3? \\ud83d\\ude00"


def test_check_json_is_iterative_and_names_the_place():
    deep: list = []
    for _ in range(100_000):  # far deeper than the recursion limit
        deep = [deep]
    with pytest.raises(APIError):
        check_json(deep)
    check_json({"a": [{"b": "ok \U0001F600"}]})
    with pytest.raises(APIError) as caught:
        check_json({"a": [{"b": "\udc80"}]})
    assert caught.value.param == "a.0.b"


# --- 5/6. the command line: ports and the serve extra ------------------------------------------------------


def empty_config(tmp_path: Path) -> Path:
    """An empty config file: the developer's own stays out of the test."""
    config = tmp_path / "heavy.toml"
    config.write_text("")
    return config


def _heavy(tmp_path: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """`heavy ARGS` in a fresh interpreter (after running *prelude*), without keys or upstream settings."""
    code = f"import sys\n{prelude}\nfrom heavy.cli import main\nsys.argv = ['heavy', *sys.argv[1:]]\nmain()\n"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k not in (
        "OPENAI_BASE_URL", "HEAVY_DEBUG", "HEAVY_SERVER_KEY")}
    env["HEAVY_CONFIG"] = str(empty_config(tmp_path))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=30, env=env)


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heavy: error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("command", ["serve", "sim"])
def test_a_bad_or_busy_port_is_one_line(command, tmp_path):
    _one_line_error(_heavy(tmp_path, command, "--port", "99999"), "--port", "65535")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(_heavy(tmp_path, command, "--port", str(port)), f"127.0.0.1:{port}", "already in use", "--port")


@pytest.mark.parametrize("command", ["serve", "sim"])
def test_without_the_serve_extra_the_command_says_how_to_install_it(command, tmp_path):
    missing = "sys.modules['starlette'] = None\nsys.modules['uvicorn'] = None"
    r = _heavy(tmp_path, command, "--port", str(free_port()), prelude=missing)
    _one_line_error(r, f"heavy {command} needs the serve extra: pip install 'heavy[serve]'")
    if command == "serve":  # starlette alone missing is enough for the proxy
        r = _heavy(tmp_path, command, "--port", str(free_port()), prelude="sys.modules['starlette'] = None")
        _one_line_error(r, "heavy serve needs the serve extra: pip install 'heavy[serve]'")
