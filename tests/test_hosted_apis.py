"""Real hosted APIs as they are, end to end: `heavy ask` (a real process) against a real `heavy sim` process that
holds each model name to its API's documented refusals (heavy/sim/rules). These are the contract forms of the
project's issue: reasoning models answer with heavy's defaults, a refused field the user set is noted, the pro
models go through the Responses API, grok-4 takes no effort, Claude thinks without a temperature, Azure gets its
key in the api-key header and nowhere else, and HTTP_PROXY / NO_PROXY decide the route."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from heavy import Heavy
from heavy.sim.transport import StreamingASGITransport
from heavy.sim import SimConfig, SimulatedLLM
from helpers import running_sim

KEY = "sk-hosted-apis-test-0123456789"
QUESTION = "What is 17 * 3?"
#: Variables of the machine that would change where heavy sends things.
_SCRUB = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "XAI_API_KEY", "XAI_BASE_URL", "ANTHROPIC_API_KEY",
          "ANTHROPIC_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "HTTP_PROXY", "HTTPS_PROXY",
          "ALL_PROXY", "NO_PROXY", "HEAVY_CONFIG", "HEAVY_MODEL")


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    with running_sim("--seed", "7", "--accuracy", "1") as base:
        yield base


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("config") / "config.toml"
    path.write_text("# empty: heavy's built-in defaults\n")
    return str(path)


def heavy(*args: str, env: dict[str, str], config: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k.upper() not in _SCRUB}
    return subprocess.run([sys.executable, "-m", "heavy.cli", *args], capture_output=True, text=True, timeout=120,
                          env={**clean, "HEAVY_CONFIG": config, **env})


def openai_env(sim: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": f"{sim}/v1", "OPENAI_API_KEY": KEY}


@pytest.mark.parametrize("model", ["gpt-5-mini", "o3", "o4-mini", "gpt-5"])
def test_openai_reasoning_models_answer_with_heavys_defaults(sim, model, config):
    done = heavy("ask", "-m", f"openai:{model}", "-n", "4", QUESTION, env=openai_env(sim), config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "51" and "note" not in done.stderr, "defaults are not the user's: no note"


def test_a_temperature_the_model_refuses_is_noted_and_the_run_answers(sim, config):
    done = heavy("ask", "-m", "openai:gpt-5-mini", "-n", "3", "-t", "0.9", "--json", QUESTION, env=openai_env(sim), config=config)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "51"
    assert any("temperature=0.9 not sent" in n and "only temperature 1" in n for n in result["notes"])
    texts = [h["text"] for h in result["hypotheses"]]
    assert len(texts) == 3 and all(h["status"] == "ok" for h in result["hypotheses"])


def test_gpt_5_pro_goes_through_the_responses_api_and_counts_reasoning(sim, config):
    done = heavy("ask", "-m", "openai:gpt-5-pro", "-n", "2", "--json", QUESTION, env=openai_env(sim), config=config)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "51" and result["usage"]["reasoning_tokens"] > 0
    assert all(h["usage"]["reasoning_tokens"] > 0 for h in result["hypotheses"])


def test_grok_4_with_an_effort_answers_with_a_note(sim, config):
    done = heavy("ask", "-m", "xai:grok-4", "--reasoning-effort", "high", "-n", "2", QUESTION,
                 env={"XAI_BASE_URL": f"{sim}/v1", "XAI_API_KEY": KEY}, config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "51"
    assert "reasoning_effort='high' not sent" in done.stderr and "always reasons" in done.stderr


def test_claude_thinks_without_the_temperature(sim, config):
    done = heavy("ask", "-m", "anthropic:claude-sonnet-4-5", "-t", "0.7", "--thinking-budget", "2048", "-n", "2",
                 "--json", QUESTION, env={"ANTHROPIC_BASE_URL": sim, "ANTHROPIC_API_KEY": KEY}, config=config)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "51" and any("temperature=0.7 not sent" in n for n in result["notes"])
    assert all(h["reasoning"] for h in result["hypotheses"]), "thinking was on: the simulator returned thinking"


def test_azure_answers_from_its_endpoint(sim, config):
    done = heavy("ask", "-m", "azure:my-gpt5-mini", "-n", "2", QUESTION,
                 env={"AZURE_OPENAI_ENDPOINT": sim, "AZURE_OPENAI_API_KEY": KEY, "OPENAI_API_KEY": "sk-other"},
                 config=config)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "51"


# --- in-process: the simulator's own counts say which wire and which header -------------------------------------


async def ask_in_process(monkeypatch, model: str, env: dict[str, str], **options):
    app = SimulatedLLM(SimConfig(accuracy=1.0, seed=3))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    h = Heavy(model=model, transport=StreamingASGITransport(app), strategy="vote", **options)
    try:
        return await h.ask(QUESTION), app.stats
    finally:
        await h.aclose()


@pytest.mark.anyio
async def test_the_pro_models_are_sent_to_the_responses_wire(monkeypatch):
    result, seen = await ask_in_process(monkeypatch, "openai:gpt-5-pro", {"OPENAI_BASE_URL": "http://sim.test/v1",
                                                                         "OPENAI_API_KEY": KEY}, n=2)
    assert result.answer == "51" and seen.by_wire == {"responses": 2}
    result, seen = await ask_in_process(monkeypatch, "openai:gpt-5-mini", {"OPENAI_BASE_URL": "http://sim.test/v1",
                                                                          "OPENAI_API_KEY": KEY}, n=2)
    assert result.answer == "51" and seen.by_wire == {"openai": 2}


@pytest.mark.anyio
async def test_azure_gets_its_key_in_the_api_key_header_and_nowhere_else(monkeypatch):
    env = {"AZURE_OPENAI_ENDPOINT": "http://resource.test", "AZURE_OPENAI_API_KEY": KEY, "OPENAI_API_KEY": "sk-other"}
    result, seen = await ask_in_process(monkeypatch, "azure:my-gpt5-mini", env, n=3)
    assert result.answer == "51"
    assert seen.azure_requests == 3 and seen.auth_headers == {"api-key": 3}, "no bearer, no other key"
    result, seen = await ask_in_process(monkeypatch, "azure:gpt-5-pro", env, n=1)
    assert result.answer == "51" and seen.by_wire == {"responses": 1} and seen.auth_headers == {"api-key": 1}


class _LoggingProxy(BaseHTTPRequestHandler):
    """A forward proxy for http:// targets: forwards absolute-form requests and logs each request line."""

    seen: list[str] = []

    def _forward(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        target = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
        upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def logging_proxy() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoggingProxy)
    _LoggingProxy.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _LoggingProxy.seen
    finally:
        server.shutdown()
        server.server_close()


