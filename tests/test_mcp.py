"""`heavy mcp` against the MCP SDK's own client: a real `heavy mcp` subprocess over stdio and over streamable
HTTP on 127.0.0.1, answering from the simulated model (no network, no key). Every process is stopped by PID.

`python tests/test_mcp.py docs/mcp-session.md` records the session transcript the docs quote.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from helpers import running_heavy

QUESTION = "What is 17 * 24 + 3?"
#: The simulated model, always right (the default one answers right with probability 0.7).
RIGHT = "sim:heavy-simulated@accuracy=1"
#: A simulated model that takes 30 s per hypothesis: a call to it only ends early if it is cancelled.
SLOW = "sim:heavy-simulated@latency=30"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module scope: one stdio server serves the tests that share it


def _env(folder: Path, config: str = "") -> dict[str, str]:
    """The environment of a `heavy mcp` process: its own config file, no keys or upstream settings."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "heavy.toml").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("HEAVY_")
           and k != "OPENAI_BASE_URL"}
    env["HEAVY_CONFIG"] = str(folder / "heavy.toml")
    return env


class Stdio:
    """A `heavy mcp` process on stdio, started by the SDK's stdio client; its stderr goes to a file."""

    def __init__(self, client: Client, stderr: Path) -> None:
        self.client, self.stderr = client, stderr

    def log(self) -> str:
        return self.stderr.read_text()

    def pid(self) -> int | None:
        found = re.search(r"\(pid (\d+)\)", self.log())
        return int(found.group(1)) if found else None

    async def wait_log(self, needle: str, seconds: float = 10) -> str:
        with anyio.fail_after(seconds):
            while needle not in self.log():
                await anyio.sleep(0.05)
        return self.log()


@asynccontextmanager
async def stdio_heavy(folder: Path, *args: str, config: str = "") -> AsyncIterator[Stdio]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "heavy.cli", "mcp", *args],
                                   env=_env(folder, config))
    stderr = folder / "stderr.log"
    server: Stdio | None = None
    with stderr.open("w") as errlog:
        try:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                server = Stdio(client, stderr)
                yield server
        finally:
            pid = server.pid() if server else None
            if pid is not None and _alive(pid):  # the SDK's client stops it; by PID if it did not
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return "heavy.cli" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def text(result) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text", result
    return result.content[0].text


def assert_tool_error(result, *needles: str) -> None:
    """An isError result of one line that says what is wrong (and, with *needles*, how to fix it)."""
    message = text(result)
    assert result.is_error, message
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    for needle in needles:
        assert needle in message, message


@pytest.fixture(scope="module")
async def stdio(tmp_path_factory) -> AsyncIterator[Stdio]:
    """One `heavy mcp -m RIGHT --max-n 6 --deadline 60 --allow-model 'sim:*'` on stdio, whose config file says
    `[defaults] n = 3` (calls may name the simulated model with other knobs, e.g. SLOW)."""
    folder = tmp_path_factory.mktemp("mcp-stdio")
    async with stdio_heavy(folder, "-m", RIGHT, "--max-n", "6", "--deadline", "60", "--allow-model", "sim:*",
                           config="[defaults]\nn = 3\n") as server:
        yield server


# --- stdio ------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_lists_ask_and_strategies_with_the_arguments_an_agent_needs(stdio):
    tools = {t.name: t for t in (await stdio.client.list_tools()).tools}
    assert set(tools) == {"ask", "strategies"}
    schema = tools["ask"].input_schema
    assert schema["required"] == ["question"]
    assert {"question", "n", "strategy", "models", "aggregator", "options", "budget"} <= set(schema["properties"])
    assert "at most 6" in schema["properties"]["n"]["description"]  # the operator's --max-n
    assert tools["ask"].annotations.open_world_hint and tools["strategies"].annotations.read_only_hint


