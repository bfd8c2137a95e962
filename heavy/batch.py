"""Batch APIs: many model calls submitted as one job, billed at half price, answered within 24 hours.

A :class:`BatchClient` speaks one provider's batch API with the provider's own wire format for what is inside
a job: request bodies are built by the provider's ``build_body`` and answers read by its response parser, so a
batched call and a live call of the same :class:`~heavy.providers.base.CompletionRequest` are the same call.

- **OpenAI** (:class:`OpenAIBatch`): the requests are uploaded as a JSONL file (``POST /files``, multipart,
  purpose ``batch``; a line is ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body"}``),
  the job is ``POST /batches`` ``{input_file_id, endpoint, completion_window: "24h", metadata}`` and moves
  through ``validating → in_progress → finalizing → completed`` (or ``failed``, ``expired``, ``cancelling →
  cancelled``). Its answers are the lines of ``output_file_id`` (``{"id", "custom_id", "response":
  {"status_code", "request_id", "body"}, "error"}``) and of ``error_file_id``, in no particular order. One
  file holds requests of one model, at most 50,000 of them and 200 MB.
- **Anthropic** (:class:`AnthropicBatch`): ``POST /v1/messages/batches`` ``{requests: [{custom_id, params}]}``;
  ``processing_status`` is ``in_progress``, ``canceling`` or ``ended``; the results (JSONL at ``results_url``)
  are ``{"custom_id", "result": {"type": "succeeded" | "errored" | "canceled" | "expired", ...}}``. At most
  100,000 requests and 256 MB a job, models mixed freely.

A ``custom_id`` is 1-64 characters of ``[A-Za-z0-9_-]`` (Anthropic's rule, which OpenAI's ids satisfy too).

**Nothing submitted twice.** Creating a job is the one call that costs money, and its answer can be lost (a
timeout, a crash) after the provider has acted on it. Every job is therefore created with a *tag* the caller
chose and wrote down first: OpenAI keeps it in the job's ``metadata``; Anthropic has no metadata, so a job is
recognised there by being created after the tag was written with the same number of requests.
:meth:`BatchClient.find` looks for the job of a tag, and :meth:`BatchClient.submit` asks it before retrying a
create whose answer was lost.

**Result files are data from outside.** A line that cannot be read costs that line only: the other lines'
answers are used, and :attr:`BatchResults.problems` names the job and the line. A request without a line is
reconciled with the job's own counts (:meth:`BatchClient.fetch` with ``expected``): when the job says it did not
complete (failed, expired, cancelled, never run) it is ``missing`` and may be submitted again; when the job says
it completed, or the counts cannot tell which of the requests without a line did, it is ``lost``: paid for,
named by job id and custom_id, and never bought again.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .errors import ConfigError, ProviderError, ProviderResponseError
from .http import decode_json
from .providers.anthropic import AnthropicProvider
from .providers.base import Completion, CompletionRequest, HTTPProvider
from .providers.openai import OpenAIProvider
from .providers.wrappers import RetryPolicy

__all__ = ["BatchRequest", "BatchJob", "BatchFailure", "BatchResults", "BatchClient", "OpenAIBatch",
           "AnthropicBatch", "batch_client", "BATCH_WIRES", "CUSTOM_ID"]

#: What a ``custom_id`` may be on every batch API heavy speaks.
CUSTOM_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Wire formats with a batch API.
BATCH_WIRES = ("openai", "anthropic")
#: Seconds between a tag being written and its job's creation time that still count as that job (clock skew).
_SKEW = 120.0

T = TypeVar("T")


@dataclass(frozen=True)
class BatchRequest:
    """One call inside a job: the caller's id for it and the request a live call would send."""

    custom_id: str
    request: CompletionRequest


