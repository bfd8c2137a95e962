"""``heavy tune``: the user's own data chooses the strategy.

Configuration search over inference-time systems (Archon, Saad-Falcon et al., 2024) on a budget a small
model can afford: every question is sampled **once** into a pool (chains, and programs where the python tool
is on; ``heavy eval --record``'s format, so a pool recorded by ``heavy eval`` is reused as is), and every
configuration that applies is decided on that same pool (the replay of ``heavy eval --replay``): the registered
strategies at N in {1, 2, 4, 8}, and the options that matter (vote's early stop, crosscheck's early stop,
program share, route-weighted decision and where to verify, heavy with and without programs, ``--verify
python``). Only judge, synthesis and check calls are live. The questions are cut into a **tune half** and a
**check half** (a fixed seed; stratified by a row's ``category`` when rows carry one): the recommendation is
the best configuration on the tune half within the user's budget, and the figure it is reported with is its
check-half accuracy, which played no part in choosing it (:mod:`.tune_report`).

What applies (:func:`plan`):

* **Skipped**: strategies whose later rounds are new samples of the model (``debate``, ``moa``, ``refine``,
  ``rsa``: a pool holds only their first round, so they cannot be replayed; a plugin strategy that samples
  beyond the pool is found on its first question and skipped from then on, its rows saying why); strategies
  that run code (``crosscheck``, ``runs_code``) without ``--tools python``; ``confidence`` when the pool has no
  token logprobs (it would be the vote again); ``execute`` on questions (it ranks code by tests).
* **Code tasks** (rows with ``tests``, hidden from every strategy, as ``heavy eval`` keeps them): pass@1
  (expected over the pool's samples), vote, and ``execute`` with and without probes; a dataset mixing code
  tasks and questions is refused.
* **N = 1** is one sample whatever decides it: one row (vote@1), plus one program and one checked chain where
  the python tool is on.
* **The python tool**: a configuration that samples programs, runs code or checks answers (crosscheck, heavy
  with its program share, ``--verify``) is decided, and recommended, with it; every other one without it, as
  its chains were sampled (plain completions), so what ``--write-config`` writes runs what was measured.

Resumable as ``heavy eval`` is: the pool (``DIR/pool.jsonl``) and the decisions (``DIR/tune-results.jsonl``) are
append-only, and re-running the same command samples nothing and decides nothing twice. Each distinct program
runs once per run, and each chain's ``--verify`` check is one call (every configuration then sees the same
output, and still pays for it), so a replay's time is its decision's own.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..answers import is_code_answer
from ..errors import ConfigError, HeavyError
from ..events import Event, HypothesisStarted, StageStarted
from ..sampler import replay_pace
from ..settings import RunSettings
from ..types import PROGRAM_ROUTE, Hypothesis, Result, Usage
from .files import Pool, ResultsFile
from .items import EvalItem
from .runner import _passes_tests, _with_tests, decision_cost, pool_prefix, route_prefix
from .scoring import is_correct

__all__ = ["Config", "TunePlan", "TuneReport", "plan", "split_halves", "categories_of", "tune", "GENERATING",
           "PASS_AT_1", "POOL", "RESULTS"]

POOL = "pool.jsonl"  #: the run's pool, in DIR
RESULTS = "tune-results.jsonl"  #: the run's decisions, one row per (question, configuration), in DIR
#: Replays serve each pooled sample after its recorded latency, scaled so the slowest sample of the pool comes
#: after this many seconds: early stops cut where they would have live (:data:`heavy.sampler.replay_pace`).
PACE_SPAN = 0.02
PASS_AT_1 = "pass@1"  #: code tasks: the expected accuracy of one sample, computed from the pool (not a strategy)

#: Strategies whose later rounds are new samples of the model: a pool cannot replay them.
GENERATING = {"debate": "its later rounds are new samples", "moa": "its later layers are new samples",
              "refine": "its revisions are new samples", "rsa": "its aggregation steps are new samples"}

#: The options that matter, per strategy (every other strategy runs with its defaults).
_GRID: dict[str, list[dict[str, Any]]] = {
    "vote": [{}, {"early_stop": True}],
    "heavy": [{}],
    "crosscheck": [{}, {"early_stop": False}, {"programs": 0.5}, {"programs": 0.5, "early_stop": False},
                   {"programs": 1.0, "early_stop": False},
                   {"programs": 0.5, "early_stop": False, "program_override": 0.75}],
}
_GRID_PYTHON = {"heavy": [{"programs": 0}]}  #: more, where the python tool is on
_VERIFIED = {"vote": [{}], "crosscheck": [{}, {"verify": "unsettled"}]}  #: with --verify python
_CODE_GRID = {"vote": [{}], "execute": [{}, {"probes": 0}]}


@dataclass(frozen=True)
class Config:
    """One configuration: a strategy at N with options, deciding with ``--verify python`` or not, and with the
    python tool on (``tools``: it samples programs, runs code or checks answers, so ``heavy ask`` needs
    ``--tools python`` to run it) or off (its chains are plain completions, as the pool's chains are)."""

    strategy: str
    n: int
    options: tuple[tuple[str, Any], ...] = ()
    verify: bool = False
    tools: bool = False

    @classmethod
    def of(cls, strategy: str, n: int, options: dict[str, Any] | None = None, **kw: Any) -> Config:
        return cls(strategy, n, tuple(sorted((options or {}).items())), **kw)

    @property
    def label(self) -> str:
        """The configuration without its N, e.g. ``crosscheck early_stop=false programs=0.5 +verify``."""
        opts = " ".join(f"{k}={_show(v)}" for k, v in self.options)
        return " ".join(x for x in (self.strategy, opts, "+verify" if self.verify else "") if x)

    @property
    def runnable(self) -> bool:
        """A configuration ``heavy ask`` can run (pass@1 is a figure of the pool, not a way to decide)."""
        return self.strategy != PASS_AT_1

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "n": self.n, "options": dict(self.options), "verify": self.verify,
                "tools": self.tools, "label": self.label}


