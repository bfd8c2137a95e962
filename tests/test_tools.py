"""Hypotheses as agents: native tool calls on all three wires, the text protocol, web search, checks, CLI.

The simulated model uses tools deterministically (``heavy/sim/tooluse.py``): offered ``python`` on an
arithmetic question, it calls it with a program printing the expression, then answers from the output.
With ``accuracy=0`` its unaided answers are always wrong, so a right answer proves the tool ran.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from heavy import Heavy
from heavy.cli import cli
from heavy.errors import ConfigError
from heavy.events import ToolCallFinished, ToolCallStarted
from heavy.sim.transport import StreamingASGITransport
from heavy.providers.base import Completion, CompletionRequest, Provider
from heavy.sim import SimConfig, SimulatedLLM
from heavy.sim.search import SimulatedSearch
from heavy.tools import Tool, ToolNotFound, ToolResult, load_tool, registered_tools
from heavy.tools.agent import TEXT_PROTOCOL_INSTRUCTION, AgentConfig
from heavy.tools.python import PythonTool
from heavy.tools.web_search import WebSearchTool
from heavy.types import ToolCall, Usage

pytestmark = pytest.mark.anyio

WIRES = ["openai", "anthropic", "gemini"]
BASE = {"openai": "http://sim.test/v1", "anthropic": "http://sim.test", "gemini": "http://sim.test"}
QUESTION, GOLD = "What is 123 * 45 + 6?", "5541"


def sim_heavy(wire="openai", config=None, **kw):
    app = SimulatedLLM(config or SimConfig(accuracy=0.0, seed=1))
    h = Heavy(model=f"{wire}:heavy-simulated", base_url=BASE[wire], transport=httpx.ASGITransport(app=app), **kw)
    return h, app


class Scripted(Provider):
    """A model that answers from a script: ``reply(request, turn) -> Completion``; records every request."""

    name = "script"

    def __init__(self, reply):
        self.reply, self.requests = reply, []

    async def complete(self, request: CompletionRequest) -> Completion:
        self.requests.append(request)
        return self.reply(request, len(self.requests) - 1)


def scripted_heavy(reply, **kw):
    provider = Scripted(reply)
    return Heavy(model="script:any", providers={"script": provider}, **kw), provider


# --- the registry -----------------------------------------------------------------------------------


def test_builtin_tools_register_through_entry_points():
    assert {"python", "web_search"} <= set(registered_tools())
    assert load_tool("python") is PythonTool
    with pytest.raises(ToolNotFound, match="unknown tool 'nosuch'; registered: .*python"):
        load_tool("nosuch")


def test_tools_are_opt_in():
    h = Heavy(model="sim")
    assert h.agent is None and h.verifier is None


# --- native tool calls on every wire ------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("wire", WIRES)
async def test_agents_call_python_natively(wire, stream):
    events = []
    h, app = sim_heavy(wire, n=3, strategy="vote", tools=["python"], stream=stream, on_event=events.append)
    r = await h.ask(QUESTION, seed=4)
    await h.aclose()
    assert r.answer == GOLD and r.decision.votes == {GOLD: 3}
    assert app.stats.by_wire == {wire: 6}  # each hypothesis: a call that calls the tool, then the answer
    for x in r.hypotheses:
        [step] = x.steps
        assert step.tool == "python" and step.protocol == "native" and step.ok
        assert step.arguments == {"code": "print(123 * 45 + 6)"} and step.result.startswith("5541\n[sandbox: ")
        assert step.seconds > 0 and x.text.endswith(f"The answer is {GOLD}.")
        assert x.usage.completion_tokens > len(x.text.split())  # both calls counted
    started = [e for e in events if isinstance(e, ToolCallStarted)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert sorted(e.index for e in started) == sorted(e.index for e in finished) == [0, 1, 2]
    assert all(e.tool == "python" and e.ok and e.result.startswith("5541") for e in finished)


async def test_the_tool_result_says_what_the_sandbox_isolated():
    result = await PythonTool().call(PythonTool.Args(code="print('hi')"))
    assert result.ok and result.content.startswith("hi\n[sandbox: ")
    assert ("no network" in result.content) == (result.data["isolation"]["network"] == "isolated")


async def test_step_limit_ends_a_model_that_keeps_calling_tools():
    def reply(request, turn):
        return Completion(text="", finish_reason="tool_calls",
                          tool_calls=[ToolCall(id=f"c{turn}", name="python", arguments={"code": f"print({turn})"})])

    h, provider = scripted_heavy(reply, n=1, strategy="vote", tools="python", max_steps=2)
    r = await h.ask("Loop forever.")
    [x] = r.hypotheses
    assert [s.arguments["code"] for s in x.steps] == ["print(0)", "print(1)"]
    assert len(provider.requests) == 4  # 2 runs, 1 call told "step limit reached", 1 last chance
    told = [m for m in provider.requests[3].messages if m.role == "tool"]
    assert "step limit reached (2 tool runs)" in told[-1].content
    assert all(req.tools and req.tools[0].name == "python" for req in provider.requests)


async def test_unknown_tools_and_bad_arguments_are_the_models_problem():
    calls = [ToolCall(id="a", name="nosuch", arguments={}), ToolCall(id="b", name="python", arguments={"cod": "x"}),
             ToolCall(id="c", name="python", arguments_error="arguments are not valid JSON: {")]

    def reply(request, turn):
        if turn == 0:
            return Completion(text="", tool_calls=calls)
        return Completion(text="The answer is 1.", usage=Usage(completion_tokens=4))

    h, provider = scripted_heavy(reply, n=1, strategy="vote", tools=["python"])
    r = await h.ask("Try things.")
    assert r.answer == "1" and [s.ok for s in r.hypotheses[0].steps] == [False, False, False]
    results = [m.content for m in provider.requests[1].messages if m.role == "tool"]
    assert "unknown tool 'nosuch'; available: python" in results[0]
    assert "invalid arguments for python" in results[1] and "could not read the arguments" in results[2]


class Shout(Tool):
    name = "shout"
    description = "Upper-cases a word."

    class Args(BaseModel):
        word: str

    async def call(self, args):
        return ToolResult(content=args.word.upper())


async def test_a_custom_tool_instance_is_offered_and_run():
    def reply(request, turn):
        if turn == 0:
            assert [t.name for t in request.tools] == ["shout"]
            assert request.tools[0].parameters["properties"]["word"]["type"] == "string"
            return Completion(text="", tool_calls=[ToolCall(id="s", name="shout", arguments={"word": "hey"})])
        return Completion(text=f"The answer is {request.messages[-1].content}.")

    h, _ = scripted_heavy(reply, n=2, strategy="vote", tools=[Shout()])
    r = await h.ask("Shout hey.")
    assert r.answer == "hey" and r.hypotheses[0].steps[0].result == "HEY"  # normalized answer is lower-case


def test_protocol_choice():
    python = PythonTool()
    auto = AgentConfig([python])
    assert auto.protocol_for("openai:gpt-4.1") == "native" and auto.protocol_for("sim:x") == "native"
    assert auto.protocol_for("local:local") == "text" and auto.protocol_for("ollama:qwen2.5") == "text"
    assert AgentConfig([python], protocol="native").protocol_for("local:local") == "native"
    with pytest.raises(ConfigError, match="text tool protocol runs only the python tool"):
        AgentConfig([python, Shout()], protocol="text")
    with pytest.raises(ConfigError, match="choose native, text or auto"):
        AgentConfig([python], protocol="smoke")  # type: ignore[arg-type]


# --- the text protocol ----------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
async def test_text_protocol_runs_fenced_code(wire):
    h, app = sim_heavy(wire, n=2, strategy="vote", tools=["python"], tool_protocol="text")
    r = await h.ask(QUESTION, seed=2)
    await h.aclose()
    assert r.answer == GOLD
    for x in r.hypotheses:
        [step] = x.steps
        assert step.protocol == "text" and step.arguments == {"code": "print(123 * 45 + 6)"}


async def test_text_protocol_replaces_output_the_model_invented():
    def reply(request, turn):
        if turn == 0:
            assert TEXT_PROTOCOL_INSTRUCTION in request.messages[0].content and request.tools is None
            return Completion(text="Compute:\n```python\nprint(2 ** 10)\n```\nOutput:\n```\n999\n```\nSo it is 999.")
        last = request.messages[-1]
        assert request.messages[-2].content == "Compute:\n```python\nprint(2 ** 10)\n```"  # invented output cut
        assert last.role == "user" and last.content.startswith("Output:\n```\n1024\n")
        if turn == 1:  # the same code again is not run again: it is the answer
            return Completion(text="```python\nprint(2 ** 10)\n```\nThe answer is 1024.")
        raise AssertionError("no third call")

    h, provider = scripted_heavy(reply, n=1, strategy="vote", tools=["python"], tool_protocol="text",
                                 system="Be exact.")
    r = await h.ask("What is 2 to the 10th?")
    assert r.answer == "1024" and len(r.hypotheses[0].steps) == 1 and len(provider.requests) == 2
    assert provider.requests[0].messages[0].content.startswith("Be exact.\n\n")


# --- web search --------------------------------------------------------------------------------------------


async def test_searxng_adapter_against_the_simulated_search_server():
    search = SimulatedSearch({"eiffel": [{"title": "Eiffel Tower", "url": "https://example.org/eiffel",
                                          "snippet": "A wrought-iron tower in Paris, 330 m tall."}]})
    tool = WebSearchTool("searxng", base_url="http://searx.test", transport=StreamingASGITransport(search))
    result = await tool.call(tool.parse({"query": "How tall is the Eiffel tower?"}))
    await tool.aclose()
    assert result.ok and result.content == ("1. Eiffel Tower\n   https://example.org/eiffel\n"
                                            "   A wrought-iron tower in Paris, 330 m tall.")
    [req] = search.requests
    assert req["path"] == "/search" and req["params"] == {"q": "How tall is the Eiffel tower?", "format": "json"}


async def test_brave_adapter_sends_the_key_in_its_header(monkeypatch):
    monkeypatch.setenv("BRAVE_SEARCH_API_KEY", "test-brave-key")
    search = SimulatedSearch()
    tool = WebSearchTool("brave", base_url="http://brave.test/res/v1", transport=StreamingASGITransport(search))
    result = await tool.call(tool.parse({"query": "heavy test-time compute", "max_results": 2}))
    assert result.ok and result.data["hits"] == 2 and "heavy test-time compute (result 2)" in result.content
    [req] = search.requests
    assert req["path"] == "/res/v1/web/search" and req["params"] == {"q": "heavy test-time compute", "count": "2"}
    assert req["headers"]["x-subscription-token"] == "test-brave-key"
    monkeypatch.setenv("BRAVE_SEARCH_API_KEY", "wrong-key-123456")
    bad = WebSearchTool("brave", base_url="http://brave.test/res/v1", transport=StreamingASGITransport(search))
    failed = await bad.call(bad.parse({"query": "x"}))
    assert not failed.ok and "search failed (brave)" in failed.content and "wrong-key" not in failed.content
    await tool.aclose()
    await bad.aclose()


def test_web_search_needs_configuration(monkeypatch):
    for var in ("HEAVY_SEARXNG_URL", "BRAVE_SEARCH_API_KEY", "HEAVY_WEB_SEARCH"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="web_search is not configured: set HEAVY_SEARXNG_URL=.*BRAVE_SEARCH_API_KEY"):
        WebSearchTool()
    with pytest.raises(ConfigError, match="no API key; set BRAVE_SEARCH_API_KEY"):
        WebSearchTool("brave")
    monkeypatch.setenv("HEAVY_SEARXNG_URL", "http://searx.test")
    assert WebSearchTool().backend_name == "searxng"
    r = CliRunner().invoke(cli, ["ask", "--tools", "web_search", "-m", "sim", "hi"], env={"HEAVY_SEARXNG_URL": ""})
    assert r.exit_code == 1 and "web_search is not configured" in r.stderr


async def test_an_agent_searches_the_web_natively():
    search = SimulatedSearch({"capital of australia": [{"title": "Canberra", "url": "https://example.org/canberra",
                                                        "snippet": "Canberra is the capital city of Australia."}]})
    tool = WebSearchTool("searxng", base_url="http://searx.test", transport=StreamingASGITransport(search))
    h, _ = sim_heavy("anthropic", n=2, strategy="vote", tools=[tool])
    r = await h.ask("What is the capital of Australia?")
    await h.aclose()
    assert r.answer == "canberra"
    assert r.hypotheses[0].steps[0].tool == "web_search" and "Canberra" in r.hypotheses[0].steps[0].result


# --- --verify python ---------------------------------------------------------------------------------------


async def test_verify_python_lowers_a_contradicted_answers_weight():
    question, gold = "What is 37 * 48 + 19?", "1795"
    plain, _ = sim_heavy(config=SimConfig(accuracy=0.5, seed=2), n=2, strategy="vote")
    checked, _ = sim_heavy(config=SimConfig(accuracy=0.5, seed=2), n=2, strategy="vote", verify="python")
    before = await plain.ask(question, seed=1)
    after = await checked.ask(question, seed=1)
    assert [h.answer for h in before.hypotheses] == ["1786", gold]  # a tie, broken towards the wrong one
    assert before.answer == "1786"
    assert after.answer == gold
    wrong, right = after.hypotheses
    assert wrong.weight == 0.25 and right.weight is None
    check = wrong.steps[-1]
    assert check.protocol == "verify" and check.arguments == {"code": "print(37 * 48 + 19)"}
    assert check.details == {"answer": "1786", "printed": gold, "verdict": "disagrees", "weight": 0.25}
    assert after.decision.details["verification"] == {
        "0": {"answer": "1786", "printed": gold, "verdict": "disagrees", "weight": 0.25},
        "1": {"answer": gold, "printed": gold, "verdict": "agrees", "weight": 1.0}}
    assert "1 disagreed" in after.decision.rationale
    assert wrong.usage.completion_tokens > before.hypotheses[0].usage.completion_tokens  # the check is paid for


async def test_verify_leaves_answers_without_a_number_alone():
    h, _ = sim_heavy(n=2, strategy="vote", verify="python")
    r = await h.ask("Write a haiku about autumn.")
    assert all(x.weight is None and not x.steps for x in r.hypotheses)


# --- the command line --------------------------------------------------------------------------------------


def test_cli_tools_python_with_the_simulated_model():
    # -s vote: every hypothesis is an agent with the tool (the default strategy would cross-check chains
    # without tools against programs instead; tests/test_crosscheck.py covers that path).
    r = CliRunner().invoke(cli, ["ask", "--tools", "python", "-s", "vote", "-m", "sim:heavy-simulated@accuracy=0",
                                 "-n", "3", "--json", QUESTION])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["answer"] == GOLD and all(h["steps"][0]["tool"] == "python" for h in data["hypotheses"])
    r = CliRunner().invoke(cli, ["ask", "--tools", "python", "--tool-protocol", "text", "--max-steps", "1", "-s",
                                 "vote", "-m", "sim:heavy-simulated@accuracy=0", "-n", "2", QUESTION])
    assert r.exit_code == 0 and r.stdout == f"{GOLD}\n"
    r = CliRunner().invoke(cli, ["ask", "--tools", "nosuch", "-m", "sim", "hi"])
    assert r.exit_code == 1 and "unknown tool 'nosuch'" in r.stderr and "Traceback" not in r.output


def test_eval_with_the_python_tool_turns_a_model_that_cannot_add_into_one_that_scores(tmp_path):
    """`heavy eval --tools python`: every question's hypotheses run the interpreter, and it shows in the score."""
    from helpers import arithmetic_questions

    data = tmp_path / "arith.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in arithmetic_questions(4)))
    model = "sim:heavy-simulated@accuracy=0"
    runs = {}
    for name, extra in (("plain", []), ("tools", ["--tools", "python", "--max-steps", "2"])):
        out = tmp_path / f"{name}.jsonl"
        r = CliRunner().invoke(cli, ["eval", str(data), "-m", model, "-s", "vote", "-n", "2", "--results", str(out),
                                     *extra])
        assert r.exit_code == 0, r.output
        runs[name] = [json.loads(line) for line in out.read_text().splitlines()]
    assert sum(row["correct"] for row in runs["plain"]) == 0
    assert [row["correct"] for row in runs["tools"]] == [True] * 4
    r = CliRunner().invoke(cli, ["eval", str(data), "-m", model, "--tools", "nosuch", "--results",
                                 str(tmp_path / "x.jsonl")])
    assert r.exit_code == 1 and "unknown tool 'nosuch'" in r.stderr and "Traceback" not in r.output


def test_cli_contract_tools_python_as_a_real_process():
    done = subprocess.run([sys.executable, "-m", "heavy.cli", "ask", "--tools", "python", "-m", "sim",
                           "What is 17 * 24 + 3?"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "411\n"


def test_cli_lists_tools_and_reports_the_sandbox():
    r = CliRunner().invoke(cli, ["tools"])
    assert r.exit_code == 0
    names = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert {"python", "web_search"} <= set(names)
    r = CliRunner().invoke(cli, ["tools", "--sandbox"])
    assert r.exit_code == 0 and r.stdout.startswith("sandbox: ") and "RLIMIT_NPROC: " in r.stdout


def test_cli_verify_python():
    r = CliRunner().invoke(cli, ["ask", "--verify", "python", "-m", "sim:heavy-simulated@accuracy=0.5", "-n", "2",
                                 "-s", "vote", "--seed", "1", "--json", "What is 37 * 48 + 19?"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert "verification" in data["decision"]["details"]
