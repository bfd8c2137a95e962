"""The OpenAI Chat Completions dialect of ``heavy serve``: what a request may say, how a model name and
the optional ``heavy`` object select a run, and the shapes of responses and stream chunks.

Model names::

    heavy                                  the server's defaults (config file, `heavy serve` flags, built-ins)
    heavy/<strategy>                       that strategy on the default model(s)
    heavy/<strategy>/<provider:model>      that strategy on that model, e.g. heavy/vote/openai:gpt-4.1
                                           (the model part may itself hold colons, slashes and @)

A request body is the standard one plus an optional ``heavy`` object (:class:`HeavyParams`). Fields are
honoured (:data:`HONOURED`), accepted and ignored because they cannot change the answer's meaning
(:data:`IGNORED`), or rejected with a 400 that names them (everything else, e.g. ``functions``).

The client's ``tools`` (with ``tool_choice`` and ``parallel_tool_calls``) are offered to every hypothesis;
heavy never runs them: when the hypotheses vote for calling (:mod:`heavy.toolvote`), the reply is one
assistant message with ``tool_calls`` and ``finish_reason: "tool_calls"``. Assistant turns with
``tool_calls`` and ``tool`` messages of earlier turns travel to every provider in its own form. A client
tool named like a tool the server runs itself (``heavy serve --tools python``) is a 400.

The run options a client may set, their types and bounds, come from :class:`heavy.settings.RunSettings`
(fields that name a ``client`` place): ``temperature``, ``top_p``, ``max_tokens``, ``seed``, ``stop`` and
``n`` in the body, ``heavy.n``, ``heavy.strategy``, ``heavy.models``, ``heavy.aggregator``,
``heavy.tools``, ``heavy.options`` (and the other run options whose client place is there, e.g.
``heavy.thinking_budget``, ``heavy.ignore_args``) in the ``heavy`` object. A request's values go over the server's
:class:`~heavy.settings.RunSettings` (its config file, environment and flags). The models a request names (in
the model name, ``heavy.models``, ``heavy.aggregator``, strategy options) must be ones the operator allows
(:class:`heavy.remote.policy.ModelPolicy`: 403 otherwise); what the request says (tools, stop, the tool calls of
its conversation) is checked once, in linear time, by :mod:`.checks`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model

from .. import constants as C
from ..settings import RunSettings, client_fields, surface
from ..strategy import registered_strategies
from ..types import Result, ToolChoice, ToolSpec, Usage
from ..remote.errors import APIError, excerpt
from ..remote.plan import Asked, RunPlanner
from ..remote.policy import find_strategy, unknown_strategy
from ..remote.summary import summary
from .checks import Checked, check_request, check_sizes

__all__ = ["HONOURED", "IGNORED", "HeavyParams", "ChatRequest", "RequestPlan", "Planner", "parse_body",
           "completion_body", "tool_calls_body", "chunk", "usage_body", "new_id", "MODEL_PREFIX"]

MODEL_PREFIX = "heavy"

#: Standard fields that steer the run: the run options a client sets in the body (from RunSettings) and these.
HONOURED = ("model", "messages", "stream", "stream_options", *client_fields(""), "max_completion_tokens", "tools",
            "tool_choice", "parallel_tool_calls", "heavy")

#: Standard fields accepted and ignored: bookkeeping (user, metadata, store, …) or knobs that do not change
#: what the answer means (penalties, logprobs: heavy returns one decided answer, no token logprobs).
#: ``response_format`` and ``modalities`` are accepted only with their plain-text values.
IGNORED = ("user", "metadata", "store", "service_tier", "logprobs", "top_logprobs", "frequency_penalty",
           "presence_penalty", "logit_bias", "prompt_cache_key", "prompt_cache_retention",
           "safety_identifier", "verbosity", "response_format", "modalities")

#: Standard fields that would change the contract (legacy functions, audio, …): named in the 400 as unsupported.
_UNSUPPORTED = {"functions": "legacy function calls (send tools)", "function_call": "legacy function calls (send "
                "tool_choice)", "audio": "audio output", "prediction": "predicted outputs",
                "web_search_options": "web search"}


class _Strict(BaseModel):
    # strict: "5" is not a number and true is not 1, as in OpenAI's API.
    model_config = ConfigDict(strict=True, extra="forbid")


#: The optional ``heavy`` object of a request body: the run options a client sets there (RunSettings).
HeavyParams = create_model("HeavyParams", __base__=_Strict, __doc__="The optional ``heavy`` object of a request body.",
                           **client_fields("heavy."))


class _Function(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    name: str
    arguments: str


class _ToolCall(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: _Function


class _Message(BaseModel):
    # Extra keys are tolerated on messages (clients replay assistant turns with refusal/annotations: null);
    # legacy function calls are checked below.
    model_config = ConfigDict(strict=True, extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    include_usage: bool | None = None


class _ChatBase(_Strict):
    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    heavy: HeavyParams | None = None  # type: ignore[valid-type]
    _checked: Checked = PrivateAttr(default_factory=Checked)  #: what parse_body parsed once (tools, arguments)


#: A request body: the standard fields above, the run options a client sets at its top level, and the
#: accepted-and-ignored fields (any value).
ChatRequest = create_model("ChatRequest", __base__=_ChatBase, **client_fields(""),
                           **{name: (Any, None) for name in IGNORED})


def _describe(exc: ValidationError, prefix: str = "") -> tuple[str, str | None]:
    """(one-line description, first offending parameter) of a validation error."""
    problems, param = [], None
    for err in exc.errors()[:5]:
        loc = excerpt(prefix + ".".join(str(p) for p in err["loc"]), 80, quote=False)  # keys may be the client's
        param = param or loc or None
        if err["type"] == "missing":
            problems.append(f"missing required parameter '{loc}'")
        elif err["type"] == "extra_forbidden":
            problems.append(f"unknown parameter '{loc}'")
        else:
            problems.append(f"invalid value for '{loc}': {err['msg']}")
    return "; ".join(problems), param


def parse_body(data: Any, *, max_tools: int | None = C.SERVE_MAX_TOOLS) -> ChatRequest:
    """Validate a decoded JSON body; every problem is a 400 :class:`APIError` naming the parameter. The sizes
    (:func:`~.checks.check_sizes`) are checked against *max_tools* unless it is ``None`` (the caller did it
    before the body was walked)."""
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", "invalid_json")
    if max_tools is not None:
        check_sizes(data, max_tools)
    known = set(HONOURED) | set(IGNORED)
    unknown = [k for k in data if k not in known]
    if unknown:
        unsupported = [k for k in unknown if k in _UNSUPPORTED]
        if unsupported:
            what = ", ".join(sorted({_UNSUPPORTED[k] for k in unsupported}))
            raise APIError(400, f"unsupported parameter(s) {', '.join(map(repr, unsupported))}: heavy serve does "
                           f"not do {what}", "unsupported_parameter", param=unsupported[0])
        shown = ", ".join(excerpt(k, 40) for k in unknown[:5]) + (f" and {len(unknown) - 5} more"
                                                                  if len(unknown) > 5 else "")
        raise APIError(400, f"unknown parameter(s) {shown}. heavy serve honours {', '.join(HONOURED)} and ignores "
                       f"{', '.join(IGNORED)}", "unknown_parameter", param=excerpt(unknown[0], 40, quote=False))
    try:
        req = ChatRequest.model_validate(data)
    except ValidationError as exc:
        text, param = _describe(exc)
        raise APIError(400, text, "invalid_value", param=param) from None
    rf = req.response_format
    if rf is not None and not (isinstance(rf, dict) and rf.get("type") == "text"):
        raise APIError(400, "response_format: only {\"type\": \"text\"} is supported", "unsupported_parameter",
                       param="response_format")
    if req.modalities is not None and req.modalities != ["text"]:
        raise APIError(400, "modalities: only [\"text\"] is supported", "unsupported_parameter", param="modalities")
    req._checked = check_request(req)
    return req


def _messages(req: Any) -> list[dict[str, Any]]:
    """The request's messages as heavy's (assistant calls with parsed arguments, tool results with the name of
    the tool they answer, which Gemini needs)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    arguments = req._checked.arguments  # parsed (and checked) once by parse_body
    for i, m in enumerate(req.messages):
        msg: dict[str, Any] = {"role": m.role, "content": m.content if m.content is not None else ""}
        if m.tool_calls:
            msg["tool_calls"] = [{"id": c.id, "name": c.function.name, "arguments": arguments[(i, j)]}
                                 for j, c in enumerate(m.tool_calls)]
            names.update({c.id: c.function.name for c in m.tool_calls})
        if m.role == "tool":
            msg["tool_call_id"] = m.tool_call_id
            if m.name or m.tool_call_id in names:
                msg["name"] = m.name or names[m.tool_call_id]
        out.append(msg)
    return out


