"""The simulator's batch APIs, as their documentation describes them (simulated: no real jobs, no real money).

OpenAI's Batch API:

- ``POST /v1/files`` (multipart: ``purpose=batch`` and a JSONL ``file``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``;
- ``POST /v1/batches`` ``{input_file_id, endpoint: "/v1/chat/completions", completion_window: "24h", metadata}``,
  ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/batches?limit=&after=``.
  A job is ``validating``, then ``in_progress``, ``finalizing`` and ``completed`` (``failed`` when its file
  does not validate: a line that is not a request to the job's endpoint, a custom_id twice, two models;
  ``expired`` when some requests ran out of time; ``cancelling`` then ``cancelled`` after a cancel). Answers
  are the lines of ``output_file_id`` (``{"id", "custom_id", "response": {"status_code", "request_id",
  "body"}, "error": null}``), failures those of ``error_file_id`` (``error: {"code": "batch_expired" |
  "batch_cancelled", ...}``, or a response whose status is not 200), in shuffled order.

Anthropic's Message Batches: ``POST /v1/messages/batches`` ``{requests: [{custom_id, params}]}``,
``GET /v1/messages/batches/{id}`` (``processing_status`` ``in_progress``, ``canceling``, ``ended``;
``request_counts``; ``results_url`` once ended), ``GET .../results`` (JSONL ``{"custom_id", "result": {"type":
"succeeded" | "errored" | "canceled" | "expired", ...}}``, shuffled), ``POST .../cancel``, and the list.

Timing: a job takes ``batch_seconds`` (the server's :class:`~heavy.sim.config.SimConfig`) from creation to its
end, 10 % validating, 80 % in progress and 10 % finalizing; its requests are answered by the same model as the
live endpoints (same seeds, same answers), each failing with the model's ``fail_rate`` and running out of time
with ``batch_expire_rate``. :attr:`BatchStore.submitted` counts every custom_id ever submitted and
:attr:`BatchStore.billed` every request answered, so tests and benchmarks can prove nothing was submitted
or paid twice (``GET /health`` reports them as ``batches``). :attr:`BatchStore.faults` damages the result
files of the next jobs (lines left out or cut short, :class:`~heavy.sim.batchio.ResultFaults`), as a provider's
files could be, while the jobs' counts stay true.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .anthropic_wire import AnthropicWire
from .asgi import headers, read_body, send_json
from .batchio import CHAT, ResultFaults, SimFile, custom_id_ok, multipart, openai_lines
from .openai_wire import OpenAIWire
from .wire import SimHTTPError, Wire

if TYPE_CHECKING:
    from .server import SimulatedLLM

__all__ = ["BatchStore", "BATCH_PREFIXES"]

#: Paths served here.
BATCH_PREFIXES = ("/v1/files", "/v1/batches", "/v1/messages/batches")
_WIRES: dict[str, Wire] = {"openai": OpenAIWire(), "anthropic": AnthropicWire()}
_PHASES = (0.1, 0.9)  # validating until 10 % of the job's time, in progress until 90 %, then finalizing


@dataclass
class _Job:
    id: str
    wire: str  #: "openai" or "anthropic"
    lines: list[dict[str, Any]]  #: OpenAI: {custom_id, body}; Anthropic: {custom_id, params}
    created: float  #: loop-independent monotonic start
    created_at: float  #: Unix seconds
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)  #: OpenAI: input_file_id, endpoint, metadata
    errors: list[dict[str, Any]] = field(default_factory=list)  #: validation errors (OpenAI ``failed``)
    cancelled_at: float | None = None  #: monotonic instant of a cancel
    results: list[tuple[str, str, Any]] | None = None  #: (custom_id, outcome, payload) once processed
    files: dict[str, str] = field(default_factory=dict)  #: output_file_id / error_file_id
    dropped: set[str] = field(default_factory=set)  #: custom_ids whose result line is left out (faults)
    garbled: set[str] = field(default_factory=set)  #: custom_ids whose result line is cut short (faults)


class BatchStore:
    """Files and batch jobs of one :class:`~heavy.sim.server.SimulatedLLM`, in memory."""

    def __init__(self, app: SimulatedLLM) -> None:
        self.app = app
        self.files: dict[str, SimFile] = {}
        self.jobs: dict[str, _Job] = {}
        self.submitted: Counter[str] = Counter()  #: custom_id -> times it was submitted in a job
        self.billed: Counter[str] = Counter()  #: custom_id -> times it was answered (what a provider bills)
        self.faults: ResultFaults | None = None  #: damage to the next jobs' result files (tests)

    @staticmethod
    def serves(path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in BATCH_PREFIXES)

    def summary(self) -> dict[str, int]:
        """What ``GET /health`` reports: jobs, requests submitted and billed, and any submitted or billed twice."""
        return {"jobs": len(self.jobs), "submitted": sum(self.submitted.values()), "billed": sum(self.billed.values()),
                "submitted_twice": sum(1 for v in self.submitted.values() if v > 1),
                "billed_twice": sum(1 for v in self.billed.values() if v > 1)}

    # --- routing -----------------------------------------------------------------------------------

    async def handle(self, method: str, path: str, scope: dict, receive: Any, send: Any, request_id: str) -> None:
        """Serve one request under :data:`BATCH_PREFIXES` (SimHTTPError for the caller to render)."""
        parts = path.strip("/").split("/")
        query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
        if parts[:3] == ["v1", "messages", "batches"]:
            await self._jobs("anthropic", method, parts[3:], scope, receive, send, request_id, query)
        elif parts[:2] == ["v1", "files"]:
            await self._files(method, parts[2:], scope, receive, send, request_id)
        else:
            await self._jobs("openai", method, parts[2:], scope, receive, send, request_id, query)

    async def _files(self, method: str, rest: list[str], scope: dict, receive: Any, send: Any, rid: str) -> None:
        if not rest:
            _allow(method, "POST")
            body = await read_body(receive)
            if body is None:
                return
            fields = multipart(dict(scope.get("headers") or []).get(b"content-type", b"").decode("latin-1"), body)
            upload = fields.get("file")
            purpose = fields.get("purpose", (None, b""))[1].decode("utf-8", "replace")
            if upload is None or not purpose:
                raise SimHTTPError(400, "Uploads are multipart/form-data with a 'purpose' field and a 'file'.",
                                   "invalid_request", param="file")
            f = SimFile(f"file-{uuid.uuid4().hex[:24]}", upload[0] or "upload.jsonl", purpose, upload[1], int(time.time()))
            self.files[f.id] = f
            await send_json(send, 200, f.card(), rid)
            return
        f = self.files.get(rest[0])
        if f is None:
            raise SimHTTPError(404, f"No such File object: {rest[0]}", "not_found", param="id")
        _allow(method, "GET")
        if rest[1:] == ["content"]:
            await _send_bytes(send, f.content, rid)
        elif len(rest) == 1:
            await send_json(send, 200, f.card(), rid)
        else:
            raise SimHTTPError(404, f"Unknown request URL: {method} /v1/files/{'/'.join(rest)}.", "unknown_url")

    # --- jobs, in either API's shape -------------------------------------------------------------------

    async def _jobs(self, wire: str, method: str, rest: list[str], scope: dict, receive: Any, send: Any, rid: str,
                    query: dict[str, str]) -> None:
        anthropic = wire == "anthropic"
        id_header = "request-id" if anthropic else "x-request-id"
        where = "/v1/messages/batches" if anthropic else "/v1/batches"

        def card(job: _Job) -> dict[str, Any]:
            return self._anthropic_card(job, scope) if anthropic else self._openai_card(job)

        if not rest:
            if method == "GET":
                await send_json(send, 200, self._list(wire, query, card), rid, id_header=id_header)
                return
            _allow(method, "POST", "GET")
            data = await _json_body(receive)
            if data is None:
                return
            job = self._anthropic_job(data) if anthropic else self._openai_job(data)
            await send_json(send, 200, card(job), rid, id_header=id_header)
            return
        job = self._job(rest[0], wire)
        if anthropic and rest[1:] == ["results"]:
            _allow(method, "GET")
            status, _ = self._state(job)
            if status != "ended":
                raise SimHTTPError(400, f"Message Batch {job.id} has not yet ended: its results are not available.",
                                   "invalid_request")
            await _send_bytes(send, self._anthropic_results(job), rid, id_header)
            return
        if rest[1:] == ["cancel"]:
            _allow(method, "POST")
            self._cancel(job)
        elif len(rest) != 1:
            raise SimHTTPError(404, f"Unknown request URL: {method} {where}/{'/'.join(rest)}.", "unknown_url")
        else:
            _allow(method, "GET")
        await send_json(send, 200, card(job), rid, id_header=id_header)

    # --- OpenAI ------------------------------------------------------------------------------------

    def _openai_job(self, data: Any) -> _Job:
        if not isinstance(data, dict):
            raise SimHTTPError(400, "The request body must be a JSON object.", "invalid_json")
        for name in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(data.get(name), str):
                raise SimHTTPError(400, f"Missing required parameter: '{name}'.", "missing_required_parameter",
                                   param=name)
        if data["endpoint"] != CHAT:
            raise SimHTTPError(400, f"heavy's simulator batches only {CHAT}, not {data['endpoint']}.",
                               "invalid_value", param="endpoint")
        if data["completion_window"] != "24h":
            raise SimHTTPError(400, "completion_window must be '24h'.", "invalid_value", param="completion_window")
        f = self.files.get(data["input_file_id"])
        if f is None or f.purpose != "batch":
            raise SimHTTPError(400, f"File {data['input_file_id']} is not a file uploaded with purpose 'batch'.",
                               "invalid_value", param="input_file_id")
        lines, errors = openai_lines(f.content)
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else None
        job = self._new("batch", "openai", lines, {"input_file_id": f.id, "endpoint": CHAT, "metadata": metadata})
        job.errors = errors
        return job

    def _openai_card(self, job: _Job) -> dict[str, Any]:
        status, done = self._state(job)
        total = len(job.lines)
        failed = sum(1 for _, outcome, _ in job.results or [] if outcome != "succeeded")
        ts = int(job.created_at)
        card: dict[str, Any] = {
            "id": job.id, "object": "batch", "endpoint": CHAT, "errors": None, "input_file_id": job.meta["input_file_id"],
            "completion_window": "24h", "status": status, "output_file_id": job.files.get("output"),
            "error_file_id": job.files.get("error"), "created_at": ts, "in_progress_at": None,
            "expires_at": ts + 86400, "finalizing_at": None, "completed_at": None, "failed_at": None,
            "expired_at": None, "cancelling_at": None, "cancelled_at": None,
            "request_counts": {"total": total, "completed": (done - failed) if job.results is not None else done,
                               "failed": failed},
            "metadata": job.meta.get("metadata"),
        }
        if job.errors:
            card["errors"] = {"object": "list", "data": job.errors}
            card["request_counts"] = {"total": 0, "completed": 0, "failed": 0}
        return card

    # --- Anthropic ---------------------------------------------------------------------------------

    def _anthropic_job(self, data: Any) -> _Job:
        requests = data.get("requests") if isinstance(data, dict) else None
        if not isinstance(requests, list) or not requests:
            raise SimHTTPError(400, "requests: a list of at least one {custom_id, params} is required.",
                               "invalid_request")
        seen: set[str] = set()
        for i, r in enumerate(requests):
            cid = r.get("custom_id") if isinstance(r, dict) else None
            if not isinstance(cid, str) or not custom_id_ok(cid):
                raise SimHTTPError(400, f"requests.{i}.custom_id: 1-64 characters of a-z A-Z 0-9 _ - are required.",
                                   "invalid_request")
            if cid in seen:
                raise SimHTTPError(400, f"requests.{i}.custom_id: {cid!r} is used twice in this batch.",
                                   "invalid_request")
            if not isinstance(r.get("params"), dict):
                raise SimHTTPError(400, f"requests.{i}.params: an object (a Messages request) is required.",
                                   "invalid_request")
            seen.add(cid)
        return self._new("msgbatch", "anthropic", [{"custom_id": r["custom_id"], "params": r["params"]}
                                                    for r in requests], {})

    def _anthropic_card(self, job: _Job, scope: dict) -> dict[str, Any]:
        status, done = self._state(job)
        total = len(job.lines)
        counts = {"processing": total - done, "succeeded": done, "errored": 0, "canceled": 0, "expired": 0}
        if job.results is not None:
            counts = dict.fromkeys(counts, 0)
            for _, outcome, _ in job.results:
                counts[{"cancelled": "canceled"}.get(outcome, outcome)] += 1
        ended = status == "ended"
        return {"id": job.id, "type": "message_batch", "processing_status": status, "request_counts": counts,
                "ended_at": _rfc3339(time.time()) if ended else None, "created_at": _rfc3339(job.created_at),
                "expires_at": _rfc3339(job.created_at + 86400), "archived_at": None,
                "cancel_initiated_at": _rfc3339(job.created_at) if job.cancelled_at is not None else None,
                "results_url": f"{_origin(scope)}/v1/messages/batches/{job.id}/results" if ended else None}

    def _anthropic_results(self, job: _Job) -> bytes:
        lines = []
        for cid, outcome, payload in job.results or []:
            if outcome == "succeeded":
                result = {"type": "succeeded", "message": payload}
            elif outcome == "errored":
                result = {"type": "errored", "error": payload[1]}
            else:
                result = {"type": {"cancelled": "canceled"}.get(outcome, outcome)}
            lines.append(ResultFaults.line({"custom_id": cid, "result": result}, cid, job.dropped, job.garbled))
        return "".join(lines).encode()

    # --- the lifecycle, whatever the wire ---------------------------------------------------------------

    def _new(self, prefix: str, wire: str, lines: list[dict[str, Any]], meta: dict[str, Any]) -> _Job:
        job = _Job(f"{prefix}_{uuid.uuid4().hex[:24]}", wire, lines, time.monotonic(), time.time(),
                   self.app.config.batch_seconds, meta)
        for line in lines:
            self.submitted[line["custom_id"]] += 1
        self.jobs[job.id] = job
        return job

    def _job(self, batch_id: str, wire: str) -> _Job:
        job = self.jobs.get(batch_id)
        if job is None or job.wire != wire:
            raise SimHTTPError(404, f"No such batch: {batch_id}", "not_found")
        return job

    def _cancel(self, job: _Job) -> None:
        if job.cancelled_at is None and job.results is None:
            job.cancelled_at = time.monotonic()

    def _state(self, job: _Job) -> tuple[str, int]:
        """The job's status in its wire's words and how many requests have run; processes it when due."""
        now = time.monotonic()
        share = (now - job.created) / job.seconds if job.seconds > 0 else 1.0
        begin, end = _PHASES
        running = min(1.0, max(0.0, (share - begin) / (end - begin)))
        if job.cancelled_at is not None and job.results is None:
            cut = (job.cancelled_at - job.created) / job.seconds if job.seconds > 0 else 1.0
            ran = min(1.0, max(0.0, (cut - begin) / (end - begin)))
            if now - job.cancelled_at < job.seconds * begin:  # cancelling takes a moment, like finalizing
                return ("cancelling" if job.wire == "openai" else "canceling"), int(ran * len(job.lines))
            self._process(job, ran)
        elif share >= 1.0 and job.results is None:
            self._process(job, 1.0)
        if job.results is not None:
            return self._final_status(job), len(job.lines)
        if job.wire == "anthropic":
            return "in_progress", int(running * len(job.lines))
        if share < begin:
            return "validating", 0
        return ("in_progress" if share < end else "finalizing"), int(running * len(job.lines))

    def _final_status(self, job: _Job) -> str:
        if job.wire == "anthropic":
            return "ended"
        if job.errors:
            return "failed"
        if job.cancelled_at is not None:
            return "cancelled"
        return "expired" if any(o == "expired" for _, o, _ in job.results or []) else "completed"

    def _process(self, job: _Job, ran: float) -> None:
        """Answer the job's requests (the first *ran* share of them; the rest cancelled) and write its files."""
        rng = random.Random(self.app.config.seed if self.app.config.seed is not None else job.id)
        results: list[tuple[str, str, Any]] = []
        if not job.errors:
            cut = round(ran * len(job.lines))
            for i, line in enumerate(job.lines):
                if i >= cut:
                    results.append((line["custom_id"], "cancelled", None))
                elif rng.random() < self.app.config.batch_expire_rate:
                    results.append((line["custom_id"], "expired", None))
                else:
                    results.append(self._answer(job, line))
        rng.shuffle(results)  # the documented order: none
        job.results = results
        if self.faults is not None:
            job.dropped, job.garbled = self.faults.pick(results, rng)
        if job.wire == "openai":
            self._openai_files(job)

    def _answer(self, job: _Job, line: dict[str, Any]) -> tuple[str, str, Any]:
        wire = _WIRES[job.wire]
        body = line["body"] if job.wire == "openai" else line["params"]
        cid = line["custom_id"]
        try:
            if isinstance(body, dict) and body.get("stream"):
                raise SimHTTPError(400, "Streaming is not supported in a batch request.", "invalid_value",
                                   param="stream")
            payload = self.app.reply(wire, json.dumps(body).encode())
        except SimHTTPError as exc:
            rid = f"req_{uuid.uuid4().hex}"
            return cid, "errored", (exc.status, wire.error_body(exc, rid), rid)
        self.billed[cid] += 1
        return cid, "succeeded", payload

    def _openai_files(self, job: _Job) -> None:
        out: list[tuple[str, dict[str, Any]]] = []
        err: list[tuple[str, dict[str, Any]]] = []
        for cid, outcome, payload in job.results or []:
            line_id = f"batch_req_{uuid.uuid4().hex[:24]}"
            if outcome == "succeeded":
                out.append((cid, {"id": line_id, "custom_id": cid, "response": {
                    "status_code": 200, "request_id": f"req_{uuid.uuid4().hex}", "body": payload}, "error": None}))
            elif outcome == "errored":
                status, body, rid = payload
                err.append((cid, {"id": line_id, "custom_id": cid, "response": {
                    "status_code": status, "request_id": rid, "body": body}, "error": None}))
            else:
                code = "batch_expired" if outcome == "expired" else "batch_cancelled"
                why = "could not be executed before the completion window ended" if outcome == "expired" else \
                    "was not executed before the batch was cancelled"
                err.append((cid, {"id": line_id, "custom_id": cid, "response": None,
                                  "error": {"code": code, "message": f"This request {why}."}}))
        for key, rows in (("output", out), ("error", err)):
            if rows:
                f = SimFile(f"file-{uuid.uuid4().hex[:24]}", f"{job.id}_{key}.jsonl", f"batch_{key}",
                            "".join(ResultFaults.line(r, cid, job.dropped, job.garbled) for cid, r in rows).encode(),
                            int(time.time()))
                self.files[f.id] = f
                job.files[key] = f.id

    def _list(self, wire: str, query: dict[str, str], card: Any) -> dict[str, Any]:
        """Newest first, ``limit`` (1-100, default 20) of them, after the cursor id (OpenAI's ``after``,
        Anthropic's ``after_id``)."""
        try:
            limit = min(100, max(1, int(query.get("limit", "20"))))
        except ValueError:
            raise SimHTTPError(400, "limit must be an integer from 1 to 100.", "invalid_value", param="limit") from None
        jobs = [j for j in sorted(self.jobs.values(), key=lambda j: j.created, reverse=True) if j.wire == wire]
        after = query.get("after_id" if wire == "anthropic" else "after")
        if after:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(after) + 1:] if after in ids else []
        page = jobs[:limit]
        return {"object": "list", "data": [card(j) for j in page], "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None, "has_more": len(jobs) > limit}


# --- helpers --------------------------------------------------------------------------------------------


async def _json_body(receive: Any) -> Any:
    body = await read_body(receive)
    if body is None:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise SimHTTPError(400, "We could not parse the JSON body of your request.", "invalid_json") from None


async def _send_bytes(send: Any, data: bytes, rid: str, id_header: str = "x-request-id") -> None:
    head = headers("application/octet-stream", rid, id_header=id_header) + [(b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": head})
    await send({"type": "http.response.body", "body": data, "more_body": False})


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise SimHTTPError(405, f"Method {method} is not allowed here.", "method_not_allowed")


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


def _origin(scope: dict) -> str:
    host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
    if not host:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"
