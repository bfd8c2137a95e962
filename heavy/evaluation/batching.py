"""``heavy eval --batch``: the sampling of a whole dataset as provider batch jobs, each question decided as its
samples come back.

Every (question, slot) of the run (slot ``i`` of ``0 .. N-1`` is the request a live run would send for
hypothesis ``i``: the same model, messages, parameters and seed ``seed + i``) goes into batch jobs, cut to the
provider's limits (:mod:`heavy.batch`). A question whose N samples are all back is decided by each strategy on
them as a replayed pool (:class:`~heavy.sampler.ReplaySampler`, no live sampling of the question); what a
strategy asks beyond the pool (a judge's verdict, a debate's later rounds) is asked live, at interactive
prices, and the row counts it (``live_calls``).

**The books.** Beside the results file, ``OUT.jsonl.batches`` (:class:`~heavy.evaluation.files.BatchBook`)
records each job before it is created (its tag and requests), then its id, its end, and what came back. So a
run that is stopped, killed or loses its network is resumed by running the same command again: jobs are picked
up, not created again; answers already back are not fetched again into new rows; questions already decided
are not decided again (the results file says so). A job whose creation answer was lost is found by its tag.

**A damaged book** (a line that is not JSON before its last line, :attr:`BatchBook.salvaged`) is reported with
file:line and never makes a request be paid twice: a damaged ``submit`` line's job is found by its tag (or its
id on a ``job`` row) and its requests are read back from the provider (OpenAI's input file, or the results once
the job ends; until then nothing more of that model is submitted); a damaged ``samples`` line is fetched again
from the ended jobs that hold its question. A damaged line whose row id is gone, or whose job cannot be told
apart (Anthropic keeps no tags), is a ConfigError naming it. Only a torn last line counts as never written.

**Nothing paid twice.** A request is submitted again only when its job said it never ran (expired in the
24-hour window, never billed; or no result line while the job's counts say it did not complete), at most
:data:`MAX_ATTEMPTS` times in all; with ``--retry-errors``, a request that errored (not billed either) is
submitted again too. A request whose result line is missing or unreadable while its job says it completed (or
cannot say which did) is *lost*: a failed sample naming the job and its custom_id, never bought again.

**Prices.** A row's ``cost_usd`` prices its batch samples at the provider's batch price
(:func:`heavy.pricing.batch_cost`) and its live calls as usual; ``interactive_cost_usd`` is the same decision
with every call at interactive prices; ``batch`` lists the jobs its samples came from.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from datetime import datetime, timezone
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..answers import final_answer
from ..batch import BATCH_WIRES, BatchClient, BatchFailure, BatchJob, BatchRequest, BatchResults, batch_client
from ..errors import ConfigError, FatalRequestError
from ..models import ModelSpec
from ..pricing import BATCH_MULTIPLIERS
from ..providers.base import Completion, CompletionRequest
from ..types import Hypothesis, as_messages
from .files import BatchBook, Damaged
from .items import EvalItem
from .runner import route_prefix

if TYPE_CHECKING:
    from ..api import Heavy
    from .runner import EvalRunner

__all__ = ["BatchRun", "check_batch_models", "custom_id", "batch_savings", "MAX_ATTEMPTS"]

#: How many times in all one request may be submitted when its jobs keep saying it never ran.
MAX_ATTEMPTS = 3


#: The tags heavy gives its jobs.
_TAG = re.compile(r"^heavy-[0-9a-f]{20}$")


def custom_id(item_id: str, slot: int) -> str:
    """The ``custom_id`` of a question's slot: the same in every job and every run (1-64 characters of
    ``[A-Za-z0-9_-]``, whatever the question's id is)."""
    return f"q{hashlib.sha256(item_id.encode()).hexdigest()[:32]}-{slot}"