def test_http_proxy_carries_the_requests_and_no_proxy_takes_them_off_it(sim, config):
    with logging_proxy() as (proxy, seen):
        env = {**openai_env(sim), "HTTP_PROXY": proxy}
        done = heavy("ask", "-m", "openai:heavy-simulated", "-n", "2", QUESTION, env=env, config=config)
        assert done.returncode == 0 and done.stdout.strip() == "51", done.stderr
        assert seen and all(line.startswith(f"POST {sim}/v1/chat/completions") for line in seen)
        count = len(seen)
        done = heavy("ask", "-m", "openai:heavy-simulated", "-n", "2", QUESTION, env={**env, "NO_PROXY": "127.0.0.1"},
                     config=config)
        assert done.returncode == 0 and done.stdout.strip() == "51", done.stderr
        assert len(seen) == count, "NO_PROXY=127.0.0.1: nothing went through the proxy"


# --- the same rules under every shell -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_proxy_obeys_the_model_and_notes_what_its_client_set(monkeypatch):
    import functools

    import httpx

    from heavy.serve import create_app

    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    app = create_app({"model": ["openai:o4-mini"], "strategy": "vote", "n": 3},
                     heavy_factory=functools.partial(Heavy, transport=StreamingASGITransport(
                         SimulatedLLM(SimConfig(accuracy=1.0, seed=2)))))
    async with httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://heavy.test/v1",
                                 timeout=30) as client:
        r = await client.post("/chat/completions", json={"model": "heavy", "temperature": 0.4, "messages": [
            {"role": "user", "content": QUESTION}]})
    await app.state.heavy.aclose()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"].strip().endswith("The answer is 51.")
    assert body["heavy"]["answer"] == "51" and any("temperature=0.4 not sent" in n for n in body["heavy"]["notes"])


