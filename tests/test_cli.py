"""The CLI through click's CliRunner, plus the contract forms against a real `heavy sim` on 127.0.0.1."""

import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from heavy.cli import cli

from helpers import free_port, running_sim

SIM = "sim:heavy-simulated@accuracy=1"


def run(*args, input=None, env=None):
    return CliRunner().invoke(cli, list(args), input=input, env=env)


def test_stdout_holds_only_the_answer():
    r = run("ask", "-m", SIM, "-n", "3", "What is 17 * 24 + 3?")
    assert r.exit_code == 0, r.output
    assert r.stdout == "411\n"


def test_question_from_stdin():
    r = run("ask", "-m", SIM, "-n", "2", "-s", "vote", input="What is 6 * 7?\n")
    assert r.exit_code == 0 and r.stdout == "42\n"


def test_json_prints_the_whole_result():
    r = run("ask", "-m", SIM, "-n", "4", "-s", "judge", "--seed", "3", "--json", "What is 9 * 9?")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["answer"] == "81" and data["strategy"] == "judge"
    assert len(data["hypotheses"]) == 4 and data["decision"]["method"] == "judge"
    assert [h["seed"] for h in data["hypotheses"]] == [3, 4, 5, 6]
    assert data["usage"]["completion_tokens"] > 0


def test_strategy_options_are_validated():
    r = run("ask", "-m", SIM, "-n", "3", "-s", "vote", "-o", "early_stop=true", "What is 2 + 2?")
    assert r.exit_code == 0 and r.stdout == "4\n"
    r = run("ask", "-m", SIM, "-s", "vote", "-o", "nosuch=1", "What is 2 + 2?")
    assert r.exit_code == 1
    assert "nosuch" in r.stderr and "known options: early_stop" in r.stderr
    assert "Traceback" not in r.output


@pytest.mark.parametrize("args,needle", [
    (["-m", "nosuch:model"], "unknown provider 'nosuch'"),
    (["-m", "gpt-4o"], "has no provider"),
    (["-m", "openai:gpt-4.1"], "OPENAI_API_KEY"),
    (["-s", "nosuch"], "unknown strategy 'nosuch'"),
    (["-o", "novalue"], "not key=value"),
    (["-n", "0"], "n must be at least 1"),
    (["-t", "9"], "temperature"),
    (["--min-successes", "5", "-n", "2"], "min_successes"),
])
def test_bad_input_exits_1_with_one_line(args, needle):
    r = run("ask", *args, "What is 1 + 1?")
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr


def test_empty_question_is_an_error():
    r = run("ask", "-m", SIM, "   ")
    assert r.exit_code == 1 and "empty" in r.stderr


def test_all_hypotheses_failing_is_one_clear_line():
    r = run("ask", "-m", "sim:heavy-simulated@fail_rate=1", "-n", "3", "What is 2 + 2?")
    assert r.exit_code == 1
    assert "only 0 of 3 hypotheses succeeded" in r.stderr and "Traceback" not in r.stderr


def test_strategies_lists_one_per_line_name_first():
    r = run("strategies")
    names = [line.split("\t")[0] for line in r.stdout.strip().splitlines()]
    assert {"vote", "judge", "synthesize", "heavy"} <= set(names)
    assert all(line.split("\t")[1] for line in r.stdout.strip().splitlines())


def test_help_does_not_import_the_heavy_parts():
    code = ("import sys; from heavy.cli import main; sys.argv=['heavy','--help']\n"
            "try: main()\nexcept SystemExit: pass\n"
            "bad=[m for m in ('rich.live','heavy.api','heavy.sampler','strategies.vote','httpx') if m in sys.modules]\n"
            "print('IMPORTED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "IMPORTED []" in out


def test_live_view_goes_to_stderr_only():
    r = run("ask", "-m", SIM, "-n", "3", "--live", "What is 5 * 5?")
    assert r.exit_code == 0 and r.stdout == "25\n"
    assert "#0" in r.stderr and "25" in r.stderr


# --- the contract, against a real server process on 127.0.0.1 ---------------------------------------

@pytest.fixture(scope="module")
def sim_server():
    with running_sim("--accuracy", "1", "--latency", "0.5") as base:
        yield base


def test_contract_ask_against_an_openai_compatible_base_url(sim_server):
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-contract-0123456789"}
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "heavy.cli", "ask", "-m", "openai:heavy-simulated", "--base-url", f"{sim_server}/v1",
         "-n", "8", "-s", "vote", "What is 17 * 3?"], capture_output=True, text=True, env=env, timeout=60)
    wall = time.monotonic() - start
    assert out.returncode == 0, out.stderr
    assert out.stdout == "51\n"
    assert "sk-test-contract" not in out.stderr
    # 8 calls of 0.5 s each: in parallel this is ~0.5 s plus start-up, serially it would be 4 s.
    assert wall < 3.5, f"8 hypotheses took {wall:.1f}s"


def test_contract_unreachable_server_is_one_line(sim_server):
    out = subprocess.run(
        [sys.executable, "-m", "heavy.cli", "ask", "-m", "openai:x", "--base-url", f"http://127.0.0.1:{free_port()}/v1",
         "-n", "2", "What is 1 + 1?"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and "connection failed" in out.stderr


def test_live_view_shows_tool_calls():
    r = run("ask", "-m", SIM, "-n", "2", "--tools", "python", "--live", "What is 5 * 5?")
    assert r.exit_code == 0 and r.stdout == "25\n"
    assert "1 tool" in r.stderr, "each panel counts its hypothesis's tool calls"


def test_no_command_has_two_options_on_one_parameter():
    """Two options with one parameter name silently take each other's value (heavy tune's budget once took the
    run's --max-tokens): every command's parameters have names of their own."""
    import click

    ctx = click.Context(cli)

    def commands(group, path):
        for name in group.list_commands(ctx):
            sub = group.get_command(ctx, name)
            yield from commands(sub, f"{path} {name}") if isinstance(sub, click.Group) else [(f"{path} {name}", sub)]

    found = list(commands(cli, "heavy"))
    assert len(found) > 10
    for path, command in found:
        names = [p.name for p in command.params]
        assert len(names) == len(set(names)), (path, sorted({n for n in names if names.count(n) > 1}))
