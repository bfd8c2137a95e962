"""Hidden tests stay hidden: a code task's grading ``tests`` never reach the model or the selection.

``heavy eval`` gives ``execute`` what a user would have (a row's ``visible_tests``, else the examples in
its question, else nothing: CodeT) and grades with ``tests``. The network edge is faked (httpx.MockTransport
answering OpenAI chat completions, or heavy's simulated model behind a spying transport); the candidates
really run in the sandbox.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from heavy import Heavy
from heavy.errors import ConfigError
from heavy.evaluation import EvalRunner, ResultsFile, _with_tests, load_items, selection_tests
from heavy.sim import SimConfig, SimulatedLLM, load_dataset
from heavy.tools.codecheck import TESTS_INSTRUCTION, passes, split_tests
from heavy.tools.examples import examples_from, probe_calls

pytestmark = pytest.mark.anyio

TASKS = Path(__file__).resolve().parents[1] / "bench" / "code_tasks.jsonl"

# mean(xs): 0 for an empty list. WRONG divides by zero there; the visible test cannot tell them apart,
# the hidden ones can.
QUESTION = "Write a function mean(xs) that returns the arithmetic mean of the list xs, and 0 for an empty list."
RIGHT = "def mean(xs):\n    return sum(xs) / len(xs) if xs else 0"
WRONG = "def mean(xs):\n    return sum(xs) / len(xs)"
VISIBLE = "assert mean([2, 4]) == 3\n"
HIDDEN = "assert mean([]) == 0\nassert mean([1, 2, 3, 6]) == 3\n"
HIDDEN_LINES = [line for line in HIDDEN.splitlines() if line]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def coder(programs_by_seed: dict[int, str]):
    """An OpenAI-compatible endpoint writing the program chosen by each request's seed; every request body
    is kept. Asked for tests (CodeT), it writes one assert."""
    bodies: list[str] = []

    async def endpoint(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content.decode())
        body = json.loads(request.content)
        prompt = body["messages"][-1]["content"]
        if TESTS_INSTRUCTION in prompt:
            text = "```python\nassert mean([5]) == 5\n```"
        else:
            text = f"Here it is.\n\n```python\n{programs_by_seed[body['seed']]}\n```"
        return httpx.Response(200, json={
            "id": f"c{len(bodies)}", "object": "chat.completion", "model": "coder",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})

    return httpx.MockTransport(endpoint), bodies


def make(transport: httpx.BaseTransport, **kw) -> Heavy:
    return Heavy(model="openai:coder", base_url="http://coder.test/v1", transport=transport, **kw)


# --- the dataset field ----------------------------------------------------------------------------------


def test_visible_tests_are_read_beside_the_grading_tests(tmp_path):
    path = write_rows(tmp_path / "d.jsonl", [
        {"id": "m", "question": QUESTION, "tests": HIDDEN, "visible_tests": VISIBLE, "entry_point": "mean"},
        {"id": "plain", "question": QUESTION, "tests": HIDDEN},
        {"id": "blank", "question": QUESTION + " ", "tests": HIDDEN, "visible_tests": "  "},
    ])
    m, plain, blank = load_items(path)
    assert (m.tests, m.visible_tests, m.entry_point) == (HIDDEN, VISIBLE, "mean")
    assert plain.visible_tests is None and blank.visible_tests is None


@pytest.mark.parametrize("extra, message", [
    ({"visible_tests": 5}, "'visible_tests' must be a string of Python assert lines, got 5"),
    ({"visible_tests": ["assert f(1) == 1"]}, "'visible_tests' must be a string of Python assert lines"),
    ({"visible_tests": "assert mean([2, 4] == 3"}, "'visible_tests' is not valid Python ("),
    ({"visible_tests": "x = 1\n"}, "'visible_tests' has no top-level assert: give assert lines"),
    ({"visible_tests": VISIBLE, "tests": None, "answer": "3"}, "'visible_tests' needs 'tests' beside it"),
])
def test_bad_visible_tests_name_the_line_and_the_fix(tmp_path, extra, message):
    row = {"question": QUESTION, "tests": HIDDEN, **extra}
    path = write_rows(tmp_path / "d.jsonl", [{"question": "What is 2 + 2?", "answer": "4"}, row])
    with pytest.raises(ConfigError) as err:
        load_items(path)
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value)


def test_the_benchmark_keeps_visible_and_grading_tests_disjoint():
    items = load_items(TASKS)
    assert len(items) >= 20
    for item in items:
        visible, hidden = split_tests(item.visible_tests)[1], split_tests(item.tests)[1]
        assert 1 <= len(visible) <= 2 and len(hidden) >= 4
        assert not set(visible) & set(hidden), item.id  # the grading set excludes what the selection sees


# --- what eval hands the strategy -----------------------------------------------------------------------


def test_eval_gives_execute_the_visible_tests_else_the_examples_else_nothing(tmp_path):
    example_q = QUESTION + " For example mean([1, 2]) == 1.5, and mean([4]) is 4."
    path = write_rows(tmp_path / "d.jsonl", [
        {"id": "visible", "question": QUESTION, "tests": HIDDEN, "visible_tests": VISIBLE, "entry_point": "mean"},
        {"id": "examples", "question": example_q, "tests": HIDDEN, "entry_point": "mean"},
        {"id": "none", "question": QUESTION + "!", "tests": HIDDEN, "entry_point": "mean"},
        {"id": "math", "question": "What is 2 + 2?", "answer": "4"},
    ])
    visible, examples, none, math = load_items(path)
    assert _with_tests("execute", None, visible) == {"tests": VISIBLE, "entry_point": "mean"}
    assert selection_tests(examples) == "assert mean([1, 2]) == 1.5\nassert mean([4]) == 4\n"
    assert _with_tests("execute", {"probes": 4}, examples) == {
        "probes": 4, "tests": "assert mean([1, 2]) == 1.5\nassert mean([4]) == 4\n", "entry_point": "mean"}
    assert _with_tests("execute", None, none) == {"entry_point": "mean"}  # no tests: execute writes its own
    assert _with_tests("vote", None, visible) is None and _with_tests("execute", None, math) is None
    for item in (visible, examples, none):
        assert all(line not in json.dumps(_with_tests("execute", None, item)) for line in HIDDEN_LINES)


async def test_an_eval_run_selects_by_the_visible_test_and_grades_by_the_hidden_ones(tmp_path):
    # Seeds 0 and 2 write WRONG, seed 1 RIGHT. Both pass the visible test; on the probes derived from it
    # (mean([]) among them) the two WRONG copies agree with each other, so execute picks WRONG, and the
    # hidden tests (mean([]) == 0) fail it. Given the hidden tests, execute would have picked RIGHT: the
    # miss is the proof that they never reached the selection.
    transport, bodies = coder({0: WRONG, 1: RIGHT, 2: WRONG})
    rows = [{"id": "mean", "question": QUESTION, "tests": HIDDEN, "visible_tests": VISIBLE, "entry_point": "mean"}]
    items = load_items(write_rows(tmp_path / "d.jsonl", rows))
    results = ResultsFile(tmp_path / "results.jsonl")
    h = make(transport, n=3, strategy="execute", seed=0)
    await EvalRunner(heavy=h, strategies=["execute"], ns=[3], results=results).evaluate(items)
    [row] = results.rows
    assert row["path"] == ["sample", "given tests", "execute"] and row["calls"] == 3 and row["error"] is None
    assert row["answer"] == WRONG and row["correct"] is False
    # Nothing the model was sent, and nothing written down, holds a hidden assert (or its input).
    assert len(bodies) == 3
    for text in [*bodies, (tmp_path / "results.jsonl").read_text()]:
        assert "mean([1, 2, 3, 6])" not in text and "assert mean([])" not in text
        assert "mean([2, 4])" not in text  # nor the visible test: it is for the selection, not the model

    r = await h.ask(QUESTION, options=_with_tests("execute", None, items[0]))
    d = r.decision
    assert r.answer == WRONG and d.details["pass_matrix"]["tests"] == [VISIBLE.strip()]
    assert "assert mean([]) == None" in d.details["probes"]  # a probe input, never an expected value
    assert d.details["probe_outputs"]["0"] != d.details["probe_outputs"]["1"]
    assert all(line not in r.model_dump_json() for line in HIDDEN_LINES)
    assert not await passes(r.answer, HIDDEN) and await passes(r.answer, VISIBLE)

    given = await h.ask(QUESTION, options={"tests": HIDDEN, "entry_point": "mean"})  # the old, easy case
    assert given.answer == RIGHT and await passes(given.answer, HIDDEN)
    await h.aclose()


async def test_without_visible_tests_or_examples_eval_runs_codet_on_the_question_alone(tmp_path):
    transport, bodies = coder({0: WRONG, 1: RIGHT, 2: RIGHT})
    rows = [{"id": "mean", "question": QUESTION, "tests": HIDDEN, "entry_point": "mean"}]
    items = load_items(write_rows(tmp_path / "d.jsonl", rows))
    results = ResultsFile(tmp_path / "results.jsonl")
    h = make(transport, n=3, strategy="execute", seed=0)
    await EvalRunner(heavy=h, strategies=["execute"], ns=[3], results=results,
                     options={"execute": {"test_calls": 1}}).evaluate(items)
    await h.aclose()
    [row] = results.rows
    assert row["path"] == ["sample", "generated tests", "execute"] and row["calls"] == 4
    test_requests = [b for b in bodies if TESTS_INSTRUCTION in b]
    assert len(test_requests) == 1 and "`mean`" in test_requests[0]
    assert all(line not in b for b in bodies for line in HIDDEN_LINES)  # the prompt shows the form, not the tests
    assert all("mean([1, 2, 3, 6])" not in b and "mean([])" not in b for b in bodies)
    assert row["answer"] == RIGHT and row["correct"] is True


async def test_the_simulated_benchmark_never_sends_a_grading_assert(tmp_path):
    """The bench tasks through the simulated model: every request and every row, no grading assert."""
    items = [i for i in load_items(TASKS) if i.id in ("leap-year", "chunk", "merge-intervals", "compress-runs")]
    app = SimulatedLLM(SimConfig(accuracy=0.5, seed=3).model_copy(update={"dataset": load_dataset(TASKS)}))
    sent: list[str] = []

    async def spy(request: httpx.Request) -> httpx.Response:
        sent.append(request.content.decode())
        return await httpx.ASGITransport(app=app).handle_async_request(request)

    h = Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1", transport=httpx.MockTransport(spy),
              n=5, strategy="vote", seed=2)
    results = ResultsFile(tmp_path / "results.jsonl")
    await EvalRunner(heavy=h, strategies=["vote", "execute"], ns=[5], results=results, concurrency=2).evaluate(items)
    await h.aclose()
    rows = {(r["id"], r["strategy"]): r for r in results.rows}
    assert len(rows) == 8 and all(r["error"] is None for r in rows.values())
    assert all(rows[(i.id, "execute")]["path"] == ["sample", "given tests", "execute"] for i in items)
    assert len(sent) == 5 * len(items)  # the samples only: no test-writing call, the visible tests sufficed
    written = (tmp_path / "results.jsonl").read_text()
    for item in items:
        for line in split_tests(item.tests)[1]:
            assert all(line not in body for body in sent) and line not in written, (item.id, line)
    # Graded by the hidden tests: a row is correct exactly when its answer passes them.
    for item in items:
        row = rows[(item.id, "execute")]
        assert row["correct"] == await passes(row["answer"], item.tests)


# --- examples in the question ---------------------------------------------------------------------------

HUMANEVAL_STYLE = '''
from typing import List


def below_zero(operations: List[int]) -> bool:
    """ Return True if the balance ever falls below zero, starting from zero.
    >>> below_zero([1, 2, 3])
    False
    >>> below_zero([1, 2, -4, 5])
    True
    >>> ops = [5, -6]
    >>> print(below_zero(ops))
    True
    >>> below_zero(None)
    Traceback (most recent call last):
    TypeError: bad
    >>> below_zero([1,
    ...             -2])
    True
    """
'''


def test_doctest_examples_become_asserts_with_their_setup():
    assert examples_from(HUMANEVAL_STYLE) == (
        "ops = [5, -6]\n"
        "assert below_zero([1, 2, 3]) == False\n"
        "assert below_zero([1, 2, -4, 5]) == True\n"
        "assert str(below_zero(ops)) == 'True'\n"
        "assert below_zero([1,\n            -2]) == True\n")


@pytest.mark.parametrize("text, expected", [
    ("Example: add(2, 3) == 5", ["assert add(2, 3) == 5"]),
    ('For example, rev("abc") -> "cba" and rev("") => "".', ['assert rev("abc") == "cba"', 'assert rev("") == ""']),
    ('solve("1234") = "4321"\nf([1, [2]]) ➞ [1, 2]', ['assert solve("1234") == "4321"', "assert f([1, [2]]) == [1, 2]"]),
    ('to_bin(5) is "101", to_bin(0) is "0".', ['assert to_bin(5) == "101"', 'assert to_bin(0) == "0"']),
    ("steps(1) returns 0. steps(2) should be 1; g(x=2) gives -4.",
     ["assert steps(1) == 0", "assert steps(2) == 1", "assert g(x=2) == -4"]),
    # Not examples: a signature, a sentence after "is", a call with a variable, nothing after the arrow.
    ("Write f(xs) that is fast. f(3) is a prime. f(n) == 4. f(2) ->", []),
])
def test_inline_examples_are_found_and_prose_is_not(text, expected):
    assert examples_from(text) == ("\n".join(expected) + "\n" if expected else "")


def test_an_entry_point_keeps_only_examples_of_that_function():
    text = "helper(2) == 4 and main(2) == 5"
    assert examples_from(text, "main") == "assert main(2) == 5\n"
    assert examples_from(text) == "assert helper(2) == 4\nassert main(2) == 5\n"


async def test_execute_uses_the_questions_examples_before_writing_tests():
    transport, bodies = coder({0: WRONG, 1: RIGHT, 2: RIGHT})
    question = QUESTION + " For example mean([]) is 0."
    h = make(transport, n=3, strategy="execute", seed=0)
    r = await h.ask(question)
    d = r.decision
    assert d.details["tests_source"] == "example" and d.path == ["sample", "example tests", "execute"]
    assert d.details["pass_matrix"]["tests"] == ["assert mean([]) == 0"] and r.answer == RIGHT
    assert "passes 1 of 1 example tests (score 1: tests passed" in d.rationale
    assert not r.aggregator_calls and len(bodies) == 3
    off = await h.ask(question, options={"examples": False, "test_calls": 1})  # CodeT instead
    assert off.decision.details["tests_source"] == "generated" and len(off.aggregator_calls) == 1
    await h.aclose()


# --- probe inputs ---------------------------------------------------------------------------------------


def test_probes_change_one_argument_of_each_tested_call_in_turn():
    probes = probe_calls(["assert chunk([1, 2, 3], 2) == [[1, 2], [3]]", "assert chunk([1], 1) == [[1]]"], 6)
    # Taken from each test in turn; chunk([1], 1) (the second test's own call, and what reversing or
    # shortening [1] gives) and a repeat of chunk([1], 2) are skipped.
    assert probes == ["assert chunk([], 2) == None", "assert chunk([], 1) == None",
                      "assert chunk([1], 2) == None", "assert chunk([1, 1], 1) == None",
                      "assert chunk([3, 2, 1], 2) == None", "assert chunk([1], 0) == None"]
    strings = probe_calls(['assert rle(s="aab") == "a2b"'], 10)
    assert strings == ["assert rle(s='') == None", "assert rle(s='a') == None", "assert rle(s='baa') == None",
                       "assert rle(s='AAB') == None", "assert rle(s='aabaab') == None"]
    assert probe_calls(["assert is_odd(3)", "assert sum(f(2)) == 3", "x = 1"], 10, "is_odd") == [
        "assert is_odd(0) == None", "assert is_odd(1) == None", "assert is_odd(-3) == None", "assert is_odd(4) == None"]
    assert probe_calls(["assert f(a) == 1", "assert 1 == 1"], 10) == []


async def test_probes_break_a_tie_the_visible_test_leaves(tmp_path):
    # Seed 0 writes WRONG (lowest index), seeds 1 and 2 RIGHT: all pass the visible test. Without probes the
    # tie goes to the lowest index; with them RIGHT's two copies agree on mean([]) and win.
    transport, _ = coder({0: WRONG, 1: RIGHT, 2: RIGHT})
    h = make(transport, n=3, strategy="execute", seed=0)
    plain = await h.ask(QUESTION, options={"tests": VISIBLE, "probes": 0})
    assert plain.answer == WRONG and plain.decision.details["probes"] == []
    r = await h.ask(QUESTION, options={"tests": VISIBLE})
    d = r.decision
    assert r.answer == RIGHT and d.winner == 1 and d.scores == {"0": 1.0, "1": 1.0, "2": 1.0}
    assert "3 candidates tied and the vote on outputs chose it" in d.rationale
    assert d.details["probe_outputs"]["0"][0] == "raised ZeroDivisionError" and d.details["probe_outputs"]["1"][0] == "0"
    assert d.details["pass_matrix"]["tests"] == [VISIBLE.strip()]  # probes are not tests
    await h.aclose()