def check_batch_models(heavy: Heavy) -> None:
    """Refuse models without a batch API heavy speaks, naming the fix (the sampling models only: an aggregator
    answers live)."""
    for spec in heavy.specs:
        if spec.preset.wire == "sim":
            raise ConfigError("the in-process sim model forgets its batch jobs when heavy exits: serve it with "
                              "`heavy sim --port 8399` and use -m openai:heavy-simulated --base-url "
                              "http://127.0.0.1:8399/v1 --batch")
        if spec.preset.wire not in BATCH_WIRES or spec.preset.name not in BATCH_MULTIPLIERS:
            raise ConfigError(f"{spec.label} has no batch API heavy speaks (--batch works with "
                              f"{', '.join(p + ':' for p in BATCH_MULTIPLIERS)} models): drop --batch to sample "
                              "interactively")


def batch_savings(rows: Sequence[dict[str, Any]], ids: set[str] | None = None) -> tuple[float, float, int] | None:
    """``($ at batch prices, $ at interactive prices, live calls)`` over the batch rows (the last row of each
    question's strategy and N, only *ids* when given); ``None`` without batch rows or when a price is unknown."""
    latest = {(r["id"], r.get("strategy"), r.get("n")): r for r in rows
              if "batch" in r and (ids is None or r["id"] in ids)}
    done = [r for r in latest.values() if not r.get("error")]
    paid = [(r.get("cost_usd"), r.get("interactive_cost_usd")) for r in done]
    if not paid or any(a is None or b is None for a, b in paid):
        return None
    return sum(a for a, _ in paid), sum(b for _, b in paid), sum(int(r.get("live_calls") or 0) for r in done)


@dataclass
class _Submission:
    """One job as the book knows it."""

    tag: str
    label: str
    endpoint: str
    requests: dict[str, tuple[str, int]]  #: custom_id -> (question id, slot)
    ts: float
    batch_id: str | None = None
    ended: bool = False
    job: BatchJob | None = None  #: its last known state (this run)
    #: Its requests are not all known (its submit line is damaged and the provider cannot tell yet): nothing
    #: more of its model is submitted until it ends and its results say what it held.
    opaque: bool = False
    recollect: set[str] = field(default_factory=set)  #: questions whose samples are fetched again from it


