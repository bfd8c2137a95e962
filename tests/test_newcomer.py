"""Input caps of `heavy ask` and the library: the most hypotheses a run may ask for (MAX_N), n <= 0 as an
error instead of the default, and a question read from stdin (binary input refused, a UTF-8 BOM dropped).

The CLI runs as a real subprocess with a real pipe on stdin; the model is heavy's simulator, or a
recording OpenAI-compatible endpoint on 127.0.0.1 where the test must see exactly what was sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from heavy import constants as C
from heavy.answers import final_answer
from heavy.api import Heavy
from heavy.errors import ConfigError
from heavy.providers.openai import OpenAIProvider
from heavy.sampler import ModelRef, Sampler
from heavy.types import Message, SamplingParams

from helpers import http_server

QUESTION = "What is 17 * 24 + 3?"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def heavy_ask(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heavy.cli", "ask", "--no-live", *args], input=stdin,
                          capture_output=True, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (exit 1, nothing on stdout, no traceback)."""
    err = proc.stderr.decode()
    assert proc.returncode == 1, (proc.returncode, err)
    assert proc.stdout == b"", proc.stdout
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("heavy: error: ")
    return lines[0]


# --- the cap on N ---------------------------------------------------------------------------------


def test_max_n_is_a_sane_constant():
    # Above the default and the serve default, within what the HTTP pool keeps in flight at once.
    assert C.DEFAULT_N < 64 <= C.MAX_N <= C.HTTP_MAX_CONNECTIONS


def test_cli_refuses_an_n_above_the_limit_in_one_line():
    line = one_line_error(heavy_ask("-m", "sim", "-n", "100000", "q"))
    assert f"at most {C.MAX_N}" in line and "100000" in line and "MAX_N" in line


@pytest.mark.parametrize("n", ["0", "-3"])
def test_cli_refuses_n_below_one_in_one_line(n):
    line = one_line_error(heavy_ask("-m", "sim", "-n", n, "q"))
    assert "n must be at least 1" in line and n in line


def test_cli_accepts_exactly_the_limit():
    proc = heavy_ask("-m", "sim", "-n", str(C.MAX_N), "-s", "vote", "--json", QUESTION)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["answer"] == "411" and len(result["hypotheses"]) == C.MAX_N


@pytest.mark.parametrize("n", [C.MAX_N + 1, 100_000])
def test_heavy_refuses_too_many_hypotheses_at_construction(n):
    with pytest.raises(ConfigError, match=f"at most {C.MAX_N}"):
        Heavy(model="sim", n=n)


@pytest.mark.parametrize("n", [0, -1, C.MAX_N + 1, 2.5, "8", True])
def test_ask_and_sample_refuse_a_bad_n_instead_of_using_the_default(n):
    h = Heavy(model="sim", n=3)
    with pytest.raises(ConfigError, match="^n must be"):
        h.ask_sync(QUESTION, n=n)
    with pytest.raises(ConfigError, match="^n must be"):
        asyncio.run(h.sample(QUESTION, n=n))


def test_ask_without_n_still_uses_the_instance_default():
    h = Heavy(model="sim", n=3, strategy="vote")
    assert len(h.ask_sync(QUESTION).hypotheses) == 3
    assert len(h.ask_sync(QUESTION, n=5).hypotheses) == 5


@pytest.mark.anyio
async def test_the_sampler_itself_refuses_a_round_above_the_limit_before_any_call():
    calls = []

    def endpoint(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "The answer is 4."},
                                                      "finish_reason": "stop"}]})

    provider = OpenAIProvider("http://fake.local/v1", transport=httpx.MockTransport(endpoint), name="fake")
    sampler = Sampler([ModelRef(label="fake:m", provider=provider, model="m")], params=SamplingParams(),
                      extract=final_answer)
    messages = [Message(role="user", content="What is 2 + 2?")]
    for n in (C.MAX_N + 1, 0):
        with pytest.raises(ConfigError, match="^n must be"):
            await sampler.sample(messages, n)
    assert calls == []
    assert len(await sampler.sample(messages, 2)) == 2 and len(calls) == 2


# --- the question on stdin ------------------------------------------------------------------------


@pytest.mark.parametrize("args", [[], ["-"]], ids=["pipe", "dash"])
@pytest.mark.parametrize("data", [b"\xff\xfeW\x00h\x00a\x00t\x00", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
                                  "Quelle est la réponse ?".encode("latin-1")],
                         ids=["utf-16", "png", "latin-1"])
def test_binary_stdin_is_a_one_line_error(args, data):
    line = one_line_error(heavy_ask("-m", "sim", *args, stdin=data))
    assert "stdin is not UTF-8 text" in line and "offset" in line


def test_nul_bytes_on_stdin_are_refused_as_binary():
    line = one_line_error(heavy_ask("-m", "sim", stdin=b"\x00" * 64))
    assert "binary data" in line


def test_a_bom_only_stdin_is_an_empty_question():
    assert "the question is empty" in one_line_error(heavy_ask("-m", "sim", stdin=b"\xef\xbb\xbf \n"))


class _Recorder(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that records each request body and answers 411."""

    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append(body)
        reply = json.dumps({"id": "r", "object": "chat.completion", "model": body["model"],
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "The answer is 411."},
                                         "finish_reason": "stop"}],
                            "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def recording_endpoint() -> Iterator[tuple[str, list[dict]]]:
    bodies: list[dict] = []
    handler = type("Recorder", (_Recorder,), {"bodies": bodies})
    with http_server(handler) as url:
        yield url, bodies


def sent_questions(bodies: list[dict]) -> list[str]:
    return [m["content"] for b in bodies for m in b["messages"] if m["role"] == "user"]


@pytest.mark.parametrize("args", [[], ["-"]], ids=["pipe", "dash"])
def test_a_leading_utf8_bom_is_not_part_of_the_question(args):
    question = "Combien font 17 × 24 + 3 ?"  # non-ASCII too: decoded as UTF-8 whatever the locale
    with recording_endpoint() as (url, bodies):
        proc = heavy_ask("-m", "vllm:m", "--base-url", url, "-n", "2", "-s", "vote", *args,
                         stdin=b"\xef\xbb\xbf" + question.encode() + b"\n")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "411"
    assert sent_questions(bodies) == [question + "\n"] * 2


def test_utf8_stdin_reaches_the_model_unchanged_under_a_c_locale():
    question = "Wie viel ist 17 · 24 + 3? ∑"
    with recording_endpoint() as (url, bodies):
        proc = subprocess.run([sys.executable, "-m", "heavy.cli", "ask", "--no-live", "-m", "vllm:m", "--base-url",
                               url, "-n", "1", "-s", "vote"], input=question.encode(), capture_output=True,
                              timeout=120, env={**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0",
                                                "PYTHONIOENCODING": ""})
    assert proc.returncode == 0, proc.stderr.decode()
    assert sent_questions(bodies) == [question]
