"""Running candidate code against tests in the sandbox (the ``execute`` strategy, ``heavy eval`` on code).

**How a task carries tests**: Python source whose top-level ``assert`` statements are the tests, one
test each (``assert add(2, 3) == 5``); any other top-level statement (imports, helper definitions) is
setup, run once before the tests. That is the JSONL field ``tests`` for ``heavy eval`` (with an optional
``entry_point``, the function's name), and ``-o tests=@file.py`` for ``heavy ask -s execute``.

:func:`run_tests` runs one candidate (the code of its last fenced python block) in one sandboxed process
with a harness: the candidate is loaded (its own prints silenced), then each test runs on its own with a
per-test timer, so one infinite loop or exception fails that test only. For ``assert X == Y`` the
harness also records ``repr(X)``, the candidate's *output* on that test: candidates that agree on their
outputs can be counted together even when the tests themselves are wrong (CodeT's dual agreement).
"""

from __future__ import annotations

import ast
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from .sandbox import Isolation, SandboxLimits
from .python import sandboxed

__all__ = ["split_tests", "run_tests", "CaseResults", "passes", "TESTS_INSTRUCTION", "tests_prompt",
           "entry_point_of"]

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


_HARNESS = r'''
import ast, contextlib, io, json, signal, sys
spec = json.load(open("spec.json", encoding="utf-8"))
marker = spec.pop("marker")
sys.setrecursionlimit(3000)
def _alarm(signum, frame):
    raise TimeoutError("time limit of this test")
signal.signal(signal.SIGALRM, _alarm)
ns = {"__name__": "__main__"}
res = {"load_error": None, "passed": [], "outputs": []}
sink = io.StringIO()
try:
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        signal.setitimer(signal.ITIMER_REAL, spec["load_timeout"])
        try:
            exec(compile(spec["code"], "candidate.py", "exec"), ns)
            exec(compile(spec["setup"], "setup.py", "exec"), ns)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
except BaseException as e:
    res["load_error"] = (type(e).__name__ + ": " + str(e))[:300]
for src in spec["tests"]:
    ok, out = False, None
    if res["load_error"] is None:
        try:
            test = ast.parse(src).body[0].test
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                signal.setitimer(signal.ITIMER_REAL, spec["per_test"])
                try:
                    if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
                        left = eval(compile(ast.Expression(test.left), "<test>", "eval"), ns)
                        out = repr(left)[:200]
                        ok = bool(left == eval(compile(ast.Expression(test.comparators[0]), "<test>", "eval"), ns))
                    else:
                        ok = bool(eval(compile(ast.Expression(test), "<test>", "eval"), ns))
                        out = repr(ok)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except BaseException as e:
            ok, out = False, "raised " + type(e).__name__
    res["passed"].append(ok)
    res["outputs"].append(out)
sink.truncate(0)
print(marker + json.dumps(res))
'''


@dataclass
class CaseResults:
    """One candidate against a list of tests: pass/fail and output per test."""

    passed: list[bool]
    outputs: list[str | None]
    error: str | None = None  #: why the candidate could not run at all (load error, no code, sandbox stopped)
    isolation: Isolation | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(self.passed)


async def run_tests(code: str | None, tests: Sequence[str], setup: str = "", *, per_test: float = 2.0,
                    limits: SandboxLimits | None = None) -> CaseResults:
    """Run *code* against each test statement in one sandboxed process (see the module docstring)."""
    n = len(tests)
    if not code or not code.strip():
        return CaseResults([False] * n, [None] * n, error="no code")
    marker = f"@@heavy-results-{secrets.token_hex(8)}@@"
    spec = {"code": code, "setup": setup, "tests": list(tests), "per_test": per_test, "load_timeout": per_test * 2,
            "marker": marker}
    base = limits or SandboxLimits()
    budget = per_test * (n + 2) + 3
    limits = base.model_copy(update={"timeout": min(max(base.timeout, budget), 120.0),
                                     "cpu_seconds": int(min(max(base.cpu_seconds, budget), 120))})
    r = await sandboxed(_HARNESS, limits=limits, files={"spec.json": json.dumps(spec)})
    line = next((ln for ln in reversed(r.stdout.splitlines()) if ln.startswith(marker)), None)
    if line is None:
        why = r.stopped or (r.stderr.strip().splitlines() or [f"exit code {r.exit_code}"])[-1]
        return CaseResults([False] * n, [None] * n, error=f"the harness did not finish: {why}"[:300],
                           isolation=r.isolation, seconds=r.duration_s)
    data = json.loads(line[len(marker):])
    return CaseResults([bool(p) for p in data["passed"]], data["outputs"], error=data["load_error"],
                       isolation=r.isolation, seconds=r.duration_s)


async def passes(code: str | None, tests_source: str, *, limits: SandboxLimits | None = None) -> bool:
    """Whether *code* passes every test of *tests_source* (False when there is no test at all)."""
    setup, tests = split_tests(tests_source)
    if not tests:
        return False
    return all((await run_tests(code, tests, setup, limits=limits)).passed)
