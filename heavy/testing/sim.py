"""A simulated OpenAI-compatible LLM server: no key, no network, no GPU.

:class:`SimulatedLLM` is a raw ASGI app (no web framework), so tests and demos run it in-process::

    app = SimulatedLLM(SimConfig(accuracy=0.7, latency=0.2, seed=1))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim/v1")

and :func:`serve` runs the same app over HTTP with uvicorn (``python -m heavy.testing``).

It answers arithmetic questions and questions from its dataset correctly with probability
``accuracy`` and otherwise with a plausible wrong number; it follows heavy's judge and synthesize
prompts (``heavy.prompts``) deterministically; it streams, truncates, stops, returns logprobs (right
answers are more confident than wrong ones), injects failures and latency, and counts what it serves
in :attr:`SimulatedLLM.stats` so tests can prove, for example, that N samples really ran in parallel.

Latency is ``asyncio.sleep`` and nothing runs in threads: hundreds of concurrent requests are cheap.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..constants import SIM_PORT
from ..errors import ConfigError
from ..prompts import JUDGE_INSTRUCTION, SYNTHESIZE_INSTRUCTION
from .config import OverrideError, SimConfig, apply_overrides, load_dataset, parse_model_overrides
from .solver import GoldIndex
from .writer import Reply, answer_reply, derive_seed, judge_reply, synthesize_reply, token_logprobs, tokenize

__all__ = ["SimulatedLLM", "SimConfig", "SimStats", "load_dataset", "serve", "OWNED_BY"]

#: What /v1/models reports as the owner, so nobody mistakes the simulator for a model.
OWNED_BY = "heavy (simulated, not a real model)"
_FINGERPRINT = "fp_heavy_simulated"
_MAX_BODY = 16 * 1024 * 1024  # a chat request bigger than this is a bug, not a prompt
_MAX_CACHED_CONFIGS = 256  # distinct model-name override strings remembered
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")


@dataclass
class SimStats:
    """Counters of what the server has done; tests read them to check behaviour, not just output."""

    requests: int = 0  #: every HTTP request, any path, including rejected and failed ones
    chat_requests: int = 0  #: POSTs to /v1/chat/completions (injected failures included)
    in_flight: int = 0  #: chat requests being served right now
    max_in_flight: int = 0  #: the most chat requests ever served at the same time
    failures: int = 0  #: injected failures (fail_rate)
    disconnects: int = 0  #: requests abandoned because the client went away
    judge_requests: int = 0
    synthesize_requests: int = 0
    by_model: Counter = field(default_factory=Counter)  #: chat requests per requested model name

    def reset(self) -> None:
        """Zero every counter except ``in_flight`` (requests still running keep being counted)."""
        in_flight = self.in_flight
        self.__init__()  # type: ignore[misc]
        self.in_flight = self.max_in_flight = in_flight


# --- request validation --------------------------------------------------------------------------


class _Lenient(BaseModel):
    # strict: "5" is not a number and true is not 1, as in OpenAI's API; extra fields are ignored so
    # clients can send provider-specific options without breaking the simulator.
    model_config = ConfigDict(strict=True, extra="allow")


class _Message(_Lenient):
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class _StreamOptions(_Lenient):
    include_usage: bool | None = None


class _ChatRequest(_Lenient):
    model: str | None = None
    messages: list[_Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=128)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)


class _HTTPError(Exception):
    """An error response in OpenAI's shape, raised before the response has started."""

    def __init__(self, status: int, message: str, code: str | None, *, type_: str = "invalid_request_error",
                 param: str | None = None, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param, self.headers = status, message, code, type_, param, headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def _validation_error(exc: ValidationError) -> _HTTPError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "body"
    param = str(err["loc"][0]) if err["loc"] else None
    if err["type"] == "missing":
        return _HTTPError(400, f"Missing required parameter: '{loc}'.", "missing_required_parameter", param=param)
    code = "invalid_type" if err["type"].endswith("_type") else "invalid_value"
    return _HTTPError(400, f"Invalid value for '{loc}': {err['msg']}.", code, param=param)


@dataclass
class _Choice:
    index: int
    tokens: list[str]
    logprobs: list[dict] | None
    finish_reason: str
    pieces: list[int]  # stream chunk sizes in tokens


# --- the app -------------------------------------------------------------------------------------


class SimulatedLLM:
    """ASGI app imitating an OpenAI-compatible chat server (see the module docstring).

    ``SimulatedLLM(SimConfig(...))``, or for brevity ``SimulatedLLM(accuracy=0.9, seed=1)``.
    Request a model named ``"<anything>@key=value,..."`` to override config fields for that request.
    """

    def __init__(self, config: SimConfig | None = None, **fields: Any) -> None:
        if config is None:
            config = SimConfig(**fields)
        elif fields:
            config = SimConfig.model_validate({**config.model_dump(), **fields})
        self.config = config
        self.stats = SimStats()
        self._index = GoldIndex(config.dataset)
        # One generator for everything not tied to a request seed (latency, failures, unseeded
        # samples): seeded by config.seed, so a whole run replays when requests arrive in order.
        self._rng = random.Random(config.seed)
        self._configs: dict[str, SimConfig] = {}
        self._created = int(time.time())

    # ASGI entry point.
    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: refuse politely
            await receive()
            await send({"type": "websocket.close", "code": 1003})
            return
        self.stats.requests += 1
        request_id = f"req_{uuid.uuid4().hex}"
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        try:
            if path in _CHAT_PATHS:
                if method != "POST":
                    raise _method_not_allowed(method, path)
                await self._chat(receive, send, request_id)
            elif path == "/health":
                if method not in ("GET", "HEAD"):
                    raise _method_not_allowed(method, path)
                await _send_json(send, 200, {"status": "ok", "simulated": True, "model": self.config.model_name}, request_id)
            elif path in _MODELS_PATHS:
                if method != "GET":
                    raise _method_not_allowed(method, path)
                await _send_json(send, 200, {"object": "list", "data": [self._model_card(self.config.model_name)]}, request_id)
            elif path.startswith("/v1/models/") and method == "GET":
                model = path[len("/v1/models/"):]
                self._config_for(model)  # 400 if its overrides are invalid
                await _send_json(send, 200, self._model_card(model), request_id)
            else:
                raise _HTTPError(404, f"Unknown request URL: {method} {path}. The heavy simulated LLM serves "
                                 "POST /v1/chat/completions, GET /v1/models and GET /health.", "unknown_url")
        except _HTTPError as exc:
            await _send_json(send, exc.status, exc.body(), request_id, exc.headers)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _model_card(self, model: str) -> dict:
        return {"id": model, "object": "model", "created": self._created, "owned_by": OWNED_BY}

    def _config_for(self, model: str) -> SimConfig:
        """The effective config of a requested model name (cached: names repeat across a run)."""
        cached = self._configs.get(model)
        if cached is None:
            try:
                cached = apply_overrides(self.config, parse_model_overrides(model)[1])
            except OverrideError as exc:
                raise _HTTPError(400, str(exc), "invalid_model_override", param="model") from None
            if len(self._configs) >= _MAX_CACHED_CONFIGS:
                self._configs.clear()
            self._configs[model] = cached
        return cached

    def _latency(self, config: SimConfig) -> float:
        if config.latency_sigma > 0 and config.latency > 0:
            # Lognormal with median `latency`: most calls near it, a few very slow (the tail that
            # makes "wait for the slowest of N" expensive in real deployments).
            return config.latency * math.exp(self._rng.gauss(0.0, config.latency_sigma))
        return config.latency

    # --- chat completions ------------------------------------------------------------------------

    async def _chat(self, receive: Any, send: Any, request_id: str) -> None:
        stats = self.stats
        stats.chat_requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        watcher: asyncio.Task | None = None
        try:
            body = await _read_body(receive)
            if body is None:
                stats.disconnects += 1
                return
            request = _parse_request(body)
            model = request.model or self.config.model_name
            config = self._config_for(model)
            stats.by_model[model] += 1
            # Watch for the client going away, so abandoned requests stop generating (hedging and
            # cancellation in heavy rely on the server noticing).
            watcher = asyncio.create_task(_watch_disconnect(receive))
            start = asyncio.get_running_loop().time()
            latency = self._latency(config)
            if config.fail_rate > 0 and self._rng.random() < config.fail_rate:
                stats.failures += 1
                # Rate limits are refused at the door; server errors happen after the model started.
                if config.fail_status != 429 and not await _sleep_until(start + latency, watcher):
                    stats.disconnects += 1
                    return
                raise _injected_failure(config)
            choices, reply_kind = self._generate(request, config, model)
            prompt_tokens = sum(len(m.text().split()) for m in request.messages)
            completion_tokens = sum(len(c.tokens) for c in choices)
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}
            shown_model = model if "simulated" in model.lower() else f"simulated/{model}"
            meta = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "created": int(time.time()), "model": shown_model,
                    "system_fingerprint": _FINGERPRINT}
            if reply_kind == "judge":
                stats.judge_requests += 1
            elif reply_kind == "synthesize":
                stats.synthesize_requests += 1
            first_token = start + latency
            tps = config.tokens_per_second
            if request.stream:
                include_usage = bool(request.stream_options and request.stream_options.include_usage)
                finished = await _stream(send, request_id, meta, choices, usage if include_usage else None,
                                         first_token, tps, watcher)
                if not finished:
                    stats.disconnects += 1
                return
            generation = max(len(c.tokens) for c in choices) / tps if tps else 0.0
            if not await _sleep_until(first_token + generation, watcher):
                stats.disconnects += 1
                return
            body_out = {"id": meta["id"], "object": "chat.completion", **meta, "choices": [
                {"index": c.index, "message": {"role": "assistant", "content": "".join(c.tokens)},
                 "logprobs": {"content": c.logprobs} if c.logprobs is not None else None,
                 "finish_reason": c.finish_reason} for c in choices], "usage": usage}
            await _send_json(send, 200, body_out, request_id)
        except _HTTPError as exc:
            await _send_json(send, exc.status, exc.body(), request_id, exc.headers)
        finally:
            stats.in_flight -= 1
            if watcher is not None:
                watcher.cancel()

    def _generate(self, request: _ChatRequest, config: SimConfig, model: str) -> tuple[list[_Choice], str]:
        users = [m for m in request.messages if m.role == "user"]
        question = (users or request.messages)[-1].text()
        if request.seed is not None:
            base = derive_seed(config.seed, request.seed, question, model)
        else:
            base = self._rng.getrandbits(64)
        shared: Reply | None = None
        if JUDGE_INSTRUCTION in question:
            shared = judge_reply(question, config, self._index)
        elif SYNTHESIZE_INSTRUCTION in question:
            shared = synthesize_reply(question, config, self._index)
        stops = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        limit = request.max_completion_tokens or request.max_tokens
        top_k = request.top_logprobs or 0
        choices = []
        for i in range(request.n or 1):
            rng = random.Random(base if i == 0 else derive_seed(base, i))
            reply = shared or answer_reply(question, config, self._index, rng)
            text, finish = _cut_at_stop(reply.text, stops)
            tokens = tokenize(text)
            if limit is not None and len(tokens) > limit:
                tokens, finish = tokens[:limit], "length"
            logprobs = token_logprobs(tokens, reply.confidence, top_k, rng) if request.logprobs else None
            pieces, left = [], len(tokens)
            while left > 0:  # OpenAI-like deltas: a few tokens each
                pieces.append(min(left, rng.randint(1, 4)))
                left -= pieces[-1]
            choices.append(_Choice(i, tokens, logprobs, finish, pieces))
        return choices, (shared.kind if shared else "answer")


