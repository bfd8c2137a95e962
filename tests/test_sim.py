"""Tests of the simulated OpenAI-compatible LLM (heavy.sim).

Everything runs in-process through ``httpx.ASGITransport`` except one test that starts the real
HTTP server in a subprocess. Statistical tests use seeded requests, so they are deterministic; their
bounds are still binomial-tolerant so a change of seed derivation would not make them flaky.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from heavy.answers import final_answer, normalize_answer
from heavy.errors import ConfigError
from heavy.prompts import judge_messages, parse_verdict, synthesize_messages
from heavy.sim import SimConfig, SimulatedLLM, load_dataset, serve
from heavy.sim.solver import solve_arithmetic
from heavy.types import as_messages

from helpers import imported_modules

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO / "tests" / "data" / "gsm8k-train-300.jsonl"
QUESTION = "What is 17 * 24 + 3?"
GOLD = "411"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(app: SimulatedLLM) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim/v1", timeout=30)


def body(question: str = QUESTION, **extra) -> dict:
    return {"model": "heavy-simulated", "messages": [{"role": "user", "content": question}], **extra}


async def chat(client: httpx.AsyncClient, question: str = QUESTION, **extra) -> dict:
    r = await client.post("/chat/completions", json=body(question, **extra))
    assert r.status_code == 200, r.text
    return r.json()


def content(resp: dict) -> str:
    return resp["choices"][0]["message"]["content"]


def sse_events(text: str) -> list[str]:
    """The data payloads of an SSE body, checking the framing on the way."""
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: "):] for e in events]


def assert_openai_error(r: httpx.Response, status: int, type_: str = "invalid_request_error") -> dict:
    assert r.status_code == status, r.text
    assert r.headers["x-request-id"]
    err = r.json()["error"]
    assert err["type"] == type_ and err["message"] and "code" in err
    return err


# --- packaging ------------------------------------------------------------------------------------


def test_the_server_never_imports_its_client_side_transport():
    import subprocess
    import sys

    code = "import sys, heavy.sim; heavy.sim.SimulatedLLM(); print('httpx' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_no_web_framework_needed_in_process():
    """heavy.sim must not import httpx/starlette, and uvicorn only inside a function (serve). The one exception is
    the client side it hands to httpx clients (transport.py: an httpx transport), which nothing of the server imports."""
    for path in (REPO / "heavy" / "sim").glob("*.py"):
        if path.name == "transport.py":
            continue
        tree = ast.parse(path.read_text())
        top_level = set()
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("httpx", "starlette"), f"{path.name} imports {name}"
        for node in tree.body:
            if isinstance(node, ast.Import):
                top_level |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                top_level.add(node.module.split(".")[0])
        assert "uvicorn" not in top_level, path.name
        assert len(path.read_text().splitlines()) < 500, path.name


def test_config_rejects_unknown_fields_and_bad_values():
    with pytest.raises(ValueError):
        SimConfig(acuracy=0.5)
    with pytest.raises(ValueError):
        SimConfig(accuracy=1.5)
    assert SimulatedLLM(accuracy=0.25).config.accuracy == 0.25


def test_the_providers_know_nothing_of_the_simulator():
    """The wall: nothing under heavy/providers imports the simulator (or names its package); the sim preset is
    resolved above the providers."""
    paths = sorted((REPO / "heavy" / "providers").glob("*.py"))
    assert paths
    for path in paths:
        for module in imported_modules(path, "heavy.providers"):
            assert not module.startswith(("heavy.sim", "heavy.testing")), f"{path.name} imports {module}"
        text = path.read_text()
        assert "heavy.sim" not in text and "heavy.testing" not in text and "SimulatedLLM" not in text, path.name


@pytest.mark.anyio
async def test_the_sim_preset_is_the_simulators_own_provider(tmp_path, monkeypatch):
    from heavy import Heavy
    from heavy.providers.base import CompletionRequest
    from heavy.sim import provider

    data = tmp_path / "known.jsonl"
    data.write_text(json.dumps({"question": "How many legs has a spider?", "answer": "8"}) + "\n")
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(data))
    p = provider()
    try:
        request = CompletionRequest(model="heavy-simulated@accuracy=1",
                                    messages=as_messages("How many legs has a spider?"))
        completion = await p.complete(request)
    finally:
        await p.aclose()
    assert p.name == "sim" and final_answer(completion.text) == "8"
    assert "simulated" in (completion.model or "")
    async with Heavy(model="sim:heavy-simulated@accuracy=1", n=3, strategy="vote") as h:
        result = await h.ask("How many legs has a spider?")
    assert result.answer == "8" and {x.model for x in result.hypotheses} == {"sim:heavy-simulated@accuracy=1"}


# --- wire shape -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_models_and_health():
    app = SimulatedLLM(SimConfig(model_name="sim-x"))
    async with client_for(app) as c:
        r = await c.get("/models")
        assert r.status_code == 200 and r.headers["x-request-id"]
        data = r.json()
        assert data["object"] == "list"
        assert data["data"][0]["id"] == "sim-x" and "simulated" in data["data"][0]["owned_by"]
        h = await c.get("http://sim/health")
        assert h.status_code == 200 and h.json()["status"] == "ok" and h.json()["simulated"] is True
    assert app.stats.requests == 2 and app.stats.chat_requests == 0


@pytest.mark.anyio
async def test_completion_wire_shape():
    app = SimulatedLLM(SimConfig(accuracy=1.0))
    async with client_for(app) as c:
        r = await c.post("/chat/completions", json=body(messages=[
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]))
        assert r.status_code == 200 and r.headers["x-request-id"].startswith("req_")
        data = r.json()
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    assert isinstance(data["created"], int) and "simulated" in data["model"]
    choice = data["choices"][0]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    text = choice["message"]["content"]
    assert text.rstrip().splitlines()[-1] == f"The answer is {GOLD}."
    assert final_answer(text) == GOLD and 30 <= len(text.split()) <= 150
    usage = data["usage"]
    assert usage["prompt_tokens"] == len("Be brief.".split()) + len(QUESTION.split())
    assert usage["completion_tokens"] == len(text.split())
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.anyio
async def test_model_name_without_simulated_is_marked():
    async with client_for(SimulatedLLM()) as c:
        data = await chat(c, model="gpt-4o")
    assert data["model"] == "simulated/gpt-4o"


@pytest.mark.anyio
async def test_stream_wire_shape_matches_non_stream():
    app = SimulatedLLM(SimConfig(seed=3))
    async with client_for(app) as c:
        full = await chat(c, seed=11)
        r = await c.post("/chat/completions", json=body(seed=11, stream=True, stream_options={"include_usage": True}))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-request-id"]
        events = sse_events(r.text)
        plain = await c.post("/chat/completions", json=body(seed=11, stream=True))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" and "simulated" in ch["model"] for ch in chunks)
    assert len({ch["id"] for ch in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage_chunk, finish_chunk, deltas = chunks[-1], chunks[-2], chunks[1:-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == full["usage"]
    assert finish_chunk["choices"][0]["finish_reason"] == "stop" and finish_chunk["choices"][0]["delta"] == {}
    assert all(ch["usage"] is None for ch in chunks[:-1])
    assert len(deltas) > 3 and all(ch["choices"][0]["finish_reason"] is None for ch in deltas)
    assert "".join(ch["choices"][0]["delta"]["content"] for ch in deltas) == content(full)
    assert all(1 <= len(ch["choices"][0]["delta"]["content"].split()) <= 4 for ch in deltas)
    # Without include_usage: no usage chunk and no usage keys.
    plain_chunks = [json.loads(e) for e in sse_events(plain.text)[:-1]]
    assert all("usage" not in ch and ch["choices"] for ch in plain_chunks)


@pytest.mark.anyio
async def test_n_choices_stream_and_non_stream_agree():
    async with client_for(SimulatedLLM()) as c:
        full = await chat(c, seed=5, n=3)
        r = await c.post("/chat/completions", json=body(seed=5, n=3, stream=True))
    texts = [ch["message"]["content"] for ch in full["choices"]]
    assert [ch["index"] for ch in full["choices"]] == [0, 1, 2] and len(set(texts)) == 3
    assert full["usage"]["completion_tokens"] == sum(len(t.split()) for t in texts)
    joined = {0: "", 1: "", 2: ""}
    for e in sse_events(r.text)[:-1]:
        for ch in json.loads(e)["choices"]:
            joined[ch["index"]] += ch["delta"].get("content", "")
    assert [joined[i] for i in range(3)] == texts


# --- answering behaviour ----------------------------------------------------------------------------


def test_arithmetic_solver():
    assert solve_arithmetic(QUESTION) == 411
    assert solve_arithmetic("12 plus 7 times 3") == 33
    assert solve_arithmetic("What is 84 ÷ 4 × 2?") == 42
    assert solve_arithmetic("What is 100 divided by (3 + 5)?") == 12.5
    assert solve_arithmetic("Compute 2^10 - 1,000.") == 24
    assert solve_arithmetic("What is 5 / 0?") is None
    assert solve_arithmetic("What is __import__('os').getcwd()?") is None
    assert solve_arithmetic("What is 9 ** 99999?") is None
    assert solve_arithmetic("Tell me a joke") is None
    word_problem = ("Tom has 3 apples and buys 4 more at the market, then gives 2 to his sister who "
                    "shares them with her friends at school during lunch; how many apples are left for him now?")
    assert solve_arithmetic(word_problem) is None


@pytest.mark.anyio
async def test_accuracy_matches_config():
    app = SimulatedLLM(SimConfig(accuracy=0.7))
    async with client_for(app) as c:
        replies = await asyncio.gather(*[
            chat(c, f"What is {i} * 7 + {i % 13}?", seed=i) for i in range(300)])
    right = sum(final_answer(content(r)) == str(i * 7 + i % 13) for i, r in enumerate(replies))
    # 300 draws at p = 0.7: sd ≈ 7.9, so ±36 is more than 4.5 sd.
    assert 174 <= right <= 246, right
    assert app.stats.chat_requests == 300


@pytest.mark.anyio
async def test_accuracy_extremes_and_unknown_question():
    async with client_for(SimulatedLLM(SimConfig(accuracy=1.0))) as c:
        replies = [await chat(c, seed=s) for s in range(20)]
        assert all(final_answer(content(r)) == GOLD for r in replies)
        unknown = content(await chat(c, "Who wrote Hamlet?"))
    assert "simulated" in unknown and final_answer(unknown) is None and "answer is" not in unknown.lower()
    async with client_for(SimulatedLLM(SimConfig(accuracy=0.0))) as c:
        replies = [await chat(c, seed=s) for s in range(20)]
        assert all(final_answer(content(r)) != GOLD for r in replies)


@pytest.mark.anyio
async def test_seed_determinism():
    a, b = SimulatedLLM(), SimulatedLLM(SimConfig(latency=0.0))
    async with client_for(a) as ca, client_for(b) as cb:
        for s in range(5):
            assert content(await chat(ca, seed=s)) == content(await chat(cb, seed=s))
        by_seed = {content(await chat(ca, seed=s)) for s in range(10)}
        by_model = {content(await chat(ca, seed=1, model=f"simulated@latency=0.0{i}")) for i in range(1, 6)}
    assert len(by_seed) >= 8 and len(by_model) >= 4
    # config.seed participates, and unseeded requests replay when the server is seeded.
    async def run(config: SimConfig, **extra) -> list[str]:
        async with client_for(SimulatedLLM(config)) as c:
            return [content(await chat(c, **extra)) for _ in range(5)]
    assert await run(SimConfig(seed=1), seed=7) != await run(SimConfig(seed=2), seed=7)
    assert await run(SimConfig(seed=9)) == await run(SimConfig(seed=9))
    assert len(set(await run(SimConfig()))) >= 4


@pytest.mark.anyio
async def test_wrong_answers_are_spread_and_plausible():
    async with client_for(SimulatedLLM(SimConfig(accuracy=0.0))) as c:
        replies = await asyncio.gather(*[chat(c, seed=s) for s in range(200)])
    answers = [final_answer(content(r)) for r in replies]
    assert GOLD not in answers and None not in answers
    counts = Counter(answers)
    assert len(counts) >= 25
    assert counts.most_common(1)[0][1] / len(answers) < 0.2
    agree = sum(n * (n - 1) for n in counts.values()) / (len(answers) * (len(answers) - 1))
    assert agree < 0.1, agree  # two wrong samples rarely agree: voting can work
    assert all(a.isdigit() for a in answers)  # integer gold -> positive integer distractors


def test_load_dataset(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"question": "Q one?", "answer": "7"}\n\n{"question": "Q two?", "answer": "Work.\\n#### 1,200"}\n'
                 '{"question": "Q three?", "answer": 3.5}\n')
    assert load_dataset(f) == {"Q one?": "7", "Q two?": "1,200", "Q three?": "3.5"}
    f.write_text('{"question": "Q"}\n')
    with pytest.raises(ConfigError, match="d.jsonl:1"):
        load_dataset(f)
    with pytest.raises(ConfigError):
        load_dataset(tmp_path / "missing.jsonl")


@pytest.mark.anyio
async def test_gsm8k_dataset_questions():
    dataset = load_dataset(GSM8K)
    assert len(dataset) == 300
    items = list(dataset.items())[:25]
    async with client_for(SimulatedLLM(SimConfig(accuracy=1.0, dataset=dataset))) as c:
        for question, gold in items:
            assert final_answer(content(await chat(c, question, seed=1))) == normalize_answer(gold)
        # Lookup tolerates whitespace changes and a template around the question.
        q, gold = items[0]
        assert final_answer(content(await chat(c, "  " + q.replace(" ", "\n ") + " "))) == normalize_answer(gold)
        templated = f"Solve the following problem.\n\n{q}\n\nThink step by step."
        assert final_answer(content(await chat(c, templated))) == normalize_answer(gold)


# --- judge and synthesize ---------------------------------------------------------------------------


def candidates(*answers: str) -> list[tuple[str, str]]:
    return [(chr(65 + i), f"I worked it out carefully.\n\nThe answer is {a}.") for i, a in enumerate(answers)]


async def aggregate(app: SimulatedLLM, builder, question: str, cands: list[tuple[str, str]], **extra) -> str:
    msgs = [m.model_dump() for m in builder(as_messages(question), cands)]
    async with client_for(app) as c:
        return content(await chat(c, messages=msgs, temperature=0, **extra))


@pytest.mark.anyio
async def test_judge_picks_gold_even_against_majority():
    app = SimulatedLLM(SimConfig(judge_accuracy=1.0))
    cands = candidates("400", "412", "412", GOLD, "412")
    reply = await aggregate(app, judge_messages, QUESTION, cands)
    assert parse_verdict(reply, [label for label, _ in cands]) == "D"
    assert reply.splitlines()[-1] == "VERDICT: D"
    assert sum(line.startswith("Candidate ") for line in reply.splitlines()) == len(cands)
    assert app.stats.judge_requests == 1
    # Deterministic given the prompt, even without a seed.
    assert await aggregate(app, judge_messages, QUESTION, cands) == reply


@pytest.mark.anyio
async def test_judge_falls_back_to_plurality():
    cands = candidates("400", "412", GOLD, "412")
    wrong_judge = SimulatedLLM(SimConfig(judge_accuracy=0.0))
    assert parse_verdict(await aggregate(wrong_judge, judge_messages, QUESTION, cands), "ABCD") == "B"
    # No gold known for the question -> plurality; ties go to the earliest label.
    judge = SimulatedLLM()
    assert parse_verdict(await aggregate(judge, judge_messages, "Who is best?", candidates("x", "y", "y")), "ABC") == "B"
    assert parse_verdict(await aggregate(judge, judge_messages, "Who is best?", candidates("5", "7", "7", "5")), "ABCD") == "A"
    # Gold known but absent among candidates -> plurality too.
    assert parse_verdict(await aggregate(judge, judge_messages, QUESTION, candidates("1", "2", "2")), "ABC") == "B"


@pytest.mark.anyio
async def test_judge_accuracy_is_a_probability():
    app = SimulatedLLM(SimConfig(judge_accuracy=0.5))
    picks = []
    for i in range(60):
        # Different wrong majorities make different prompts, hence independent draws.
        cands = candidates(str(500 + i), str(500 + i), GOLD)
        picks.append(parse_verdict(await aggregate(app, judge_messages, QUESTION, cands), "ABC"))
    assert set(picks) == {"A", "C"} and 15 <= picks.count("C") <= 45


@pytest.mark.anyio
async def test_judge_garbage_mode_has_no_verdict():
    app = SimulatedLLM(SimConfig(judge_mode="garbage"))
    reply = await aggregate(app, judge_messages, QUESTION, candidates("400", GOLD))
    assert reply.strip() and "verdict" not in reply.lower()
    assert parse_verdict(reply, ["A", "B"]) is None
    # The mode can also be chosen per request.
    reply = await aggregate(SimulatedLLM(), judge_messages, QUESTION, candidates("400", GOLD),
                            model="simulated@judge_mode=garbage")
    assert parse_verdict(reply, ["A", "B"]) is None


@pytest.mark.anyio
async def test_synthesize():
    app = SimulatedLLM()
    reply = await aggregate(app, synthesize_messages, QUESTION, candidates("412", GOLD, "412"))
    assert reply.rstrip().endswith(f"The answer is {GOLD}.") and final_answer(reply) == GOLD
    assert "candidate" not in reply.lower()
    assert app.stats.synthesize_requests == 1
    weak = SimulatedLLM(SimConfig(judge_accuracy=0.0))
    assert final_answer(await aggregate(weak, synthesize_messages, QUESTION, candidates("412", GOLD, "412"))) == "412"
    assert await aggregate(app, synthesize_messages, QUESTION, candidates("412", GOLD)) == \
        await aggregate(app, synthesize_messages, QUESTION, candidates("412", GOLD))


# --- max_tokens, stop, logprobs -------------------------------------------------------------------


@pytest.mark.anyio
async def test_max_tokens_and_stop():
    async with client_for(SimulatedLLM()) as c:
        full = content(await chat(c, seed=4))
        cut = await chat(c, seed=4, max_tokens=5)
        stopped = await chat(c, seed=4, stop="answer")
        earliest = await chat(c, seed=4, stop=["The answer", full.split()[3]])
        both = await chat(c, seed=4, stop="The answer", max_tokens=1000)
        r = await c.post("/chat/completions", json=body(seed=4, max_tokens=5, stream=True))
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 5
    assert full.startswith(content(cut)) and len(content(cut).split()) == 5
    assert content(stopped) == full[: full.index("answer")]
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert stopped["usage"]["completion_tokens"] == len(content(stopped).split())
    word = full.split()[3]
    assert content(earliest) == full[: full.index(word)]
    assert content(both) == full[: full.index("The answer")] and both["choices"][0]["finish_reason"] == "stop"
    chunks = [json.loads(e) for e in sse_events(r.text)[:-1]]
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == content(cut)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.anyio
async def test_logprobs_shape():
    async with client_for(SimulatedLLM()) as c:
        data = await chat(c, seed=2, logprobs=True, top_logprobs=3)
        plain = await chat(c, seed=2, logprobs=True)
        r = await c.post("/chat/completions", json=body(seed=2, logprobs=True, top_logprobs=3, stream=True))
        bad = await c.post("/chat/completions", json=body(top_logprobs=3))
    entries = data["choices"][0]["logprobs"]["content"]
    assert "".join(e["token"] for e in entries) == content(data)
    assert len(entries) == data["usage"]["completion_tokens"]
    for e in entries:
        assert e["logprob"] <= 0 and e["bytes"] == list(e["token"].encode())
        top = e["top_logprobs"]
        assert len(top) == 3 and e["token"] in [t["token"] for t in top]
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert all(t["bytes"] == list(t["token"].encode()) for t in top)
    assert all(e["top_logprobs"] == [] for e in plain["choices"][0]["logprobs"]["content"])
    streamed = []
    for ev in sse_events(r.text)[1:-2]:  # skip the role chunk, finish chunk and [DONE]
        streamed += json.loads(ev)["choices"][0]["logprobs"]["content"]
    assert streamed == entries
    assert_openai_error(bad, 400)
    async with client_for(SimulatedLLM()) as c:
        assert (await chat(c, seed=2))["choices"][0]["logprobs"] is None


@pytest.mark.anyio
async def test_right_answers_are_more_confident():
    async with client_for(SimulatedLLM(SimConfig(accuracy=0.5))) as c:
        replies = await asyncio.gather(*[chat(c, seed=s, logprobs=True) for s in range(120)])
    right, wrong = [], []
    for r in replies:
        mean = statistics.fmean(e["logprob"] for e in r["choices"][0]["logprobs"]["content"])
        (right if final_answer(content(r)) == GOLD else wrong).append(mean)
    assert len(right) > 20 and len(wrong) > 20
    assert statistics.fmean(right) > -0.15 and statistics.fmean(wrong) < -0.3
    # Confidence ranks answers well but not perfectly: most right replies beat most wrong ones.
    wins = sum(a > b for a in right for b in wrong) / (len(right) * len(wrong))
    assert wins > 0.9


# --- failures, overrides, bad requests ----------------------------------------------------------------


@pytest.mark.anyio
async def test_failure_injection():
    app = SimulatedLLM(SimConfig(fail_rate=1.0))
    async with client_for(app) as c:
        err = assert_openai_error(await c.post("/chat/completions", json=body()), 500, "server_error")
        assert "simulated" in err["message"]
        r = await c.post("/chat/completions", json=body(model="m-simulated@fail_status=429"))
        assert_openai_error(r, 429, "rate_limit_error")
        assert r.headers["retry-after"] == "1"
        r = await c.post("/chat/completions", json=body(stream=True, model="simulated@fail_status=503"))
        assert_openai_error(r, 503, "server_error")
    assert app.stats.failures == 3 and app.stats.chat_requests == 3 and app.stats.requests == 3
    flaky = SimulatedLLM(SimConfig(fail_rate=0.3, seed=1))
    async with client_for(flaky) as c:
        statuses = [(await c.post("/chat/completions", json=body())).status_code for _ in range(200)]
    assert set(statuses) == {200, 500} and 35 <= statuses.count(500) <= 85
    assert flaky.stats.failures == statuses.count(500)


@pytest.mark.anyio
async def test_model_name_overrides():
    app = SimulatedLLM(SimConfig(accuracy=0.5))
    async with client_for(app) as c:
        strong = [await chat(c, seed=s, model="simulated@accuracy=1") for s in range(15)]
        weak = [await chat(c, seed=s, model="simulated@accuracy=0,latency-sigma=0.5") for s in range(15)]
        bad_key = await c.post("/chat/completions", json=body(model="simulated@acuracy=1"))
        bad_value = await c.post("/chat/completions", json=body(model="simulated@accuracy=2"))
        dataset = await c.post("/chat/completions", json=body(model="simulated@dataset=x"))
        no_eq = await c.post("/chat/completions", json=body(model="simulated@fast"))
        card = await c.get("/models/simulated@accuracy=0.9")
    assert all(final_answer(content(r)) == GOLD for r in strong)
    assert all(final_answer(content(r)) != GOLD for r in weak)
    assert strong[0]["model"] == "simulated@accuracy=1"
    for r in (bad_key, bad_value, dataset, no_eq):
        assert assert_openai_error(r, 400)["code"] == "invalid_model_override"
    assert "acuracy" in bad_key.json()["error"]["message"]
    assert card.status_code == 200 and card.json()["id"] == "simulated@accuracy=0.9"
    assert app.stats.by_model["simulated@accuracy=1"] == 15


@pytest.mark.anyio
async def test_bad_requests():
    async with client_for(SimulatedLLM()) as c:
        err = assert_openai_error(await c.post("/chat/completions", content=b"{not json"), 400)
        assert err["code"] == "invalid_json"
        assert_openai_error(await c.post("/chat/completions", content=b"[1, 2]"), 400)
        err = assert_openai_error(await c.post("/chat/completions", json={"model": "m"}), 400)
        assert err["code"] == "missing_required_parameter" and "messages" in err["message"]
        for wrong in ({"messages": "hi"}, {"messages": []}, {"messages": [{"role": "wizard", "content": "x"}]},
                      {"max_tokens": "5"}, {"stream": "yes"}, {"n": 0}, {"seed": 1.5}, {"stop": 3}):
            r = await c.post("/chat/completions", json={**body(), **wrong})
            assert_openai_error(r, 400)
        err = assert_openai_error(await c.get("/nowhere"), 404)
        assert err["code"] == "unknown_url"
        assert_openai_error(await c.get("/chat/completions"), 405)
        # Unknown extra fields are ignored, as many clients send provider-specific options.
        assert (await c.post("/chat/completions", json=body(frobnicate=True))).status_code == 200


# --- timing, concurrency, disconnects -----------------------------------------------------------------


@pytest.mark.anyio
async def test_latency_requests_run_concurrently():
    app = SimulatedLLM(SimConfig(latency=0.3))
    async with client_for(app) as c:
        t0 = time.perf_counter()
        replies = await asyncio.gather(*[chat(c, seed=i) for i in range(20)])
        wall = time.perf_counter() - t0
    assert len(replies) == 20 and 0.3 <= wall < 1.5
    assert app.stats.max_in_flight == 20 and app.stats.in_flight == 0
    app.stats.reset()
    assert app.stats.max_in_flight == 0 and app.stats.requests == 0 and not app.stats.by_model


@pytest.mark.anyio
async def test_tokens_per_second_paces_generation():
    app = SimulatedLLM(SimConfig(latency=0.05, tokens_per_second=400))
    async with client_for(app) as c:
        t0 = time.perf_counter()
        data = await chat(c, seed=1)
        non_stream = time.perf_counter() - t0
        t0 = time.perf_counter()
        await c.post("/chat/completions", json=body(seed=1, stream=True))
        stream = time.perf_counter() - t0
    expected = 0.05 + data["usage"]["completion_tokens"] / 400
    assert expected * 0.95 <= non_stream < expected + 0.5
    assert expected * 0.95 <= stream < expected + 0.5


@pytest.mark.anyio
async def test_latency_sigma_gives_heavy_tail():
    app = SimulatedLLM(SimConfig(latency=0.05, latency_sigma=1.0, seed=4))

    async def timed(c, i):
        t0 = time.perf_counter()
        await chat(c, seed=i)
        return time.perf_counter() - t0

    async with client_for(app) as c:
        times = sorted(await asyncio.gather(*[timed(c, i) for i in range(40)]))
    assert 0.02 < statistics.median(times) < 0.12
    assert times[-1] > 3 * times[0]


async def drive(app: SimulatedLLM, payload: dict, disconnect_after: float) -> list[dict]:
    """Call the ASGI app directly with a client that hangs up after *disconnect_after* seconds."""
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": json.dumps(payload).encode(), "more_body": False}]

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.sleep(disconnect_after)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "query_string": b""}
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return sent


@pytest.mark.anyio
async def test_client_disconnect_stops_generation():
    app = SimulatedLLM(SimConfig(latency=2.0))
    t0 = time.perf_counter()
    sent = await drive(app, body(), disconnect_after=0.05)
    assert time.perf_counter() - t0 < 1.0 and sent == []
    slow = SimulatedLLM(SimConfig(tokens_per_second=50))
    t0 = time.perf_counter()
    sent = await drive(slow, body(stream=True), disconnect_after=0.15)
    assert time.perf_counter() - t0 < 1.0
    chunks = [m for m in sent if m["type"] == "http.response.body"]
    assert 1 <= len(chunks) and b"[DONE]" not in b"".join(m["body"] for m in chunks)
    assert app.stats.disconnects == 1 and slow.stats.disconnects == 1 and slow.stats.in_flight == 0


# --- the HTTP server ------------------------------------------------------------------------------


def test_serve_without_uvicorn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` raise ImportError
    with pytest.raises(ConfigError, match=r"heavy\[serve\]"):
        serve(SimConfig())


def test_cli_rejects_bad_config():
    from click.testing import CliRunner

    from heavy.cli import cli

    r = CliRunner().invoke(cli, ["sim", "--accuracy", "2"])
    assert r.exit_code == 1 and "accuracy" in r.stderr and "Traceback" not in r.output
    r = CliRunner().invoke(cli, ["sim", "--judge-mode", "sometimes"])
    assert r.exit_code == 2 and "sometimes" in r.stderr


def test_serve_in_subprocess():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "heavy.cli", "sim", "--port", str(port), "--accuracy", "1",
                             "--judge-mode", "garbage", "--model-name", "sim-sub", "--log-level", "error"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "simulator did not come up"
            time.sleep(0.1)
        r = httpx.post(f"{base}/v1/chat/completions", json=body(), timeout=10)
        assert r.status_code == 200 and r.headers["x-request-id"]
        assert final_answer(content(r.json())) == GOLD
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body(stream=True), timeout=10) as s:
            assert s.read().decode().endswith("data: [DONE]\n\n")
        assert httpx.get(f"{base}/v1/models", timeout=10).json()["data"][0]["id"] == "sim-sub"
        judge = body(messages=[m.model_dump() for m in judge_messages(as_messages(QUESTION), candidates("400", GOLD))])
        r = httpx.post(f"{base}/v1/chat/completions", json=judge, timeout=10)
        assert r.status_code == 200 and parse_verdict(content(r.json()), ["A", "B"]) is None
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stderr.close()