@pytest.mark.anyio
async def test_ask_answers_on_the_first_line_then_says_how_it_was_decided(stdio):
    result = await stdio.client.call_tool("ask", {"question": QUESTION, "n": 5, "strategy": "vote"})
    lines = text(result).splitlines()
    assert not result.is_error and lines[0] == "411"
    summary = "\n".join(lines[1:])
    assert re.search(r"^decided by vote: .*411", summary, re.M), summary
    assert re.search(r"^votes: 411 ×\d+.*of 5 hypotheses answered", summary, re.M), summary
    assert re.search(r"^path: sample → vote \(strategy vote", summary, re.M), summary
    assert re.search(r"^cost: \d+ calls, [\d,]+ tokens \([\d,]+ in, [\d,]+ out\), ", summary, re.M), summary
    data = result.structured_content
    assert data["answer"] == "411" and data["heavy"]["method"] == "vote" and len(data["heavy"]["hypotheses"]) == 5
    assert data["usage"]["completion_tokens"] > 0


@pytest.mark.anyio
async def test_the_config_files_defaults_apply_to_heavy_mcp(stdio):
    """`[defaults] n = 3` in the config file: a call that gives no n samples 3 hypotheses."""
    result = await stdio.client.call_tool("ask", {"question": QUESTION})
    assert text(result).splitlines()[0] == "411"
    assert len(result.structured_content["heavy"]["hypotheses"]) == 3