# --- from a request to a run ------------------------------------------------------------------------


@dataclass
class RequestPlan:
    """What one request runs: its run's settings (n, strategy and options included: the server's defaults with the
    request's values laid over) and what only this request has (its messages, how to answer, its client's tools)."""

    settings: RunSettings
    messages: list[dict[str, Any]]
    stream: bool = False
    include_usage: bool = False
    tools: list[ToolSpec] | None = None  #: the client's own tools (heavy never runs them)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @property
    def n(self) -> int:
        return self.settings.n


#: Run options :meth:`Planner.plan` decides itself (conflicts between two places, the server's system prompt in
#: the messages); the rest of a request's run options are mapped by the tables below.
_DECIDED = ("n", "strategy", "system", "options")

#: Run options a client sets at the body's top level: run option -> body field.
_BODY = {name: where for name in RunSettings.model_fields for where in surface(name)["client"]
         if "." not in where and name not in _DECIDED}
#: Run options of the ``heavy`` object that :meth:`Planner.plan` passes on as they are: run option -> field.
_HEAVY = {name: where.partition(".")[2] for name in RunSettings.model_fields for where in surface(name)["client"]
          if where.startswith("heavy.") and name not in (*_DECIDED, "model", "aggregator_model", "tools")}


class Planner:
    """Turns model names and request bodies into :class:`RequestPlan` objects, on top of the server's defaults.

    Precedence: server defaults < model name < ``heavy`` object < standard body fields. Giving the same
    setting two different ways (``n`` and ``heavy.n``, a strategy in the model name and ``heavy.strategy``)
    is a 400 rather than a silent pick. The operator's rules (n, strategies, options, models, ceilings) are
    :class:`heavy.remote.plan.RunPlanner`'s, the same as ``heavy mcp``'s.
    """

    def __init__(self, defaults: RunSettings, *, max_n: int, option_limits: dict[str, float] | None = None,
                 allow_models: list[str] | None = None) -> None:
        self.defaults = defaults
        self.max_n = max_n
        self.rules = RunPlanner(defaults, max_n=max_n, option_limits=option_limits, allow_models=allow_models or ())
        self.policy, self.models = self.rules.policy, self.rules.models

    @property
    def default_models(self) -> list[str]:
        return list(self.defaults.model)

    def split_model(self, name: str) -> tuple[str | None, list[str] | None]:
        """``(strategy, models)`` named by a model name; 404 if it is not a heavy model (or names an unknown
        strategy or provider)."""
        head, _, rest = name.partition("/")
        if head != MODEL_PREFIX:
            raise APIError(404, f"the model {excerpt(name)} does not exist here: use 'heavy', 'heavy/<strategy>' or "
                           "'heavy/<strategy>/<provider:model>' (GET /v1/models lists them)", "model_not_found",
                           param="model")
        if not rest:
            return None, None
        strategy, _, spec = rest.partition("/")
        if find_strategy(strategy) is None:
            raise APIError(404, f"the model {excerpt(name)} does not exist here: {unknown_strategy(strategy)}",
                           "model_not_found", param="model")
        if not spec:
            return strategy, None
        self.rules.check_spec(spec, "model", 404)
        self.models.check(spec, "model")
        return strategy, [spec]

    def plan(self, req: ChatRequest) -> RequestPlan:
        d = self.defaults
        strategy, models = self.split_model(req.model)
        hp = req.heavy or HeavyParams()

        def pick(name: str, *given: tuple[str, Any]) -> Any:
            values = [(where, v) for where, v in given if v is not None]
            if len({repr(v) for _, v in values}) > 1:
                raise APIError(400, f"{name} is given twice with different values ("
                               + ", ".join(f"{where}={excerpt(v)}" for where, v in values) + "); give it once",
                               "conflicting_parameters", param=values[-1][0])
            return values[0][1] if values else None

        named = pick("the strategy", ("model", strategy), ("heavy.strategy", hp.strategy))
        models = pick("the models", ("model", models), ("heavy.models", hp.models))
        n = pick("n", ("n", req.n), ("heavy.n", hp.n))
        max_tokens = pick("max_tokens", ("max_tokens", req.max_tokens),
                          ("max_completion_tokens", req.max_completion_tokens))
        body = {name: max_tokens if name == "max_tokens" else getattr(req, where) for name, where in _BODY.items()}
        fields = {**body, **{name: getattr(hp, tail) for name, tail in _HEAVY.items()}}
        params = {**_BODY, **{name: f"heavy.{tail}" for name, tail in _HEAVY.items()},
                  "max_tokens": "max_completion_tokens" if req.max_completion_tokens else "max_tokens",
                  "strategy": "heavy.strategy" if hp.strategy else "model", "options": "heavy.options",
                  "models": "heavy.models", "aggregator": "heavy.aggregator", "n": "n" if req.n else "heavy.n"}
        asked = Asked(strategy=named, options=hp.options, models=models, aggregator=hp.aggregator, n=n,
                      fields=fields, params=params)
        if models is not None and hp.models is None:
            asked.params["models"] = "model"
        settings = self.rules.settings(asked)
        shared: dict[str, Any] = {"system": None}  # the server's system prompt goes into the messages below
        if hp.tools is not None:
            shared["tools"] = self._tools(hp.tools)
        client_tools = req._checked.specs or None  # parsed once, by parse_body
        if client_tools:
            own = shared["tools"] if "tools" in shared else d.tools
            enabled = {str(getattr(t, "name", t)) for t in (own.split(",") if isinstance(own, str) else own or [])}
            clash = sorted(enabled & {t.name for t in client_tools})
            if clash:
                raise APIError(400, f"tools: {', '.join(map(repr, clash))} is the name of a tool this server runs "
                               f"itself (`heavy serve --tools {','.join(sorted(enabled))}`); rename your tool, or "
                               "leave the server's out with heavy.tools", "tool_name_clash", param="tools")

        messages = _messages(req)
        if d.system and not any(m["role"] in ("system", "developer") for m in messages):
            messages.insert(0, {"role": "system", "content": d.system})
        return RequestPlan(settings=settings.merged(**shared), messages=messages, stream=bool(req.stream),
                       include_usage=bool(req.stream_options and req.stream_options.include_usage),
                       tools=client_tools, tool_choice=req._checked.choice if client_tools else None,
                       parallel_tool_calls=req.parallel_tool_calls if client_tools else None)

    def _tools(self, wanted: list[str]) -> str | None:
        """A request may narrow the server's tools, never widen them: running code or searching the web on
        this machine is the operator's decision (`heavy serve --tools`), not a client's."""
        enabled = [str(getattr(t, "name", t)) for t in self.defaults.tools or []]
        extra = [excerpt(t, 40, quote=False) for t in wanted if t not in enabled]
        if extra:
            where = f"this server enables {', '.join(enabled)}" if enabled else "this server enables no tools"
            raise APIError(400, f"heavy.tools asks for {', '.join(extra[:5])}, but {where} (its operator starts it "
                           f"with `heavy serve --tools {','.join(enabled + extra[:5])}` to allow them)",
                           "invalid_value", param="heavy.tools")
        return ",".join(dict.fromkeys(wanted)) or None

    def model_ids(self) -> list[str]:
        """The model names GET /v1/models lists."""
        names = [MODEL_PREFIX]
        strategies = list(registered_strategies())
        names += [f"{MODEL_PREFIX}/{s}" for s in strategies]
        if len(self.default_models) == 1:
            names += [f"{MODEL_PREFIX}/{s}/{self.default_models[0]}" for s in strategies]
        return names


