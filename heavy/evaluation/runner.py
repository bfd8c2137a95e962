"""The runner of ``heavy eval``: every (question, strategy, N) decided once, written as one results row.

With one strategy, one N and no pool, each question is one live :meth:`heavy.Heavy.ask`. Otherwise the
question's hypotheses are sampled once (or taken from a ``record``/``replay`` pool) and every strategy and
every N (a prefix of the pool) decides on those same hypotheses. A row's ``cost_usd`` is the Result's own
cost (:func:`decision_cost`); its ``correct`` is :func:`~heavy.evaluation.scoring.is_correct`, or for a code
task whether the answer's code passes the hidden ``tests``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import Heavy
from ..errors import HeavyError
from ..pricing import FREE_PRESETS, batch_cost, model_cost
from ..tools.codecheck import grading
from ..types import PROGRAM_ROUTE, Hypothesis, Result, Usage
from .files import BatchBook, Pool, ResultsFile
from .items import EvalItem, selection_tests
from .scoring import is_correct

__all__ = ["EvalRunner", "decision_cost", "pool_prefix", "route_prefix"]


def _with_tests(strategy: str, options: dict[str, Any] | None, item: EvalItem) -> dict[str, Any] | None:
    """A code task's selection tests (:func:`selection_tests`, never the grading ``tests``) and entry point
    as options of a strategy that takes them (``execute``)."""
    if not item.tests:
        return options
    from ..strategy import load_strategy

    fields = load_strategy(strategy).Options.model_fields
    given = (("tests", selection_tests(item)), ("entry_point", item.entry_point))
    extra = {k: v for k, v in given if k in fields and v}
    return {**(options or {}), **extra} if extra else options


async def _passes_tests(result: Any, item: EvalItem) -> bool:
    """Whether the code of *result*'s chosen answer passes every grading test (``tests``, hidden from the
    strategy) of the code task *item*, in the sandbox."""
    from ..answers import extract_code
    from ..tools.agent import python_blocks
    from ..tools.codecheck import passes

    blocks = python_blocks(result.text)
    code = blocks[-1] if blocks else extract_code(result.text)
    if code is None and result.decision.method == "execute":
        code = result.answer
    return await passes(code, item.tests or "", entry_point=item.entry_point)


def route_prefix(pool: Sequence[Hypothesis], route: str | None, n: int | None = None) -> list[Hypothesis]:
    """The first *n* (all, when ``None``) hypotheses of *pool* sampled on *route*."""
    on_route = [h for h in pool if h.route == route]
    return on_route if n is None else on_route[:n]


def pool_prefix(pool: Sequence[Hypothesis], n: int) -> list[Hypothesis]:
    """The pool an N-hypothesis run decides on: the first *n* chains and the first *n* programs (a strategy
    takes what it needs of each; vote uses only chains, crosscheck splits N between both)."""
    return [*route_prefix(pool, None, n), *route_prefix(pool, PROGRAM_ROUTE, n)]


def _identity(h: Hypothesis) -> tuple[Any, ...]:
    """What tells a recorded hypothesis apart when a replay serves it again (with a new index and answer)."""
    return (h.model, h.route, h.seed, h.request_id, h.text)


def decision_cost(result: Result, pool: Sequence[Hypothesis] | None,
                  price: Callable[[str, Usage], float | None] = model_cost) -> float | None:
    """$ of one decision: the Result's own cost (every call of its run, priced as the run charged them:
    :func:`heavy.pricing.model_cost`), plus, for a decision on a pool, the recorded hypotheses it took from
    the pool, priced by *price* (as a live run charges them, unless they were sampled through a batch API:
    :func:`heavy.pricing.batch_cost`): the pool's sampling was paid once for all strategies, and each row costs
    what its strategy would cost (as its tokens count them). ``None`` when a price is unknown."""
    if result.cost_usd is None or not pool:
        return result.cost_usd
    recorded: dict[tuple[Any, ...], list[Hypothesis]] = {}
    for h in pool:
        recorded.setdefault(_identity(h), []).append(h)
    total = result.cost_usd
    for h in result.hypotheses:
        same = recorded.get(_identity(h))
        if not same:
            continue  # sampled (and charged) by this run
        source = same.pop()  # its usage as recorded: a check made now is in the Result's cost already
        paid = price(source.model, source.usage)
        if paid is None:
            return None
        total += paid
    return total


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
    #: ``--batch``: the questions are sampled through the providers' batch APIs, with this book of their jobs
    #: (:mod:`heavy.evaluation.batching`), and decided on what comes back.
    batch: BatchBook | None = None
    batch_poll: float = 60.0  #: the longest pause between two looks at the running jobs (seconds)
    batch_wait: float | None = None  #: how long this run waits for its jobs (None: until they end)
    on_progress: Callable[[str], None] | None = None  #: one line of batch progress at a time
    skipped: int = field(default=0, init=False)
    still_running: list[str] = field(default_factory=list, init=False)  #: batch jobs left running (``batch_wait``)

    @property
    def _error_cost(self) -> float | None:
        """$ of a question that ended in an error (no Result says what it spent): 0 when every model of the
        run is free, else unknown."""
        specs = [*self.heavy.specs, self.heavy.aggregator_spec]
        return 0.0 if all(s.preset.name in FREE_PRESETS for s in specs) else None

    @property
    def pooled(self) -> bool:
        return (self.record is not None or self.replay is not None or self.batch is not None
                or len(self.strategies) > 1 or len(self.ns) > 1)

    def todo(self, items: Sequence[EvalItem]) -> list[tuple[EvalItem, list[tuple[str, int]]]]:
        done = self.results.done(self.retry_errors)
        work = []
        for item in items:
            pending = [(s, n) for s in self.strategies for n in self.ns if (item.id, s, n) not in done]
            if pending:
                work.append((item, pending))
        return work

    async def evaluate(self, items: Sequence[EvalItem]) -> None:
        """Answer what is not in the results yet, as the one writer of the results file and record pool.

        Files not locked already are locked for the run (ConfigError if another writer has one) and released
        after it, so the rows the run resumes from cannot change under it.
        """
        owned = [f for f in (self.results, self.record, self.batch) if f is not None and not f.locked]
        try:
            for f in owned:
                f.lock()
            work = self.todo(items)
            if self.batch is not None:
                from .batching import BatchRun

                await BatchRun(self, self.batch).run(work)
                return
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
        await self.decide(item, pending, pool, sample_s)

    async def decide(self, item: EvalItem, pending: Sequence[tuple[str, int]], pool: list[Hypothesis] | None,
                     sample_s: float = 0.0, *, batch: dict[str, Any] | None = None) -> None:
        """Decide *item* with every (strategy, n) of *pending* and write a row each: live when *pool* is None,
        else on its prefixes. *batch* (``--batch``): the pool came back from batch jobs, ``{"batch": [job ids]}``;
        its hypotheses are priced at batch prices, and the row also says what they would have cost live
        (``interactive_cost_usd``) and how many calls the decision made live (``live_calls``)."""
        for strategy, n in pending:
            started = time.monotonic()
            offered = pool_prefix(pool, n) if pool is not None else None
            try:
                result = await self.heavy.ask(
                    item.prompt, n=n, strategy=strategy, options=_with_tests(strategy, self.options.get(strategy), item),
                    pool=offered, live=self.replay is None and batch is None,
                )
                correct = await _passes_tests(result, item) if item.tests else None
            except HeavyError as exc:
                self._write(item, strategy, n, error=f"{type(exc).__name__}: {exc}", extra=batch)
                continue
            wall = time.monotonic() - started + (sample_s * n / max(self.ns) if pool is not None else 0.0)
            used = [h for h in result.hypotheses if h.status != "cancelled" or h.usage.total_tokens]
            usage = Usage.sum([h.usage for h in used] + [c.usage for c in result.aggregator_calls])
            extra = None
            if batch is not None:
                replayed = {_identity(h) for h in offered or []}
                extra = {**batch, "interactive_cost_usd": decision_cost(result, offered),
                         "live_calls": len(result.aggregator_calls) + sum(_identity(h) not in replayed for h in used)}
            self._write(item, strategy, n, answer=result.answer, usage=usage, wall_s=wall,
                        calls=len(used) + len(result.aggregator_calls), method=result.decision.method,
                        path=result.decision.path,
                        cost_usd=decision_cost(result, offered, batch_cost if batch is not None else model_cost),
                        saved_usd=result.saved_usd,
                        hypothesis_answers=[h.answer for h in result.hypotheses], correct=correct, extra=extra)

    def _write(self, item: EvalItem, strategy: str, n: int, *, answer: str | None = None,
               usage: Usage | None = None, wall_s: float = 0.0, calls: int = 0, method: str | None = None,
               path: list[str] | None = None, error: str | None = None, cost_usd: float | None = None,
               saved_usd: float | None = 0.0, hypothesis_answers: list[str | None] | None = None, correct: bool | None = None,
               extra: dict[str, Any] | None = None) -> None:
        usage = usage or Usage()
        if error is not None:
            cost_usd = self._error_cost
        row = {
            "id": item.id, "question": item.question, "gold": item.gold, "answer": answer,
            "correct": correct if correct is not None else (False if item.tests else is_correct(answer, item.gold)),
            "strategy": strategy, "n": n,
            "model": [s.label for s in self.heavy.specs], "total_tokens": usage.total_tokens,
            "usage": usage.model_dump(), "calls": calls, "cost_usd": cost_usd, "saved_usd": saved_usd,
            "wall_s": round(wall_s, 3),
            "method": method, "path": path, "hypothesis_answers": hypothesis_answers, "error": error,
            **({"graded": grading(item.tests)} if item.tests else {}), **(extra or {}), "ts": time.time(),
        }
        self.results.append(row)
        if self.on_row is not None:
            self.on_row(row)