def _parse_request(body: bytes) -> _ChatRequest:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _HTTPError(400, "We could not parse the JSON body of your request. The body must be valid JSON.",
                         "invalid_json") from None
    if not isinstance(data, dict):
        raise _HTTPError(400, "The request body must be a JSON object.", "invalid_json")
    try:
        request = _ChatRequest.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    if request.top_logprobs and not request.logprobs:
        raise _HTTPError(400, "logprobs must be true when top_logprobs is set.", "invalid_value", param="top_logprobs")
    return request


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, str]:
    """Text up to (excluding) the earliest stop sequence; the finish reason is "stop" either way."""
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(cuts)] if cuts else text), "stop"


def _method_not_allowed(method: str, path: str) -> _HTTPError:
    return _HTTPError(405, f"Method {method} is not allowed for {path}.", "method_not_allowed")


def _injected_failure(config: SimConfig) -> _HTTPError:
    if config.fail_status == 429:
        return _HTTPError(429, f"Rate limit reached (simulated failure, fail_rate={config.fail_rate}). "
                          "Please retry after 1 second.", "rate_limit_exceeded", type_="rate_limit_error",
                          headers=(("retry-after", "1"),))
    return _HTTPError(config.fail_status, "The server had an error while processing your request (simulated "
                      f"failure, fail_rate={config.fail_rate}).", "simulated_failure", type_="server_error")