def _show(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class TunePlan:
    """The configurations one run decides, and the strategies it skips with the reason for each."""

    configs: list[Config]
    skipped: dict[str, str]


def plan(names: Sequence[str], *, ns: Sequence[int], python: bool, code: bool, logprobs: bool,
         runs_code: Callable[[str], bool] = lambda name: False,
         uses_programs: Callable[[str, dict[str, Any]], bool] = lambda name, options: False) -> TunePlan:
    """Which configurations of the strategies *names* apply (see the module docstring for the rules). *runs_code*:
    the strategy cannot run without the python tool; *uses_programs*: with these options it samples programs
    where the tool is on (``heavy``), so it is measured, and recommended, with the tool."""
    configs: list[Config] = []
    skipped: dict[str, str] = {}
    top = [n for n in ns if n >= 2]
    if 1 in ns:
        if code:
            configs += [Config.of(PASS_AT_1, 1), Config.of("vote", 1)]
        else:
            configs.append(Config.of("vote", 1))
            if python:
                configs += [Config.of("crosscheck", 1, {"early_stop": False, "programs": 1.0}, tools=True),
                            Config.of("vote", 1, verify=True, tools=True)]
    for name in names:
        if code:
            if name not in _CODE_GRID:
                skipped[name] = "code tasks are compared on pass@1, vote and execute"
                continue
            configs += [Config.of(name, n, o) for o in _CODE_GRID[name] for n in top]
            continue
        if name in GENERATING:
            skipped[name] = f"{GENERATING[name]}, which a pool cannot replay"
        elif name == "execute":
            skipped[name] = "it ranks code by tests: for code tasks (rows with 'tests')"
        elif runs_code(name) and not python:
            skipped[name] = "it runs the programs it samples: needs --tools python"
        elif name == "confidence" and not logprobs:
            skipped[name] = "the pool has no token logprobs (record it with heavy eval --logprobs K)"
        else:
            grid = _GRID.get(name, [{}]) + (_GRID_PYTHON.get(name, []) if python else [])
            configs += [Config.of(name, n, o, tools=python and (runs_code(name) or uses_programs(name, o)))
                        for o in grid for n in top]
            if python:
                configs += [Config.of(name, n, o, verify=True, tools=True) for o in _VERIFIED.get(name, [])
                            for n in top]
    return TunePlan(configs, skipped)


def split_halves(items: Sequence[EvalItem], categories: dict[str, str] | None = None, seed: int = 0) -> dict[str, str]:
    """Question id -> ``"tune"`` or ``"check"``: each category (all questions, without categories) shuffled with
    *seed* and cut in two; an odd one out goes to the tune half and the check half in turn."""
    groups: dict[str, list[str]] = {}
    for item in items:
        groups.setdefault((categories or {}).get(item.id, ""), []).append(item.id)
    rng = random.Random(seed)
    halves: dict[str, str] = {}
    extra_to_tune = True
    for key in sorted(groups):
        ids = list(groups[key])
        rng.shuffle(ids)
        k = len(ids) // 2 + (len(ids) % 2 if extra_to_tune else 0)
        if len(ids) % 2:
            extra_to_tune = not extra_to_tune
        halves.update({i: "tune" for i in ids[:k]})
        halves.update({i: "check" for i in ids[k:]})
    return halves


class _OnceEach:
    """The python tool, each distinct program run once per tune run: every configuration replayed on a pool
    sees the same output of the same program, and a replay's time is its decision's (the pool's latencies
    already hold each program's run)."""

    def __init__(self, tool: Any) -> None:
        self.tool = tool
        self._runs: dict[str, asyncio.Future[Any]] = {}

    async def run(self, code: str) -> Any:
        if code not in self._runs:
            self._runs[code] = asyncio.ensure_future(self.tool.run(code))
        return await asyncio.shield(self._runs[code])


#: The recorded seconds of the ``--verify`` check calls a decision was served from :class:`_ChecksOnce` (their
#: longest is added to its time: a live run makes them, each after its own chain, in parallel).
_SERVED_CHECKS: ContextVar[list[float] | None] = ContextVar("heavy_tune_served_checks", default=None)


class _ChecksOnce:
    """``--verify``'s check calls made once per tune run. A live run makes one check call per chain (the
    question's check prompt at that chain's seed); every configuration deciding on the same pooled chain (vote
    at N = 1, 2, 4, 8, crosscheck's splits) would make that same call again, so it is made once and its reply
    shared, as :class:`_OnceEach` shares a program's run. Each decision still pays the check's tokens, and its
    time includes the check's recorded seconds. A failed call is not kept: the next decision makes it again."""

    def __init__(self, verifier: Any) -> None:
        self.verifier = verifier
        self._calls: dict[tuple[Any, ...], tuple[asyncio.Future[Any], list[float]]] = {}

    def __getattr__(self, name: str) -> Any:  # tool, penalty: the wrapped verifier's
        return getattr(self.verifier, name)

    async def check(self, h: Hypothesis, messages: Sequence[Any], call: Callable[..., Any], *, emit: Any) -> Hypothesis:
        async def once(prompt: Sequence[Any], tools: Any) -> Any:
            key = (h.model, h.seed, h.text, repr(list(prompt)), repr(tools))
            held = self._calls.get(key)
            if held is not None and held[0].done() and (held[0].cancelled() or held[0].exception() is not None):
                held = None
            if held is None:
                seconds: list[float] = []
                held = self._calls[key] = (asyncio.ensure_future(self._timed(call(prompt, tools), seconds)), seconds)
            elif held[0].done() and (served := _SERVED_CHECKS.get()) is not None:
                served.extend(held[1])
            return await asyncio.shield(held[0])

        return await self.verifier.check(h, messages, once, emit=emit)

    @staticmethod
    async def _timed(pending: Any, seconds: list[float]) -> Any:
        started = time.monotonic()
        reply = await pending
        seconds.append(time.monotonic() - started)
        return reply


def _once_each(heavy: Any, shared: _OnceEach | None = None) -> Any:
    """*heavy* with its python tool (programs and ``--verify`` checks) running each program once (*shared*: the
    runs another Heavy of the same tune run made)."""
    if heavy.python is not None:
        heavy.python = shared or _OnceEach(heavy.python)
        if heavy.verifier is not None:
            heavy.verifier.tool = heavy.python
            heavy.verifier = _ChecksOnce(heavy.verifier)
    return heavy


def _clean(pool: list[Hypothesis]) -> list[Hypothesis]:
    """A pooled sample without the ``--verify`` check it may have been recorded with: tune makes its own checks."""
    return [h.model_copy(update={"steps": [s for s in h.steps if s.protocol != "verify"] or None, "weight": None})
            if h.steps or h.weight is not None else h for h in pool]


def _identity(h: Hypothesis) -> tuple[Any, ...]:
    return (h.model, h.route, h.seed, h.request_id, h.text)


@dataclass
class _Waves:
    """Which sampling wave each hypothesis of a replay started in: a wave is what a strategy asks for between two
    of its stages (crosscheck's first pair, then the rest; adaptive's waves), sampled in parallel."""

    stage: int = 0
    wave: dict[int, int] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        if isinstance(event, StageStarted):
            self.stage += 1
        elif isinstance(event, HypothesisStarted):
            self.wave.setdefault(event.index, self.stage)


def _sampling_seconds(used: Sequence[Hypothesis], waves: _Waves) -> float:
    """What sampling *used* would take live: the waves one after another, each as long as its slowest sample."""
    longest: dict[int, float] = {}
    for h in used:
        w = waves.wave.get(h.index, 0)
        longest[w] = max(longest.get(w, 0.0), h.latency_s)
    return sum(longest.values())


@dataclass
class Tuner:
    """One tune run: samples the pool, then decides every configuration of the plan on it (see :func:`tune`)."""

    settings: RunSettings
    items: list[EvalItem]
    ns: list[int]
    concurrency: int = 4
    transport: Any = None
    on_progress: Callable[[str], None] | None = None
    code: bool = field(init=False)  #: the questions are code tasks
    python: bool = field(init=False)  #: programs run (the python tool is on, and these are not code tasks)
    programs: int = field(init=False)  #: program hypotheses pooled per question
    session: Any = field(init=False)  #: the connections, limits and tools every Heavy of the run shares

    def __post_init__(self) -> None:
        kinds = {item.tests is not None for item in self.items}
        if len(kinds) > 1:
            raise ConfigError("the dataset mixes code tasks (rows with 'tests') and questions with answers: tune "
                              "them separately (one file each)")
        self.code = kinds == {True}
        self.python = not self.code and "python" in (self.settings.tools or [])
        self.programs = max(self.ns) if self.python else 0
        from ..session import Session

        self.session = Session(self.settings, transport=self.transport)

    async def aclose(self) -> None:
        """Close the run's connections and tools."""
        await self.session.aclose()

    def _say(self, line: str) -> None:
        if self.on_progress is not None:
            self.on_progress(line)

    def _heavy(self, **values: Any) -> Any:
        from ..api import Heavy

        base = {"n": max(self.ns), "strategy": "vote", "options": {}, "verify": None}
        return Heavy(settings=self.settings.merged(**{**base, **values}), session=self.session)

    # --- the pool --------------------------------------------------------------------------------------

    async def sample(self, pool: Pool) -> dict[str, list[Hypothesis]]:
        """Every question's pooled hypotheses, sampling (and recording) those the pool lacks."""
        found: dict[str, list[Hypothesis]] = {}
        todo = []
        for item in self.items:
            hyps = pool.hypotheses(item.id)
            if hyps is not None and len(route_prefix(hyps, None)) >= max(self.ns) and \
                    len(route_prefix(hyps, PROGRAM_ROUTE)) >= self.programs:
                found[item.id] = _clean(hyps)
            else:
                todo.append(item)
        if not todo:
            self._say(f"heavy tune: the pool has all {len(self.items)} questions: nothing to sample")
            return found
        self._say(f"heavy tune: sampling {len(todo)} question(s) ({max(self.ns)} chains"
                  + (f" + {self.programs} programs" if self.programs else "") + " each); "
                  f"{len(found)} already in the pool")
        heavy = self._heavy()
        sem = asyncio.Semaphore(self.concurrency)

        async def one(item: EvalItem) -> None:
            async with sem:
                hyps = await heavy.sample(item.prompt, n=max(self.ns), programs=self.programs)
                pool.append({"id": item.id, "question": item.question, "gold": item.gold,
                             "model": [s.label for s in heavy.specs],
                             "params": heavy.params.model_dump(exclude_none=True),
                             "hypotheses": [h.model_dump(exclude_none=True) for h in hyps]})
                found[item.id] = _clean(hyps)

        outcomes = await asyncio.gather(*(one(item) for item in todo), return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed:  # what was sampled is in the pool: the next run samples only the rest
            raise failed[0]
        return found

    # --- deciding --------------------------------------------------------------------------------------

    async def decide(self, pools: dict[str, list[Hypothesis]], results: ResultsFile, the_plan: TunePlan) -> None:
        """Decide every (question, configuration) the results file lacks."""
        done = {(r["id"], r.get("config"), r["n"]) for r in results.rows if "config" in r}
        refused = {r["config"]: (r["strategy"], r["error"]) for r in results.rows if r.get("beyond_pool")}
        configs = [c for c in the_plan.configs if c.label not in refused]
        for strategy, why in refused.values():
            the_plan.skipped.setdefault(strategy, why)
        work = [(item, [c for c in configs if (item.id, c.label, c.n) not in done]) for item in self.items]
        work = [(item, cs) for item, cs in work if cs]
        total = sum(len(cs) for _, cs in work)
        if not total:
            return
        already = len(self.items) * len(configs) - total
        self._say(f"heavy tune: deciding {total} (question, configuration) pair(s) on the pool"
                  + (f"; {already} already in {results.path}" if already else ""))
        # One Heavy per (verify, tools) a configuration decides with: without the tool a chain that answers with
        # code keeps its text (code tasks vote on it), with it the chain's program runs, as heavy ask would.
        deciders = {(False, False): self._heavy(tools=None)}
        if self.python:
            deciders[(False, True)] = _once_each(self._heavy())
            deciders[(True, True)] = _once_each(self._heavy(verify="python"), deciders[(False, True)].python)
            await self._warm(deciders[(False, True)], pools)
        slowest = max((h.latency_s for hyps in pools.values() for h in hyps), default=0.0)
        paced = replay_pace.set(PACE_SPAN / slowest if slowest > 0 else None)  # the tasks below inherit it
        sem = asyncio.Semaphore(self.concurrency)
        beyond: dict[str, tuple[str, str]] = {}  # label -> (strategy, why): found to sample beyond the pool

        async def one(item: EvalItem, pending: list[Config]) -> None:
            async with sem:
                for config in pending:
                    if config.label in beyond:
                        continue
                    row = await (self._pass_at_1(item, pools[item.id]) if not config.runnable else
                                 self._decide(deciders[(config.verify, config.tools)], item, config,
                                              pools[item.id]))
                    if row.get("beyond_pool"):
                        beyond[config.label] = (config.strategy, row["error"])
                    results.append(row)

        try:
            await asyncio.gather(*(one(item, cs) for item, cs in work))
        finally:
            replay_pace.reset(paced)
        for strategy, why in beyond.values():
            the_plan.skipped.setdefault(strategy, why)

    async def _warm(self, heavy: Any, pools: dict[str, list[Hypothesis]]) -> None:
        """Run each pooled program once before any decision is timed (see :class:`_OnceEach`)."""
        if heavy.python is None:
            return
        from ..answers import final_answer
        from ..tools.program import program_code

        codes = {program_code(h.text) for hyps in pools.values() for h in hyps
                 if h.ok and (h.route == PROGRAM_ROUTE or is_code_answer(final_answer(h.text)))}
        codes.discard(None)
        await asyncio.gather(*(heavy.python.run(c) for c in codes), return_exceptions=True)

    async def _decide(self, heavy: Any, item: EvalItem, config: Config, pool: list[Hypothesis]) -> dict[str, Any]:
        offered = pool_prefix(pool, config.n)
        waves = _Waves()
        served: list[float] = []
        token = _SERVED_CHECKS.set(served)
        started = time.monotonic()
        try:
            result = await heavy.ask(item.prompt, n=config.n, strategy=config.strategy, on_event=waves,
                                     options=_with_tests(config.strategy, dict(config.options), item),
                                     pool=offered, live=False)
            # grading by the hidden tests is not part of deciding; a shared check counts as made here
            decide_s = time.monotonic() - started + max(served, default=0.0)
            correct = await _passes_tests(result, item) if item.tests else is_correct(result.answer, item.gold)
        except HeavyError as exc:
            return self._row(item, config, error=f"{type(exc).__name__}: {exc}")
        finally:
            _SERVED_CHECKS.reset(token)
        replayed = {_identity(h) for h in offered}
        used = [h for h in result.hypotheses if h.status != "cancelled" or h.usage.total_tokens]
        live_samples = sum(_identity(h) not in replayed for h in used)
        checks = sum(1 for h in used for s in h.steps or [] if s.protocol == "verify")
        sample_s = _sampling_seconds([h for h in used if _identity(h) in replayed], waves)
        row = self._row(item, config, result=result, correct=correct, used=used, checks=checks,
                        sample_s=sample_s, decide_s=decide_s, cost=decision_cost(result, offered))
        if live_samples:  # a plugin strategy that generates: its rounds after the first are not in any pool
            row.update(beyond_pool=True, error=f"{config.strategy} sampled {live_samples} new hypothesis(es) beyond "
                       "the pool (later rounds), which tune cannot replay")
        return row

    async def _pass_at_1(self, item: EvalItem, pool: list[Hypothesis]) -> dict[str, Any]:
        """The expected accuracy of one sample: the share of the pooled chains whose code passes the hidden tests."""
        from ..tools.codecheck import passes
        from ..tools.agent import python_blocks
        from ..answers import extract_code

        chains = route_prefix(pool, None, max(self.ns))
        graded: list[bool] = []
        for h in chains:
            blocks = python_blocks(h.text) if h.ok else []
            code = blocks[-1] if blocks else extract_code(h.text) if h.ok else None
            graded.append(bool(code) and await passes(code, item.tests or "", entry_point=item.entry_point))
        k = len(chains) or 1
        usage = Usage.sum([h.usage for h in chains])
        row = self._row(item, Config.of(PASS_AT_1, 1), correct=bool(graded and graded[0]))
        row.update(pass_rate=sum(graded) / k, total_tokens=usage.total_tokens / k, calls=1,
                   wall_s=round(sum(h.latency_s for h in chains) / k, 3), sample_passes=graded)
        return row

    def _row(self, item: EvalItem, config: Config, *, result: Result | None = None, correct: bool = False,
             used: Sequence[Hypothesis] = (), checks: int = 0, sample_s: float = 0.0, decide_s: float = 0.0,
             cost: float | None = None, error: str | None = None) -> dict[str, Any]:
        """One results row (a ``heavy eval`` row, plus the configuration and where its seconds come from)."""
        from ..tools.codecheck import grading

        calls = list(result.aggregator_calls) if result is not None else []
        usage = Usage.sum([h.usage for h in used] + [c.usage for c in calls])
        return {
            "id": item.id, "question": item.question, "gold": item.gold,
            "answer": result.answer if result is not None else None, "correct": bool(correct),
            "strategy": config.strategy, "n": config.n, "config": config.label, "options": dict(config.options),
            "verify": config.verify, "tools": config.tools, "model": [s for s in self.settings.model],
            "total_tokens": usage.total_tokens, "usage": usage.model_dump(),
            "calls": len(used) + len(calls) + checks, "live_calls": len(calls) + checks, "cost_usd": cost,
            "wall_s": round(sample_s + decide_s, 3), "sample_s": round(sample_s, 3), "decide_s": round(decide_s, 3),
            "method": result.decision.method if result is not None else None,
            "path": result.decision.path if result is not None else None,
            "hypothesis_answers": [h.answer for h in result.hypotheses] if result is not None else None,
            "error": error, **({"graded": grading(item.tests)} if item.tests else {}), "ts": time.time(),
        }


@dataclass
class TuneReport:
    """What a tune run found: the plan it decided (and what it skipped), each question's half, the decisions
    (rows of the results file), the table (one row per configuration and half: :func:`.tune_report.summarize`)
    and the recommendation with how it was chosen (:func:`.tune_report.recommend`; None when nothing qualifies)."""

    plan: TunePlan
    halves: dict[str, str]
    decisions: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    recommendation: dict[str, Any] | None
    chosen_by: str
    split_seed: int = 0
    stratified: bool = False

    def as_json(self) -> dict[str, Any]:
        """``heavy tune --json``: ``{"rows": [...], "recommendation": {...}}`` and how it came about."""
        split = {h: sum(1 for v in self.halves.values() if v == h) for h in ("tune", "check")}
        return {"rows": self.rows, "recommendation": self.recommendation, "chosen_by": self.chosen_by,
                "skipped": self.plan.skipped,
                "halves": {**split, "split_seed": self.split_seed, "stratified": self.stratified}}


async def tune(settings: RunSettings, items: list[EvalItem], folder: str | Path, *, ns: Sequence[int] = (1, 2, 4, 8),
               strategies: Sequence[str] | None = None, categories: dict[str, str] | None = None,
               split_seed: int = 0, max_tokens: float | None = None, max_calls: float | None = None,
               concurrency: int = 4, transport: Any = None,
               on_progress: Callable[[str], None] | None = None) -> TuneReport:
    """Sample *items* into ``folder/pool.jsonl`` (what it lacks), decide every configuration that applies on it
    into ``folder/tune-results.jsonl`` (what that lacks), and report: the table and the best configuration on the
    tune half within the budget (*max_tokens*, *max_calls* per question), with its check-half figures.
    *settings* are the run options (the model, sampling, tools); *strategies* narrows the registered ones;
    *categories* (question id -> category) stratifies the split; *transport* goes to every :class:`~heavy.Heavy`
    (tests put the simulator there)."""
    from ..strategy import load_strategy, registered_strategies
    from .tune_report import command, recommend, summarize

    ns = sorted(set(ns))
    if not ns or ns[0] < 1:
        raise ConfigError("--ns takes Ns of at least 1, e.g. 1,2,4,8")
    if len(items) < 2:
        raise ConfigError(f"tune needs at least 2 questions (got {len(items)}): one half chooses, the other checks")
    names = list(strategies) if strategies else sorted(registered_strategies())
    for name in names:
        load_strategy(name)  # an unknown name is a one-line error naming the registered ones
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--results {folder}: a file, not a folder: give tune a folder of its own")
    tuner = Tuner(settings, items, ns, concurrency, transport, on_progress)
    pool = Pool(folder / POOL, lock=True)
    results = ResultsFile(folder / RESULTS, lock=True)
    try:
        results.done()  # refuses a file that is not ours before anything is written
        pools = await tuner.sample(pool)
        logprobs = all(any(h.logprobs for h in hyps) for hyps in pools.values())
        the_plan = plan(names, ns=ns, python=tuner.python, code=tuner.code, logprobs=logprobs,
                        runs_code=lambda name: bool(getattr(load_strategy(name), "runs_code", False)),
                        uses_programs=_uses_programs)
        await tuner.decide(pools, results, the_plan)
    finally:
        pool.close()
        results.close()
        await tuner.aclose()
    ids = {item.id for item in items}
    decisions = [r for r in results.rows if r.get("id") in ids and "config" in r]
    halves = split_halves(items, categories, split_seed)
    rows = summarize(the_plan, halves, decisions)
    rec, how = recommend(rows, max_tokens=max_tokens, max_calls=max_calls)
    if rec is not None:
        rec["command"] = command(rec, settings.model)
    return TuneReport(the_plan, halves, decisions, rows, rec, how, split_seed, bool(categories))


def _uses_programs(name: str, options: dict[str, Any]) -> bool:
    """Whether strategy *name* with *options* samples programs where the python tool is on: it has a ``programs``
    share (``heavy``) that is not 0."""
    from ..strategy import load_strategy

    field = load_strategy(name).Options.model_fields.get("programs")
    return field is not None and bool(options.get("programs", field.default))


def categories_of(path: str | Path, items: Sequence[EvalItem]) -> dict[str, str]:
    """Question id -> the ``category`` of its dataset row (rows without one have none), for a stratified split.
    The dataset was read by :func:`~heavy.evaluation.items.load_items` already, so every line is valid JSON."""
    import json

    by_question: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8-sig").split("\n"):
        if line.strip():
            row = json.loads(line)
            if isinstance(row, dict) and row.get("category") is not None and isinstance(row.get("question"), str):
                by_question.setdefault(row["question"], str(row["category"]))
    return {item.id: by_question[item.question] for item in items if item.question in by_question}
