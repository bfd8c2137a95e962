"""``execute``: verification by execution for code tasks: run every candidate against tests, keep the best.

Each hypothesis's code (its last fenced python block) runs in heavy's sandbox against tests, one process
per distinct program (:mod:`heavy.tools.codecheck`), and the Result shows the pass matrix (candidates ×
tests) in ``decision.details["pass_matrix"]``.

* **Given tests** (``tests``: Python source whose top-level ``assert`` lines are the tests; ``-o
  tests=@file.py`` on the command line; in ``heavy eval`` a row's ``visible_tests`` or the examples in its
  question, never the ``tests`` that grade it): a candidate scores the number of tests it passes; the best
  score wins.
* **No tests given, but the question has examples** (``examples``, on by default): doctest lines
  (``>>> f(3)`` then ``9``) and inline examples (``f(3) == 9``, ``f(3) -> 9``, ``f(5) is "101"``) become
  the tests (:func:`heavy.tools.examples.examples_from`), scored as given tests.
* **No tests at all**: CodeT (Chen et al., 2022, "CodeT: Code Generation with Generated Tests"). The
  model writes tests (``test_calls`` calls of ``tests_per_call`` asserts each, at ``temperature``),
  every candidate runs them, and candidates are ranked by *dual execution agreement*: candidates that
  pass exactly the same tests form a consensus set, scored (number of candidates in it) × (number of
  tests they pass), so a program wins by agreeing both with the tests and with other programs.

Ties are broken by a vote on outputs. Besides the tests, every candidate runs on up to ``probes`` *probe
inputs* derived from the tests' calls (one argument changed into an edge case: empty, one element,
reversed, zero, negative, off by one; :func:`heavy.tools.examples.probe_calls`), which have no expected
value; among the tied candidates, the one whose outputs (``repr`` of ``f(x)``) on the tests and probes
match the other tied candidates' most often wins, then the lowest index. With one or two examples most
candidates pass them all, and the probes are what tells a program that is right on the examples from one
that is right (AlphaCode's clustering on generated inputs). With no code in any candidate (or no usable
test at all), the strategy falls back to the majority vote and says so.
Cost: N samples + ``test_calls`` calls when there are no tests and no examples; sandbox runs: one per
distinct program (tests and probes together).

A candidate cannot make itself pass by printing results, exiting early or patching the harness: the
verdicts are made and reported outside its process (:mod:`heavy.tools.codecheck`). Where this machine's
sandbox cannot guarantee that, ``decision.details["sandbox_warning"]`` says so.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from heavy.answers import extract_code
from heavy.constants import EXECUTE_PROBES
from heavy.strategy import AGGREGATOR_FAILURES, Context, Strategy
from heavy.tools.agent import python_blocks
from heavy.tools.codecheck import CaseResults, entry_point_of, run_tests, split_tests, tests_prompt
from heavy.tools.examples import examples_from, probe_calls
from heavy.tools.sandbox import SandboxLimits
from heavy.types import Decision, Hypothesis, Message, Result

#: Characters of each test shown in the decision's pass matrix.
_TEST_CHARS = 160


class ExecuteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tests: str | None = None
    """Given tests: Python source; its top-level ``assert`` statements are the tests (others are setup)."""
    entry_point: str | None = None
    """Name of the function under test (default: the function most candidates define last)."""
    examples: bool = True
    """Without given tests, use the question's own examples (doctest lines, ``f(x) == y``) as the tests
    before asking the model to write tests."""
    probes: int = Field(default=EXECUTE_PROBES, ge=0, le=100)
    """Probe inputs derived from the tests, run by every candidate to break ties by agreement (0: none)."""
    test_calls: int = Field(default=2, ge=1, le=16)
    """Test-writing calls when no tests are given (CodeT)."""
    tests_per_call: int = Field(default=6, ge=1, le=50)
    """Asserts asked for in each test-writing call."""
    max_tests: int = Field(default=20, ge=1, le=200)
    """Generated tests kept (distinct, in the order written)."""
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    """Temperature of the test-writing calls (sampled, as in CodeT)."""
    per_test_timeout: float = Field(default=2.0, gt=0, le=60)
    """Seconds each test may run."""
    sandbox: dict[str, Any] | None = None
    """Sandbox limits (see heavy.tools.sandbox.SandboxLimits), e.g. {"memory_mb": 256}."""

    @field_validator("tests", mode="before")
    @classmethod
    def _join(cls, v: Any) -> Any:
        return "\n".join(str(t) for t in v) if isinstance(v, list) else v


def candidate_code(text: str) -> str | None:
    """A hypothesis's program: its last ```python block, else its last fenced block of any language."""
    blocks = python_blocks(text)
    if blocks:
        return blocks[-1]
    return extract_code(text)


