"""A simulated LLM server speaking three wire formats: no key, no network, no GPU.

:class:`SimulatedLLM` is a raw ASGI app (no web framework), so tests and demos run it in-process::

    app = SimulatedLLM(SimConfig(accuracy=0.7, latency=0.2, seed=1))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim/v1")

and :func:`serve` runs the same app over HTTP with uvicorn (as does ``heavy sim``, with every setting a flag).

It answers in the shape of the API it is asked through, with the same model behind all three:

- OpenAI Chat Completions: ``POST /v1/chat/completions`` (:mod:`heavy.sim.openai_wire`);
- Anthropic Messages: ``POST /v1/messages`` (:mod:`heavy.sim.anthropic_wire`);
- Gemini: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``
  (:mod:`heavy.sim.gemini_wire`).

It answers arithmetic questions and questions from its dataset correctly with probability
``accuracy`` and otherwise with a plausible wrong number; it follows heavy's judge and synthesize
prompts (``heavy.prompts``) deterministically; it streams, truncates, stops, returns logprobs (right
answers are more confident than wrong ones), injects failures (in each API's error shape) and latency,
and counts what it serves in :attr:`SimulatedLLM.stats` so tests can prove, for example, that N samples
really ran in parallel.

Latency is ``asyncio.sleep`` and nothing runs in threads: hundreds of concurrent requests are cheap.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from ..asgi import watch_disconnect
from ..constants import SIM_PORT
from ..errors import ConfigError
from ..prompts import DECIDE_NOW, JUDGE_INSTRUCTION, SYNTHESIZE_INSTRUCTION
from ..toolvote import TOOL_VOTE_INSTRUCTION
from .anthropic_wire import AnthropicWire
from .cache import PromptCache
from .batch import BatchStore
from .asgi import headers, read_body, send_json, sleep_until
from .clienttools import tool_vote_reply
from .config import OverrideError, SimConfig, apply_overrides, load_dataset, parse_model_overrides
from .gemini_wire import GeminiWire
from .openai_wire import OpenAIWire
from .solver import GoldIndex
from .tooluse import follow_tools
from .wire import Choice, Generation, SimHTTPError, SimRequest, Wire
from .writer import (Reply, answer_reply, decision_only, derive_seed, judge_reply, synthesize_reply, token_logprobs,
                     tokenize, verbose)

__all__ = ["SimulatedLLM", "SimConfig", "SimStats", "load_dataset", "serve", "OWNED_BY"]

#: What /v1/models reports as the owner, so nobody mistakes the simulator for a model.
OWNED_BY = "heavy (simulated, not a real model)"
_MAX_CACHED_CONFIGS = 256  # distinct model-name override strings remembered
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")
_ANTHROPIC_PATH = "/v1/messages"
_GEMINI_PREFIX = "/v1beta/models/"
_GEMINI_ACTIONS = ("generateContent", "streamGenerateContent")
_OPENAI, _ANTHROPIC, _GEMINI = OpenAIWire(), AnthropicWire(), GeminiWire()
_ROUTES = ("POST /v1/chat/completions, POST /v1/messages, POST /v1beta/models/MODEL:generateContent, "
           "POST /v1beta/models/MODEL:streamGenerateContent?alt=sse, the batch APIs (/v1/files, /v1/batches, "
           "/v1/messages/batches), GET /v1/models and GET /health")


@dataclass
class SimStats:
    """Counters of what the server has done; tests read them to check behaviour, not just output."""

    requests: int = 0  #: every HTTP request, any path, including rejected and failed ones
    chat_requests: int = 0  #: generation POSTs on any wire (injected failures included)
    in_flight: int = 0  #: generation requests being served right now
    max_in_flight: int = 0  #: the most generation requests ever served at the same time
    failures: int = 0  #: injected failures (fail_rate)
    disconnects: int = 0  #: requests abandoned because the client went away
    judge_requests: int = 0
    synthesize_requests: int = 0
    by_model: Counter = field(default_factory=Counter)  #: generation requests per requested model name
    by_wire: Counter = field(default_factory=Counter)  #: generation requests per wire ("openai", "anthropic", "gemini")
    prompt_tokens: int = 0  #: prompt tokens of every generation request (each n > 1 request's once)
    cache_read_tokens: int = 0  #: of them, read from the prompt cache
    cache_write_tokens: int = 0  #: of them, written to it (where the API charges writes: Anthropic)
    cache_keys: Counter = field(default_factory=Counter)  #: requests per prompt_cache_key

    def reset(self) -> None:
        """Zero every counter except ``in_flight`` (requests still running keep being counted)."""
        in_flight = self.in_flight
        self.__init__()  # type: ignore[misc]
        self.in_flight = self.max_in_flight = in_flight


# --- the app -------------------------------------------------------------------------------------


class SimulatedLLM:
    """ASGI app imitating an LLM server in three wire formats (see the module docstring).

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
        self.cache = PromptCache()  #: prompt prefixes cached as each API caches them (:mod:`heavy.sim.cache`)
        self.batches = BatchStore(self)  #: batch jobs and their files (:mod:`heavy.sim.batch`)

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
        wire: Wire = _OPENAI  # the shape errors are answered in
        try:
            if path in _CHAT_PATHS:
                _allow(method, path, "POST")
                await self._complete(_OPENAI, receive, send, request_id)
            elif path == _ANTHROPIC_PATH:
                wire = _ANTHROPIC
                _allow(method, path, "POST")
                await self._complete(_ANTHROPIC, receive, send, request_id)
            elif path.startswith(_GEMINI_PREFIX) and ":" in path:
                wire = _GEMINI
                model, _, action = path[len(_GEMINI_PREFIX):].rpartition(":")
                if not model or action not in _GEMINI_ACTIONS:
                    raise SimHTTPError(404, f"Unknown request URL: {method} {path}. The heavy simulated LLM serves "
                                       f"{_ROUTES}.", "unknown_url")
                _allow(method, path, "POST")
                stream = action == "streamGenerateContent"
                if stream and parse_qs(scope.get("query_string", b"").decode("latin-1")).get("alt") != ["sse"]:
                    raise SimHTTPError(400, "heavy's simulator streams Gemini answers only as server-sent events: "
                                       "add ?alt=sse to the URL.", "unsupported")
                await self._complete(_GEMINI, receive, send, request_id, model=model, stream=stream)
            elif BatchStore.serves(path):
                wire = _ANTHROPIC if path.startswith("/v1/messages/") else _OPENAI
                await self.batches.handle(method, path, scope, receive, send, request_id)
            elif path == "/health":
                _allow(method, path, "GET", "HEAD")
                await send_json(send, 200, {"status": "ok", "simulated": True, "model": self.config.model_name,
                                            "batches": self.batches.summary()}, request_id)
            elif path in _MODELS_PATHS:
                _allow(method, path, "GET")
                await send_json(send, 200, {"object": "list", "data": [self._model_card(self.config.model_name)]}, request_id)
            elif path.startswith("/v1/models/") and method == "GET":
                model = path[len("/v1/models/"):]
                self._config_for(model)  # 400 if its overrides are invalid
                await send_json(send, 200, self._model_card(model), request_id)
            else:
                raise SimHTTPError(404, f"Unknown request URL: {method} {path}. The heavy simulated LLM serves "
                                   f"{_ROUTES}.", "unknown_url")
        except SimHTTPError as exc:
            await _send_error(send, wire, exc, request_id)

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
                raise SimHTTPError(400, str(exc), "invalid_model_override", param="model") from None
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

    # --- generation, whatever the wire -------------------------------------------------------

    async def _complete(self, wire: Wire, receive: Any, send: Any, request_id: str, *, model: str | None = None,
                        stream: bool = False) -> None:
        stats = self.stats
        stats.chat_requests += 1
        stats.by_wire[wire.name] += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        watcher: asyncio.Task | None = None
        try:
            body = await read_body(receive)
            if body is None:
                stats.disconnects += 1
                return
            request = wire.parse(body, model, stream)
            model = request.model or self.config.model_name
            config = self._config_for(model)
            stats.by_model[model] += 1
            # Watch for the client going away, so abandoned requests stop generating (hedging and
            # cancellation in heavy rely on the server noticing).
            watcher = asyncio.create_task(watch_disconnect(receive))
            start = asyncio.get_running_loop().time()
            latency = self._latency(config)
            failure: SimHTTPError | None = None
            if config.fail_rate > 0 and self._rng.random() < config.fail_rate:
                stats.failures += 1
                failure = _injected_failure(config)
                if not (request.stream and config.fail_in_stream):
                    # Rate limits are refused at the door; server errors happen after the model started.
                    if config.fail_status != 429 and not await sleep_until(start + latency, watcher):
                        stats.disconnects += 1
                        return
                    raise failure
            gen, reply_kind = self._generate(request, config, model)
            if reply_kind == "judge":
                stats.judge_requests += 1
            elif reply_kind == "synthesize":
                stats.synthesize_requests += 1
            first_token = self._prefill(wire, model, request, gen, config, start, latency)
            tps = config.tokens_per_second
            if request.stream:
                if not await _stream(send, wire, request_id, gen, request, first_token, tps, watcher, failure):
                    stats.disconnects += 1
                return
            generation = max(len(c.tokens) for c in gen.choices) / tps if tps else 0.0
            if not await sleep_until(first_token + generation, watcher):
                stats.disconnects += 1
                return
            await send_json(send, 200, wire.response(gen, request), request_id, id_header=wire.request_id_header)
        except SimHTTPError as exc:
            await _send_error(send, wire, exc, request_id)
        finally:
            stats.in_flight -= 1
            if watcher is not None:
                watcher.cancel()

    def _prefill(self, wire: Wire, model: str, request: SimRequest, gen: Generation, config: SimConfig, start: float,
                 latency: float) -> float:
        """When the first token of *gen* is due: after the latency and the prompt tokens not read from the prompt
        cache (at ``prefill_tokens_per_second``). Records the cache's reads and writes on *gen* and in the stats."""
        pps = config.prefill_tokens_per_second

        def due(read: int) -> float:
            return start + latency + ((gen.prompt_tokens - read) / pps if pps else 0.0)

        if config.prompt_cache:
            outcome = self.cache.account(wire.name, model.partition("@")[0], request, now=start, first_token=due)
            gen.cache_read, gen.cache_write = outcome.read, outcome.write
        stats = self.stats
        stats.prompt_tokens += gen.prompt_tokens
        stats.cache_read_tokens += gen.cache_read
        stats.cache_write_tokens += gen.cache_write
        if request.cache_key:
            stats.cache_keys[request.cache_key] += 1
        return due(gen.cache_read)

    def reply(self, wire: Wire, body: bytes) -> dict:
        """The answer to one generation request *body* in *wire*'s shape, at once (no latency, no stream): how
        the requests of a batch job are answered. SimHTTPError for a bad request or an injected failure."""
        request = wire.parse(body, None, False)
        model = request.model or self.config.model_name
        config = self._config_for(model)
        if config.fail_rate > 0 and self._rng.random() < config.fail_rate:
            self.stats.failures += 1
            raise _injected_failure(config)
        return wire.response(self._generate(request, config, model)[0], request)

    def _generate(self, request: SimRequest, config: SimConfig, model: str) -> tuple[Generation, str]:
        question = request.question()
        users = [text for role, text in request.messages if role == "user"]
        # "Decide now" after an undecided reply: decide on the conversation's original prompt, say only that.
        decide_now = question.startswith(DECIDE_NOW.partition("\n")[0]) and len(users) >= 2
        if decide_now:
            question = users[-2]
        if request.seed is not None:
            base = derive_seed(config.seed, request.seed, question, model)
        else:
            base = self._rng.getrandbits(64)
        shared: Reply | None = None
        if JUDGE_INSTRUCTION in question:
            shared = judge_reply(question, config, self._index)
        elif SYNTHESIZE_INSTRUCTION in question:
            shared = synthesize_reply(question, config, self._index)
        elif TOOL_VOTE_INSTRUCTION in question:
            shared = tool_vote_reply(question)
        limit = request.max_tokens
        choices = []
        for i in range(request.n):
            rng = random.Random(base if i == 0 else derive_seed(base, i))
            reply = shared or follow_tools(request, config, self._index, rng) or answer_reply(
                question, config, self._index, rng)
            if decide_now:
                reply = decision_only(reply)
            elif config.judge_mode == "verbose" and reply.kind == "judge":
                reply = verbose(reply)
            text, finish, stop_sequence = _cut_at_stop(reply.text, request.stop)
            tokens = tokenize(text)
            if limit is not None and len(tokens) > limit:
                tokens, finish, stop_sequence = tokens[:limit], "length", None
            logprobs = token_logprobs(tokens, reply.confidence, request.top_logprobs, rng) if request.logprobs else None
            pieces, left = [], len(tokens)
            while left > 0:  # OpenAI-like deltas: a few tokens each
                pieces.append(min(left, rng.randint(1, 4)))
                left -= pieces[-1]
            calls = [dict(c) for c in reply.tool_calls] or None
            if calls:
                finish = "tool_calls"
            choices.append(Choice(i, tokens, logprobs, finish, pieces, stop_sequence, calls))
        shown_model = model if "simulated" in model.lower() else f"simulated/{model}"
        gen = Generation(id=uuid.uuid4().hex[:24], created=int(time.time()), model=shown_model, choices=choices,
                         prompt_tokens=request.prompt_tokens(), gemini_block=config.gemini_block)
        return gen, (shared.kind if shared else "answer")


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, str, str | None]:
    """Text up to (excluding) the earliest stop sequence, the finish reason ("stop" either way) and the
    stop sequence that cut it (``None`` if none did)."""
    cuts = [(i, s) for s in stops if s for i in (text.find(s),) if i >= 0]
    if not cuts:
        return text, "stop", None
    index, stop = min(cuts, key=lambda cut: cut[0])
    return text[:index], "stop", stop


