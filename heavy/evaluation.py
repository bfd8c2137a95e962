"""Evaluation harness behind ``heavy eval``: run strategies over a JSONL dataset and score them.

* **Datasets**: JSONL with ``question`` and ``answer`` (GSM8K-style gold; ``#### N`` solutions work too),
  optionally ``id`` and, for multiple choice, ``choices`` (a list, or a dict keyed by letter) with the
  gold answer as a letter. A **code task** has ``tests`` (Python source whose top-level ``assert`` lines
  are the tests) instead of, or besides, ``answer``, and optionally ``entry_point``: it is correct when the
  chosen answer's code passes every test in the sandbox. Those tests *grade*; they never reach the model
  or the strategy (HumanEval-style hidden tests). A strategy that takes a ``tests`` option (``execute``)
  gets what a user would have: the row's optional ``visible_tests`` (same format), else the examples in
  the question (doctest ``>>>`` lines, ``f(x) == y``; :func:`heavy.tools.examples.examples_from`), else
  nothing (``execute`` then has the model write tests, CodeT).
* **Results file** (append-only JSONL): one line per finished (question, strategy, n) with at least
  ``question``, ``gold``, ``answer`` and ``correct``. Re-running with the same file skips what is there,
  so a killed run resumes with no question lost or repeated. Nothing in it is ever deleted: a torn last
  line (a crash mid-write) is ignored and left in place, a file holding other data is refused, and a
  second concurrent writer is refused (see :mod:`heavy.evalfiles`).
* **Sample pools**: ``record`` stores every hypothesis of every question (one line per question), and
  is reused on the next run; ``replay`` re-runs strategies on a pool with no new sampling calls (only
  judge/aggregator calls), so strategies are compared on identical samples and accuracy-vs-N curves
  (prefixes of the pool) cost nothing extra. A pool named ``*.gz`` is read through gzip (pools with
  token logprobs are large); it can be replayed, not recorded into.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .answers import normalize_answer, parse_number
from .api import Heavy
from .errors import ConfigError, HeavyError
from .evalfiles import Pool, ResultsFile
from .types import PROGRAM_ROUTE, Hypothesis, Usage

__all__ = [
    "EvalItem", "load_items", "selection_tests", "is_correct", "wilson", "ResultsFile", "Pool", "EvalRunner", "summarize", "SummaryRow",
]

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    gold: str
    prompt: str
    tests: str | None = None  #: a code task's tests (correct = the answer's code passes them all); hidden
    entry_point: str | None = None
    visible_tests: str | None = None  #: tests a user would have, given to the strategy (never ``tests``)


def _gold(raw: Any) -> str:
    text = str(raw).strip()
    return text.rsplit("####", 1)[1].strip() if "####" in text else text


def _show(value: Any) -> str:
    """A JSON value as a short excerpt for an error message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _item(row: Any, where: str) -> EvalItem:
    """One dataset line as an EvalItem; ConfigError (``where`` = file:line) naming what to fix."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: got a JSON {type(row).__name__}: each line must be a JSON object with "
                          "'question' and 'answer' (or 'tests' for a code task)")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: 'question' must be a non-empty string, got {_show(question)}: "
                          "each line needs 'question' and 'answer' (or 'tests' for a code task)")
    tests = row.get("tests")
    if tests is not None and not isinstance(tests, str):
        raise ConfigError(f"{where}: 'tests' must be a string of Python assert lines, got {_show(tests)}")
    tests = tests if tests and tests.strip() else None
    answer = row.get("answer")
    if "answer" not in row and tests is None:
        raise ConfigError(f"{where}: no 'answer': each line needs 'question' and 'answer' "
                          "(or 'tests' for a code task)")
    if answer is not None and not isinstance(answer, str | int | float):
        raise ConfigError(f"{where}: 'answer' must be a string or a number, got {_show(answer)}")
    gold = _gold(answer) if answer is not None else ""
    if not gold and tests is None:
        raise ConfigError(f"{where}: 'answer' is empty: give the gold answer (or 'tests' for a code task)")
    choices = row.get("choices")
    prompt = question
    if choices:
        if isinstance(choices, dict):
            pairs = [(str(k), v) for k, v in choices.items()]
        elif isinstance(choices, list) and len(choices) <= len(LETTERS):
            pairs = list(zip(LETTERS, choices))
        else:
            pairs = []
        if not pairs or not all(isinstance(v, str | int | float) for _, v in pairs):
            raise ConfigError(f"{where}: 'choices' must be a list of at most {len(LETTERS)} options (strings) or "
                              f"an object keyed by letter, got {_show(choices)}")
        prompt = question + "\n\n" + "\n".join(f"{k}) {v}" for k, v in pairs) + \
            "\n\nAnswer with the letter of the correct choice."
    raw_id = row.get("id")
    if raw_id is not None and not isinstance(raw_id, str | int):
        raise ConfigError(f"{where}: 'id' must be a string or an integer, got {_show(raw_id)}")
    entry = row.get("entry_point")
    if entry is not None and not isinstance(entry, str):
        raise ConfigError(f"{where}: 'entry_point' must be the name of the function under test, got {_show(entry)}")
    visible = _visible_tests(row.get("visible_tests"), tests, where)
    item_id = str(raw_id or hashlib.sha256(question.encode()).hexdigest()[:16])
    return EvalItem(item_id, question, gold, prompt, tests, entry or None, visible)


def _visible_tests(value: Any, tests: str | None, where: str) -> str | None:
    """A row's ``visible_tests``: Python source with at least one top-level ``assert``, beside ``tests``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: 'visible_tests' must be a string of Python assert lines, got {_show(value)}")
    if not value.strip():
        return None
    if tests is None:
        raise ConfigError(f"{where}: 'visible_tests' needs 'tests' beside it: 'tests' grade the answer, "
                          "'visible_tests' are what the strategy may run")
    from .tools.codecheck import split_tests

    try:
        asserts = split_tests(value)[1]
    except SyntaxError as exc:
        raise ConfigError(f"{where}: 'visible_tests' is not valid Python ({exc.msg}, line {exc.lineno}): "
                          "give assert lines such as 'assert f(2) == 4'") from None
    if not asserts:
        raise ConfigError(f"{where}: 'visible_tests' has no top-level assert: give assert lines such as "
                          "'assert f(2) == 4'")
    return value


