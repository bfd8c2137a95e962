"""The ``execute`` strategy: verification by execution on code tasks, with given or generated tests.

Code tasks come from bench/code_tasks.jsonl: the simulated model "knows" each reference solution and
answers with it (probability ``accuracy``) or with a mutant that has one off-by-one-style slip.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.answers import extract_code
from heavy.cli import cli
from heavy.evaluation import EvalRunner, ResultsFile, load_items, summarize
from heavy.providers.base import Completion, CompletionRequest, Provider
from heavy.sim import SimConfig, SimulatedLLM, load_dataset
from heavy.tools.codecheck import TESTS_INSTRUCTION, passes

pytestmark = pytest.mark.anyio

TASKS = Path(__file__).resolve().parents[1] / "bench" / "code_tasks.jsonl"
ROWS = {row["id"]: row for row in map(json.loads, TASKS.read_text().splitlines())}


def sim_heavy(config: SimConfig, **kw) -> Heavy:
    app = SimulatedLLM(config.model_copy(update={"dataset": load_dataset(TASKS)}))
    return Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1", transport=httpx.ASGITransport(app=app),
                 **kw)


def test_the_benchmark_tasks_are_well_formed():
    assert len(ROWS) >= 20
    for row in ROWS.values():
        assert set(row) >= {"id", "question", "tests", "visible_tests", "entry_point"}
        assert row["entry_point"] in row["question"] and row["entry_point"] in row["visible_tests"]
        assert row["tests"].count("assert ") >= 4


def test_execute_is_registered():
    r = CliRunner().invoke(cli, ["strategies"])
    assert r.exit_code == 0 and any(line.startswith("execute") for line in r.stdout.splitlines())


async def test_given_tests_pick_the_passing_candidate_over_a_failing_majority():
    row = ROWS["digital-root"]
    cfg = SimConfig(accuracy=0.3, judge_accuracy=0.9, seed=11)
    vote = await sim_heavy(cfg, n=7, strategy="vote").ask(row["question"], seed=1)
    assert max(vote.decision.votes.values()) == 3  # three identical wrong programs: the vote takes them
    assert not await passes(extract_code(vote.text), row["tests"])
    r = await sim_heavy(cfg, n=7, strategy="execute", tests=row["tests"]).ask(row["question"], seed=1)
    assert await passes(r.answer, row["tests"])
    d = r.decision
    assert d.method == "execute" and d.path == ["sample", "given tests", "execute"]
    matrix = d.details["pass_matrix"]
    assert matrix["candidates"] == list(range(7)) and len(matrix["tests"]) == row["tests"].count("assert ")
    assert len(matrix["rows"]) == 7 and all(len(r_) == len(matrix["tests"]) for r_ in matrix["rows"])
    winner_row = matrix["rows"][matrix["candidates"].index(d.winner)]
    assert all(winner_row) and d.scores[str(d.winner)] == len(matrix["tests"])
    assert f"candidate #{d.winner} passes {len(matrix['tests'])} of {len(matrix['tests'])} given tests" in d.rationale
    assert not r.aggregator_calls  # given tests: no test-writing calls


class Coder(Provider):
    """Three programs that behave the same but are written differently, and two copies of one buggy
    program; asked for tests, it writes them (one of them wrong)."""

    name = "coder"
    RIGHT = ["def is_even(n):\n    return n % 2 == 0", "def is_even(n):\n    return not n % 2",
             "def is_even(n):\n    return (n & 1) == 0"]
    WRONG = "def is_even(n):\n    return n % 2 == 1"
    TESTS = "```python\nassert is_even(2) == True\nassert is_even(7) == False\nassert is_even(0) == True\n" \
            "assert is_even(5) == True\n```"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: CompletionRequest) -> Completion:
        prompt = request.messages[-1].text()
        if TESTS_INSTRUCTION in prompt:
            assert "`is_even`" in prompt and "Task:\nWrite is_even(n)." in prompt
            return Completion(text=self.TESTS)
        seed = request.params.seed or 0
        code = self.WRONG if seed in (0, 1) else self.RIGHT[seed % 3]
        return Completion(text=f"```python\n{code}\n```")


async def test_codet_ranks_by_dual_agreement_without_given_tests():
    coder = Coder()
    kw = dict(model="coder:x", providers={"coder": coder}, n=5, seed=0)
    vote = await Heavy(strategy="vote", **kw).ask("Write is_even(n).")
    assert extract_code(vote.text) == Coder.WRONG  # the only program written twice wins the vote
    r = await Heavy(strategy="execute", test_calls=1, **kw).ask("Write is_even(n).")
    assert r.answer in Coder.RIGHT
    d = r.decision
    assert d.details["tests_source"] == "generated" and d.path == ["sample", "generated tests", "execute"]
    assert [c.purpose for c in r.aggregator_calls] == ["tests"]
    # The three right programs pass the same 3 of 4 tests (one test is wrong): consensus 3 x 3 = 9;
    # the two wrong ones agree with each other on 1 test: 2 x 1 = 2.
    assert {d.scores[str(i)] for i in (2, 3, 4)} == {9.0} and {d.scores[str(i)] for i in (0, 1)} == {2.0}
    assert d.winner == 2 and "3 candidates tied and the vote on outputs chose it" in d.rationale


async def test_codet_with_the_simulated_model_writes_tests_and_runs_them():
    row = ROWS["roman"]
    r = await sim_heavy(SimConfig(accuracy=0.6, judge_accuracy=1.0, seed=5), n=5, strategy="execute",
                        test_calls=2).ask(row["question"], seed=3)
    d = r.decision
    assert d.details["tests_source"] == "generated" and len(r.aggregator_calls) == 2
    assert 0 < len(d.details["pass_matrix"]["tests"]) <= row["tests"].count("assert ")
    assert await passes(r.answer, row["tests"])


async def test_without_code_the_strategy_falls_back_to_the_vote():
    r = await sim_heavy(SimConfig(accuracy=1.0), n=3, strategy="execute").ask("What is 6 * 7?")
    assert r.answer == "42" and r.decision.path == ["sample", "no code", "vote"]
    assert "no candidate wrote a fenced code block" in r.decision.rationale


def test_cli_tests_from_a_file(tmp_path, monkeypatch):
    # leap-year, not collatz: collatz's mutants loop forever, and their 13 tests and probes took 26 s of timeouts.
    row = ROWS["leap-year"]
    tests = tmp_path / "tests.py"
    tests.write_text(row["tests"])
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(TASKS))
    r = CliRunner().invoke(cli, ["ask", "-m", "sim:heavy-simulated@accuracy=0.3", "-n", "5", "-s", "execute",
                                 "-o", f"tests=@{tests}", "--seed", "2", "--json", row["question"]])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    details = data["decision"]["details"]
    assert details["tests_source"] == "given" and "def is_leap_year" in data["answer"]
    rows = details["pass_matrix"]["rows"]
    assert len(details["pass_matrix"]["tests"]) == row["tests"].count("assert ")
    assert rows[data["decision"]["winner"]] == [1] * len(rows[0]) and sum(map(min, rows)) == 1  # the file's tests chose
    r = CliRunner().invoke(cli, ["ask", "-m", "sim", "-s", "execute", "-o", "tests=@/nonexistent.py", "x"])
    assert r.exit_code == 1 and "cannot read '/nonexistent.py'" in r.stderr


async def test_heavy_eval_scores_code_tasks_by_running_their_tests(tmp_path, monkeypatch):
    items = [i for i in load_items(TASKS) if i.id in ("digital-root", "leap-year", "chunk")]
    assert all(i.tests and i.entry_point and i.visible_tests for i in items)
    h = sim_heavy(SimConfig(accuracy=0.4, seed=11), n=6, strategy="vote", seed=1)
    results = ResultsFile(tmp_path / "results.jsonl")
    runner = EvalRunner(heavy=h, strategies=["vote", "execute"], ns=[6], results=results, concurrency=2)
    await runner.evaluate(items)
    await h.aclose()
    summary = {s.strategy: s for s in summarize(results.rows)}
    # execute selects with each task's visible tests and is graded by the hidden ones: leap-year's visible
    # 1996/1999 cannot tell the right program from mutants that get 1900 or 2000 wrong, and it misses.
    assert summary["execute"].correct == 2 and summary["vote"].correct == 1
    rows = {(r["id"], r["strategy"]): r for r in results.rows}
    assert rows[("leap-year", "execute")]["correct"] is False
    assert rows[("chunk", "execute")]["correct"] and rows[("digital-root", "execute")]["correct"]
    assert all(r["path"] == ["sample", "given tests", "execute"] for r in results.rows if r["strategy"] == "execute")
