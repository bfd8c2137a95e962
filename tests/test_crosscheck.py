"""Program hypotheses and the crosscheck strategy: programs really run in the sandbox, answers reached by
both a chain and a program win, early agreement stops at two samples, replays run programs and checks
again, and a reply that is only code is never a vote for its code text.

The network edge is faked (the simulator in-process, or a scripted OpenAI-compatible endpoint through
httpx.MockTransport); the sandbox and the strategy are the real ones.
"""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.errors import OptionsError
from heavy.sim import SimConfig
from heavy.tools.agent import TEXT_PROTOCOL_INSTRUCTION
from heavy.tools.program import PROGRAM_INSTRUCTION, program_code
from heavy.types import PROGRAM_ROUTE, Hypothesis
from heavy.voting import tally

from helpers import sim_heavy

pytestmark = pytest.mark.anyio


def scripted(chains: list[str], programs: list[str]):
    """An OpenAI-compatible endpoint answering chain prompts and program prompts from two scripts."""
    replies = {"chain": itertools.cycle(chains), "program": itertools.cycle(programs)}
    seen = {"chain": 0, "program": 0, "offered tools": 0}

    async def endpoint(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        system = " ".join(m["content"] for m in body["messages"] if m["role"] == "system")
        route = "program" if PROGRAM_INSTRUCTION in system else "chain"
        seen[route] += 1
        seen["offered tools"] += bool(body.get("tools")) or TEXT_PROTOCOL_INSTRUCTION in system
        return httpx.Response(200, json={
            "id": f"cmpl-{route}-{seen[route]}", "object": "chat.completion", "model": "scripted",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": next(replies[route])},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})

    return httpx.MockTransport(endpoint), seen


def prog(value: str) -> str:
    return f"```python\nshare = {value}\nprint(share)\n```"


def make(transport: httpx.MockTransport, **kw) -> Heavy:
    return Heavy(model="openai:scripted", base_url="http://scripted.test/v1", transport=transport, **kw)


async def test_crosscheck_needs_the_python_tool():
    transport, _ = scripted(["The answer is 3."], [prog("3")])
    with pytest.raises(OptionsError, match="enable the python tool"):
        await make(transport, n=4, strategy="crosscheck").ask("q?")
    r = CliRunner().invoke(cli, ["ask", "-m", "sim", "-s", "crosscheck", "What is 2 + 2?"])
    assert r.exit_code == 1 and "--tools python" in r.stderr and "Traceback" not in r.output


async def test_an_answer_both_routes_reach_wins_a_tied_vote():
    # 6 chains (7, 7, 9, 7, 7, 9) + 2 programs (9, 9): 7 and 9 tie 4 to 4; the plain vote takes 7 (seen
    # first), cross-checking takes 9, the one answer reached by reasoning chains and by executed programs.
    transport, seen = scripted(
        ["Adding up gives 7.\n\nThe answer is 7.", "So 7.\n\nThe answer is 7.", "The answer is 9."],
        [prog("9"), prog("9")])
    h = make(transport, n=8, strategy="crosscheck", options={"early_stop": False, "programs": 0.25}, tools="python")
    r = await h.ask("How many?")
    assert seen == {"chain": 6, "program": 2, "offered tools": 0}, "chains reason without tools: independent routes"
    assert r.answer == "9" and r.decision.method == "crosscheck" and r.decision.path[-1] == "agree"
    assert r.decision.details["routes"]["9"] == {"chain": 2, "program": 2}
    assert r.decision.details["routes"]["7"] == {"chain": 4, "program": 0}
    assert "2 reasoning chain(s) and 2 executed program(s) agree on '9'" in r.decision.rationale
    # The same hypotheses decided by a plain vote give the chains' majority: crosscheck is what changed it.
    assert tally(r.hypotheses).winner == "7"


async def test_an_outvoted_cross_route_answer_does_not_overturn_the_majority():
    # Chains: 7, 7, 7, 9. Programs: 9, 11, a crash, nothing printed. 9 has both routes but 2 votes to 7's 3:
    # one stray program agreeing with a minority chain is weaker evidence than a clear majority (tuned).
    transport, seen = scripted(
        ["Adding up gives 7.\n\nThe answer is 7.", "So 7.\n\nThe answer is 7.", "The answer is 7.", "The answer is 9."],
        [prog("9"), prog("11"), "```python\nraise SystemExit(3)\n```", "```python\nx = 9\n```"])
    h = make(transport, n=8, strategy="crosscheck", options={"early_stop": False, "programs": 0.5}, tools="python")
    r = await h.ask("How many?")
    assert seen == {"chain": 4, "program": 4, "offered tools": 0}
    assert r.answer == "7" and r.decision.method == "vote"
    assert "reached by both a chain and a program but outvoted: '9'" in r.decision.rationale
    assert r.decision.details["routes"]["9"] == {"chain": 1, "program": 1}
    programs = [x for x in r.hypotheses if x.route == PROGRAM_ROUTE]
    assert sorted(str(x.answer) for x in programs) == ["11", "9", "None", "None"]
    ran = [s for x in programs for s in x.steps or [] if s.protocol == "program"]
    assert len(ran) == 4 and {s.details["printed"] for s in ran} == {"9", "11", None}
    assert any("exit code 3" in s.result for s in ran), "a failing program's run is recorded as it ended"


async def test_without_cross_route_agreement_the_vote_decides():
    transport, _ = scripted(["The answer is 5.", "The answer is 5.", "The answer is 6."],
                            [prog("8"), prog("9"), prog("10")])
    r = await make(transport, n=6, strategy="crosscheck", options={"early_stop": False}, tools="python").ask("q")
    assert r.answer == "5" and r.decision.method == "vote"
    assert "no answer was reached by both" in r.decision.rationale


async def test_early_agreement_costs_two_samples():
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=8, strategy="crosscheck", tools="python")
    r = await h.ask("What is 17 * 24 + 3?")
    assert r.answer == "411" and r.decision.path[-1] == "agree"
    done = [x for x in r.hypotheses if x.status == "ok"]
    assert len(done) == 2 and {x.route for x in done} == {None, PROGRAM_ROUTE}
    assert r.stopped_early and r.decision.details["sampled"] == {"chains": 1, "programs": 1}
    assert r.usage.total_tokens == sum(x.usage.total_tokens for x in done)


async def test_after_a_disagreement_the_rest_is_sampled_and_stops_once_an_agreed_answer_leads():
    # First wave: chain 4 vs program 5; the rest keep answering 5 on both routes.
    transport, seen = scripted(["The answer is 4.", "The answer is 5."], [prog("5")])
    r = await make(transport, n=8, strategy="crosscheck", tools="python").ask("q")
    assert r.answer == "5" and r.decision.path[-1] == "agree"
    assert seen["chain"] >= 2 and seen["program"] >= 1


@pytest.mark.parametrize("programs,expected", [(1.0, {"chain": 0, "program": 6}), (0.0, {"chain": 6, "program": 0})])
async def test_the_programs_share_picks_the_routes(programs, expected):
    transport, seen = scripted(["The answer is 5."], [prog("5")])
    r = await make(transport, n=6, strategy="crosscheck", tools="python",
                   options={"programs": programs, "early_stop": False}).ask("q")
    assert seen == {**expected, "offered tools": 0} and r.answer == "5" and r.decision.method == "vote"


async def test_a_chain_that_answers_with_a_program_is_run_where_code_may_run():
    code_reply = "Here is how to compute it:\n```python\ncookies = 3 * 4\nprint(cookies)\n```"
    transport, _ = scripted([code_reply], [prog("12")])
    r = await make(transport, n=2, strategy="vote", tools="python").ask("How many cookies?")
    assert r.answer == "12" and all(x.answer == "12" for x in r.hypotheses)
    assert all(s.protocol == "program" for x in r.hypotheses for s in x.steps or [] if s.details)


def test_a_program_is_no_vote_for_its_code_text_on_a_numeric_question():
    code = Hypothesis(index=0, model="m", text="```python\nprint(12)\n```", answer="```\nprint(12)")
    num = [Hypothesis(index=i, model="m", text=f"The answer is {v}.", answer=v) for i, v in ((1, "12"), (2, "13"))]
    t = tally([code, *num])
    assert "```\nprint(12)" not in t.counts and t.no_answer == 1
    # A code task (every answer is code) still votes on code.
    t2 = tally([code, code.model_copy(update={"index": 1})])
    assert t2.winner == "```\nprint(12)"


def test_program_code_finds_fenced_unfenced_and_no_code():
    assert program_code("```python\nprint(1)\n```") == "print(1)"
    assert program_code("text\n```\nx = 2\nprint(x)\n```") == "x = 2\nprint(x)"
    assert program_code("x = 2\nprint(x * 3)") == "x = 2\nprint(x * 3)"
    assert program_code("The answer is 6.") is None
    assert program_code("I would print( the answer") is None


async def test_replay_runs_programs_again_and_ignores_recorded_answers():
    transport, seen = scripted(["The answer is 9."], [prog("9")])
    forged = Hypothesis(index=0, model="openai:scripted", text=prog("9"), answer="1000", route=PROGRAM_ROUTE)
    chain = Hypothesis(index=1, model="openai:scripted", text="The answer is 9.", answer="9")
    h = make(transport, n=2, strategy="crosscheck", tools="python")
    r = await h.ask("q", pool=[forged, chain], live=False)
    assert seen == {"chain": 0, "program": 0, "offered tools": 0}, "everything came from the pool"
    assert r.answer == "9" and r.decision.path[-1] == "agree"
    replayed = next(x for x in r.hypotheses if x.route == PROGRAM_ROUTE)
    assert replayed.answer == "9" and replayed.steps[-1].protocol == "program"


async def test_verify_runs_on_replayed_hypotheses():
    h, app = sim_heavy(n=3, strategy="vote", verify="python")
    pool = [Hypothesis(index=i, model="openai:heavy-simulated", text=f"The answer is {v}.", answer=v)
            for i, v in enumerate(["411", "411", "412"])]
    r = await h.ask("What is 17 * 24 + 3?", pool=pool, live=False)
    verdicts = {x.answer: s.details["verdict"] for x in r.hypotheses for s in x.steps or [] if s.protocol == "verify"}
    assert verdicts == {"411": "agrees", "412": "disagrees"}
    assert r.decision.details["verification"] and r.answer == "411"
    # A pool that already carries checks is not checked twice.
    again = await h.ask("What is 17 * 24 + 3?", pool=r.hypotheses, live=False)
    assert sum(1 for x in again.hypotheses for s in x.steps or [] if s.protocol == "verify") == 3
    assert again.usage == r.usage


def test_eval_records_programs_and_replays_them(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"What is {a} * 3 + 1?", "answer": str(a * 3 + 1)}) + "\n"
                            for a in (11, 12, 13)))
    pool, out, out2 = tmp_path / "pool.jsonl", tmp_path / "r.jsonl", tmp_path / "r2.jsonl"
    run = CliRunner().invoke
    # Seeded (each request's seed fixes the simulator's draw): its chains are right only with its default
    # accuracy, and with 3 chains + 1 program three agreeing wrong chains would outvote the program.
    r = run(cli, ["eval", str(data), "-m", "sim", "--tools", "python", "--strategies", "vote,crosscheck", "-n", "4",
                  "--seed", "7", "--programs", "4", "--record", str(pool), "--results", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in pool.read_text().splitlines()]
    assert all(sum(1 for x in row["hypotheses"] if x.get("route") == "program") == 4 for row in rows)
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["strategy"] for r in results) == ["crosscheck"] * 3 + ["vote"] * 3
    # The simulator's chains are right only with its default accuracy; its programs compute the arithmetic.
    assert all(r["correct"] for r in results if r["strategy"] == "crosscheck"), results
    r = run(cli, ["eval", str(data), "-m", "sim", "--tools", "python", "-s", "crosscheck", "-n", "4", "--seed", "7",
                  "--replay", str(pool), "--results", str(out2)])
    assert r.exit_code == 0, r.output
    replayed = [json.loads(line) for line in out2.read_text().splitlines()]
    assert len(replayed) == 3 and all(row["correct"] for row in replayed)
    r = run(cli, ["eval", str(data), "-m", "sim", "--programs", "2", "--record", str(tmp_path / "p2.jsonl"),
                  "--results", str(tmp_path / "r3.jsonl")])
    assert r.exit_code == 1 and "--tools python" in r.stderr


