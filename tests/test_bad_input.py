"""Bad input anywhere gives one clear line and exit 1 (CLI) or a ConfigError (library), never a traceback."""

import subprocess
import sys

import pytest

from heavy import Heavy
from heavy.errors import ConfigError


def heavy_cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "heavy.cli", *args], capture_output=True, text=True, input=input,
                          timeout=60)


@pytest.mark.parametrize("args,needle", [
    (["ask", "-n", "abc", "q"], "'abc' is not a valid integer"),
    (["ask", "--temperature", "hot", "q"], "is not a valid float"),
    (["ask", "--nosuchflag", "q"], "No such option"),
    (["nosuch"], "No such command"),
    (["ask", "--base-url", "localhost:8080", "-m", "openai:x", "q"], "must start with http://"),
    (["ask", "-m", "anthropic:claude-x", "q"], "ANTHROPIC_API_KEY"),
    (["ask", "-m", "gemini:gemini-x", "q"], "GEMINI_API_KEY"),
    (["ask", "-m", "sim", "-s", "vote", "-o", "early_stop=maybe", "q"], "early_stop"),
    (["ask", "-m", "sim", "--timeout", "-3", "q"], "timeout must be a positive"),
    (["ask", "-m", "sim", "--max-cost", "1", "q"], None),  # sim is free: a dollar cap is fine
    (["ask", "-m", "openai:mystery", "--base-url", "http://127.0.0.1:9/v1", "--max-cost", "1", "q"], "prices"),
    (["ask", "-m", "sim", "--max-total-tokens", "0", "q"], "max_tokens"),
    (["eval", "/nonexistent.jsonl", "--results", "/tmp/x.jsonl"], "not found"),
    (["eval", "/dev/null", "--results", "/tmp/x.jsonl", "--ns", "1,x"], "--ns"),
])
def test_cli_bad_input_is_one_line_exit_1(args, needle):
    r = heavy_cli(*args)
    if needle is None:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_heavy_debug_shows_the_traceback():
    r = subprocess.run([sys.executable, "-m", "heavy.cli", "ask", "-m", "nosuch:x", "q"], capture_output=True,
                       text=True, env={**__import__("os").environ, "HEAVY_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr and "ModelSpecError" in r.stderr


@pytest.mark.parametrize("kwargs,needle", [
    ({"model": []}, "no model"),
    ({"model": "sim", "n": 0}, "n must be"),
    ({"model": "sim", "n": 2, "min_successes": 3}, "min_successes"),
    ({"model": "sim", "deadline": 0}, "deadline"),
    ({"model": "sim", "concurrency": 0}, "concurrency"),
    ({"model": "sim", "top_p": 0}, "top_p"),
    ({"model": "sim", "strategy": "judge", "retries": "many"}, "retries"),
    ({"model": "sim", "base_url": "ftp://x"}, "http://"),
    ({"model": "sim", "max_cost_usd": -1}, "max_cost_usd"),
])
def test_library_bad_input_is_a_config_error(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        Heavy(**kwargs)


def test_messages_are_validated():
    h = Heavy(model="sim", n=1)
    for bad in ([], [{"role": "user"}], [{"role": "user", "content": [{"text": "no type"}]}]):
        with pytest.raises(ConfigError, match="invalid messages"):
            h.ask_sync(bad)