def _allow(method: str, path: str, *allowed: str) -> None:
    if method not in allowed:
        raise SimHTTPError(405, f"Method {method} is not allowed for {path}.", "method_not_allowed")


def _injected_failure(config: SimConfig) -> SimHTTPError:
    if config.fail_status == 429:
        return SimHTTPError(429, f"Rate limit reached (simulated failure, fail_rate={config.fail_rate}). "
                            "Please retry after 1 second.", "rate_limit_exceeded", type_="rate_limit_error",
                            headers=(("retry-after", "1"),))
    if config.fail_status == 529:
        return SimHTTPError(529, f"Overloaded (simulated failure, fail_rate={config.fail_rate}).", "overloaded",
                            type_="server_error")
    return SimHTTPError(config.fail_status, "The server had an error while processing your request (simulated "
                        f"failure, fail_rate={config.fail_rate}).", "simulated_failure", type_="server_error")


async def _send_error(send: Any, wire: Wire, exc: SimHTTPError, request_id: str) -> None:
    await send_json(send, exc.status, wire.error_body(exc, request_id), request_id, exc.headers,
                    id_header=wire.request_id_header)


async def _stream(send: Any, wire: Wire, request_id: str, gen: Generation, request: SimRequest, first_token: float,
                  tps: float | None, watcher: asyncio.Task, failure: SimHTTPError | None) -> bool:
    """Send *gen* as server-sent events in *wire*'s shape; ``False`` if the client went away midway.

    With *failure*, the stream breaks off after its first piece with the wire's in-stream error.
    """

    async def emit(frames: list[str], more: bool = True) -> bool:
        if watcher.done():
            return False
        if not frames and more:
            return True
        try:
            await send({"type": "http.response.body", "body": "".join(frames).encode("utf-8"), "more_body": more})
        except (OSError, RuntimeError):  # the server tells us the connection is gone
            return False
        return True

    # Headers go out at once, like real servers: the latency is time to first *token*.
    await send({"type": "http.response.start", "status": 200, "headers": headers(
        "text/event-stream; charset=utf-8", request_id, (("cache-control", "no-cache"),), wire.request_id_header)})
    if not await sleep_until(first_token, watcher):
        return False
    if not await emit(wire.opening(gen, request)):
        return False
    # Every content piece is due when its last token has been generated; with n > 1 the choices
    # are generated side by side, so sorting by that time interleaves them as a real server would.
    events = []
    for c in gen.choices:
        done = 0
        for size in c.pieces:
            events.append((done + size, c.index, done, size, c))
            done += size
    events.sort(key=lambda e: (e[0], e[1]))
    for due, _, begin, size, c in events:
        if tps and not await sleep_until(first_token + due / tps, watcher):
            return False
        if not await emit(wire.piece(gen, request, c, begin, begin + size)):
            return False
        if failure is not None:
            break
    if failure is not None:
        return await emit(wire.stream_error(failure, request_id), more=False)
    return await emit(wire.closing(gen, request), more=False)


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