@dataclass
class BatchJob:
    """A job as the provider reports it. ``status`` is the provider's own word; ``ended`` says whether its
    answers are final (completed, failed, expired, cancelled; Anthropic: ended)."""

    id: str
    status: str
    ended: bool
    total: int = 0  #: requests in the job
    done: int = 0  #: requests answered so far (successfully or not)
    created_at: float = 0.0  #: Unix seconds
    failure: str | None = None  #: why the whole job failed (OpenAI ``failed``: its validation errors)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchFailure:
    """A request of a job that has no answer. ``kind``: ``errored`` (the call failed: an answer, paid or
    not, that will not change), ``expired`` (the job's 24 hours ran out before it ran: never billed, worth
    submitting again), ``cancelled`` (the job was cancelled before it ran), ``missing`` (no result line, and the
    job counts it among the requests that did not complete: worth submitting again) or ``lost`` (no readable
    result line, and the job says it completed, or cannot say whether it did: never bought again)."""

    kind: str
    message: str
    status: int | None = None
    request_id: str | None = None


class BatchResults(dict[str, "Completion | BatchFailure"]):
    """The answers of a job by ``custom_id``, with what reading its result files found wrong."""

    def __init__(self) -> None:
        super().__init__()
        #: One line per unreadable result line, naming the job, the file and the line.
        self.problems: list[str] = []
        #: The custom_ids whose line says the request succeeded (what the job's counts count as completed).
        self.succeeded: set[str] = set()


