"""One session per process (heavy/session.py): the operator's limits hold in `heavy serve`, `heavy mcp` and
`heavy eval` whatever each request sets, because every run shares the session's one provider stack per endpoint.

The contract form: with `[providers.openai] concurrency = 2`, eight proxy clients at once with eight temperatures
never put more than 2 requests in flight upstream (it was 16: one Heavy, one set of limits, per configuration)."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from heavy import Heavy, Session
from heavy.errors import ConfigError
from heavy.sim.transport import StreamingASGITransport
from heavy.settings import ProviderLimits, RunSettings
from heavy.sim import SimConfig, SimulatedLLM
from helpers import running_heavy, running_sim

QUESTION = "What is 17 * 24 + 3?"
SLOW = SimConfig(accuracy=1.0, seed=3, latency=0.15)


def limited(**values) -> RunSettings:
    return RunSettings.build(model=["openai:heavy-simulated"], strategy="vote", n=2,
                             limits={"openai": ProviderLimits(concurrency=2)}, **values)


@pytest.mark.anyio
async def test_eight_proxy_clients_with_eight_temperatures_stay_within_the_operators_limit(monkeypatch):
    from heavy.serve import create_app

    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")
    llm = SimulatedLLM(SLOW)
    app = create_app(limited(), heavy_factory=functools.partial(Heavy, transport=StreamingASGITransport(llm)))
    async with httpx.AsyncClient(transport=StreamingASGITransport(app), base_url="http://heavy.test/v1",
                                 timeout=60) as client:
        answers = await asyncio.gather(*(client.post("/chat/completions", json={
            "model": "heavy", "temperature": 0.1 * (i + 1), "messages": [{"role": "user", "content": QUESTION}]})
            for i in range(8)))
    await app.state.heavy.aclose()
    assert [r.status_code for r in answers] == [200] * 8
    assert llm.stats.chat_requests == 16 and llm.stats.max_in_flight == 2


@pytest.mark.anyio
async def test_mcp_calls_share_the_limit_too(monkeypatch):
    from heavy.mcp_server import HeavyTools

    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")
    llm = SimulatedLLM(SLOW)
    tools = HeavyTools(limited(), allow_models=["openai:*"],
                       heavy_factory=functools.partial(Heavy, transport=StreamingASGITransport(llm)))
    results = await asyncio.gather(*(tools.call("ask", {"question": QUESTION, "n": 1 + i % 3, "strategy": s,
                                                        "models": [f"openai:heavy-simulated@seed={i}"]})
                                     for i, s in enumerate(["vote", "vote", "vote", "vote"] * 2)))
    await tools.aclose()
    assert not any(r.is_error for r in results), [r.content[0].text for r in results if r.is_error]
    assert llm.stats.max_in_flight == 2


@pytest.mark.anyio
async def test_runs_of_one_session_share_its_stacks_and_a_borrowed_session_stays_open():
    llm = SimulatedLLM(SLOW)
    async with Session(limited(), transport=StreamingASGITransport(llm)) as session:
        monkeyed = {"OPENAI_BASE_URL": "http://sim.test/v1"}
        os.environ.update(monkeyed)
        try:
            settings = [session.settings.merged(temperature=t, n=n) for t, n in ((0.2, 3), (0.5, 2), (0.9, 4))]
            results = await asyncio.gather(*(session.ask(QUESTION, s) for s in settings))
            assert [len(r.hypotheses) for r in results] == [3, 2, 4] and {r.answer for r in results} == {"411"}
            assert llm.stats.max_in_flight == 2 and len(session._stacks) == 1
            heavy = Heavy(settings=settings[0], session=session)
            await heavy.aclose()  # a Heavy given a session does not close it
            assert len(session._stacks) == 1
            assert (await heavy.ask(QUESTION)).answer == "411"
        finally:
            del os.environ["OPENAI_BASE_URL"]
    assert not session._stacks
    with pytest.raises(ConfigError, match="give them to the Session"):
        Heavy(model="sim", session=session, transport=StreamingASGITransport(llm))


def test_the_contract_against_real_processes(tmp_path):
    """`heavy serve` with `[providers.openai] concurrency = 2` in its config file, eight clients with eight
    temperatures, and a `heavy sim` process upstream that counts its peak."""
    config = tmp_path / "config.toml"
    config.write_text('[defaults]\nmodel = ["openai:heavy-simulated"]\nstrategy = "vote"\nn = 2\n\n'
                      "[providers.openai]\nconcurrency = 2\n")
    with running_sim("--accuracy", "1", "--latency", "0.15") as sim:
        env = {**os.environ, "HEAVY_CONFIG": str(config), "OPENAI_BASE_URL": f"{sim}/v1", "OPENAI_API_KEY": "sk-x"}
        with running_heavy("serve", env=env) as proxy:
            def ask(i: int) -> int:
                return httpx.post(f"{proxy}/v1/chat/completions", timeout=60, json={
                    "model": "heavy", "temperature": 0.1 * (i + 1),
                    "messages": [{"role": "user", "content": QUESTION}]}).status_code

            with ThreadPoolExecutor(8) as pool:
                assert list(pool.map(ask, range(8))) == [200] * 8
        load = httpx.get(f"{sim}/health").json()["load"]
    assert load["requests"] == 16 and load["max_in_flight"] == 2


def test_heavy_eval_keeps_the_limit_over_its_concurrent_questions(tmp_path):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} * 7?", "answer": str(i * 7)}) + "\n"
                            for i in range(2, 10)))
    config = tmp_path / "config.toml"
    config.write_text("[providers.openai]\nconcurrency = 2\n")
    with running_sim("--accuracy", "1", "--latency", "0.1") as sim:
        env = {**os.environ, "HEAVY_CONFIG": str(config), "OPENAI_BASE_URL": f"{sim}/v1", "OPENAI_API_KEY": "sk-x"}
        done = subprocess.run([sys.executable, "-m", "heavy.cli", "eval", str(data), "-m", "openai:heavy-simulated",
                               "-s", "vote", "-n", "3", "--concurrency", "8", "--results", str(tmp_path / "r.jsonl")],
                              capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        load = httpx.get(f"{sim}/health").json()["load"]
    assert load["requests"] == 24 and load["max_in_flight"] == 2