@pytest.mark.anyio
async def test_the_mcp_tool_obeys_the_model_and_says_what_was_dropped(monkeypatch):
    from heavy.mcp_server import HeavyTools
    from heavy.settings import RunSettings

    monkeypatch.setenv("XAI_BASE_URL", "http://sim.test/v1")
    monkeypatch.setenv("XAI_API_KEY", KEY)
    defaults = RunSettings.build(model=["xai:grok-4"], n=2, strategy="vote", reasoning_effort="high")
    tools = HeavyTools(defaults, heavy_factory=lambda **kw: Heavy(**kw, transport=StreamingASGITransport(
        SimulatedLLM(SimConfig(accuracy=1.0, seed=2)))))
    result = await tools.call("ask", {"question": QUESTION})
    await tools.aclose()
    text = result.content[0].text
    assert not result.is_error, text
    assert text.splitlines()[0] == "51" and "reasoning_effort='high' not sent" in text


def test_eval_and_its_batches_obey_the_models(sim, config, tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} * 3?", "answer": str(i * 3)}) + "\n"
                            for i in range(2, 8)))
    env = openai_env(sim)
    live = heavy("eval", str(data), "-m", "openai:gpt-5-nano", "-s", "vote", "-n", "2", "-t", "0.5",
                 "--results", str(tmp_path / "live.jsonl"), env=env, config=config)
    assert live.returncode == 0, live.stderr
    rows = [json.loads(line) for line in (tmp_path / "live.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r.get("correct") for r in rows), rows[:1]
    batch = heavy("eval", str(data), "-m", "openai:gpt-5-nano", "-s", "vote", "-n", "2", "-t", "0.5", "--batch",
                  "--results", str(tmp_path / "batch.jsonl"), env=env, config=config)
    assert batch.returncode == 0, batch.stderr
    rows = [json.loads(line) for line in (tmp_path / "batch.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(r.get("correct") for r in rows), rows[:1]


def test_the_llm_plugin_obeys_the_model(sim, tmp_path, monkeypatch):
    llm = pytest.importorskip("llm")
    monkeypatch.setenv("LLM_USER_PATH", str(tmp_path))
    (tmp_path / "extra-openai-models.yaml").write_text(
        f"- model_id: strict-reasoner\n  model_name: gpt-5-mini\n  api_base: \"{sim}/v1\"\n")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("HEAVY_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    response = llm.get_model("heavy/vote/strict-reasoner").prompt(QUESTION, n=2, temperature=0.9)
    assert response.text().strip().endswith("The answer is 51.")
    assert any("temperature=0.9 not sent" in n for n in response.response_json["heavy"]["notes"])


def test_eval_batch_decides_1500_questions_whose_results_file_is_megabytes(sim, config, tmp_path):
    """The batch's result file (~1,500 x 2 answers, over a megabyte) is one non-streaming answer: read whole, at once."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)})
                            + "\n" for i in range(1500)))
    done = heavy("eval", str(data), "-m", "openai:heavy-simulated", "-s", "vote", "-n", "2", "--batch",
                 "--results", str(tmp_path / "out.jsonl"), env=openai_env(sim), config=config)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(rows) == 1500 and all(r.get("error") is None for r in rows)
    assert {r["id"] for r in rows} == {f"q{i}" for i in range(1500)} and "1500/1500" in done.stdout


def test_a_pro_model_in_background_mode_is_polled_until_done(sim, config):
    done = heavy("ask", "-m", "openai:gpt-5-pro", "-n", "1", "--background", "--json", QUESTION, env=openai_env(sim),
                 config=config)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "51" and result["hypotheses"][0]["usage"]["reasoning_tokens"] > 0


@pytest.mark.anyio
async def test_background_mode_creates_background_responses_and_polls_them(monkeypatch):
    app = SimulatedLLM(SimConfig(accuracy=1.0, seed=3))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr("heavy.constants.RESPONSES_POLL_INTERVAL", 0.05)
    h = Heavy(model="openai:gpt-5-pro", transport=StreamingASGITransport(app), strategy="vote", n=2, background=True)
    result = await h.ask(QUESTION)
    await h.aclose()
    kept = list(app.responses.kept.values())
    assert result.answer == "51" and len(kept) == 2 and all(k.request.background for k in kept)