class BatchClient(ABC):
    """One provider's batch API, over that provider's HTTP client (its endpoint and key)."""

    #: Requests and bytes one job may hold.
    max_requests: int = 50_000
    max_bytes: int = 200 * 1024 * 1024
    #: Where the jobs are, under the provider's base URL.
    jobs_path: str = "batches"
    #: Whether the API keeps a job's tag (so :meth:`find` tells a job by its tag alone, not by time and count).
    tags: bool = False

    def __init__(self, provider: HTTPProvider, *, retry: RetryPolicy | None = None) -> None:
        self.provider = provider
        self.http = provider.http
        self.name = provider.name
        self.retry = retry or RetryPolicy()
        #: What each model accepts: a batched request is shaped as the same live request would be.
        self.profiles = getattr(provider, "profiles", None)

    def body(self, request: CompletionRequest) -> dict[str, Any]:
        """The request body of *request* in a job: shaped by its model's profile, built by the provider."""
        if self.profiles is not None:
            request = self.profiles(request.model).shape(request)[0]
        return self.provider.build_body(request, stream=False)

    # --- what each API implements ----------------------------------------------------------------

    @abstractmethod
    def line(self, item: BatchRequest) -> dict[str, Any]:
        """*item* as one entry of a job (a JSONL line for OpenAI, an element of ``requests`` for Anthropic)."""

    @abstractmethod
    async def _create(self, lines: list[dict[str, Any]], tag: str) -> BatchJob:
        """Create a job of *lines*, tagged *tag* where the API keeps tags."""

    @abstractmethod
    def _job(self, data: Any, text: str) -> BatchJob:
        """A job object of the API (*text*: its JSON, for error excerpts) as a BatchJob."""

    @abstractmethod
    async def results(self, job: BatchJob) -> BatchResults:
        """The answer of every request of an ended *job* that has a readable result line, by ``custom_id``."""

    @abstractmethod
    def _answer(self, line: str) -> tuple[str, Completion | BatchFailure, bool]:
        """One line of a result file: its ``custom_id``, what it answered, and whether the line says the request
        succeeded (ran and was billed, whether or not its answer could be read)."""

    @abstractmethod
    def _succeeded(self, job: BatchJob) -> int | None:
        """How many requests the ended *job* reports as completed successfully; None when it does not say."""

    async def get(self, batch_id: str) -> BatchJob:
        """The job's state now."""
        resp = await self.http.get_json(f"{self.jobs_path}/{batch_id}")
        return self._job(self._json(resp.text), resp.text)

    async def cancel(self, batch_id: str) -> BatchJob:
        """Ask the provider to stop the job (what already ran is still answered, and billed)."""
        resp = await self.http.post_json(f"{self.jobs_path}/{batch_id}/cancel", {})
        return self._job(self._json(resp.text), resp.text)

    async def _listed(self) -> list[BatchJob]:
        """The account's jobs, newest first, as far back as :meth:`find` needs (one page of 100 is enough)."""
        resp = await self.http.get_json(self.jobs_path, {"limit": 100})
        data = self._json(resp.text)
        return [self._job(b, "") for b in (data.get("data") or [] if isinstance(data, dict) else [])
                if isinstance(b, dict)]

    def _answers(self, text: str, job: BatchJob, where: str, into: BatchResults) -> None:
        """Every readable line of the JSONL result file *where* of *job*, into *into*; an unreadable line is
        skipped and named in its ``problems``."""
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                cid, answer, succeeded = self._answer(line)
            except ProviderError as exc:
                why = "not JSON" if "not JSON" in str(exc).split(" | body: ")[0] else "no custom_id"
                into.problems.append(f"batch job {job.id}: line {lineno} of {where} is unreadable ({why}): skipped, "
                                     "the other lines are read")
                continue
            if cid in into and isinstance(into[cid], Completion):
                continue  # the same request twice: its answer stays
            into[cid] = answer
            if succeeded:
                into.succeeded.add(cid)

    def _tag_of(self, job: BatchJob) -> str | None:
        """The tag a job was created with, where the API keeps one."""
        return None

    async def custom_ids(self, job: BatchJob) -> list[str] | None:
        """The custom_ids of the requests *job* holds, when the API tells (an ended job's results do); None
        when it cannot yet."""
        if not job.ended or job.failure:
            return None
        return list(await self.fetch(job))

    # --- shared --------------------------------------------------------------------------------

    def chunks(self, items: Sequence[BatchRequest]) -> list[list[BatchRequest]]:
        """*items* cut into jobs within the API's limits (count and bytes), in order."""
        out: list[list[BatchRequest]] = []
        size = 0
        for item in items:
            if not CUSTOM_ID.match(item.custom_id):
                raise ValueError(f"custom_id {item.custom_id!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
            weight = len(json.dumps(self.line(item), ensure_ascii=False).encode()) + 1
            if not out or len(out[-1]) >= self.max_requests or size + weight > self.max_bytes:
                out.append([])
                size = 0
            out[-1].append(item)
            size += weight
        return out

    async def submit(self, items: Sequence[BatchRequest], *, tag: str, since: float) -> BatchJob:
        """Create one job of *items* (within :meth:`chunks`' limits) tagged *tag*, which the caller has written
        down at *since* (Unix seconds) before calling. A create whose answer is lost is not retried blindly:
        :meth:`find` first looks for the job it may have created."""
        lines = [self.line(item) for item in items]
        return await self._retrying(lambda: self._create(lines, tag),
                                    recover=lambda: self.find(tag, since=since, count=len(items)))

    async def find(self, tag: str, *, since: float, count: int, known: Sequence[str] = ()) -> BatchJob | None:
        """The job created for *tag* (written down at *since*, holding *count* requests), if the provider has one;
        jobs in *known* are already someone else's."""
        jobs = await self._retrying(self._listed)
        for job in jobs:
            if job.id in known:
                continue
            tagged = self._tag_of(job)
            if tagged is not None:
                if tagged == tag:
                    return job
                continue
            if job.created_at >= since - _SKEW and job.total == count:
                return job
        return None

    async def poll(self, batch_id: str) -> BatchJob:
        """:meth:`get` with retries on transient errors (a poll may be repeated at will)."""
        return await self._retrying(lambda: self.get(batch_id))

    async def fetch(self, job: BatchJob, expected: Sequence[str] = ()) -> BatchResults:
        """:meth:`results` with retries on transient errors; with *expected* (the job's custom_ids), every one of
        them answered, those without a readable line reconciled with the job's counts (:meth:`reconcile`)."""
        answers = await self._retrying(lambda: self.results(job))
        return self.reconcile(job, answers, expected)

    def reconcile(self, job: BatchJob, answers: BatchResults, expected: Sequence[str]) -> BatchResults:
        """A failure for each of *expected* without a readable line: ``missing`` (may be submitted again) when
        the job's counts say every request that completed has its line, else ``lost`` (never bought again)."""
        missing = [cid for cid in expected if cid not in answers]
        if not missing:
            return answers
        reported = self._succeeded(job)
        unread = None if reported is None else reported - len(answers.succeeded)
        for cid in missing:
            head = f"batch job {job.id}: no readable result line for {cid}"
            if unread == 0:
                answers[cid] = BatchFailure("missing", f"{head}; the job counts it among the requests that did not "
                                                       "complete: it may be submitted again")
                continue
            if unread is None:
                why = "the job does not say how many of its requests completed, so it may have run"
            elif unread >= len(missing):
                why = "the job reports it completed"
            elif unread < 0:
                why = (f"the job's counts ({reported} completed) disagree with its result lines "
                       f"({len(answers.succeeded)} completed), so it cannot tell whether it ran")
            else:
                why = (f"the job reports {unread} of the {len(missing)} requests without a line completed, and "
                       "nobody can tell which")
            answers[cid] = BatchFailure("lost", f"{head}; {why}: its answer is lost, not bought again")
        return answers

    async def _retrying(self, call: Callable[[], Awaitable[T]],
                        recover: Callable[[], Awaitable[T | None]] | None = None) -> T:
        """*call*, retried on transient errors with the retry policy's backoff; before each retry, *recover* may
        return what the failed call did after all."""
        attempt = 0
        while True:
            try:
                return await call()
            except ProviderError as exc:
                delay = self.retry.delay(exc, attempt)
                if delay is None:
                    raise
            await asyncio.sleep(delay)
            attempt += 1
            if recover is not None:
                found = await recover()
                if found is not None:
                    return found

    def _bad(self, what: str, body: str = "") -> ProviderResponseError:
        return ProviderResponseError(f"batch API: {what}", provider=self.name, body=body[:500])

    def _json(self, text: str) -> Any:
        return decode_json(text, provider=self.name, model=None)


# --- OpenAI -----------------------------------------------------------------------------------------------

_OPENAI_ENDED = {"completed", "failed", "expired", "cancelled"}
_CHAT_URL = "/v1/chat/completions"


class OpenAIBatch(BatchClient):
    """OpenAI's Batch API (``/files`` and ``/batches`` beside ``/chat/completions``)."""

    provider: OpenAIProvider
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024
    tags = True

    def line(self, item: BatchRequest) -> dict[str, Any]:
        return {"custom_id": item.custom_id, "method": "POST", "url": _CHAT_URL, "body": self.body(item.request)}

    def chunks(self, items: Sequence[BatchRequest]) -> list[list[BatchRequest]]:
        # One input file holds requests for one model.
        by_model: dict[str, list[BatchRequest]] = {}
        for item in items:
            by_model.setdefault(item.request.model, []).append(item)
        cut = super().chunks
        return [chunk for group in by_model.values() for chunk in cut(group)]

    async def _create(self, lines: list[dict[str, Any]], tag: str) -> BatchJob:
        content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        boundary = f"heavy-{uuid.uuid4().hex}"
        body = b"".join([
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{tag}.jsonl"\r\n'
            "Content-Type: application/jsonl\r\n\r\n".encode(), content, f"\r\n--{boundary}--\r\n".encode()])
        # heavy.http has JSON helpers only; a file upload is the one multipart body heavy sends, so it goes
        # through the client's general request method with its own content type.
        resp = await self.http._complete("POST", "files", None, body,
                                         {"content-type": f"multipart/form-data; boundary={boundary}"}, None, None)
        uploaded = self._json(resp.text)
        file_id = uploaded.get("id") if isinstance(uploaded, dict) else None
        if not isinstance(file_id, str):
            raise self._bad("the file upload answered without an id", resp.text)
        resp = await self.http.post_json(self.jobs_path, {"input_file_id": file_id, "endpoint": _CHAT_URL,
                                                          "completion_window": "24h", "metadata": {"heavy_tag": tag}})
        return self._job(self._json(resp.text), resp.text)

    async def custom_ids(self, job: BatchJob) -> list[str] | None:
        """From the job's input file, whatever its state."""
        file_id = job.raw.get("input_file_id")
        if not isinstance(file_id, str):
            return await super().custom_ids(job)
        text = (await self._retrying(lambda: self.http.get_json(f"files/{file_id}/content"))).text
        out = []
        for line in filter(str.strip, text.split("\n")):
            try:
                data = json.loads(line)
            except ValueError:
                data = None
            if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
                return None  # an input file heavy cannot read: the job's requests are not known
            out.append(data["custom_id"])
        return out

    def _tag_of(self, job: BatchJob) -> str | None:
        meta = job.raw.get("metadata")
        return str(meta.get("heavy_tag")) if isinstance(meta, dict) and meta.get("heavy_tag") else ""

    def _job(self, data: Any, text: str) -> BatchJob:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data.get("status"):
            raise self._bad("a batch without an id and a status", text)
        counts = data.get("request_counts") if isinstance(data.get("request_counts"), dict) else {}
        status = str(data["status"])
        failure = None
        if status == "failed":
            errors = data.get("errors") if isinstance(data.get("errors"), dict) else {}
            listed = errors.get("data") if isinstance(errors.get("data"), list) else []
            failure = "; ".join(str(e.get("message") or e.get("code")) for e in listed if isinstance(e, dict)) or \
                "the batch failed"
        return BatchJob(id=data["id"], status=status, ended=status in _OPENAI_ENDED,
                        total=_count(counts.get("total")) or 0,
                        done=(_count(counts.get("completed")) or 0) + (_count(counts.get("failed")) or 0),
                        created_at=_timestamp(data.get("created_at")), failure=failure, raw=data)

    def _succeeded(self, job: BatchJob) -> int | None:
        counts = job.raw.get("request_counts")
        return _count(counts.get("completed")) if isinstance(counts, dict) else None

    async def results(self, job: BatchJob) -> BatchResults:
        out = BatchResults()
        for key, name in (("output_file_id", "output file"), ("error_file_id", "error file")):
            file_id = job.raw.get(key)
            if not file_id:
                continue
            text = (await self.http.get_json(f"files/{file_id}/content")).text
            self._answers(text, job, f"its {name} {file_id}", out)
        return out

    def _answer(self, line: str) -> tuple[str, Completion | BatchFailure, bool]:
        data = self._json(line)
        if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
            raise self._bad("an output line without a custom_id", line)
        cid = data["custom_id"]
        response = data.get("response") if isinstance(data.get("response"), dict) else {}
        status = response.get("status_code")
        rid = response.get("request_id")
        error = data.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or "")
            kind = {"batch_expired": "expired", "batch_cancelled": "cancelled"}.get(code, "errored")
            return cid, BatchFailure(kind, f"{code}: {error.get('message') or ''}".strip(": "), status, rid), False
        body = response.get("body")
        if status != 200:
            message = (body.get("error") or {}).get("message") if isinstance(body, dict) and \
                isinstance(body.get("error"), dict) else None
            return cid, BatchFailure("errored", f"HTTP {status}: {message or 'error'}", status, rid), False
        model = body.get("model") if isinstance(body, dict) else None
        try:
            return cid, self.provider.parse_completion(body, model=str(model or ""), request_id=rid,
                                                       raw=json.dumps(body)[:500]), True
        except ProviderError as exc:  # one unreadable answer is that request's failure, not the job's
            return cid, BatchFailure("errored", str(exc), status, rid), True


