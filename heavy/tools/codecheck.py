"""Running candidate code against tests in the sandbox (the ``execute`` strategy, ``heavy eval`` on code).

**How a task carries tests**: Python source whose top-level ``assert`` statements are the tests, one
test each (``assert add(2, 3) == 5``); any other top-level statement (imports, helper definitions) is
setup, run once before the tests. That is the JSONL field ``tests`` for ``heavy eval`` (with an optional
``entry_point``, the function's name), and ``-o tests=@file.py`` for ``heavy ask -s execute``.

**Test programs** (HumanEval's format, and the suites built on it: ``def check(candidate): assert ...``,
then ``check(entry_point)``, which the official harness appends itself) have no top-level assert: such a
program is graded as a whole, as that harness does: it passes when it runs to its end without an exception
within :data:`PROGRAM_TIMEOUT` seconds (``check(entry_point)`` is appended when the program defines ``check``
and never calls it). :func:`grading` says which way a test source grades (``"asserts"`` or ``"program"``).

:func:`run_tests` runs one candidate (the code of its last fenced python block) in the sandbox under
a harness (:mod:`heavy.tools._harness`): the candidate is loaded in a worker process of its own (its
prints go nowhere), and each test runs in the harness's judge process with a per-test timer, every
use of a candidate's name forwarded to the worker and every answer coming back as plain data, so one
infinite loop, exception or exit fails that test only. For ``assert X == Y`` the harness also records
``repr(X)``, the candidate's *output* on that test: candidates that agree on their outputs can be
counted together even when the tests themselves are wrong (CodeT's dual agreement).

**Results cannot be forged by the candidate.** The verdict travels on a report pipe that only the judge
holds (:func:`heavy.tools.sandbox.run_python` with ``channel=True``), never on stdout; the judge is
non-dumpable, the worker never sees the tests' expected values, and a verdict is accepted only when it
is one complete record with a result for every test. Printing a marker, exiting early
(``sys.exit``/``os._exit``), patching builtins, always-equal objects and writes to guessed descriptors
all end as failed tests. The guarantee needs the candidate to run as a uid other than heavy's, or with
a private ``/proc``; where the sandbox could give neither, :attr:`CaseResults.notes` says so.
``docs/tools.md`` has the threat model.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .sandbox import Isolation, SandboxLimits
from .python import sandboxed

__all__ = ["split_tests", "run_tests", "CaseResults", "passes", "TESTS_INSTRUCTION", "tests_prompt",
           "entry_point_of", "grading", "grading_program", "PROGRAM_TIMEOUT"]

#: Seconds a test program graded as a whole may run: HumanEval's harness allows 3; here every call of the
#: candidate crosses from the judge to the worker process, on a machine that may be busy.
PROGRAM_TIMEOUT = 6.0

#: The instruction of the test-writing prompt (CodeT: the model writes the tests it is later judged by).
TESTS_INSTRUCTION = "Write test cases for the Python function described in the task below."


def tests_prompt(question: str, entry_point: str, k: int) -> str:
    return (f"{TESTS_INSTRUCTION} Write {k} tests for `{entry_point}`, one per line, each of the form "
            f"`assert {entry_point}(...) == expected`, with the expected value worked out from the task by "
            f"hand (do not implement the function). Cover ordinary inputs and edge cases. Reply with one "
            f"```python block that contains only the assert lines.\n\nTask:\n{question}")


def split_tests(source: str) -> tuple[str, list[str]]:
    """(setup code, test statements) of a test file: top-level ``assert`` statements are the tests."""
    tree = ast.parse(source)
    setup, tests = [], []
    for node in tree.body:
        text = ast.get_source_segment(source, node) or ast.unparse(node)
        (tests if isinstance(node, ast.Assert) else setup).append(text)
    return "\n".join(setup), tests


def entry_point_of(code: str) -> str | None:
    """The last top-level function defined in *code* (the usual entry point of a solution)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return names[-1] if names else None


#: The harness program (see :mod:`heavy.tools._harness`): run as ``main.py`` with a report channel.
HARNESS = Path(__file__).with_name("_harness.py")


@dataclass
class CaseResults:
    """One candidate against a list of tests: pass/fail and output per test."""

    passed: list[bool]
    outputs: list[str | None]
    error: str | None = None  #: why the candidate could not run at all (load error, no code, sandbox stopped)
    isolation: Isolation | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  #: e.g. why this machine cannot protect the results

    @property
    def count(self) -> int:
        return sum(self.passed)


