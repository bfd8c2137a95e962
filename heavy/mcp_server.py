"""``heavy mcp``: Heavy as an MCP server (needs ``heavy[mcp]``), so an agent can call it as a tool.

Two tools, over stdio (``heavy mcp``) or streamable HTTP (``heavy mcp --http --port P``, path ``/mcp``):

* ``ask``: sample N hypotheses of ``question`` in parallel and let a strategy decide. The text result is
  the answer on its first line, then how it was decided (votes, path, rationale, cost and tokens); the
  structured result holds the same as data. Optional arguments: ``n``, ``strategy``, ``models``,
  ``aggregator``, ``options`` (the strategy's) and ``budget``. A progress notification goes out as each
  hypothesis finishes; a client that cancels the call cancels the run and so its hypotheses.
* ``strategies``: the registered strategies, one line each.

What a client may ask for is the operator's decision, by the rules of ``heavy serve``
(:class:`heavy.remote.policy.OptionPolicy`, :class:`~heavy.remote.policy.ModelPolicy`): strategies and options
that run code need ``heavy mcp --tools python``, numeric strategy options have ceilings (``--option-limit``),
``n`` has ``--max-n``, a call names only the configured models and those of ``--allow-model``, and a call's
budget may tighten the operator's caps, never loosen them. Bad arguments are a tool error (``isError``) of one
line, never a crash of the server.

Over HTTP the server is guarded as ``heavy serve`` is (:mod:`heavy.remote.guard`): on loopback without a key
only requests addressed to it (Host), from no page or a loopback page (Origin, else ``--allow-origin``), with
JSON bodies are served; bodies must arrive within ``--body-timeout`` and ``--max-body-bytes``, and one client
has at most ``--max-concurrent`` requests in flight.

Runs go through :class:`heavy.Heavy`, the API library users call: the operator's run options are a
:class:`~heavy.settings.RunSettings` (built-ins < config file < ``HEAVY_<OPTION>`` < flags, see
:func:`heavy.config.run_settings`) and a call's values are laid over them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

import anyio
import mcp.types as T
from mcp.server import Server
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .api import Heavy
from .errors import HeavyError, OptionsError, redact
from .events import Event, HypothesisFailed, HypothesisFinished
from .remote.errors import APIError, excerpt
from .remote.guard import RemoteSettings, RequestGate, SiteGuard
from .remote.plan import Asked, RunPlanner
from .remote.progress import Progress
from .remote.summary import summary
from .settings import RunSettings, ceiling, optional_fields
from .strategy import load_strategy, registered_strategies
from .types import Result

__all__ = ["HeavyTools", "AskArguments", "build_server", "http_app", "run_stdio", "run_http", "result_text",
           "DEFAULT_PORT", "COMMAND"]

log = logging.getLogger("heavy.mcp")

COMMAND = "heavy mcp"
DEFAULT_PORT = 8001  # next to `heavy serve`'s 8000, so both can run at once

#: Run options that are per-call values of one Heavy (``ask(n=..., strategy=..., options=...)``), not part of it.
_BUDGET_FIELDS = ("max_total_tokens", "max_cost_usd", "deadline")


class _Args(BaseModel):
    # strict as in `heavy serve`: "5" is not a number of hypotheses and true is not 1
    model_config = ConfigDict(extra="forbid", strict=True)


#: A call's budget: caps of the run, each at most the operator's (types and bounds from RunSettings).
Budget = create_model("Budget", __base__=_Args, __doc__="Caps of one run.",
                      **optional_fields({name: name for name in _BUDGET_FIELDS}))

#: The arguments of the ``ask`` tool: the question, and run options whose types and bounds are RunSettings'.
AskArguments = create_model(
    "AskArguments", __base__=_Args, __doc__="Arguments of the ask tool.",
    question=(str, Field(min_length=1, description="The question or task, as you would ask a model.")),
    **optional_fields({"n": "n", "strategy": "strategy", "model": "models", "aggregator_model": "aggregator",
                       "options": "options"}),
    budget=(Budget | None, Field(None)))  # type: ignore[valid-type]


class Refused(Exception):
    """A call the server will not run; the message (one line) is the tool error the client sees."""


class HeavyTools:
    """The tools behind the MCP server, free of any transport: the operator's run options and policy, the server's
    one session (every call's run shares its connections and limits), and :meth:`call`.

    ``defaults`` are the operator's run options; ``max_n`` the most hypotheses one call may ask for;
    ``option_limits`` the ceilings over :data:`heavy.constants.SERVE_OPTION_LIMITS`; ``allow_models`` the
    patterns of models a call may name beside the configured ones. The default configuration's run is
    built at once, so a broken config fails at startup rather than per call.
    """

    def __init__(self, defaults: RunSettings, *, max_n: int | None = None,
                 option_limits: dict[str, float] | None = None, allow_models: list[str] | None = None,
                 heavy_factory: Callable[..., Heavy] = Heavy) -> None:
        self.defaults = defaults.merged(stream=False)  # progress is per hypothesis: no token streams
        self.max_n = max_n or int(ceiling("n") or defaults.n)
        if defaults.n > self.max_n:  # every call that gives no n would be refused
            raise OptionsError(f"the default n={defaults.n} is above --max-n {self.max_n}: lower -n (or [defaults] n) "
                               "or raise --max-n")
        self.rules = RunPlanner(self.defaults, max_n=self.max_n, option_limits=option_limits,
                                allow_models=allow_models or (), command=COMMAND, options_param="options")
        self.policy, self.models = self.rules.policy, self.rules.models
        # The server's one session: every call's run shares its provider stacks, so the operator's limits hold.
        # Built with the defaults now, so a broken config fails at startup rather than per call.
        self.base = heavy_factory(settings=self.defaults)
        self.session = self.base.session
        self.calls = 0

    async def aclose(self) -> None:
        """Close the session's connections (server shutdown)."""
        await self.base.aclose()

    # --- tools/list ---------------------------------------------------------------------------------

    def tools(self) -> list[T.Tool]:
        """The tool definitions, with the operator's defaults and limits in their descriptions."""
        d = self.defaults
        schema = AskArguments.model_json_schema()
        described = {
            "n": f"Hypotheses sampled in parallel (default {d.n}; at most {self.max_n} on this server).",
            "strategy": f"How the answer is decided (default {d.strategy!r}); the strategies tool lists them.",
            "models": f"Sampling models as provider:model, round-robined (default {', '.join(d.model)}).",
            "aggregator": "Model for judge/synthesis calls (default: the first sampling model).",
            "options": "The strategy's own options, e.g. {\"early_stop\": true} for vote.",
            "budget": "Caps of this run, each at most the operator's: max_total_tokens, max_cost_usd, deadline "
                      "(seconds of sampling; what arrived by then decides).",
        }
        for name, text in described.items():
            schema["properties"][name]["description"] = text
        code = "" if self.policy.runs_code else " Strategies that run code are off (the operator's choice)."
        return [
            T.Tool(name="ask", title="Ask with parallel hypotheses", input_schema=schema,
                   description="Ask a question the hard way: heavy samples several answers in parallel and a "
                               "strategy (majority vote, a judge, a synthesis, ...) decides one. The result's "
                               "first line is the answer; the lines after it say how it was decided (votes, "
                               "decision path, rationale) and what it cost." + code,
                   annotations=T.ToolAnnotations(read_only_hint=True, open_world_hint=True)),
            T.Tool(name="strategies", title="List the strategies", input_schema={
                       "type": "object", "properties": {}, "additionalProperties": False},
                   description="The strategies ask can use, one per line: name, then what it does.",
                   annotations=T.ToolAnnotations(read_only_hint=True, open_world_hint=False)),
        ]

    # --- tools/call ---------------------------------------------------------------------------------

    async def call(self, name: str, arguments: dict[str, Any] | None,
                   report: Callable[[float, float | None, str | None], Awaitable[None]] | None = None
                   ) -> T.CallToolResult:
        """Run tool *name*; every problem is an ``isError`` result naming the fix (a crash is logged here)."""
        self.calls += 1
        call_id = self.calls
        try:
            if name == "ask":
                return await self._ask(call_id, arguments or {}, report)
            if name == "strategies":
                if arguments:
                    got = excerpt(", ".join(sorted(arguments)), 80, quote=False)
                    raise Refused(f"strategies takes no arguments (got {got})")
                return self._strategies()
            raise Refused(f"unknown tool {excerpt(name)}: this server has ask and strategies")
        except Refused as exc:
            return _error(str(exc))
        except APIError as exc:  # the policy shared with `heavy serve`
            return _error(exc.message)
        except HeavyError as exc:
            return _error(exc.message)
        except Exception as exc:  # never a crash of the server, and nothing internal to the client
            log.exception("call #%d (%s) failed unexpectedly", call_id, name)
            return _error(f"internal error ({type(exc).__name__}); see the server's log")

    def plan(self, arguments: dict[str, Any]) -> tuple[str, RunSettings]:
        """(question, the run's settings) of an ``ask`` call, checked against the operator's rules
        (:class:`heavy.remote.plan.RunPlanner`, shared with ``heavy serve``)."""
        try:
            a: Any = AskArguments.model_validate(arguments)
        except ValidationError as exc:
            raise Refused(_describe(exc)) from None
        asked = Asked(strategy=a.strategy, options=a.options, models=a.models, aggregator=a.aggregator, n=a.n,
                      budget=a.budget.model_dump(exclude_none=True) if a.budget else {})
        return a.question, self.rules.settings(asked)

    async def _ask(self, call_id: int, arguments: dict[str, Any],
                   report: Callable[[float, float | None, str | None], Awaitable[None]] | None) -> T.CallToolResult:
        question, settings = self.plan(arguments)
        heavy = Heavy(settings=settings, session=self.session)
        n = settings.n
        progress, lines = Progress(n), asyncio.Queue[tuple[int, str] | None]()

        def on_event(event: Event) -> None:  # called for every event of the run: keep it quick
            if isinstance(event, (HypothesisFinished, HypothesisFailed)):
                text = "".join(progress.lines(event)).strip()
                lines.put_nowait((progress.finished, text))

        async def forward() -> None:
            while (item := await lines.get()) is not None:
                done, text = item
                try:
                    if report is not None:
                        await report(done, n if done <= n else None, text)
                except Exception:  # a client gone mid-call must not fail the run
                    log.debug("progress notification not sent", exc_info=True)

        started = time.monotonic()
        run = asyncio.create_task(heavy.ask(question, on_event=on_event))
        forwarder = asyncio.create_task(forward())
        try:
            result = await run
        except anyio.get_cancelled_exc_class():  # the client cancelled the call (or the server is stopping)
            forwarder.cancel()
            with anyio.CancelScope(shield=True):  # wait until the run and its hypotheses have really stopped
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
            log.info("call #%d (ask) cancelled by the client after %.1f s: its run and hypotheses were stopped",
                     call_id, time.monotonic() - started)
            raise
        finally:
            lines.put_nowait(None)
            with anyio.CancelScope(shield=True):  # the progress sent before the answer
                await asyncio.gather(forwarder, return_exceptions=True)
        log.info("call #%d (ask): %s by %s over %d hypotheses in %.1f s", call_id, _short(result.answer),
                 result.decision.method, len(result.hypotheses), time.monotonic() - started)
        return T.CallToolResult(content=[T.TextContent(type="text", text=result_text(result))],
                                structured_content={"answer": result.answer, "text": result.text,
                                                    "heavy": summary(result), "usage": result.usage.model_dump()})

    def _strategies(self) -> T.CallToolResult:
        rows = []
        for name, ep in registered_strategies().items():
            try:
                cls = load_strategy(name)
                text, runs_code = cls.summary(), bool(getattr(cls, "runs_code", False))
            except Exception as exc:  # a broken third-party plugin must not hide the others
                text, runs_code = f"(cannot load {ep.value}: {type(exc).__name__})", False
            notes = [note for note, applies in (
                ("the default", name == self.defaults.strategy),
                (f"runs code: off here (the operator enables it with `{COMMAND} --tools python`)",
                 runs_code and not self.policy.runs_code)) if applies]
            rows.append({"name": name, "description": text, "runs_code": runs_code, "available":
                         not (runs_code and not self.policy.runs_code), "default": name == self.defaults.strategy})
            rows[-1]["line"] = f"{name}: {text}" + (f" [{'; '.join(notes)}]" if notes else "")
        return T.CallToolResult(content=[T.TextContent(type="text", text="\n".join(r.pop("line") for r in rows))],
                                structured_content={"strategies": rows})


def result_text(r: Result) -> str:
    """The ``ask`` tool's text: the answer first, then a compact summary of how it was decided."""
    d = r.decision
    failed = sum(1 for h in r.hypotheses if not h.ok)
    lines = [r.answer.strip() or "(no answer)", ""]
    lines.append(f"decided by {d.method}" + (f": {_short(d.rationale, 300)}" if d.rationale else ""))
    if d.votes:
        ranked = sorted(d.votes.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{_short(a, 40)} ×{c}" for a, c in ranked[:6]) + (", …" if len(ranked) > 6 else "")
        lines.append(f"votes: {shown} ({sum(d.votes.values())} of {len(r.hypotheses)} hypotheses answered"
                     + (f", {d.no_answer} without an answer" if d.no_answer else "") + ")")
    stops = [text for text, hit in (("stopped early", r.stopped_early), ("deadline hit", r.deadline_hit),
                                    (f"budget hit: {r.budget_hit}", bool(r.budget_hit)),
                                    (f"{failed} hypotheses failed", bool(failed))) if hit]
    lines.append(f"path: {' → '.join(d.path) or d.method} (strategy {r.strategy}"
                 + (f"; {', '.join(stops)}" if stops else "") + ")")
    u = r.usage
    cost = "price unknown" if r.cost_usd is None else f"${r.cost_usd:.4f}"
    reasoning = f", {u.reasoning_tokens:,} reasoning" if u.reasoning_tokens else ""
    lines.append(f"cost: {len(r.hypotheses) + len(r.aggregator_calls)} calls, {u.total_tokens:,} tokens "
                 f"({u.prompt_tokens:,} in, {u.completion_tokens:,} out{reasoning}), {cost}, {r.timings.total_s:.1f} s")
    lines += [f"note: {_short(n, 300)}" for n in r.notes]
    return "\n".join(lines)


def _error(message: str) -> T.CallToolResult:
    return T.CallToolResult(content=[T.TextContent(type="text", text=redact(message))], is_error=True)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(exc: ValidationError) -> str:
    """The arguments' problems in one line, naming each argument as the client sent it."""
    allowed = ", ".join(AskArguments.model_fields)
    problems = []
    for err in exc.errors()[:5]:
        loc = excerpt(".".join(str(p) for p in err["loc"]), 80, quote=False)  # keys are the client's
        if err["type"] == "extra_forbidden":
            problems.append(f"unknown argument {loc!r} (ask takes {allowed})" if "." not in loc else
                            f"unknown argument {loc!r} (budget takes {', '.join(_BUDGET_FIELDS)})")
        elif err["type"] == "missing":
            problems.append(f"missing argument {loc!r}")
        else:
            problems.append(f"invalid {loc}: {err['msg']}")
    return "; ".join(problems)


# --- the MCP server over a transport ----------------------------------------------------------------


def build_server(tools: HeavyTools) -> Server:
    """The MCP server (the SDK's low-level ``Server``) of *tools*; it closes them when it stops."""

    async def list_tools(ctx: Any, params: Any) -> T.ListToolsResult:
        return T.ListToolsResult(tools=tools.tools())

    async def call_tool(ctx: Any, params: T.CallToolRequestParams) -> T.CallToolResult:
        return await tools.call(params.name, params.arguments, ctx.session.report_progress)

    @asynccontextmanager
    async def lifespan(_: Server) -> Any:
        try:
            yield {}
        finally:
            with anyio.CancelScope(shield=True):
                await tools.aclose()

    models = ", ".join(tools.defaults.model)
    return Server("heavy", version=version("heavy"), title="heavy: parallel test-time compute",
                  instructions=f"For questions worth more than one try: `ask` samples several answers in parallel "
                               f"(here from {models}) and a strategy decides one, saying why. `strategies` lists "
                               "the ways to decide.",
                  on_list_tools=list_tools, on_call_tool=call_tool, lifespan=lifespan)


async def run_stdio(tools: HeavyTools) -> None:
    """Serve *tools* on this process's stdin/stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    server = build_server(tools)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def http_app(tools: HeavyTools, host: str = "127.0.0.1", api_key: str | None = None, *,
             settings: RemoteSettings | None = None) -> Any:
    """The streamable HTTP app: MCP at ``/mcp``, ``GET /health``; with a key (*api_key*, or *settings*'
    ``api_key``) every request but /health must carry ``Authorization: Bearer <key>``. Requests pass
    :class:`~heavy.remote.guard.SiteGuard` (web pages, DNS rebinding), then the key, then
    :class:`~heavy.remote.guard.RequestGate` (body time and size, plain JSON, per-client limit) before the SDK.
    """
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    settings = settings or RemoteSettings(api_key=api_key)
    key = settings.api_key or api_key

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    # The SDK's own Host/Origin check knows only 127.0.0.1, localhost and ::1 (and any port of them), and is off
    # for every other loopback form; SiteGuard checks all of them, against the bound port and --allow-origin.
    app = build_server(tools).streamable_http_app(
        host=host, max_request_body_size=settings.max_body_bytes,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        custom_starlette_routes=[Route("/health", health, methods=["GET"])])
    app = RequestGate(app, settings, command=COMMAND, shape="jsonrpc")
    if key:
        app = _BearerKey(app, key)
    return SiteGuard(app, keyed=bool(key), allow_origins=settings.allow_origins, shape="jsonrpc", command=COMMAND)


def run_http(tools: HeavyTools, host: str, port: int, *, api_key: str | None = None, sock: Any = None,
             log_level: str = "warning", settings: RemoteSettings | None = None) -> None:
    """Serve *tools* over streamable HTTP on *host*:*port* (or the bound *sock*) until interrupted."""
    from .remote.listener import serve

    settings = settings or RemoteSettings(api_key=api_key)
    serve(http_app(tools, host, api_key, settings=settings), host=host, port=port, sock=sock, log_level=log_level,
          header_timeout=settings.header_timeout)


class _BearerKey:
    """ASGI wrapper: every HTTP request but ``GET /health`` must carry the server's key as a bearer token."""

    def __init__(self, app: Any, key: str) -> None:
        self.app, self.key = app, key.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] == "/health" or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong key: send 'Authorization: Bearer <key>' with the key this "
                                    f"server was started with ({COMMAND} --api-key / HEAVY_SERVER_KEY)"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _authorized(self, scope: dict) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False
