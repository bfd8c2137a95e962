"""Code benchmarks in their own format: HumanEval's tests (``def check(candidate): assert ...`` and then
``check(entry_point)``, or the official ``test`` field that leaves that call to the harness) have no top-level
assert, and are graded as a whole program, as HumanEval's harness does: pass when it runs to its end without an
exception within the time limit. Before, every such row graded False whatever the model wrote.

The candidates really run in heavy's sandbox (its harness: the test program in the judge process, the candidate
in its worker); the model is the simulator.
"""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from heavy.cli import cli
from heavy.tools.codecheck import PROGRAM_TIMEOUT, grading, passes, grading_program

pytestmark = pytest.mark.anyio

TESTS = '''

METADATA = {'author': 'heavy', 'dataset': 'test'}


def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([], 1.0) == False
'''
SHIPPED = TESTS + "\ncheck(has_close_elements)\n"  # as the suites built on HumanEval ship it

CANONICAL = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2:
                distance = abs(elem - elem2)
                if distance < threshold:
                    return True

    return False
'''
WRONG = CANONICAL.replace("distance < threshold", "distance > threshold")
LOOPS = "def has_close_elements(numbers, threshold):\n    while True:\n        pass\n"
EXITS = "import os\nos._exit(0)\n\ndef has_close_elements(numbers, threshold):\n    return True\n"

#: Small tasks in HumanEval's form (name, prompt with a doctest example, reference solution, official-style
#: tests that leave ``check(entry_point)`` to the harness), for the simulator, which answers with the reference or
#: a slipped copy of it (heavy.sim.codetasks); the tests catch every slip it makes of these.
HE_TASKS = [
    ("add_two", "def add_two(x):\n    \"\"\"Add two to x.\n    >>> add_two(1)\n    3\n    \"\"\"\n",
     "def add_two(x):\n    return x + 2\n",
     "\n\ndef check(candidate):\n    assert candidate(40) == 42\n    assert candidate(-2) == 0\n"),
    ("count_as", "def count_as(s):\n    \"\"\"How many letters a in s.\n    >>> count_as('banana')\n    3\n    \"\"\"\n",
     "def count_as(s):\n    return sum(1 for c in s if c == 'a')\n",
     "\n\ndef check(candidate):\n    assert candidate('') == 0\n    assert candidate('aardvark') == 3\n"),
    ("last_two",
     "def last_two(xs):\n    \"\"\"The last two items of xs.\n    >>> last_two([1, 2, 3])\n    [2, 3]\n    \"\"\"\n",
     "def last_two(xs):\n    return xs[-2:]\n",
     "\n\ndef check(candidate):\n    assert candidate([7, 8, 9, 10]) == [9, 10]\n    assert candidate([5]) == [5]\n"),
    ("is_big", "def is_big(n):\n    \"\"\"Whether n exceeds 10.\n    >>> is_big(11)\n    True\n    \"\"\"\n",
     "def is_big(n):\n    return n > 10\n",
     "\n\ndef check(candidate):\n    assert candidate(10) is False\n    assert candidate(11) is True\n"),
]


def test_a_test_program_grades_as_a_program_and_asserts_as_asserts():
    assert grading(TESTS) == grading(SHIPPED) == "program"
    assert grading("assert f(1) == 2\n") == "asserts"
    assert grading("def check(c):\n  assert c(1) == 2\nassert True\n") == "asserts", "top-level asserts are tests"
    assert grading_program(SHIPPED, None) == SHIPPED, "it calls check itself"
    assert grading_program(TESTS, "has_close_elements").rstrip().endswith("check(has_close_elements)")
    assert grading_program(TESTS, None) is None, "check(...) needs the function under test"
    assert grading_program("print(1)\n", None) == "print(1)\n", "no check to call: the program as it is"


@pytest.mark.parametrize("tests", [SHIPPED, TESTS], ids=["check-call-shipped", "official-test-field"])
async def test_the_canonical_solution_passes_and_a_wrong_one_fails(tests):
    assert await passes(CANONICAL, tests, entry_point="has_close_elements")
    assert not await passes(WRONG, tests, entry_point="has_close_elements")
    assert await passes(CANONICAL, tests), "without an entry point: the function the candidate defines last"


async def test_an_infinite_loop_times_out_and_an_early_exit_is_no_pass():
    assert PROGRAM_TIMEOUT >= 3.0, "at least HumanEval's own limit"
    started = time.monotonic()
    assert not await passes(LOOPS, SHIPPED, timeout=2.0)
    assert time.monotonic() - started < 2.0 + 15, "stopped by the time limit, not by the sandbox's last resort"
    assert not await passes(EXITS, SHIPPED), "a candidate that exits while loading never gets to pass"
    assert not await passes(CANONICAL, "def check(candidate):\n    assert candidate([], 1.0) is None\n",
                            entry_point="has_close_elements")


def test_heavy_eval_grades_humaneval_rows_by_running_their_program(tmp_path, monkeypatch):
    rows = [{"id": name, "question": f"Complete this function:\n\n{prompt}", "entry_point": name,
             "solution": solution, "tests": tests + (f"\ncheck({name})\n" if i % 2 else "")}
            for i, (name, prompt, solution, tests) in enumerate(HE_TASKS)]
    rows.append({"id": "asserts", "question": "Write add(a, b).", "solution": "def add(a, b):\n    return a + b\n",
                 "tests": "assert add(2, 3) == 5\n"})
    data = tmp_path / "he.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(data))
    out = tmp_path / "out.jsonl"
    r = CliRunner().invoke(cli, ["eval", str(data), "-m", "sim:heavy-simulated@accuracy=1", "-s", "vote", "-n", "1",
                                 "--results", str(out)])
    assert r.exit_code == 0, r.output
    results = {x["id"]: x for x in map(json.loads, out.read_text().splitlines())}
    assert all(x["correct"] for x in results.values()), "the reference solutions pass: 5 of 5, not 0 of 4"
    assert {x["graded"] for k, x in results.items() if k != "asserts"} == {"program"}
    assert results["asserts"]["graded"] == "asserts"
    out0 = tmp_path / "out0.jsonl"
    r = CliRunner().invoke(cli, ["eval", str(data), "-m", "sim:heavy-simulated@accuracy=0", "-s", "vote", "-n", "1",
                                 "--results", str(out0), "--seed", "3"])
    assert r.exit_code == 0, r.output
    wrong = [x for x in map(json.loads, out0.read_text().splitlines())]
    assert not any(x["correct"] for x in wrong), "a slipped solution fails its tests"