async def test_the_default_strategy_cross_checks_where_code_may_run():
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=8, tools="python")  # strategy "heavy", the default
    r = await h.ask("What is 17 * 24 + 3?")
    assert r.strategy == "heavy" and r.answer == "411"
    assert r.decision.path[:2] == ["python", "sample"] and r.decision.path[-1] == "agree"
    assert r.decision.method == "crosscheck" and sum(x.status == "ok" for x in r.hypotheses) == 2
    plain, _ = sim_heavy(n=4)  # no python tool: the policy as before, no program is ever asked for
    r = await plain.ask("What is 17 * 24 + 3?")
    assert r.decision.path[0] == "sample" and all(x.route is None for x in r.hypotheses)
    off, _ = sim_heavy(n=4, tools="python", options={"programs": 0})
    assert all(x.route is None for x in (await off.ask("What is 17 * 24 + 3?")).hypotheses)


async def test_without_agreement_the_default_synthesizes_a_split():
    transport, seen = scripted(["The answer is 5.", "The answer is 6.", "The answer is 7."],
                               [prog("8"), prog("9"), prog("10")])
    r = await make(transport, n=6, tools="python").ask("q")
    assert r.decision.path[:4] == ["python", "sample", "chain+program", "no agreement"]
    assert r.decision.method == "synthesize" and len(r.aggregator_calls) == 1
    assert r.decision.details["sampled"] == {"chains": 4, "programs": 2}, "a quarter are programs by default"


