"""The library API as users call it: Heavy(...).ask / ask_sync / events, heavy.ask, messages."""

import json

import httpx
import pytest

import heavy
from heavy import Heavy
from heavy.errors import ConfigError, FatalRequestError, OptionsError, QuorumError
from heavy.events import Final, HypothesisFinished, HypothesisStarted, StageStarted, TokenDelta
from heavy.sim import SimConfig, SimulatedLLM

SIM = "sim:heavy-simulated@accuracy=1"


def test_one_call_convenience_from_a_plain_script():
    r = heavy.ask("What is 12 * 11?", model=SIM, n=3, strategy="vote")
    assert r.answer == "132" and len(r.hypotheses) == 3


def test_ask_sync_can_be_called_repeatedly():
    h = Heavy(model=SIM, n=2, strategy="vote")
    assert h.ask_sync("What is 2 + 3?").answer == "5"
    assert h.ask_sync("What is 4 + 3?").answer == "7"  # a new event loop: providers are rebuilt for it


@pytest.mark.anyio
async def test_ask_sync_inside_a_running_loop_still_works():
    h = Heavy(model=SIM, n=2, strategy="vote")
    assert h.ask_sync("What is 10 - 3?").answer == "7"


@pytest.mark.anyio
async def test_aask_and_context_manager():
    assert (await heavy.aask("What is 6 + 6?", model=SIM, n=2, strategy="vote")).answer == "12"
    async with Heavy(model=SIM, n=2) as h:
        assert (await h.ask("What is 6 + 7?")).answer == "13"


@pytest.mark.anyio
async def test_events_stream_in_order_and_end_with_final():
    h = Heavy(model=SIM, n=3, strategy="synthesize")
    events = [e async for e in h.events("What is 3 * 3?")]
    assert isinstance(events[0], StageStarted) and events[0].name == "sample"
    assert sum(isinstance(e, HypothesisStarted) for e in events) == 3
    assert sum(isinstance(e, HypothesisFinished) for e in events) == 3
    assert any(isinstance(e, TokenDelta) for e in events), "a listener turns on streaming"
    assert isinstance(events[-1], Final) and events[-1].result.answer == "9"
    await h.aclose()


@pytest.mark.anyio
async def test_events_raise_the_run_error():
    h = Heavy(model="sim:heavy-simulated@fail_rate=1", n=2)
    with pytest.raises(QuorumError):
        async for _ in h.events("What is 1 + 1?"):
            pass


@pytest.mark.anyio
async def test_multi_turn_messages_and_system_prompt_reach_every_hypothesis():
    seen = []
    app = SimulatedLLM(SimConfig(accuracy=1.0))

    async def spy(req: httpx.Request) -> httpx.Response:
        seen.append(json.loads(req.content)["messages"])
        return await httpx.ASGITransport(app=app).handle_async_request(req)

    h = Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1", transport=httpx.MockTransport(spy),
              n=3, strategy="vote", system="Be brief.")
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What is 7 * 8?"}]
    r = await h.ask(msgs)
    assert r.answer == "56" and len(seen) == 3
    for m in seen:
        assert m[0] == {"role": "system", "content": "Be brief."} and m[1:] == msgs


def test_configuration_errors_are_raised_eagerly():
    with pytest.raises(ConfigError):
        Heavy(model="nosuch:x")
    with pytest.raises(OptionsError, match="known options"):
        Heavy(model=SIM, strategy="vote", bogus=1)
    with pytest.raises(OptionsError, match="temperature"):
        Heavy(model=SIM, temperature=5)
    with pytest.raises(OptionsError, match="invalid messages"):
        Heavy(model=SIM).ask_sync([{"role": "robot", "content": "x"}])


def test_deadline_returns_what_arrived():
    # Two fast samplers and one that would take 30 s: the deadline cuts it and the fast ones decide.
    h = Heavy(model=["sim:heavy-simulated@accuracy=1", "sim:heavy-simulated@accuracy=1,latency=30"],
              n=4, strategy="vote", deadline=1.0)
    r = h.ask_sync("What is 20 + 22?")
    assert r.answer == "42" and r.deadline_hit
    assert [x.status for x in r.hypotheses] == ["ok", "cancelled", "ok", "cancelled"]
    assert r.timings.total_s < 10


def test_api_key_never_reaches_results_or_errors(monkeypatch):
    key = "sk-test-NEVER-SHOW-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)

    def echoing_server(req: httpx.Request) -> httpx.Response:
        # Real APIs echo (part of) a rejected key in their error message; heavy must scrub it.
        sent = req.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {sent}"}})

    monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")  # the key's own endpoint variable: the key is sent
    h = Heavy(model="openai:heavy-simulated", transport=httpx.MockTransport(echoing_server), n=2)
    with pytest.raises(FatalRequestError) as info:  # a 401 is the same for every sibling: one clear error
        h.ask_sync("What is 1 + 1?")
    text = str(info.value) + (info.value.body or "")
    assert "401" in text and "Incorrect API key" in text
    assert key not in text
    assert key not in repr(h.specs)


def test_a_provider_of_your_own():
    from heavy.providers.base import Completion, Provider
    from heavy.types import Usage

    class Echo(Provider):
        name = "echo"
        closed = False

        async def complete(self, request):
            return Completion(text=f"{request.model} says: the answer is {len(request.messages[-1].text())}.",
                              usage=Usage(prompt_tokens=1, completion_tokens=2))

        async def aclose(self):
            self.closed = True

    echo = Echo()
    h = Heavy(model="mine:parrot", providers={"mine": echo}, n=3, strategy="vote")
    r = h.ask_sync("12345")
    assert r.answer == "5" and r.hypotheses[0].model == "mine:parrot" and "parrot says" in r.text
    assert r.usage.completion_tokens == 6
    assert not echo.closed, "heavy never closes a provider it was given"
