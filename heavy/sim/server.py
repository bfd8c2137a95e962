"""A simulated LLM server speaking four APIs' wire formats: no key, no network, no GPU.

:class:`SimulatedLLM` is a raw ASGI app (no web framework), so tests and demos run it in-process::

    app = SimulatedLLM(SimConfig(accuracy=0.7, latency=0.2, seed=1))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim/v1")

and :func:`serve` runs the same app over HTTP with uvicorn (as does ``heavy sim``, with every setting a flag).

It answers in the shape of the API it is asked through, with the same model behind all three:

- OpenAI Chat Completions: ``POST /v1/chat/completions`` (:mod:`heavy.sim.openai_wire`);
- OpenAI Responses: ``POST /v1/responses`` and its stored responses, background mode and cancel
  (:mod:`heavy.sim.responses`, :mod:`heavy.sim.responses_wire`);
- Azure OpenAI's v1 API: the two above under ``/openai/v1/`` (the model a deployment name; other ``/openai/``
  paths are Azure's 404);
- Anthropic Messages: ``POST /v1/messages`` (:mod:`heavy.sim.anthropic_wire`);
- Gemini: ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``
  (:mod:`heavy.sim.gemini_wire`).

Each wire holds a real model name to its API's documented refusals (:mod:`heavy.sim.rules`: OpenAI's reasoning
models and their efforts, xAI, DeepSeek, Claude's thinking and sampling rules, Gemini's thinking budgets and
levels), answering them with the API's status and verbatim error body; names of no known family are served
leniently. A model that reasons writes a short simulated reasoning first, counted against the token limit and
reported where its API reports it (reasoning tokens, ``reasoning_content``, thinking blocks, thought parts,
reasoning items).

It answers arithmetic questions and questions from its dataset correctly with probability
``accuracy`` and otherwise with a plausible wrong number; it follows heavy's judge and synthesize
prompts (``heavy.prompts``) deterministically; it streams, truncates, stops, returns logprobs (right
answers are more confident than wrong ones), injects failures (in each API's error shape) and latency,
and counts what it serves in :attr:`SimulatedLLM.stats` so tests can prove, for example, that N samples
really ran in parallel, or which credential header a request carried (its name, never its value).

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
from .asgi import allow, headers, read_body, send_json, sleep_until
from .clienttools import tool_vote_reply
from .config import OverrideError, SimConfig, apply_overrides, load_dataset, parse_model_overrides
from .gemini_wire import GeminiWire
from .openai_wire import OpenAIWire
from .responses import ResponsesAPI
from .rules.openai import AZURE_NOT_FOUND
from .solver import GoldIndex
from .tooluse import follow_tools
from .wire import Choice, Generation, SimHTTPError, SimRequest, Wire
from .writer import (Reply, answer_reply, decision_only, derive_seed, judge_reply, reasoning_text, synthesize_reply,
                     token_logprobs, tokenize, verbose)

__all__ = ["SimulatedLLM", "SimConfig", "SimStats", "load_dataset", "serve", "OWNED_BY", "AUTH_HEADERS"]

#: What /v1/models reports as the owner, so nobody mistakes the simulator for a model.
OWNED_BY = "heavy (simulated, not a real model)"
_MAX_CACHED_CONFIGS = 256  # distinct model-name override strings remembered
_CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
_MODELS_PATHS = ("/v1/models", "/models")
_ANTHROPIC_PATH = "/v1/messages"
_GEMINI_PREFIX = "/v1beta/models/"
_GEMINI_ACTIONS = ("generateContent", "streamGenerateContent")
_OPENAI, _ANTHROPIC, _GEMINI = OpenAIWire(), AnthropicWire(), GeminiWire()
_AZURE_ROUTES = ("/v1/chat/completions", "/v1/models")  # and the Responses API's, and /v1/models/{id}
_ROUTES = ("POST /v1/chat/completions, POST /v1/responses (GET, DELETE /v1/responses/ID, POST .../cancel), "
           "POST /v1/messages, POST /v1beta/models/MODEL:generateContent, "
           "POST /v1beta/models/MODEL:streamGenerateContent?alt=sse, the batch APIs (/v1/files, /v1/batches, "
           "/v1/messages/batches), Azure's /openai/v1/chat/completions and /openai/v1/responses, GET /v1/models "
           "and GET /health")
#: The credential headers whose presence :attr:`SimStats.auth_headers` counts.
AUTH_HEADERS = ("authorization", "api-key", "x-api-key", "x-goog-api-key")


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
    by_wire: Counter = field(default_factory=Counter)  #: generation requests per wire ("openai", "responses",
    #: "anthropic", "gemini"; Azure's are "openai" and "responses" too)
    prompt_tokens: int = 0  #: prompt tokens of every generation request (each n > 1 request's once)
    cache_read_tokens: int = 0  #: of them, read from the prompt cache
    cache_write_tokens: int = 0  #: of them, written to it (where the API charges writes: Anthropic)
    cache_keys: Counter = field(default_factory=Counter)  #: requests per prompt_cache_key
    auth_headers: Counter = field(default_factory=Counter)  #: requests per credential header *name* they carried
    #: (authorization, api-key, x-api-key, x-goog-api-key; values are never recorded)
    azure_requests: int = 0  #: requests on Azure OpenAI's v1 routes (/openai/v1/...)

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
        self.responses = ResponsesAPI(self)  #: the Responses API and its stored responses (:mod:`heavy.sim.responses`)

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
        self._record_credentials(scope)
        wire: Wire = _OPENAI  # the shape errors are answered in
        try:
            if path == "/openai" or path.startswith("/openai/"):
                # Azure OpenAI's v1 API: the OpenAI routes under /openai/v1, the model a deployment name; any other
                # path (the dated /openai/deployments/... routes included) is Azure's 404.
                self.stats.azure_requests += 1
                path = path[len("/openai"):]
                if path not in _AZURE_ROUTES and not ResponsesAPI.serves(path) and not path.startswith("/v1/models/"):
                    raise AZURE_NOT_FOUND.error()
            if ResponsesAPI.serves(path):
                wire = self.responses.wire
                await self.responses.handle(method, path, scope, receive, send, request_id)
            elif path in _CHAT_PATHS:
                allow(method, path, "POST")
                await self.complete(_OPENAI, receive, send, request_id)
            elif path == _ANTHROPIC_PATH:
                wire = _ANTHROPIC
                allow(method, path, "POST")
                await self.complete(_ANTHROPIC, receive, send, request_id)
            elif path.startswith(_GEMINI_PREFIX) and ":" in path:
                wire = _GEMINI
                model, _, action = path[len(_GEMINI_PREFIX):].rpartition(":")
                if not model or action not in _GEMINI_ACTIONS:
                    raise SimHTTPError(404, f"Unknown request URL: {method} {path}. The heavy simulated LLM serves "
                                       f"{_ROUTES}.", "unknown_url")
                allow(method, path, "POST")
                stream = action == "streamGenerateContent"
                if stream and parse_qs(scope.get("query_string", b"").decode("latin-1")).get("alt") != ["sse"]:
                    raise SimHTTPError(400, "heavy's simulator streams Gemini answers only as server-sent events: "
                                       "add ?alt=sse to the URL.", "unsupported")
                await self.complete(_GEMINI, receive, send, request_id, model=model, stream=stream)
            elif BatchStore.serves(path):
                wire = _ANTHROPIC if path.startswith("/v1/messages/") else _OPENAI
                await self.batches.handle(method, path, scope, receive, send, request_id)
            elif path == "/health":
                allow(method, path, "GET", "HEAD")
                # The load it has seen, for tests and benchmarks that drive a `heavy sim` process from outside.
                load = {"requests": self.stats.chat_requests, "in_flight": self.stats.in_flight,
                        "max_in_flight": self.stats.max_in_flight}
                await send_json(send, 200, {"status": "ok", "simulated": True, "model": self.config.model_name,
                                            "batches": self.batches.summary(), "load": load}, request_id)
            elif path in _MODELS_PATHS:
                allow(method, path, "GET")
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

    def _record_credentials(self, scope: dict) -> None:
        """Count which credential headers the request carried (their names only, never their values)."""
        names = {name.decode("latin-1").lower() for name, _ in scope.get("headers") or []}
        for name in AUTH_HEADERS:
            if name in names:
                self.stats.auth_headers[name] += 1

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

    def latency(self, config: SimConfig) -> float:
        """Seconds before a request's first token (drawn from the server's generator when heavy-tailed)."""
        if config.latency_sigma > 0 and config.latency > 0:
            # Lognormal with median `latency`: most calls near it, a few very slow (the tail that
            # makes "wait for the slowest of N" expensive in real deployments).
            return config.latency * math.exp(self._rng.gauss(0.0, config.latency_sigma))
        return config.latency

    # --- generation, whatever the wire -------------------------------------------------------

    async def complete(self, wire: Wire, receive: Any, send: Any, request_id: str, *, model: str | None = None,
                       stream: bool = False) -> None:
        """Serve one generation request of *wire* (``model`` and ``stream`` when the URL says them): read, check,
        wait, generate and answer it, streamed or whole, or answer its error in the wire's shape."""
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
            if getattr(request, "background", False) and not request.stream:  # Responses' background mode
                await self.responses.start_background(request, model, config, send, request_id)
                return
            # Watch for the client going away, so abandoned requests stop generating (hedging and
            # cancellation in heavy rely on the server noticing).
            watcher = asyncio.create_task(watch_disconnect(receive))
            start = asyncio.get_running_loop().time()
            latency = self.latency(config)
            failure = self.failure(config)
            if failure is not None:
                if not (request.stream and config.fail_in_stream):
                    # Rate limits are refused at the door; server errors happen after the model started.
                    if config.fail_status != 429 and not await sleep_until(start + latency, watcher):
                        stats.disconnects += 1
                        return
                    raise failure
            gen = self.generate(request, config, model)
            first_token = self.prefill(wire, model, request, gen, config, start, latency)
            tps = config.tokens_per_second
            if request.stream:
                if not await _stream(send, wire, request_id, gen, request, first_token, tps, watcher, failure):
                    stats.disconnects += 1
                return
            generation = max(len(c.reasoning) + len(c.tokens) for c in gen.choices) / tps if tps else 0.0
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

    def prefill(self, wire: Wire, model: str, request: SimRequest, gen: Generation, config: SimConfig, start: float,
                latency: float) -> float:
        """When the first token of *gen* is due: after the latency and the prompt tokens not read from the prompt
        cache (at ``prefill_tokens_per_second``). Records the cache's reads and writes on *gen* and in the stats."""
        pps = config.prefill_tokens_per_second

        def due(read: int) -> float:
            return start + latency + ((gen.prompt_tokens - read) / pps if pps else 0.0)

        if config.prompt_cache:
            outcome = self.cache.account(wire.cache_wire or wire.name, model.partition("@")[0], request, now=start,
                                         first_token=due)
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
        failure = self.failure(config)
        if failure is not None:
            raise failure
        return wire.response(self.generate(request, config, model), request)

    def failure(self, config: SimConfig) -> SimHTTPError | None:
        """The failure this request suffers (drawn with ``fail_rate``, counted in the stats), or ``None``."""
        if config.fail_rate > 0 and self._rng.random() < config.fail_rate:
            self.stats.failures += 1
            return _injected_failure(config)
        return None

    def generate(self, request: SimRequest, config: SimConfig, model: str) -> Generation:
        """The reply to *request* (every choice), counting the judge and synthesize prompts it answers."""
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
            # A reasoning model thinks first, and its thoughts count against the token limit (as every API says).
            thoughts = tokenize(reasoning_text(request.thinking.effort)) if request.thinking else []
            if limit is not None and len(thoughts) >= limit:
                thoughts, tokens, finish, stop_sequence = thoughts[:limit], [], "length", None
            elif limit is not None and len(tokens) > limit - len(thoughts):
                tokens, finish, stop_sequence = tokens[: limit - len(thoughts)], "length", None
            logprobs = token_logprobs(tokens, reply.confidence, request.top_logprobs, rng) if request.logprobs else None
            pieces, left = [], len(tokens)
            while left > 0:  # OpenAI-like deltas: a few tokens each
                pieces.append(min(left, rng.randint(1, 4)))
                left -= pieces[-1]
            calls = [dict(c) for c in reply.tool_calls] or None
            if calls:
                finish = "tool_calls"
            choices.append(Choice(i, tokens, logprobs, finish, pieces, stop_sequence, calls, thoughts))
        shown_model = model if "simulated" in model.lower() else f"simulated/{model}"
        if shared is not None and shared.kind == "judge":
            self.stats.judge_requests += 1
        elif shared is not None and shared.kind == "synthesize":
            self.stats.synthesize_requests += 1
        return Generation(id=uuid.uuid4().hex[:24], created=int(time.time()), model=shown_model, choices=choices,
                          prompt_tokens=request.prompt_tokens(), gemini_block=config.gemini_block)


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, str, str | None]:
    """Text up to (excluding) the earliest stop sequence, the finish reason ("stop" either way) and the
    stop sequence that cut it (``None`` if none did)."""
    cuts = [(i, s) for s in stops if s for i in (text.find(s),) if i >= 0]
    if not cuts:
        return text, "stop", None
    index, stop = min(cuts, key=lambda cut: cut[0])
    return text[:index], "stop", stop


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
        for size in c.pieces:  # a reasoning model's words come after its thoughts
            events.append((len(c.reasoning) + done + size, c.index, done, size, c))
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
        return await emit(wire.stream_error(failure, request_id, gen, request), more=False)
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