async def test_through_the_proxy_programs_run_only_where_the_operator_enabled_python(monkeypatch):
    from test_serve import MODEL, assert_openai_error, proxy, user

    async with proxy(monkeypatch, SimConfig(seed=1, accuracy=1.0)) as (client, _, llm, _rec):
        err = assert_openai_error(await client.post("/chat/completions", json={
            "model": f"heavy/crosscheck/{MODEL}", "messages": user()}), 400, "code_execution_disabled")
        assert "heavy serve --tools python" in err["message"]
        r = await client.post("/chat/completions", json={"model": "heavy", "messages": user(), "n": 4})
        assert r.status_code == 200 and r.json()["heavy"]["method"] != "crosscheck", "no python: the old policy"
    async with proxy(monkeypatch, SimConfig(seed=1, accuracy=1.0), defaults={"model": MODEL, "tools": "python"}) as (
            client, _, llm, rec):
        for model in (f"heavy/crosscheck/{MODEL}", "heavy"):
            r = await client.post("/chat/completions", json={"model": model, "messages": user(), "n": 4})
            assert r.status_code == 200, r.text
            assert "411" in r.json()["choices"][0]["message"]["content"]
            assert r.json()["heavy"]["method"] == "crosscheck"
        assert any(PROGRAM_INSTRUCTION in json.dumps(b) for b in rec.bodies), "programs were asked for upstream"