def load_items(path: str | Path, *, limit: int | None = None, offset: int = 0) -> list[EvalItem]:
    """Read a JSONL dataset (UTF-8, a BOM is fine); a bad line is a ConfigError naming the line and the fix."""
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more (got {limit}): it is how many questions to run")
    if offset < 0:
        raise ConfigError(f"--offset must be 0 or more (got {offset}): it is how many questions to skip")
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"dataset {str(p)!r} not found")
    if not p.is_file():
        raise ConfigError(f"dataset {str(p)!r} is not a file: give a JSONL file (one JSON object per line)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the dataset {p}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{lineno}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the dataset as "
                          "UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    items: list[EvalItem] = []
    seen: set[str] = set()
    # Split on \n only: a JSON string may hold U+2028, which str.splitlines would cut (and misnumber lines).
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{p}:{lineno}: not JSON ({getattr(exc, 'msg', exc)}): each line must be one JSON "
                              "object with 'question' and 'answer'") from None
        item = _item(row, f"{p}:{lineno}")
        if item.id in seen:
            continue  # the same question twice would be scored twice; keep the first
        seen.add(item.id)
        items.append(item)
    items = items[offset:]
    return items[:limit] if limit is not None else items


def is_correct(answer: str | None, gold: str) -> bool:
    """Equal after normalization, or numerically equal within 1e-6 relative tolerance."""
    if answer is None:
        return False
    a, g = normalize_answer(answer), normalize_answer(gold)
    if a == g:
        return True
    x, y = parse_number(a), parse_number(g)
    if x is None or y is None:
        return False
    return abs(float(x) - float(y)) <= 1e-6 * max(1.0, abs(float(y)))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n (sane at 0 and n, unlike the normal approximation)."""
    if n == 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class SummaryRow:
    strategy: str
    n: int
    total: int
    correct: int
    errors: int
    tokens_per_question: float
    calls_per_question: float
    cost_usd: float | None
    wall_s: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.total)


def summarize(rows: Sequence[dict[str, Any]], ids: set[str] | None = None) -> list[SummaryRow]:
    """One SummaryRow per (strategy, n) over the last line of each question (optionally only *ids*)."""
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        if "id" in r and (ids is None or r["id"] in ids):
            latest[(r["id"], r["strategy"], r["n"])] = r
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for (_, strategy, n), r in latest.items():
        groups.setdefault((strategy, n), []).append(r)
    out = []
    for (strategy, n), rs in sorted(groups.items()):
        k = len(rs)
        out.append(SummaryRow(
            strategy=strategy, n=n, total=k, correct=sum(bool(r.get("correct")) for r in rs),
            errors=sum(bool(r.get("error")) for r in rs),
            tokens_per_question=sum(r.get("total_tokens", 0) for r in rs) / k,
            calls_per_question=sum(r.get("calls", 0) for r in rs) / k,
            cost_usd=None if any(r.get("cost_usd") is None for r in rs) else sum(r["cost_usd"] for r in rs),
            wall_s=sum(r.get("wall_s", 0.0) for r in rs),
        ))
    return out


def selection_tests(item: EvalItem) -> str | None:
    """The tests a strategy may run on a code task: its ``visible_tests``, else the examples in its
    question, else None. Never its ``tests``: those grade, and a user does not have them."""
    if item.visible_tests:
        return item.visible_tests
    from .tools.examples import examples_from

    return examples_from(item.question, item.entry_point) or None


def _with_tests(strategy: str, options: dict[str, Any] | None, item: EvalItem) -> dict[str, Any] | None:
    """A code task's selection tests (:func:`selection_tests`, never the grading ``tests``) and entry point
    as options of a strategy that takes them (``execute``)."""
    if not item.tests:
        return options
    from .strategy import load_strategy

    fields = load_strategy(strategy).Options.model_fields
    given = (("tests", selection_tests(item)), ("entry_point", item.entry_point))
    extra = {k: v for k, v in given if k in fields and v}
    return {**(options or {}), **extra} if extra else options


async def _passes_tests(result: Any, item: EvalItem) -> bool:
    """Whether the code of *result*'s chosen answer passes every grading test (``tests``, hidden from the
    strategy) of the code task *item*, in the sandbox."""
    from .answers import extract_code
    from .tools.agent import python_blocks
    from .tools.codecheck import passes

    blocks = python_blocks(result.text)
    code = blocks[-1] if blocks else extract_code(result.text)
    if code is None and result.decision.method == "execute":
        code = result.answer
    return await passes(code, item.tests or "")


def route_prefix(pool: Sequence[Hypothesis], route: str | None, n: int | None = None) -> list[Hypothesis]:
    """The first *n* (all, when ``None``) hypotheses of *pool* sampled on *route*."""
    on_route = [h for h in pool if h.route == route]
    return on_route if n is None else on_route[:n]


def pool_prefix(pool: Sequence[Hypothesis], n: int) -> list[Hypothesis]:
    """The pool an N-hypothesis run decides on: the first *n* chains and the first *n* programs (a strategy
    takes what it needs of each; vote uses only chains, crosscheck splits N between both)."""
    return [*route_prefix(pool, None, n), *route_prefix(pool, PROGRAM_ROUTE, n)]


@dataclass
class EvalRunner:
    """Runs ``strategies`` × ``ns`` over ``items`` with at most ``concurrency`` questions in flight.

    With one strategy, one n and no pool, each question is one live ``Heavy.ask``. Otherwise the
    question's N hypotheses are sampled once (or taken from ``record``/``replay``) and every strategy
    and every n (a prefix of the pool) decides on those same hypotheses.
    """

    heavy: Heavy
    strategies: Sequence[str]
    ns: Sequence[int]
    results: ResultsFile
    concurrency: int = 4
    record: Pool | None = None
    replay: Pool | None = None
    retry_errors: bool = False
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    programs: int = 0  #: program hypotheses pooled per question beside the chains (``crosscheck`` uses them)
    on_row: Callable[[dict[str, Any]], None] | None = None
    skipped: int = field(default=0, init=False)

    @property
    def _cost(self) -> float | None:
        """$ per question: 0 on local/simulated models; unknown (None) on paid APIs until prices are known."""
        specs = [*self.heavy.specs, self.heavy.aggregator_spec]
        return 0.0 if all(not s.preset.key_required for s in specs) else None

    @property
    def pooled(self) -> bool:
        return self.record is not None or self.replay is not None or len(self.strategies) > 1 or len(self.ns) > 1

    def todo(self, items: Sequence[EvalItem]) -> list[tuple[EvalItem, list[tuple[str, int]]]]:
        done = self.results.done(self.retry_errors)
        work = []
        for item in items:
            pending = [(s, n) for s in self.strategies for n in self.ns if (item.id, s, n) not in done]
            if pending:
                work.append((item, pending))
        return work

    async def run(self, items: Sequence[EvalItem]) -> None:
        """Answer what is not in the results yet, as the one writer of the results file and record pool.

        Files not locked already are locked for the run (ConfigError if another writer has one) and released
        after it, so the rows the run resumes from cannot change under it.
        """
        owned = [f for f in (self.results, self.record) if f is not None and not f.locked]
        try:
            for f in owned:
                f.lock()
            work = self.todo(items)
            sem = asyncio.Semaphore(self.concurrency)

            async def one(item: EvalItem, pending: list[tuple[str, int]]) -> None:
                async with sem:
                    await self._question(item, pending)

            await asyncio.gather(*(one(item, pending) for item, pending in work))
        finally:
            for f in owned:
                f.close()

    async def _pool_for(self, item: EvalItem) -> tuple[list[Hypothesis] | None, float]:
        """The hypotheses every strategy of this question decides on, and the seconds spent sampling."""
        if self.replay is not None:
            return self.replay.hypotheses(item.id), 0.0
        if self.record is not None:
            recorded = self.record.hypotheses(item.id)
            if recorded is not None and len(route_prefix(recorded, None)) >= max(self.ns) and \
                    len(route_prefix(recorded, PROGRAM_ROUTE)) >= self.programs:
                return recorded, 0.0
        started = time.monotonic()
        hyps = await self.heavy.sample(item.prompt, n=max(self.ns), programs=self.programs)
        if self.record is not None:
            self.record.append({"id": item.id, "question": item.question, "gold": item.gold,
                                "model": [s.label for s in self.heavy.specs],
                                "params": self.heavy.params.model_dump(exclude_none=True),
                                "hypotheses": [h.model_dump(exclude_none=True) for h in hyps]})
        return hyps, time.monotonic() - started

    async def _question(self, item: EvalItem, pending: list[tuple[str, int]]) -> None:
        pool: list[Hypothesis] | None = None
        sample_s = 0.0
        if self.pooled:
            try:
                pool, sample_s = await self._pool_for(item)
            except HeavyError as exc:
                for strategy, n in pending:
                    self._write(item, strategy, n, error=f"{type(exc).__name__}: {exc}")
                return
            if pool is None:
                self.skipped += 1
                return  # not in the replayed pool: nothing to decide on, and no sampling allowed
        for strategy, n in pending:
            started = time.monotonic()
            try:
                result = await self.heavy.ask(
                    item.prompt, n=n, strategy=strategy, options=_with_tests(strategy, self.options.get(strategy), item),
                    pool=pool_prefix(pool, n) if pool is not None else None, live=self.replay is None,
                )
                correct = await _passes_tests(result, item) if item.tests else None
            except HeavyError as exc:
                self._write(item, strategy, n, error=f"{type(exc).__name__}: {exc}")
                continue
            wall = time.monotonic() - started + (sample_s * n / max(self.ns) if pool is not None else 0.0)
            used = [h for h in result.hypotheses if h.status != "cancelled" or h.usage.total_tokens]
            usage = Usage.sum([h.usage for h in used] + [c.usage for c in result.aggregator_calls])
            self._write(item, strategy, n, answer=result.answer, usage=usage, wall_s=wall,
                        calls=len(used) + len(result.aggregator_calls), method=result.decision.method,
                        path=result.decision.path,
                        hypothesis_answers=[h.answer for h in result.hypotheses], correct=correct)

    def _write(self, item: EvalItem, strategy: str, n: int, *, answer: str | None = None,
               usage: Usage | None = None, wall_s: float = 0.0, calls: int = 0, method: str | None = None,
               path: list[str] | None = None, error: str | None = None,
               hypothesis_answers: list[str | None] | None = None, correct: bool | None = None) -> None:
        usage = usage or Usage()
        row = {
            "id": item.id, "question": item.question, "gold": item.gold, "answer": answer,
            "correct": correct if correct is not None else (False if item.tests else is_correct(answer, item.gold)),
            "strategy": strategy, "n": n,
            "model": [s.label for s in self.heavy.specs], "total_tokens": usage.total_tokens,
            "usage": usage.model_dump(), "calls": calls, "cost_usd": self._cost, "wall_s": round(wall_s, 3),
            "method": method, "path": path, "hypothesis_answers": hypothesis_answers, "error": error,
            "ts": time.time(),
        }
        self.results.append(row)
        if self.on_row is not None:
            self.on_row(row)