async def run_tests(code: str | None, tests: Sequence[str], setup: str = "", *, per_test: float = 2.0,
                    limits: SandboxLimits | None = None, namespaces: bool = True) -> CaseResults:
    """Run *code* against each test statement in one sandbox (see the module docstring).

    ``namespaces=False`` runs the sandbox without namespaces (the fallback some machines get)."""
    n = len(tests)
    if not code or not code.strip():
        return CaseResults([False] * n, [None] * n, error="no code")
    # Loading also starts the worker interpreter (a fraction of a second on a busy machine).
    spec = {"code": code, "setup": setup, "tests": list(tests), "per_test": per_test, "load_timeout": per_test * 2 + 3}
    base = limits or SandboxLimits()
    budget = per_test * (n + 2) + 5 + 0.5 * n  # every test may time out and need a fresh worker
    limits = base.model_copy(update={"timeout": min(max(base.timeout, budget), 120.0),
                                     "cpu_seconds": int(min(max(base.cpu_seconds, budget), 120))})
    r = await sandboxed(HARNESS.read_text(encoding="utf-8"), limits=limits, files={"spec.json": json.dumps(spec)},
                        namespaces=namespaces, channel=True)
    notes = _exposure(r.isolation)
    data = _verdict(r.channel if not r.channel_truncated else None, n)
    if data is None:
        why = r.stopped or (r.stderr.strip().splitlines() or [f"exit code {r.exit_code}"])[-1]
        return CaseResults([False] * n, [None] * n, error=f"the harness did not finish: {why}"[:300],
                           isolation=r.isolation, seconds=r.duration_s, notes=notes)
    if not data.get("nondumpable"):
        notes.append("the harness could not make itself non-dumpable: same-uid code could reach its channel")
    return CaseResults(data["passed"], data["outputs"], error=data["load_error"], isolation=r.isolation,
                       seconds=r.duration_s, notes=notes)


def _verdict(channel: str | None, n: int) -> dict | None:
    """The harness's record, or None unless it is exactly one complete record with a result per test."""
    lines = [ln for ln in (channel or "").splitlines() if ln.strip()]
    if len(lines) != 1:
        return None
    try:
        data = json.loads(lines[0])
    except ValueError:
        return None
    if type(data) is not dict or data.get("done") is not True:
        return None
    passed, outputs, error = data.get("passed"), data.get("outputs"), data.get("load_error")
    if type(passed) is not list or len(passed) != n or any(type(p) is not bool for p in passed):
        return None
    if type(outputs) is not list or len(outputs) != n or any(o is not None and type(o) is not str for o in outputs):
        return None
    if error is not None and type(error) is not str:
        return None
    return data


def _exposure(isolation: Isolation) -> list[str]:
    """Why the candidate might reach the report channel on this machine (empty: it cannot)."""
    if isolation.uid == 0:
        return ["the candidate ran as root: it can reach the harness's report channel, so its results "
                "could be forged"]
    if isolation.proc != "private" and isolation.uid == os.getuid():
        return [f"the candidate ran as heavy's own uid ({isolation.uid}) with the host /proc: it can open "
                "heavy's end of the report channel, so its results could be forged"]
    return []


def grading(tests_source: str) -> str:
    """How *tests_source* grades a candidate: ``"asserts"`` (each top-level assert is a test) or ``"program"``
    (no top-level assert: the whole program is one test, as HumanEval's harness runs it)."""
    try:
        return "asserts" if split_tests(tests_source)[1] else "program"
    except SyntaxError:
        return "program"  # run as a program, it fails on its syntax error: every candidate fails it


def grading_program(tests_source: str, entry_point: str | None) -> str | None:
    """The program that grades a candidate as a whole: *tests_source*, plus ``check(entry_point)`` when it
    defines ``check`` and never calls it at its top level (the official HumanEval ``test`` field leaves that
    call to its harness). None when it would need that call and there is no entry point to pass."""
    if not tests_source.strip():
        return None
    try:
        tree = ast.parse(tests_source)
    except SyntaxError:
        return tests_source
    defines = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "check" for n in tree.body)
    calls = any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)
                and n.value.func.id == "check" for n in tree.body)
    if not defines or calls:
        return tests_source
    if not entry_point or not entry_point.isidentifier():
        return None
    return f"{tests_source.rstrip()}\n\ncheck({entry_point})\n"


async def passes(code: str | None, tests_source: str, *, limits: SandboxLimits | None = None,
                 entry_point: str | None = None, timeout: float = PROGRAM_TIMEOUT) -> bool:
    """Whether *code* passes every test of *tests_source* (False when there is no test at all). A source
    without top-level asserts is a test program, graded as a whole (:func:`grading`): it passes when it ends
    without an exception within *timeout* seconds; *entry_point* (default: the last function *code* defines)
    is what its ``check`` is called with when the program does not call it itself."""
    if grading(tests_source) == "asserts":
        setup, tests = split_tests(tests_source)
        return all((await run_tests(code, tests, setup, limits=limits)).passed)
    program = grading_program(tests_source, entry_point or (entry_point_of(code) if code else None))
    if program is None:
        return False
    # One test the harness's judge runs: the program executes there (the candidate's names call into its worker
    # process, as for asserts), so what the candidate does cannot make the program look finished.
    test = f"assert exec(compile({program!r}, 'tests.py', 'exec'), globals()) is None"
    return (await run_tests(code, [test], per_test=timeout, limits=limits)).passed == [True]
