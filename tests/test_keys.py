"""Where API keys go, and that no configured key ever comes back out of heavy.

The rule (heavy/models.py): an explicit key (``api_key=``) goes wherever the spec points; a key from the
environment goes only to its own preset's endpoint (the preset's default origin, or the origin of its own
``*_BASE_URL`` variable). An explicit ``base_url`` elsewhere gets no environment key, and a 401/403 from it
says so. The network edge is faked with a transport that records every request's headers, or a real HTTP
server on 127.0.0.1 for the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from heavy import Heavy
from heavy.errors import FatalRequestError, ProviderError
from heavy.models import parse_spec
from heavy.providers.anthropic import AnthropicProvider
from heavy.providers.base import CompletionRequest
from heavy.providers.openai import OpenAIProvider
from heavy.providers.wrappers import RetryPolicy
from heavy.sim import SimConfig, SimulatedLLM
from heavy.types import Message

from helpers import http_server

ENV_KEY = "sk-env-0123456789-DO-NOT-LEAK"
WIRE_KEY_VAR = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
#: The request header each wire carries its key in, and how the key appears there.
KEY_HEADER = {"openai": ("authorization", "Bearer {}"), "anthropic": ("x-api-key", "{}"),
              "gemini": ("x-goog-api-key", "{}")}
CLEARED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "GEMINI_API_KEY",
           "GOOGLE_API_KEY", "GEMINI_BASE_URL", "OLLAMA_API_KEY", "OLLAMA_BASE_URL", "LLAMACPP_API_KEY",
           "LLAMACPP_BASE_URL", "HEAVY_SIM_DATASET")
ANY_KEY_HEADER = ("authorization", "x-api-key", "x-goog-api-key")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in CLEARED:
        monkeypatch.delenv(var, raising=False)


class Recorder(httpx.AsyncBaseTransport):
    """Records (url, headers) of every request, then answers from the simulator or with a fixed status."""

    def __init__(self, status: int | None = None, body: dict | str | None = None) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.status, self.body = status, body
        self.sim = httpx.ASGITransport(app=SimulatedLLM(SimConfig(accuracy=1.0)))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.seen.append((str(request.url), dict(request.headers)))
        if self.status is None:
            return await self.sim.handle_async_request(request)
        content = self.body if isinstance(self.body, str) else json.dumps(self.body or {})
        return httpx.Response(self.status, content=content.encode(), headers={"content-type": "application/json"})


def ask(transport: Recorder, model: str, **kw) -> object:
    h = Heavy(model=model, transport=transport, n=1, strategy="vote", **kw)
    return h.ask_sync("What is 5 * 5?")


def wire_of(model: str) -> str:
    head = model.partition(":")[0]
    return head if head in ("anthropic", "gemini") else "openai"


# --- where an environment key goes -------------------------------------------------------------------


WITHHELD = [
    # (spec, base_url, extra environment): an environment key must not be sent
    ("heavy-simulated", "http://127.0.0.1:8499/v1", {}),                        # bare model id, custom server
    ("openai:heavy-simulated", "http://127.0.0.1:8499/v1", {}),                 # naming the preset is not enough
    ("anthropic:heavy-simulated", "http://127.0.0.1:8499", {}),
    ("gemini:heavy-simulated", "http://127.0.0.1:8499", {"GOOGLE_API_KEY": ENV_KEY + "-google"}),
    ("openai:heavy-simulated", "http://api.openai.com/v1", {}),                 # same host, plain http
    ("openai:heavy-simulated", "https://api.openai.com:8443/v1", {}),           # same host, other port
    ("openai:heavy-simulated", "https://api.openai.com.evil.test/v1", {}),      # look-alike host
    ("openai:heavy-simulated", "http://other.test/v1", {"OPENAI_BASE_URL": "http://proxy.test/v1"}),
    ("ollama:heavy-simulated", "http://10.0.0.5:11434/v1", {"OLLAMA_API_KEY": ENV_KEY}),
]


@pytest.mark.parametrize("model,base_url,env", WITHHELD)
def test_an_environment_key_never_goes_to_another_endpoint(model, base_url, env, monkeypatch):
    monkeypatch.setenv(WIRE_KEY_VAR[wire_of(model)], ENV_KEY)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    rec = Recorder()
    r = ask(rec, model, base_url=base_url)
    assert r.answer == "25"  # the call itself works: a server that needs no key is still usable
    [(url, headers)] = rec.seen
    assert url.startswith(base_url)
    assert not set(ANY_KEY_HEADER) & set(headers), headers
    assert ENV_KEY not in json.dumps(headers)


SENT = [
    # (spec, base_url, extra environment, expected URL prefix): the environment key is sent
    ("openai:heavy-simulated", None, {}, "https://api.openai.com/v1/"),
    ("openai:heavy-simulated", "https://api.openai.com/v1", {}, "https://api.openai.com/v1/"),
    ("openai:heavy-simulated", "https://API.openai.com:443/v1/", {}, "https://api.openai.com/v1/"),
    ("openai:heavy-simulated", None, {"OPENAI_BASE_URL": "http://proxy.test/v1"}, "http://proxy.test/v1/"),
    ("openai:heavy-simulated", "http://proxy.test/v1", {"OPENAI_BASE_URL": "http://proxy.test/v1"},
     "http://proxy.test/v1/"),
    ("anthropic:heavy-simulated", None, {}, "https://api.anthropic.com/v1/messages"),
    ("anthropic:heavy-simulated", None, {"ANTHROPIC_BASE_URL": "http://root.test"}, "http://root.test/v1/messages"),
    ("gemini:heavy-simulated", None, {}, "https://generativelanguage.googleapis.com/v1beta/"),
    ("gemini:heavy-simulated", None, {"GEMINI_BASE_URL": "http://root.test"}, "http://root.test/v1beta/"),
    ("llamacpp:heavy-simulated", "http://127.0.0.1:8080/v1", {"LLAMACPP_API_KEY": ENV_KEY},
     "http://127.0.0.1:8080/v1/"),  # the preset's own default, named explicitly (as in the README)
]


@pytest.mark.parametrize("model,base_url,env,prefix", SENT)
def test_an_environment_key_goes_to_its_own_endpoint(model, base_url, env, prefix, monkeypatch):
    wire = wire_of(model)
    monkeypatch.setenv(WIRE_KEY_VAR[wire], ENV_KEY)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    rec = Recorder()
    assert ask(rec, model, base_url=base_url).answer == "25"
    [(url, headers)] = rec.seen
    name, shape = KEY_HEADER[wire]
    assert url.startswith(prefix) and headers[name] == shape.format(ENV_KEY)


def test_gemini_fallback_variable_follows_the_same_rule(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", ENV_KEY)
    assert parse_spec("gemini:m").api_key == ENV_KEY
    spec = parse_spec("gemini:m", base_url="http://127.0.0.1:8499")
    assert spec.api_key is None and spec.withheld_key_env == "GOOGLE_API_KEY"


@pytest.mark.parametrize("model,base_url", [("heavy-simulated", "http://127.0.0.1:8499/v1"),
                                            ("anthropic:heavy-simulated", "http://127.0.0.1:8499"),
                                            ("gemini:heavy-simulated", "http://127.0.0.1:8499")])
def test_an_explicit_key_goes_where_the_user_points_it(model, base_url, monkeypatch):
    wire = wire_of(model)
    monkeypatch.setenv(WIRE_KEY_VAR[wire], ENV_KEY)  # the explicit key wins over the environment's
    rec = Recorder()
    assert ask(rec, model, base_url=base_url, api_key="explicit-key-for-this-server").answer == "25"
    [(_, headers)] = rec.seen
    name, shape = KEY_HEADER[wire]
    assert headers[name] == shape.format("explicit-key-for-this-server")
    assert ENV_KEY not in json.dumps(headers)


# --- the 401 from an endpoint a key was kept from ------------------------------------------------------


@pytest.mark.parametrize("model,base_url,var", [
    ("mymodel", "http://127.0.0.1:8499/v1", "OPENAI_API_KEY"),
    ("anthropic:claude-x", "http://127.0.0.1:8499", "ANTHROPIC_API_KEY"),
    ("gemini:gemini-x", "http://127.0.0.1:8499", "GEMINI_API_KEY"),
])
def test_a_401_where_a_key_was_held_back_names_the_rule(model, base_url, var, monkeypatch):
    monkeypatch.setenv(var, ENV_KEY)
    rec = Recorder(401, {"error": {"message": "Missing bearer token"}})
    with pytest.raises(FatalRequestError) as info:
        ask(rec, model, base_url=base_url)
    text = str(info.value)
    assert info.value.status == 401
    base_env = var.replace("_API_KEY", "_BASE_URL")
    assert f"no API key was sent to {base_url}" in text
    assert f"the key in {var} goes only to" in text and base_env in text and "api_key=" in text
    assert f"set {base_env}={base_url}" in text
    assert "Missing bearer token" in text  # the server's own words are kept
    assert ENV_KEY not in text


def test_a_401_without_a_held_back_key_is_the_plain_error(monkeypatch):
    rec = Recorder(401, {"error": {"message": "Missing bearer token"}})
    with pytest.raises(FatalRequestError) as info:
        ask(rec, "mymodel", base_url="http://127.0.0.1:8499/v1")
    assert "Missing bearer token" in str(info.value) and "no API key was sent" not in str(info.value)


def test_other_errors_do_not_blame_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    rec = Recorder(404, {"error": {"message": "model mymodel not found"}})
    with pytest.raises(FatalRequestError) as info:
        ask(rec, "mymodel", base_url="http://127.0.0.1:8499/v1")
    assert "not found" in str(info.value) and "no API key was sent" not in str(info.value)


# --- no configured key ever comes back out -----------------------------------------------------------

BARE = "plainSecretValue42xyz"  # not key-shaped: only knowing the configured value can scrub it


def test_an_explicit_key_echoed_bare_is_redacted_from_the_error():
    rec = Recorder(400, {"error": {"message": f"the key {BARE} is not valid for this project"}})
    with pytest.raises(FatalRequestError) as info:
        ask(rec, "mymodel", base_url="http://127.0.0.1:8499/v1", api_key=BARE)
    assert rec.seen[0][1]["authorization"] == f"Bearer {BARE}"  # it was sent...
    err = info.value
    for text in (str(err), repr(err), err.body or "", err.message):
        assert BARE not in text  # ...and never comes back out
    assert "the key *** is not valid" in str(err)


def test_a_key_echoed_bare_is_redacted_from_the_result_json():
    calls = {"n": 0}

    def server(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:  # one hypothesis fails with the key in a non-fatal error body
            return httpx.Response(500, text=f"upstream crashed; credentials were {BARE}")
        return httpx.Response(200, json={"choices": [{"message": {"content": "The answer is 25."},
                                                      "finish_reason": "stop"}]})

    h = Heavy(model="mymodel", base_url="http://127.0.0.1:8499/v1", api_key=BARE, n=2, strategy="vote",
              transport=httpx.MockTransport(server), retry=RetryPolicy(max_attempts=1), stream=False)
    r = h.ask_sync("What is 5 * 5?")
    failed = [x for x in r.hypotheses if not x.ok]
    assert r.answer == "25" and len(failed) == 1 and "credentials were ***" in failed[0].error
    assert BARE not in r.model_dump_json()


def test_env_keys_in_use_are_redacted_even_from_an_env_mapping():
    secret = "mappedEnvSecret-777"
    parse_spec("openai:m", env={"OPENAI_API_KEY": secret})  # not in os.environ: known only by being used
    assert secret not in str(ProviderError(f"echo {secret}", provider="openai", body=f"body {secret}"))


@pytest.mark.anyio
@pytest.mark.parametrize("stream", [False, True])
async def test_keys_of_directly_built_providers_are_redacted(stream):
    """A provider made by hand (no model spec) registers its key too, and in-stream errors are scrubbed."""
    anthropic_key = "anthropicBareKey-31337"

    def server(request: httpx.Request) -> httpx.Response:
        sent = request.headers.get("x-api-key") or request.headers["authorization"].removeprefix("Bearer ")
        if stream:  # an error inside a 200 stream, in each wire's own shape
            error = {"type": "authentication_error", "message": f"bad key {sent}"}
            event = (f"event: error\ndata: {json.dumps({'type': 'error', 'error': error})}" if "x-api-key" in
                     request.headers else f"data: {json.dumps({'error': error})}")
            return httpx.Response(200, text=f"{event}\n\n", headers={"content-type": "text/event-stream"})
        return httpx.Response(401, json={"error": {"message": f"bad key {sent}"}})

    req = CompletionRequest(model="m", messages=[Message(role="user", content="hi")])
    for provider in (OpenAIProvider("http://127.0.0.1:8499/v1", "openaiBareKey-4242",
                                    transport=httpx.MockTransport(server)),
                     AnthropicProvider("http://127.0.0.1:8499", anthropic_key, transport=httpx.MockTransport(server))):
        with pytest.raises(ProviderError) as info:
            if stream:
                async for _ in provider.stream(req):
                    pass
            else:
                await provider.complete(req)
        await provider.aclose()
        assert "bad key ***" in str(info.value)
        assert "BareKey" not in str(info.value) + (info.value.body or "")


def test_model_spec_never_shows_a_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    spec = parse_spec("mymodel", base_url="http://127.0.0.1:8499/v1")
    assert ENV_KEY not in repr(spec) and ENV_KEY not in (spec.withheld_key_hint() or "")


# --- the CLI against a real HTTP server on 127.0.0.1 -------------------------------------------------


@contextmanager
def recording_server(status: int) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An OpenAI-compatible server on 127.0.0.1 that records request headers and answers *status*."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append({k.lower(): v for k, v in self.headers.items()})
            if status == 200:
                body = {"choices": [{"message": {"content": "The answer is 4."}, "finish_reason": "stop"}]}
            else:
                body = {"error": {"message": "You didn't provide an API key."}}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with http_server(Handler) as url:
        yield url, seen


def heavy_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    return subprocess.run([sys.executable, "-m", "heavy.cli", "ask", "-n", "2", "-s", "vote", *args],
                          capture_output=True, text=True, env={**base, **env}, timeout=60)


def test_cli_base_url_gets_no_environment_key():
    with recording_server(200) as (url, seen):
        out = heavy_cli("-m", "mymodel", "--base-url", url, "What is 2 + 2?", OPENAI_API_KEY=ENV_KEY)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "4\n" and len(seen) == 2
    assert all("authorization" not in h for h in seen)


def test_cli_401_names_the_rule_in_one_line():
    with recording_server(401) as (url, seen):
        out = heavy_cli("-m", "openai:gpt-x", "--base-url", url, "What is 2 + 2?", OPENAI_API_KEY=ENV_KEY)
    assert out.returncode == 1 and seen and all("authorization" not in h for h in seen)
    [line] = out.stderr.strip().splitlines()
    assert f"no API key was sent to {url}" in line and "OPENAI_API_KEY" in line
    assert f"set OPENAI_BASE_URL={url}" in line and ENV_KEY not in out.stderr + out.stdout


def test_cli_preset_base_url_variable_sends_the_key():
    with recording_server(200) as (url, seen):
        out = heavy_cli("-m", "openai:mymodel", "What is 2 + 2?", OPENAI_API_KEY=ENV_KEY, OPENAI_BASE_URL=url)
    assert out.returncode == 0, out.stderr
    assert [h["authorization"] for h in seen] == [f"Bearer {ENV_KEY}"] * 2