def check_model_name(planner: Planner, name: str) -> None:
    """404 unless *name* is a model this server runs (GET /v1/models/{id})."""
    planner.split_model(name)


# --- responses -------------------------------------------------------------------------------------


def new_id() -> str:
    return f"chatcmpl-heavy-{uuid.uuid4().hex[:24]}"


def usage_body(u: Usage) -> dict[str, Any]:
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.total_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens}}


def finish_reason(r: Result) -> str:
    if r.tool_calls:
        return "tool_calls"
    if r.decision.winner is not None:
        for h in r.hypotheses:
            if h.index == r.decision.winner and h.finish_reason == "length":
                return "length"
    return "stop"


def tool_calls_body(r: Result) -> list[dict[str, Any]]:
    """The decided calls as OpenAI's ``message.tool_calls`` (arguments as JSON text)."""
    return [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(
        c.arguments, ensure_ascii=False)}} for c in r.tool_calls or []]


def completion_body(r: Result, *, completion_id: str, model: str, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.text, "refusal": None}
    if r.tool_calls:
        message.update(content=r.text or None, tool_calls=tool_calls_body(r))
    return {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": "heavy",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(r)}],
        "usage": usage_body(r.usage),
        "heavy": summary(r),
    }


def chunk(*, completion_id: str, model: str, created: int, delta: dict[str, Any] | None = None,
          finish: str | None = None, include_usage: bool = False, usage: Usage | None = None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk``; with *usage* it is the usage-only chunk (no choices)."""
    out: dict[str, Any] = {"id": completion_id, "object": "chat.completion.chunk", "created": created,
                           "model": model, "system_fingerprint": "heavy"}
    if usage is not None:
        out["choices"] = []
        out["usage"] = usage_body(usage)
        return out
    out["choices"] = [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}]
    if include_usage:  # as OpenAI does: "usage": null on every chunk but the last when usage was asked for
        out["usage"] = None
    if extra:
        out.update(extra)
    return out


def now() -> int:
    return int(time.time())