# --- ASGI plumbing -------------------------------------------------------------------------------


def _headers(content_type: str, request_id: str, extra: tuple[tuple[str, str], ...] = ()) -> list[tuple[bytes, bytes]]:
    pairs = [("content-type", content_type), ("x-request-id", request_id), ("x-heavy-simulated", "true"), *extra]
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


async def _send_json(send: Any, status: int, payload: dict, request_id: str,
                     extra: tuple[tuple[str, str], ...] = ()) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    headers = _headers("application/json", request_id, extra) + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body, or ``None`` if the client disconnected first."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise _HTTPError(413, f"Request body larger than {_MAX_BODY} bytes.", "request_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _watch_disconnect(receive: Any) -> None:
    """Completes when the client disconnects (or the server can no longer tell us anything)."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # a broken receive channel means the client is gone just the same
        return


async def _sleep_until(deadline: float, watcher: asyncio.Task) -> bool:
    """Sleep until *deadline* (loop time); ``False`` as soon as the client disconnects."""
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0 and not watcher.done():
        # Waiting on the watcher task itself: no extra task per sleep, and a disconnect wakes us.
        await asyncio.wait({watcher}, timeout=delay)
    return not watcher.done()


async def _stream(send: Any, request_id: str, meta: dict, choices: list[_Choice], usage: dict | None,
                  first_token: float, tps: float | None, watcher: asyncio.Task) -> bool:
    """Send *choices* as OpenAI server-sent events; ``False`` if the client went away midway."""
    include_usage = usage is not None

    def chunk(choice_list: list[dict]) -> dict:
        out = {"id": meta["id"], "object": "chat.completion.chunk", **meta, "choices": choice_list}
        if include_usage:  # OpenAI sends "usage": null on every chunk but the last when asked for usage
            out["usage"] = None
        return out

    async def emit(payload: dict | str, more: bool = True) -> bool:
        if watcher.done():
            return False
        data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        try:
            await send({"type": "http.response.body", "body": f"data: {data}\n\n".encode("utf-8"), "more_body": more})
        except (OSError, RuntimeError):  # the server tells us the connection is gone
            return False
        return True

    # Headers go out at once, like real servers: the latency is time to first *token*.
    await send({"type": "http.response.start", "status": 200, "headers": _headers(
        "text/event-stream; charset=utf-8", request_id, (("cache-control", "no-cache"),))})
    if not await _sleep_until(first_token, watcher):
        return False
    for c in choices:
        delta = {"index": c.index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        if not await emit(chunk([delta])):
            return False
    # Every content piece is due when its last token has been generated; with n > 1 the choices
    # are generated side by side, so sorting by that time interleaves them as a real server would.
    events = []
    for c in choices:
        done = 0
        for size in c.pieces:
            events.append((done + size, c.index, done, size, c))
            done += size
    events.sort(key=lambda e: (e[0], e[1]))
    for due, index, begin, size, c in events:
        end = begin + size
        if tps and not await _sleep_until(first_token + due / tps, watcher):
            return False
        logprobs = {"content": c.logprobs[begin:end]} if c.logprobs is not None else None
        delta = {"index": index, "delta": {"content": "".join(c.tokens[begin:end])}, "logprobs": logprobs,
                 "finish_reason": None}
        if not await emit(chunk([delta])):
            return False
    for c in choices:
        if not await emit(chunk([{"index": c.index, "delta": {}, "logprobs": None, "finish_reason": c.finish_reason}])):
            return False
    if include_usage and not await emit({**chunk([]), "usage": usage}):
        return False
    return await emit("[DONE]", more=False)


def serve(config: SimConfig | None = None, host: str = "127.0.0.1", port: int = SIM_PORT, *,
          log_level: str = "warning") -> None:
    """Serve the simulator over HTTP with uvicorn until interrupted (blocks).

    uvicorn is an optional dependency (``pip install 'heavy[serve]'``) and imported only here, so the
    in-process use of :class:`SimulatedLLM` needs nothing beyond heavy's core dependencies.
    """
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("serving the simulated LLM over HTTP needs uvicorn: pip install 'heavy[serve]'") from None
    uvicorn.run(SimulatedLLM(config or SimConfig()), host=host, port=port, log_level=log_level)