@pytest.mark.anyio
async def test_a_progress_notification_arrives_as_each_hypothesis_finishes(stdio):
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    result = await stdio.client.call_tool("ask", {"question": QUESTION, "n": 4, "strategy": "vote"},
                                          progress_callback=on_progress)
    assert text(result).splitlines()[0] == "411"
    assert [(p, t) for p, t, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(re.fullmatch(r"hypothesis \d/4 done: answer \d+ \(\d+\.\d s\)", m) for _, _, m in seen), seen


@pytest.mark.anyio
async def test_strategies_lists_each_with_a_line_and_says_which_run_code(stdio):
    result = await stdio.client.call_tool("strategies", {})
    lines = {line.split(":", 1)[0]: line for line in text(result).splitlines()}
    assert {"vote", "judge", "synthesize", "heavy", "execute"} <= set(lines)
    assert "[the default]" in lines["heavy"] and "majority" in lines["vote"].lower()
    assert "heavy mcp --tools python" in lines["execute"]  # off: this operator did not enable python
    rows = {r["name"]: r for r in result.structured_content["strategies"]}
    assert rows["execute"]["runs_code"] and not rows["execute"]["available"] and rows["vote"]["available"]


@pytest.mark.anyio
@pytest.mark.parametrize("arguments, needles", [
    ({"question": QUESTION, "n": 0}, ["n", "greater than or equal to 1"]),
    ({"question": QUESTION, "n": 7}, ["n=7", "(6)", "heavy mcp --max-n 7"]),
    ({"question": QUESTION, "n": "5"}, ["invalid n"]),
    ({"question": QUESTION, "strategy": "nope"}, ["unknown strategy 'nope'", "vote"]),
    ({"question": QUESTION, "strategy": "execute"}, ["'execute' runs code", "heavy mcp --tools python"]),
    ({"question": QUESTION, "options": {"verify": "python"}}, ["options.verify", "heavy mcp --tools python"]),
    ({"question": QUESTION, "strategy": "debate", "options": {"rounds": 8}},
     ["options.rounds=8", "limit of 4", "heavy mcp --option-limit rounds=8"]),
    ({"question": QUESTION, "strategy": "vote", "options": {"nope": 1}}, ["strategy 'vote'", "known options"]),
    ({"question": QUESTION, "budget": {"deadline": 120}}, ["budget.deadline=120", "cap of 60"]),
    ({"question": QUESTION, "models": ["nosuch:model"]}, ["nosuch"]),
    ({"question": QUESTION, "models": ["ollama:x"]}, ["models", "'ollama:x'", "heavy mcp --allow-model"]),
    ({"question": QUESTION, "strategy": "judge", "aggregator": "openai:gpt-4.1"}, ["aggregator", "--allow-model"]),
    ({"question": ""}, ["question"]),
    ({"n": 3}, ["missing argument 'question'"]),
    ({"question": QUESTION, "temperature": 2}, ["unknown argument 'temperature'", "ask takes question"]),
])
async def test_bad_arguments_are_a_tool_error_and_the_server_keeps_serving(stdio, arguments, needles):
    assert_tool_error(await stdio.client.call_tool("ask", arguments), *needles)
    assert text(await stdio.client.call_tool("ask", {"question": QUESTION, "n": 2})).splitlines()[0] == "411"


@pytest.mark.anyio
async def test_an_unknown_tool_is_a_tool_error(stdio):
    assert_tool_error(await stdio.client.call_tool("nope", {}), "unknown tool 'nope'", "ask and strategies")
    assert_tool_error(await stdio.client.call_tool("strategies", {"x": 1}), "no arguments")


@pytest.mark.anyio
async def test_a_call_within_the_operators_budget_runs(stdio):
    budget = {"deadline": 30, "max_total_tokens": 100_000}  # the operator's deadline is 60 s, no token cap
    result = await stdio.client.call_tool("ask", {"question": QUESTION, "budget": budget})
    assert not result.is_error and text(result).splitlines()[0] == "411"


@pytest.mark.anyio
async def test_a_cancelled_call_stops_its_run_and_the_server_keeps_serving(stdio):
    started = time.monotonic()
    with anyio.move_on_after(1.5) as scope:  # each hypothesis of SLOW takes 30 s
        await stdio.client.call_tool("ask", {"question": QUESTION, "models": [SLOW], "n": 3})
    assert scope.cancelled_caught
    log = await stdio.wait_log("cancelled by the client")
    assert re.search(r"call #\d+ \(ask\) cancelled by the client after \d+\.\d s: its run and hypotheses were "
                     "stopped", log), log
    result = await stdio.client.call_tool("ask", {"question": QUESTION, "n": 2})
    assert text(result).splitlines()[0] == "411"
    assert time.monotonic() - started < 15


# --- streamable HTTP --------------------------------------------------------------------------------------


@contextmanager
def http_heavy(folder: Path, *args: str) -> Iterator[tuple[str, Path]]:
    """`heavy mcp --http` on a free port of 127.0.0.1: yields its root URL and its stderr file; stopped by PID."""
    env, stderr = _env(folder), folder / "stderr.log"
    with running_heavy("mcp", "--http", *args, env=env, stderr=stderr) as base:
        yield base, stderr


@pytest.mark.anyio
async def test_over_http_on_127_0_0_1(tmp_path):
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    with http_heavy(tmp_path, "-m", RIGHT, "-n", "3", "--allow-model", SLOW) as (base, stderr):
        async with Client(f"{base}/mcp") as client:
            assert {t.name for t in (await client.list_tools()).tools} == {"ask", "strategies"}
            result = await client.call_tool("ask", {"question": QUESTION}, progress_callback=on_progress)
            assert text(result).splitlines()[0] == "411" and "decided by" in text(result)
            assert progress == [1, 2, 3]
            assert_tool_error(await client.call_tool("ask", {"question": QUESTION, "n": 0}), "n")
            assert "vote:" in text(await client.call_tool("strategies", {}))
            with anyio.move_on_after(1.5) as scope:  # a cancelled call closes its stream: the run stops
                await client.call_tool("ask", {"question": QUESTION, "models": [SLOW]})
            assert scope.cancelled_caught
            with anyio.fail_after(10):
                while "cancelled by the client" not in stderr.read_text():
                    await anyio.sleep(0.05)
            assert text(await client.call_tool("ask", {"question": QUESTION})).splitlines()[0] == "411"


@pytest.mark.anyio
async def test_over_http_with_a_key_every_request_needs_it(tmp_path):
    with http_heavy(tmp_path, "--api-key", "s3cret-key", "-m", RIGHT, "-n", "2") as (base, _):
        assert httpx.get(f"{base}/health").status_code == 200
        refused = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert refused.status_code == 401 and "Bearer" in refused.headers["www-authenticate"]
        assert "heavy mcp --api-key" in refused.json()["error"]
        wrong = httpx.post(f"{base}/mcp", json={}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-key"}, timeout=30) as http:
            async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
                result = await client.call_tool("ask", {"question": QUESTION})
                assert text(result).splitlines()[0] == "411"


# --- the command line -------------------------------------------------------------------------------------


def _heavy_mcp(tmp_path: Path, *args: str, prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nfrom heavy.cli import main\nsys.argv = ['heavy', *sys.argv[1:]]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, "mcp", *args], capture_output=True, text=True, timeout=60,
                          env=_env(tmp_path), stdin=subprocess.DEVNULL)


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heavy: error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout and not r.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args, prelude, needles", [
    ((), "sys.modules['mcp'] = None", ["heavy mcp needs the mcp extra: pip install 'heavy[mcp]'"]),
    (("--http", "--host", "0.0.0.0"), "", ["0.0.0.0", "--api-key"]),
    (("--port", "8123"), "", ["--port", "--http"]),
    (("--allow-origin", "http://localhost:5173"), "", ["--allow-origin", "--http"]),
    (("--http", "--allow-origin", "localhost:5173"), "", ["invalid server setting", "scheme://host"]),
    (("-s", "nope"), "", ["unknown strategy 'nope'"]),
    (("--option-limit", "rounds"), "", ["NAME=MAX"]),
    (("-n", "9", "--max-n", "8"), "", ["n=9", "--max-n 8"]),
])
def test_bad_operator_input_is_one_line(tmp_path, args, prelude, needles):
    _one_line_error(_heavy_mcp(tmp_path, *args, prelude=prelude), *needles)