# --- Anthropic --------------------------------------------------------------------------------------------

class AnthropicBatch(BatchClient):
    """Anthropic's Message Batches API (``/v1/messages/batches``)."""

    provider: AnthropicProvider
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024
    jobs_path = "v1/messages/batches"

    def line(self, item: BatchRequest) -> dict[str, Any]:
        return {"custom_id": item.custom_id, "params": self.body(item.request)}

    async def _create(self, lines: list[dict[str, Any]], tag: str) -> BatchJob:
        resp = await self.http.post_json(self.jobs_path, {"requests": lines})
        return self._job(self._json(resp.text), resp.text)

    def _job(self, data: Any, text: str) -> BatchJob:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data.get("processing_status"):
            raise self._bad("a message batch without an id and a processing_status", text)
        raw_counts = data.get("request_counts") if isinstance(data.get("request_counts"), dict) else {}
        counts = {str(k): _count(v) or 0 for k, v in raw_counts.items()}
        status = str(data["processing_status"])
        return BatchJob(id=data["id"], status=status, ended=status == "ended", total=sum(counts.values()),
                        done=sum(v for k, v in counts.items() if k != "processing"),
                        created_at=_timestamp(data.get("created_at")), raw=data)

    def _succeeded(self, job: BatchJob) -> int | None:
        counts = job.raw.get("request_counts")
        return _count(counts.get("succeeded")) if isinstance(counts, dict) else None

    async def results(self, job: BatchJob) -> BatchResults:
        out = BatchResults()
        self._answers((await self.http.get_json(self._results_path(job))).text, job, "its results", out)
        return out

    def _results_path(self, job: BatchJob) -> str:
        """The job's ``results_url`` when it is on the API's own origin (the key goes nowhere else), else the
        documented path."""
        url = job.raw.get("results_url")
        if isinstance(url, str) and _origin(url) == _origin(self.http.base_url):
            return url
        return f"{self.jobs_path}/{job.id}/results"

    def _answer(self, line: str) -> tuple[str, Completion | BatchFailure, bool]:
        data = self._json(line)
        if not isinstance(data, dict) or not isinstance(data.get("custom_id"), str):
            raise self._bad("a result line without a custom_id", line)
        cid = data["custom_id"]
        result = data.get("result") if isinstance(data.get("result"), dict) else {}
        kind = result.get("type")
        if kind == "succeeded":
            message = result.get("message")
            model = message.get("model") if isinstance(message, dict) else None
            try:
                return cid, self.provider.parse_message(message, model=str(model or ""),
                                                        raw=json.dumps(message)[:500]), True
            except ProviderError as exc:  # one unreadable answer is that request's failure, not the job's
                return cid, BatchFailure("errored", str(exc)), True
        if kind in ("expired", "canceled"):
            return cid, BatchFailure("expired" if kind == "expired" else "cancelled",
                                     f"the request was {kind} before it ran"), False
        outer = result.get("error") if isinstance(result.get("error"), dict) else {}
        inner = outer.get("error") if isinstance(outer.get("error"), dict) else outer
        return cid, BatchFailure("errored", f"{inner.get('type') or 'error'}: {inner.get('message') or ''}"
                                 .strip(": "), None, outer.get("request_id")), False


def _count(value: Any) -> int | None:
    """A count of a job's requests as reported (a non-negative integer), or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != int(value):
        return None
    return int(value)


def _timestamp(value: Any) -> float:
    """An RFC 3339 time (Anthropic's) or Unix seconds as Unix seconds; 0 when absent or unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 0.0
    return 0.0


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def batch_client(provider: Any, *, retry: RetryPolicy | None = None) -> BatchClient:
    """The batch API of *provider* (an OpenAI or Anthropic provider, or a stack over one); ConfigError naming the
    fix otherwise."""
    while not isinstance(provider, (AnthropicProvider, OpenAIProvider)):  # under heavy's wrappers and wire routing
        inner = getattr(provider, "inner", None) or getattr(provider, "wires", {}).get("openai")
        if inner is None:
            break
        provider = inner
    if isinstance(provider, AnthropicProvider):
        return AnthropicBatch(provider, retry=retry)
    if isinstance(provider, OpenAIProvider):
        return OpenAIBatch(provider, retry=retry)
    raise ConfigError(f"{getattr(provider, 'name', provider)!r} has no batch API heavy speaks: --batch works with "
                      "openai: and anthropic: models; drop --batch to sample interactively")