@dataclass
class BatchRun:
    """One ``heavy eval --batch`` run over the questions an :class:`~heavy.evaluation.runner.EvalRunner` has
    left to do (see the module docstring)."""

    runner: EvalRunner
    book: BatchBook
    items: dict[str, EvalItem] = field(default_factory=dict)  #: the questions left to decide, by id
    pending: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  #: their (strategy, n) to write
    subs: dict[str, _Submission] = field(default_factory=dict)
    #: question id -> slot -> (hypothesis, the job it came from)
    samples: dict[str, dict[int, tuple[Hypothesis, str]]] = field(default_factory=dict)
    _clients: dict[str, BatchClient] = field(default_factory=dict)
    _decisions: list[asyncio.Task] = field(default_factory=list)
    _decided: set[str] = field(default_factory=set)
    _sem: Any = None  #: bounds the decisions in flight (made in the running loop)
    _last: str = ""
    _orphans: dict[str, str] = field(default_factory=dict)  #: tag -> batch_id of job rows without a submit row
    _ended_tags: set[str] = field(default_factory=set)  #: tags the book has an ``ended`` row of

    @property
    def heavy(self) -> Heavy:
        return self.runner.heavy

    @property
    def n(self) -> int:
        return max(self.runner.ns)

    # --- the run -----------------------------------------------------------------------------------

    async def run(self, work: Sequence[tuple[EvalItem, list[tuple[str, int]]]]) -> None:
        """Submit, pick up, poll and decide until every question of *work* is decided (or ``batch_wait`` ends)."""
        check_batch_models(self.heavy)
        self.items = {item.id: item for item, _ in work}
        self.pending = {item.id: pending for item, pending in work}
        self._sem = asyncio.Semaphore(self.runner.concurrency)
        self._read()
        try:
            await self._salvage()
            running = [s for s in self.subs.values() if not s.ended]
            if running:
                self._say(f"picking up {len(running)} batch job(s) from {self.book.path}")
            for sub in running:
                if sub.batch_id is None:
                    await self._adopt(sub)
            self._decide_ready()
            await self._submit_missing()
            await self._poll()
            await asyncio.gather(*self._decisions)
        finally:
            for d in self._decisions:
                d.cancel()
            for client in self._clients.values():
                await client.provider.aclose()

    def _say(self, message: str) -> None:
        if self.runner.on_progress is not None and message != self._last:
            self._last = message
            self.runner.on_progress(f"heavy eval --batch: {message}")

    # --- the book ------------------------------------------------------------------------------------

    def _read(self) -> None:
        """The book's rows (their shapes checked by :class:`BatchBook`) as submissions and samples, in any order;
        a ``job`` row without a ``submit`` row is left in ``_orphans`` for :meth:`_salvage`."""
        rows = self.book.rows
        for row in rows:
            if row["kind"] == "submit":  # the last one of a tag says what its job holds (_adopt narrows it)
                self.subs[row["id"]] = _Submission(row["id"], row["model"], row["endpoint"],
                                                   {k: (v[0], v[1]) for k, v in row["requests"].items()},
                                                   float(row["ts"]))
        for row in rows:
            kind, key = row["kind"], row["id"]
            if kind == "job":
                if key in self.subs:
                    self.subs[key].batch_id = row["batch_id"]
                else:
                    self._orphans[key] = row["batch_id"]
            elif kind == "ended":
                self._ended_tags.add(key)
                if key in self.subs:
                    self.subs[key].ended = True
            elif kind == "samples":
                for raw in row["hypotheses"]:
                    self._keep(key, Hypothesis.model_validate(raw), row["batch_id"])
        for sub in self.subs.values():
            if not sub.ended:
                spec = self._spec(sub.label)
                if spec is None or spec.base_url != sub.endpoint.rstrip("/"):
                    raise ConfigError(f"{self.book.path} has a running batch job of {sub.label} at {sub.endpoint}, "
                                      "which this run does not sample: run the command that submitted it (the same "
                                      "-m and --base-url) to pick it up")

    async def _salvage(self) -> None:
        """Act on the book's damaged lines (and ``job`` rows whose ``submit`` row is gone) so that none makes a
        request be paid twice (see the module docstring)."""
        damaged = self.book.salvaged
        for d in damaged:
            if d.id is None:
                raise ConfigError(f"{self.book.path}:{d.lineno}: a damaged line (not JSON) whose row id is gone: it "
                                  "may have recorded a batch job, and heavy does not risk paying for its requests "
                                  "twice: repair the line, or delete it if it recorded no job (the provider's list of "
                                  "batch jobs tells), and run again")
        tags = [d for d in damaged if self._is_tag(d)]
        ids = {d.id: d.batch_id for d in tags if d.batch_id}  # a damaged job row may name its job
        for d in tags:
            where = f"{self.book.path}:{d.lineno}: a damaged line (not JSON) of batch job tag {d.id}"
            if d.id in self.subs:
                self._say(f"{where}: read from its other rows (a job id not written down is found by its tag)")
            else:
                await self._recover(str(d.id), self._orphans.pop(str(d.id), None) or ids.get(d.id), d, where)
        for tag, batch_id in list(self._orphans.items()):  # a job row whose submit row is gone, not damaged
            await self._recover(tag, batch_id, None, f"{self.book.path}: batch job tag {tag} has no submit row")
        for d in damaged:
            if d in tags or d.kind == "torn":
                continue
            holders = [s for s in self.subs.values() if d.id in self.pending and s.ended and s.batch_id
                       and any(k[0] == d.id for k in s.requests.values())]
            for sub in holders:
                sub.ended = False
                sub.recollect.add(str(d.id))
            self._say(f"{self.book.path}:{d.lineno}: a damaged line of the samples of question {d.id}"
                      + (f": fetched again from {', '.join(str(s.batch_id) for s in holders)}, not bought again"
                         if holders else ": none of them is missing from this run"))

    def _is_tag(self, d: Damaged) -> bool:
        """Whether a damaged line is a row of a job (``submit``, ``job``, ``ended``) rather than of a question."""
        if d.kind is not None:
            return d.kind in ("submit", "job", "ended")
        return d.id in self.subs or d.id in self._orphans or bool(_TAG.match(str(d.id)))

    async def _recover(self, tag: str, batch_id: str | None, d: Damaged | None, where: str) -> None:
        """The job of *tag*, whose submit row is damaged or gone: found by its id or its tag, its requests read
        back from the provider (or left unknown until it ends); a ConfigError when heavy cannot tell."""
        labels = [d.model] if d is not None and self._spec(str(d.model)) is not None else \
            list(dict.fromkeys(s.label for s in self.heavy.specs))
        since = d.ts if d is not None and d.ts is not None else 0.0
        known = [s.batch_id for s in self.subs.values() if s.batch_id]
        for label in labels:
            client = self._client(label)
            if batch_id is None and not client.tags:
                when = f" created after {datetime.fromtimestamp(since, timezone.utc):%Y-%m-%d %H:%M:%S} UTC" \
                    if since else ""
                raise ConfigError(f"{where}, whose job id was never written down: {client.name}'s batch API keeps no "
                                  "tags, so heavy cannot tell whether that job was created, and does not risk paying "
                                  f"for its requests twice: if the provider's list of batch jobs has none{when} that "
                                  "this book does not name, delete the line and run again")
            try:
                job = await (client.poll(batch_id) if batch_id else client.find(tag, since=since, count=0,
                                                                                 known=known))
            except FatalRequestError:
                job = None  # not this endpoint's job: try the next model's
            if job is not None:
                break
        else:
            if batch_id is not None:
                raise ConfigError(f"{where}: batch job {batch_id} is not found at the endpoints of this run: run the "
                                  "command that submitted it (the same -m and --base-url)")
            self._say(f"{where}: no job has its tag, so it was never created")
            return
        sub = _Submission(tag, label, client.http.base_url, {}, since or job.created_at, batch_id=job.id, job=job,
                          ended=tag in self._ended_tags)
        cids = await client.custom_ids(job)
        salvaged = list(d.custom_ids) if d is not None else []
        if cids is None and len(salvaged) == job.total:
            cids = salvaged  # the damaged line still lists them all
        ours = self._where
        sub.requests = {c: ours[c] for c in (salvaged if cids is None else cids) if c in ours}
        sub.opaque = cids is None and not sub.ended
        self.subs[tag] = sub
        if batch_id is None:  # its id written down now
            self.book.append({"id": tag, "kind": "job", "batch_id": job.id, "ts": time.time()})
        state = "its requests unknown until it ends" if sub.opaque else f"{len(sub.requests)} of its requests ours"
        self._say(f"{where}: its job {job.id} ({job.status}) is picked up, {state}; nothing it may hold is "
                  "submitted again")

    @property
    def _where(self) -> dict[str, tuple[str, int]]:
        """custom_id -> (question id, slot) for every slot of the questions of this run."""
        return {custom_id(item_id, slot): (item_id, slot) for item_id in self.items for slot in range(self.n)}

    def _keep(self, item_id: str, h: Hypothesis, batch_id: str) -> None:
        slots = self.samples.setdefault(item_id, {})
        if h.index not in slots or not slots[h.index][0].ok:  # an answer replaces a failure, never the reverse
            slots[h.index] = (h, batch_id)

    def _spec(self, label: str) -> ModelSpec | None:
        return next((s for s in self.heavy.specs if s.label == label), None)

    def _client(self, label: str) -> BatchClient:
        if label not in self._clients:
            spec = self._spec(label)
            assert spec is not None  # checked in _read and by construction
            # The provider Heavy itself builds for this spec (endpoint, key, and the transport it was given),
            # without the policies around live calls: a batch API call is retried by the batch client.
            self._clients[label] = batch_client(self.heavy._build(spec), retry=self.heavy.retry)
        return self._clients[label]

    # --- submitting ------------------------------------------------------------------------------------

    def _request(self, item: EvalItem, slot: int) -> tuple[ModelSpec, CompletionRequest]:
        """The request a live run sends for hypothesis *slot* of *item* (:class:`~heavy.sampler.Sampler`)."""
        spec = self.heavy.specs[slot % len(self.heavy.specs)]
        params = self.heavy.params
        if params.seed is not None:
            params = params.with_seed(params.seed + slot)
        messages = as_messages(item.prompt, self.heavy.settings.system)
        return spec, CompletionRequest(model=spec.model, messages=messages, params=params)

    def _attempts(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for sub in self.subs.values():
            for key in sub.requests.values():
                out[key] = out.get(key, 0) + 1
        return out

    def _in_flight(self) -> set[tuple[str, int]]:
        return {key for sub in self.subs.values() if not sub.ended for key in sub.requests.values()}

    def _needs(self, item_id: str, slot: int, attempts: dict[tuple[str, int], int]) -> bool:
        """Whether a slot has yet to be sampled: nothing came back for it, or (``--retry-errors``) a failure that
        another submission may fix (not a job that failed validation, and attempts left)."""
        got = self.samples.get(item_id, {}).get(slot)
        if got is None:
            return True
        h = got[0]
        return (self.runner.retry_errors and not h.ok and h.error_type not in ("BatchFailed", "BatchLost")
                and attempts.get((item_id, slot), 0) < MAX_ATTEMPTS)

    async def _submit_missing(self) -> None:
        """Submit every slot of an undecided question that is neither back nor in a running job."""
        attempts, flying = self._attempts(), self._in_flight()
        by_label: dict[str, list[BatchRequest]] = {}
        where: dict[str, tuple[str, int]] = {}
        for item_id in self.pending:
            if item_id in self._decided:
                continue
            for slot in range(self.n):
                key = (item_id, slot)
                if key in flying or not self._needs(item_id, slot, attempts):
                    continue
                spec, request = self._request(self.items[item_id], slot)
                if attempts.get(key, 0) >= MAX_ATTEMPTS:
                    if slot not in self.samples.get(item_id, {}):
                        self._store(item_id, "", [_failed(slot, spec.label, request, BatchFailure(
                            "expired", f"submitted {MAX_ATTEMPTS} times, never run: its jobs ended (expired, "
                                       "cancelled or without its line) before it ran"))])
                    continue
                cid = custom_id(item_id, slot)
                where[cid] = key
                by_label.setdefault(spec.label, []).append(BatchRequest(cid, request))
        for label, requests in by_label.items():
            unknown = [s.batch_id for s in self.subs.values() if s.opaque and not s.ended and s.label == label]
            if unknown:
                self._say(f"waiting for batch job {unknown[0]} to end before submitting {len(requests)} request(s) "
                          f"of {label}: the book does not say which requests it holds")
                continue
            client = self._client(label)
            for chunk in client.chunks(requests):
                sub = _Submission(f"heavy-{uuid.uuid4().hex[:20]}", label, client.http.base_url,
                                  {r.custom_id: where[r.custom_id] for r in chunk}, time.time())
                self.book.append({"id": sub.tag, "kind": "submit", "model": label, "endpoint": sub.endpoint,
                                  "requests": {k: list(v) for k, v in sub.requests.items()}, "ts": sub.ts})
                self.subs[sub.tag] = sub
                self._created(sub, await client.submit(chunk, tag=sub.tag, since=sub.ts))
        self._decide_ready()

    async def _adopt(self, sub: _Submission) -> None:
        """A job written down but never seen created (a run stopped in between): find it, or create it now."""
        client = self._client(sub.label)
        known = [s.batch_id for s in self.subs.values() if s.batch_id]
        job = await client.find(sub.tag, since=sub.ts, count=len(sub.requests), known=known)
        if job is None:
            chunk = []
            for cid, (item_id, slot) in sub.requests.items():
                item = self.items.get(item_id)
                if item is None:  # no longer asked for (decided meanwhile, or another dataset): leave it
                    continue
                chunk.append(BatchRequest(cid, self._request(item, slot)[1]))
            if not chunk:
                self._ended(sub, None)
                return
            if len(chunk) < len(sub.requests):  # what is submitted is what the book says was
                sub.requests = {r.custom_id: sub.requests[r.custom_id] for r in chunk}
                self.book.append({"id": sub.tag, "kind": "submit", "model": sub.label, "endpoint": sub.endpoint,
                                  "requests": {k: list(v) for k, v in sub.requests.items()}, "ts": sub.ts})
            job = await client.submit(chunk, tag=sub.tag, since=sub.ts)
        self._created(sub, job)

    def _created(self, sub: _Submission, job: BatchJob) -> None:
        sub.batch_id, sub.job = job.id, job
        self.book.append({"id": sub.tag, "kind": "job", "batch_id": job.id, "ts": time.time()})
        self._say(f"submitted {job.id} ({sub.label}, {len(sub.requests)} requests)")

    # --- polling and collecting ------------------------------------------------------------------------

    async def _poll(self) -> None:
        deadline = None if self.runner.batch_wait is None else time.monotonic() + self.runner.batch_wait
        pause = min(1.0, self.runner.batch_poll)
        while True:
            running = [s for s in self.subs.values() if not s.ended and s.batch_id]
            if not running:
                return
            for sub in running:
                assert sub.batch_id is not None
                sub.job = job = await self._client(sub.label).poll(sub.batch_id)
                if job.ended:
                    await self._collect(sub, job)
            if any(s.ended for s in running):
                await self._submit_missing()  # what expired goes out again
                continue
            self._progress()
            if deadline is not None and time.monotonic() >= deadline:
                self.runner.still_running = [f"{s.batch_id} ({s.job.status if s.job else '?'})" for s in running]
                return
            await asyncio.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 1.5, self.runner.batch_poll)

    def _progress(self) -> None:
        running = [s for s in self.subs.values() if not s.ended and s.job is not None]
        total = sum(s.job.total if s.opaque else len(s.requests) for s in running if s.job is not None)
        answered = sum(s.job.done if s.opaque else min(s.job.done, len(s.requests)) for s in running
                       if s.job is not None)
        states = sorted({s.job.status for s in running if s.job is not None})
        self._say(f"{len(running)} job(s) {'/'.join(states)}: {answered}/{total} requests answered; "
                  f"{len(self._decided)}/{len(self.pending)} questions decided")

    async def _collect(self, sub: _Submission, job: BatchJob) -> None:
        """Store what an ended job answered (by question), then mark it ended and decide what is ready."""
        client = self._client(sub.label)
        answers = BatchResults() if job.failure else await client.fetch(job)
        if sub.opaque:  # its results say which requests it held
            ours = self._where
            sub.requests.update({c: ours[c] for c in answers if c in ours})
            sub.opaque = False
        answers = client.reconcile(job, answers, list(sub.requests))
        for problem in answers.problems:
            self._say(problem)
        back: dict[str, list[Hypothesis]] = {}
        lost: list[str] = []
        only, sub.recollect = sub.recollect, set()
        for cid, (item_id, slot) in sub.requests.items():
            item = self.items.get(item_id)
            if item is None or (only and item_id not in only):
                continue
            spec, request = self._request(item, slot)
            answer = answers.get(cid)
            if job.failure:
                answer = BatchFailure("failed", f"the batch job {job.id} failed: {job.failure}")
            if answer is None or (isinstance(answer, BatchFailure) and answer.kind in ("expired", "missing")):
                continue  # never ran: submitted again
            if isinstance(answer, BatchFailure) and answer.kind == "lost":
                lost.append(cid)
            latency = max(0.0, time.time() - sub.ts)
            back.setdefault(item_id, []).append(_hypothesis(slot, spec.label, request, answer, latency))
        for item_id, hyps in back.items():
            self._store(item_id, job.id, hyps)
        if lost:
            self._say(f"batch job {job.id}: {len(lost)} answer(s) the job reports as run have no readable result "
                      f"line, lost and not bought again: {', '.join(lost)}")
        self._ended(sub, job)
        self._decide_ready()

    def _store(self, item_id: str, batch_id: str, hyps: list[Hypothesis]) -> None:
        self.book.append({"id": item_id, "kind": "samples", "batch_id": batch_id,
                          "hypotheses": [h.model_dump(exclude_none=True) for h in hyps]})
        for h in hyps:
            self._keep(item_id, h, batch_id)

    def _ended(self, sub: _Submission, job: BatchJob | None) -> None:
        sub.ended = True
        self.book.append({"id": sub.tag, "kind": "ended", "batch_id": sub.batch_id,
                          "status": job.status if job else None, "failure": job.failure if job else None,
                          "ts": time.time()})
        if job is not None:
            self._say(f"{job.id} {job.status}" + (f": {job.failure}" if job.failure else ""))

    # --- deciding -------------------------------------------------------------------------------------

    def _decide_ready(self) -> None:
        """Start deciding every question whose N samples are all back (or stored in a ``--record`` pool)."""
        flying, attempts = self._in_flight(), self._attempts()
        in_record = {row["id"] for row in self.runner.record.rows} if self.runner.record is not None else set()
        for item_id, pending in self.pending.items():
            if item_id in self._decided:
                continue
            recorded = self.runner.record.hypotheses(item_id) if item_id in in_record else None
            if recorded is not None and len(route_prefix(recorded, None)) >= self.n:
                self._start(item_id, pending, recorded, [])
                continue
            slots = self.samples.get(item_id, {})
            if any(s not in slots or (item_id, s) in flying or self._needs(item_id, s, attempts) for s in range(self.n)):
                continue
            pool = [slots[s][0] for s in range(self.n)]
            jobs = sorted({slots[s][1] for s in range(self.n) if slots[s][1]})
            if self.runner.record is not None:
                item = self.items[item_id]
                self.runner.record.append({"id": item_id, "question": item.question, "gold": item.gold,
                                           "model": [s.label for s in self.heavy.specs],
                                           "params": self.heavy.params.model_dump(exclude_none=True),
                                           "hypotheses": [h.model_dump(exclude_none=True) for h in pool]})
            self._start(item_id, pending, pool, jobs)

    def _start(self, item_id: str, pending: list[tuple[str, int]], pool: list[Hypothesis], jobs: list[str]) -> None:
        self._decided.add(item_id)

        async def decide() -> None:
            async with self._sem:
                await self.runner.decide(self.items[item_id], pending, pool,
                                         batch={"batch": jobs} if jobs else None)

        self._decisions.append(asyncio.create_task(decide()))


def _hypothesis(slot: int, label: str, request: CompletionRequest, answer: Completion | BatchFailure,
                latency: float) -> Hypothesis:
    """What came back for a slot, as the hypothesis a live run would have recorded."""
    if isinstance(answer, BatchFailure):
        return _failed(slot, label, request, answer)
    return Hypothesis(index=slot, model=label, text=answer.text, reasoning=answer.reasoning,
                      answer=final_answer(answer.text), finish_reason=answer.finish_reason, usage=answer.usage,
                      latency_s=latency, seed=request.params.seed, request_id=answer.request_id,
                      logprobs=answer.logprobs)


def _failed(slot: int, label: str, request: CompletionRequest, failure: BatchFailure) -> Hypothesis:
    kind = {"errored": "BatchRequestError", "cancelled": "BatchCancelled", "expired": "BatchExpired",
            "failed": "BatchFailed", "lost": "BatchLost"}.get(failure.kind, "BatchRequestError")
    return Hypothesis(index=slot, model=label, status="failed", error=failure.message, error_type=kind,
                      seed=request.params.seed, request_id=failure.request_id)