def test_a_busy_port_is_one_line(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(_heavy_mcp(tmp_path, "--http", "--port", str(port)), f"127.0.0.1:{port}", "--port")


# --- a transcript for the docs ----------------------------------------------------------------------------


async def record_session(folder: Path) -> str:
    """A real session as Markdown: an MCP client starts `heavy mcp -m sim` on stdio, lists the tools and asks."""
    lines = ["# A session with `heavy mcp`", "",
             "Recorded by `python tests/test_mcp.py docs/mcp-session.md`: the MCP SDK's client starts "
             "`heavy mcp -m sim` on stdio (the simulated model: no key, no network), lists the tools and calls "
             "`ask`. What the client sent and got back is shown as the SDK's client returned it (the tool listing "
             "cut to names, descriptions and what each argument is).", ""]
    async with stdio_heavy(folder, "-m", "sim", config="[defaults]\nseed = 1\n") as server:
        listed = await server.client.list_tools()
        lines += ["## tools/list", "", "```json", json.dumps({"tools": [
            {"name": t.name, "description": t.description, "required": t.input_schema.get("required", []),
             "arguments": {k: v.get("description", "") for k, v in t.input_schema.get("properties", {}).items()}}
            for t in listed.tools]}, indent=2, ensure_ascii=False), "```", ""]
        arguments = {"question": QUESTION, "n": 5, "strategy": "vote"}
        notes: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            notes.append(json.dumps({"progress": progress, "total": total, "message": message}))

        result = await server.client.call_tool("ask", arguments, progress_callback=on_progress)
        lines += ["## tools/call ask", "", "```json", json.dumps({"name": "ask", "arguments": arguments}), "```", "",
                  "notifications/progress, as the hypotheses finish:", "", "```json", *notes, "```", "",
                  "The result's text (what the agent reads):", "", "```", text(result), "```", ""]
        assert not result.is_error, text(result) + "\n" + server.log()
        heavy = result.structured_content["heavy"]
        lines += ["Its structured content holds the same as data (`answer`, `text`, `usage`, and `heavy`: method, "
                  "path, votes, winner, rationale, each hypothesis, timings), e.g.:", "", "```json",
                  json.dumps({k: heavy[k] for k in ("strategy", "method", "path", "votes", "winner")}), "```", ""]
    return "\n".join(lines)


@pytest.mark.anyio
async def test_the_recorded_session_shows_the_tools_and_the_answer(tmp_path):
    transcript = await record_session(tmp_path)
    assert '"name": "ask"' in transcript and '"name": "strategies"' in transcript
    assert "```\n411\n\ndecided by vote" in transcript
    assert transcript.count('"total": 5.0') == 5


if __name__ == "__main__":
    import tempfile

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/mcp-session.md")
    with tempfile.TemporaryDirectory() as scratch:
        out.write_text(anyio.run(record_session, Path(scratch)) + "\n")
    print(f"wrote {out}")
