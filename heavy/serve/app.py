"""The ``heavy serve`` ASGI app: an OpenAI-compatible Chat Completions endpoint whose model is Heavy.

Routes: ``POST /v1/chat/completions`` (JSON or SSE stream), ``GET /v1/models``, ``GET /v1/models/{id}``
and ``GET /health``. Build it with :func:`create_app`; serve it with uvicorn (``heavy serve``).

Security model: the upstream endpoints and keys come only from the server's environment (exactly as in
the CLI), never from a client and never echoed back; with an ``api_key`` every route but /health needs
``Authorization: Bearer <key>``; without one, on loopback, only requests addressed to the server's own
loopback name and port, from no page or a loopback page, with a JSON body are served, so no web page can
use it (:class:`heavy.remote.guard.SiteGuard`); bodies are size-limited, must arrive within ``body_timeout``
(408 beyond) and are read in full before the request counts against its client's limit, so slow senders
cannot lock others out; each client (by address) has a bounded number of requests in flight (429
beyond it); code execution, operator-only options, cost ceilings and the models a client may name are
:mod:`heavy.remote.policy`'s; what a request says is checked once, in linear time (:mod:`.checks`); a client
that disconnects cancels its hypotheses, which closes their upstream requests.

Streaming and disconnects are handled at the ASGI level (not through a framework's streaming response)
so that a disconnect is noticed at once, even while no chunk is due, and cancels the run.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import Field, field_validator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import constants as C
from ..api import Heavy
from ..asgi import watch_disconnect
from ..errors import HeavyError
from ..events import AggregatorDelta, Event, TokenDelta
from ..session import Session
from ..settings import RunSettings, ceiling
from ..remote.errors import APIError, from_exception
from ..remote.guard import ClientSlots, RemoteSettings, SiteGuard, client_of, read_request_body
from ..remote.policy import decode_body, parse_limits
from ..remote.progress import CONTENT_PURPOSES, Progress
from .checks import check_sizes
from .protocol import (Planner, RequestPlan, check_model_name, chunk, completion_body, finish_reason, new_id, now,
                       parse_body, summary, tool_calls_body)

__all__ = ["ServeSettings", "HeavyServer", "create_app"]

log = logging.getLogger("heavy.serve")

_ROUTES = "POST /v1/chat/completions, GET /v1/models, GET /v1/models/{model} and GET /health"


class ServeSettings(RemoteSettings):
    """Limits and access control of the server (the run's own defaults are separate: see :func:`create_app`):
    those every HTTP shell has (:class:`heavy.remote.guard.RemoteSettings`: the key, body size and time, the
    per-client limit, the web origins and models allowed) and the proxy's own."""

    max_n: int = Field(ceiling("n"), ge=1, description="most hypotheses one request may ask for (the ceiling of a "
                       "client's n; see heavy.settings)")
    option_limits: dict[str, float] = Field(default_factory=dict, description="ceilings of numeric values a "
                                            "client may set, over heavy.constants.SERVE_OPTION_LIMITS "
                                            "('*': every option without its own)")
    max_tools: int = Field(C.SERVE_MAX_TOOLS, ge=1, description="most tools one request may offer (400 beyond)")

    @field_validator("option_limits", mode="before")
    @classmethod
    def _limits(cls, v: object) -> object:
        return parse_limits(v) if isinstance(v, (dict, list, tuple)) else v


class HeavyServer:
    """The state behind the app: the planner (defaults and the operator's rules), the server's one session (every
    request's run shares its provider stacks, so the operator's limits hold whatever clients send), per-client
    counters. ``heavy_factory`` builds the server's default Heavy (its session is the server's; tests inject a
    transport there)."""

    def __init__(self, defaults: RunSettings, settings: ServeSettings,
                 heavy_factory: Callable[..., Heavy] | None = None) -> None:
        self.settings = settings
        self.planner = Planner(defaults, max_n=settings.max_n, option_limits=settings.option_limits,
                               allow_models=settings.allow_models)
        self.heavy_factory = heavy_factory or Heavy
        self._base: Heavy | None = None
        self.slots = ClientSlots(settings.max_concurrent_per_client, "heavy serve")
        self.runs = 0  #: runs currently executing (tests check that disconnects bring it back to 0)

    @property
    def session(self) -> Session:
        """The session every request runs in (built with the defaults' limits at the first use)."""
        if self._base is None:
            self._base = self.heavy_factory(settings=self.planner.defaults)
        return self._base.session

    @property
    def in_flight(self) -> Counter[str]:
        """Requests in flight per client address."""
        return self.slots.in_flight

    def check_defaults(self) -> None:
        """Build the default run now, so a broken config fails at startup, not per request."""
        plan = self.planner.plan(parse_body({"model": "heavy", "messages": [{"role": "user", "content": "."}]}))
        Heavy(settings=plan.settings, session=self.session)

    async def aclose(self) -> None:
        if self._base is not None:
            await self._base.aclose()

    # --- POST /v1/chat/completions (raw ASGI) ----------------------------------------------------

    async def chat(self, scope: dict, receive: Any, send: Any) -> None:
        request_id = new_id()
        client = client_of(scope)
        # The whole body first: a client still sending (however slowly) holds no slot of the limit below.
        try:
            body = await self._receive(scope, receive)
            if body is None:
                return  # the client left before sending its request
            self.slots.take(client)
        except APIError as err:
            await _send_error(send, err, request_id)
            return
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._chat(body, receive, tracked, request_id)
        except Exception as exc:  # never a traceback for a client
            err = from_exception(exc)
            if err.status >= 500 and not isinstance(exc, HeavyError):
                log.exception("heavy serve: unexpected error in %s", request_id)
            if not started:
                await _send_error(send, err, request_id)
        finally:
            self.slots.give(client)

    async def _receive(self, scope: dict, receive: Any) -> bytes | None:
        """The request's body, read in full within ``body_timeout`` (408 beyond), or ``None`` if the client left."""
        if scope["method"] != "POST":
            raise APIError(405, f"{scope['method']} is not allowed on {scope['path']}; use POST",
                           "method_not_allowed")
        return await read_request_body(scope, receive, max_bytes=self.settings.max_body_bytes,
                                       timeout=self.settings.body_timeout, command="heavy serve")

    async def _chat(self, body: bytes, receive: Any, send: Any, request_id: str) -> None:
        """Serve one request; errors raised before the response starts are answered by :meth:`chat`."""
        # the sizes first, on the decoded body before it is walked: 40,000 tools are refused at once
        data = decode_body(body, first=functools.partial(check_sizes, max_tools=self.settings.max_tools))
        req = parse_body(data, max_tools=None)
        plan = self.planner.plan(req)
        try:
            heavy = Heavy(settings=plan.settings, session=self.session)
        except HeavyError as exc:
            raise from_exception(exc, param="heavy" if req.heavy else "model") from None
        self.runs += 1
        try:
            if plan.stream:
                await self._stream(heavy, plan, req.model, receive, send, request_id)
            else:
                await self._complete(heavy, plan, req.model, receive, send, request_id)
        finally:
            self.runs -= 1

    @staticmethod
    def _ask(heavy: Heavy, plan: RequestPlan, on_event: Callable[[Event], None] | None = None) -> Any:
        return heavy.ask(plan.messages, on_event=on_event, tools=plan.tools, tool_choice=plan.tool_choice,
                         parallel_tool_calls=plan.parallel_tool_calls)

    async def _complete(self, heavy: Heavy, plan: RequestPlan, model: str, receive: Any, send: Any,
                        request_id: str) -> None:
        task = asyncio.create_task(self._ask(heavy, plan))
        watcher = asyncio.create_task(watch_disconnect(receive))
        try:
            await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                return  # the client is gone: the finally block cancels the run (and its upstream requests)
            result = task.result()  # raises the run's error, answered by chat()
        finally:
            await _cancel(task, watcher)
        payload = completion_body(result, completion_id=request_id, model=model, created=now())
        await _send_json(send, 200, payload, request_id)

    async def _stream(self, heavy: Heavy, plan: RequestPlan, model: str, receive: Any, send: Any,
                      request_id: str) -> None:
        created = now()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        progress = Progress(plan.n)
        streamed: list[str] = []  # answer text already sent as content

        def frame(delta: dict[str, Any]) -> bytes:
            return _sse(chunk(completion_id=request_id, model=model, created=created, delta=delta,
                              include_usage=plan.include_usage))

        def on_event(event: Event) -> None:  # hot path: called for every token of every hypothesis
            if type(event) is TokenDelta:
                return
            if isinstance(event, AggregatorDelta) and event.purpose in CONTENT_PURPOSES:
                if event.text:
                    streamed.append(event.text)
                    queue.put_nowait(frame({"content": event.text}))
                return
            for line in progress.lines(event):
                queue.put_nowait(frame({"reasoning_content": line}))

        task = asyncio.create_task(self._ask(heavy, plan, on_event))
        task.add_done_callback(lambda _: queue.put_nowait(_DONE))
        watcher = asyncio.create_task(watch_disconnect(receive))
        watcher.add_done_callback(lambda _: queue.put_nowait(_GONE))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _headers(
                "text/event-stream; charset=utf-8", request_id,
                (("cache-control", "no-cache"), ("x-accel-buffering", "no")))})
            if not await _send_body(send, frame({"role": "assistant", "content": ""})):
                return
            while True:
                item = await queue.get()
                batch: list[bytes] = []
                while item is not _DONE and item is not _GONE:
                    batch.append(item)
                    if queue.empty():
                        item = None
                        break
                    item = queue.get_nowait()
                if batch and not await _send_body(send, b"".join(batch)):
                    return
                if item is _GONE:
                    return  # the finally block cancels the run
                if item is _DONE:
                    break
            if task.cancelled() or task.exception() is not None:
                exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
                err = from_exception(exc)
                if err.status >= 500 and not isinstance(exc, HeavyError):
                    log.error("heavy serve: unexpected error in %s", request_id, exc_info=exc)
                await _send_body(send, _sse(err.body()), more=False)
                return
            result = task.result()
            tail: list[bytes] = []
            sent = "".join(streamed)
            if result.tool_calls:
                tail.append(frame({"reasoning_content": progress.decision(result)}))
                if result.text:
                    tail.append(frame({"content": result.text}))
                tail += [frame({"tool_calls": [piece]}) for piece in tool_call_pieces(result)]
            elif not sent:
                tail.append(frame({"reasoning_content": progress.decision(result)}))
                tail.append(frame({"content": result.text}))
            elif result.text != sent:
                if result.text.startswith(sent):
                    tail.append(frame({"content": result.text[len(sent):]}))
                else:  # the streamed synthesis broke off and something else decided: say so, then the answer
                    tail.append(frame({"content": "\n\n[heavy: the streamed synthesis failed; final answer:]\n\n"
                                                  + result.text}))
            tail.append(_sse(chunk(completion_id=request_id, model=model, created=created,
                                   finish=finish_reason(result), include_usage=plan.include_usage,
                                   extra={"heavy": summary(result)})))
            if plan.include_usage:
                tail.append(_sse(chunk(completion_id=request_id, model=model, created=created, usage=result.usage)))
            tail.append(b"data: [DONE]\n\n")
            await _send_body(send, b"".join(tail), more=False)
        finally:
            await _cancel(task, watcher)