def parse_generated(text: str) -> tuple[str, list[str]]:
    """(setup, asserts) written by the model: the last python block (or the reply), line by line if need be."""
    blocks = python_blocks(text)
    source = blocks[-1] if blocks else text
    try:
        return split_tests(source)
    except SyntaxError:
        tests = []
        for line in source.splitlines():
            line = line.strip()
            if line.startswith("assert "):
                try:
                    compile(line, "<test>", "exec")
                except SyntaxError:
                    continue
                tests.append(line)
        return "", tests


class Execute(Strategy):
    """Run each candidate's code against given or model-written tests (CodeT); the best passer wins."""

    name = "execute"
    Options = ExecuteOptions
    runs_code = True  # candidates and tests run on this machine: `heavy serve` allows it only with --tools python

    async def run(self, ctx: Context) -> Result:
        o = self.options
        run = await ctx.sample()
        hyps = run.hypotheses
        ok = [h for h in hyps if h.ok]
        codes = {h.index: candidate_code(h.text) for h in ok}
        if not any(codes.values()):
            return ctx.decide_by_vote(hyps, path=["sample", "no code", "vote"],
                                      why="no candidate wrote a fenced code block, so nothing could be run;")
        if o.tests is not None:
            try:
                setup, tests = split_tests(o.tests)
            except SyntaxError as exc:
                from heavy.errors import OptionsError

                raise OptionsError(f"strategy 'execute': the given tests are not valid Python ({exc.msg}, line "
                                   f"{exc.lineno})") from None
            source = "given"
        elif o.examples and (found := examples_from(_question(ctx), o.entry_point)):
            setup, tests = split_tests(found)
            source = "example"
        else:
            setup, tests = await self._generate(ctx, codes)
            source = "generated"
        if not tests:
            return ctx.decide_by_vote(hyps, path=["sample", f"no {source} tests", "vote"],
                                      why=f"no usable {source} test, so candidates could not be ranked by execution;")
        probes = probe_calls(tests, o.probes, o.entry_point) if o.probes else []
        ctx.stage("execute", candidates=len(ok), tests=len(tests), source=source, probes=len(probes))
        results, probed = await self._run_all(codes, tests, probes, setup)
        return self._decide(ctx, ok, codes, results, probed, tests, probes, source)

    async def _generate(self, ctx: Context, codes: dict[int, str | None]) -> tuple[str, list[str]]:
        o = self.options
        entry = o.entry_point or _most_common([entry_point_of(c) for c in codes.values() if c]) or "solution"
        question = _question(ctx)
        ctx.stage("tests", source="generated", calls=o.test_calls, entry_point=entry)
        prompt = [Message(role="user", content=tests_prompt(question, entry, o.tests_per_call))]
        replies = await asyncio.gather(*(ctx.call("tests", prompt, stream=False, temperature=o.temperature)
                                         for _ in range(o.test_calls)), return_exceptions=True)
        setups: list[str] = []
        tests: list[str] = []
        for reply in replies:
            if isinstance(reply, AGGREGATOR_FAILURES):
                continue
            if isinstance(reply, BaseException):
                raise reply
            setup, found = parse_generated(reply.text)
            if setup and setup not in setups:
                setups.append(setup)
            tests += [t for t in found if t not in tests]
        return "\n".join(setups), tests[: o.max_tests]

    async def _run_all(self, codes: dict[int, str | None], tests: list[str], probes: list[str],
                       setup: str) -> tuple[dict[int, CaseResults], dict[int, list[str | None]]]:
        """Each candidate's results on the tests, and its outputs on the probes (one sandbox per program:
        the probes run after the tests, so a probe that hangs or crashes cannot cost a test)."""
        limits = SandboxLimits.model_validate(self.options.sandbox or {})
        distinct = list(dict.fromkeys(c for c in codes.values() if c))
        outcomes = await asyncio.gather(*(run_tests(code, tests + probes, setup,
                                                    per_test=self.options.per_test_timeout, limits=limits)
                                          for code in distinct))
        k = len(tests)
        by_code = {c: CaseResults(r.passed[:k], r.outputs[:k], error=r.error, isolation=r.isolation,
                                  seconds=r.seconds, notes=r.notes) for c, r in zip(distinct, outcomes)}
        probe_outputs = {c: r.outputs[k:] for c, r in zip(distinct, outcomes)}
        empty = CaseResults([False] * k, [None] * k, error="no code")
        results = {i: by_code[c] if c else empty for i, c in codes.items()}
        probed = {i: probe_outputs[c] if c else [None] * len(probes) for i, c in codes.items()}
        return results, probed

    def _decide(self, ctx: Context, ok: list[Hypothesis], codes: dict[int, str | None],
                results: dict[int, CaseResults], probed: dict[int, list[str | None]], tests: list[str],
                probes: list[str], source: str) -> Result:
        order = [h.index for h in ok]
        vectors = {i: tuple(results[i].passed) for i in order}
        signatures = {i: (*results[i].outputs, *probed[i]) for i in order}
        if source != "generated":  # given tests or the question's examples: a test is a fact
            scores = {i: float(sum(vectors[i])) for i in order}
            how = "tests passed"
        else:  # CodeT dual agreement: consensus sets of identical pass vectors, |set| × tests passed
            members = Counter(vectors[i] for i in order if codes[i])
            scores = {i: float(members[vectors[i]] * sum(vectors[i])) if codes[i] else 0.0 for i in order}
            how = "consensus size × tests passed"
        best = max(scores.values())
        tied = [i for i in order if scores[i] == best]
        agree = {i: _agreement(i, tied, signatures) for i in tied}
        winner = min(tied, key=lambda i: (-agree[i] if codes[i] else 1, i))
        w = next(h for h in ok if h.index == winner)
        passed = sum(vectors[winner])
        same = sum(1 for i in order if vectors[i] == vectors[winner]) - 1
        rationale = (f"candidate #{winner} passes {passed} of {len(tests)} {source} tests "
                     f"(score {best:g}: {how}; {same} other candidate(s) pass the same tests)")
        if len(tied) > 1:
            rationale += (f"; {len(tied)} candidates tied and the vote on outputs chose it (on the tests and "
                          f"{len(probes)} probe input(s) its outputs match the other tied candidates' "
                          f"{agree[winner]} time(s), the most; "
                          f"{sum(1 for i in tied if signatures[i] == signatures[winner])} candidate(s) give "
                          "exactly its outputs)")
        if passed == 0:
            rationale += "; no candidate passes any test, so this choice is weak"
        details: dict[str, Any] = {
            "tests_source": source,
            "pass_matrix": {"candidates": order, "tests": [t[:_TEST_CHARS] for t in tests],
                            "rows": [[int(p) for p in vectors[i]] for i in order]},
            "outputs": {str(i): list(results[i].outputs) for i in order},
            "probes": [p[:_TEST_CHARS] for p in probes],
            "probe_outputs": {str(i): list(probed[i]) for i in order},
            "errors": {str(i): results[i].error for i in order if results[i].error},
            "distinct_programs": len({c for c in codes.values() if c}),
        }
        iso = next((r.isolation for r in results.values() if r.isolation is not None), None)
        if iso is not None:
            details["sandbox"] = iso.summary()
        warnings = list(dict.fromkeys(n for r in results.values() for n in r.notes))
        if warnings:  # e.g. the candidates could reach the report channel here (docs/tools.md)
            details["sandbox_warning"] = "; ".join(warnings)
        decision = Decision(method="execute", path=["sample", f"{source} tests", "execute"], rationale=rationale,
                            winner=winner, scores={str(i): s for i, s in scores.items()}, details=details)
        return ctx.result(answer=codes[winner] or w.text.strip(), text=w.text, decision=decision)


def _question(ctx: Context) -> str:
    """The user's question: the last user message."""
    return next((m.text() for m in reversed(ctx.messages) if m.role == "user"), "")


def _agreement(i: int, tied: list[int], signatures: dict[int, tuple[str | None, ...]]) -> int:
    """How often candidate *i*'s outputs equal another tied candidate's (a missing output never matches)."""
    mine = signatures[i]
    return sum(1 for j in tied if j != i for a, b in zip(mine, signatures[j]) if a is not None and a == b)


def _most_common(names: list[str | None]) -> str | None:
    counts = Counter(n for n in names if n)
    return counts.most_common(1)[0][0] if counts else None