_DONE, _GONE = object(), object()
#: Characters of a tool call's arguments per streamed chunk (OpenAI streams them in pieces too).
_ARGUMENT_PIECE = 32


def tool_call_pieces(result: Any) -> list[dict[str, Any]]:
    """The decided calls as OpenAI streams them: per call (``index``), first its id, type and name with empty
    arguments, then the arguments' JSON text in pieces."""
    pieces: list[dict[str, Any]] = []
    for i, call in enumerate(tool_calls_body(result)):
        fn = call["function"]
        pieces.append({"index": i, "id": call["id"], "type": "function", "function": {"name": fn["name"],
                                                                                      "arguments": ""}})
        text = fn["arguments"]
        pieces += [{"index": i, "function": {"arguments": text[at:at + _ARGUMENT_PIECE]}}
                   for at in range(0, len(text), _ARGUMENT_PIECE)]
    return pieces


# --- ASGI plumbing --------------------------------------------------------------------------------


def _headers(content_type: str, request_id: str | None, extra: tuple[tuple[str, str], ...] = ()) -> list:
    pairs = [("content-type", content_type), *(((("x-request-id", request_id),) if request_id else ())), *extra]
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def _sse(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n\n"


async def _send_json(send: Any, status: int, payload: dict, request_id: str | None,
                     extra: dict[str, str] | None = None) -> None:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head = _headers("application/json", request_id, tuple((extra or {}).items()))
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_error(send: Any, err: APIError, request_id: str | None) -> None:
    await _send_json(send, err.status, err.body(), request_id, err.headers)


async def _send_body(send: Any, body: bytes, more: bool = True) -> bool:
    """Send a piece of the response; ``False`` if the connection is gone."""
    try:
        await send({"type": "http.response.body", "body": body, "more_body": more})
    except (OSError, RuntimeError):
        return False
    return True


async def _cancel(*tasks: asyncio.Task) -> None:
    """Cancel the unfinished *tasks* and wait until they have really stopped."""
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


class _Auth:
    """ASGI middleware: a bearer token on every route but /health (when the server has a key)."""

    def __init__(self, app: Any, key: str | None = None) -> None:
        self.app = app
        self.key = key.encode() if key else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.key is None or scope["type"] != "http" or scope["path"] == "/health":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
        if given is None:
            err = APIError(401, "missing API key: send 'Authorization: Bearer <key>' (the key of this heavy "
                           "server, not of an upstream model)", "missing_api_key")
        elif not hmac.compare_digest(given, self.key):
            err = APIError(401, "invalid API key for this heavy server", "invalid_api_key")
        else:
            await self.app(scope, receive, send)
            return
        err.headers["www-authenticate"] = "Bearer"
        await _send_error(send, err, None)


# --- the app ----------------------------------------------------------------------------------------


def create_app(defaults: RunSettings | dict[str, Any] | None = None, *, settings: ServeSettings | None = None,
               heavy_factory: Callable[..., Heavy] | None = None) -> Any:
    """The ASGI app of ``heavy serve``.

    ``defaults`` are the run options of the model name ``heavy`` (and the base of every other): a
    :class:`~heavy.settings.RunSettings`, or :class:`heavy.Heavy` keyword arguments that build one; by
    default the config file and environment (:func:`heavy.config.run_settings`, as ``heavy config`` shows).
    ``heavy_factory(settings=...)`` builds each Heavy (default: :class:`heavy.Heavy`); tests use it to put
    an in-process transport under the providers, e.g. ``functools.partial(Heavy, transport=...)``.
    The :class:`HeavyServer` is at ``app.state.heavy``.
    """
    if defaults is None:
        from ..config import run_settings

        defaults = run_settings()
    elif not isinstance(defaults, RunSettings):
        defaults = RunSettings.build(**defaults)
    server = HeavyServer(defaults, settings or ServeSettings(), heavy_factory)
    server.check_defaults()

    async def models(request: Request) -> Response:
        created = now()
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "heavy"}
            for name in server.planner.model_ids()]})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        check_model_name(server.planner, name)
        return JSONResponse({"id": name, "object": "model", "created": now(), "owned_by": "heavy"})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "runs": server.runs})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            err = APIError(405, f"{request.method} is not allowed on {request.url.path}", "method_not_allowed")
        elif exc.status_code == 404:
            err = APIError(404, f"unknown request URL: {request.method} {request.url.path}. heavy serve serves "
                           f"{_ROUTES}", "unknown_url")
        else:
            err = APIError(exc.status_code, str(exc.detail), None)
        return JSONResponse(err.body(), status_code=err.status)

    async def api_error(request: Request, exc: Exception) -> Response:
        err = exc if isinstance(exc, APIError) else from_exception(exc)
        if not isinstance(exc, (APIError, HeavyError)):
            log.error("heavy serve: unexpected error", exc_info=exc)
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    @asynccontextmanager
    async def lifespan(app: Any):  # type: ignore[no-untyped-def]
        try:
            yield
        finally:
            await server.aclose()

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", _Endpoint(server.chat), methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{name:path}", model, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, APIError: api_error, Exception: api_error},
        lifespan=lifespan,
    )
    app.add_middleware(_Auth, key=server.settings.api_key)
    app.add_middleware(SiteGuard, keyed=bool(server.settings.api_key), allow_origins=server.settings.allow_origins,
                       shape="openai", command="heavy serve")  # added last: the outermost layer
    app.state.heavy = server
    return app


class _Endpoint:
    """A raw ASGI callable as a Starlette route endpoint (Starlette passes scope, receive, send through)."""

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.handler(scope, receive, send)
