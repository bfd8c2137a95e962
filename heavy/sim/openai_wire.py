"""The OpenAI Chat Completions shape of the simulator (``POST /v1/chat/completions``).

Offered ``tools`` (with ``tool_choice`` and ``parallel_tool_calls``) are read, as are the ``tool_calls`` of
assistant turns. Tool calls are answered as ``message.tool_calls`` (arguments as a JSON string, ``finish_reason:
"tool_calls"``), streamed as ``delta.tool_calls`` fragments: the id, type and name first, then the
arguments in pieces, all keyed by ``index``.

``n`` choices are generated in one request (the prompt counted once in the usage), streamed interleaved with
each chunk naming its choice's ``index``. Prompts of 1024 tokens or more are cached as OpenAI caches them
(:mod:`heavy.sim.cache`): ``usage.prompt_tokens_details.cached_tokens`` says how many were read, in 128-token
steps; ``prompt_cache_key`` is accepted (one machine: it routes nowhere else).

OpenAI, xAI and DeepSeek model names are held to their documented refusals (:mod:`heavy.sim.rules.openai`,
:mod:`heavy.sim.rules.compat`; OpenAI names also to the request's known fields); validation errors use OpenAI's
words (``Invalid 'n': integer above maximum value. …``, ``Invalid type for 'n': …``). A reasoning model's usage
counts ``completion_tokens_details.reasoning_tokens`` (inside ``completion_tokens``); DeepSeek's reasoner and
grok-3-mini return their reasoning as ``message.reasoning_content`` (streamed first, as ``delta.reasoning_content``).
"""

from __future__ import annotations

import json

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .rules import base_name
from .rules.compat import check_deepseek, check_grok, grok_model
from .rules.openai import chat_unknown, check_chat, openai_model
from .wire import Choice, Generation, SimHTTPError, SimRequest, Thinking, Wire, json_object, sse

__all__ = ["OpenAIWire", "FINGERPRINT", "openai_validation_error", "openai_path", "chat_thinking", "openai_usage"]

FINGERPRINT = "fp_heavy_simulated"


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


# pydantic's names for the members of a union, which OpenAI's parameter paths do not have
_UNION_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}
_EXPECTED = {"int": "an integer", "float": "a decimal", "bool": "a boolean", "string": "a string", "list": "an array",
             "dict": "an object", "model": "an object"}


def _kind_of(value: Any) -> str:
    """A JSON value's kind as OpenAI's type errors name it."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a decimal"), (str, "a string"),
                       (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "a value"


def _number(value: Any) -> Any:
    """A bound or value as OpenAI prints it: 0.0 as 0, 0.5 as 0.5."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def openai_path(loc: tuple) -> str:
    """A pydantic location as OpenAI names a parameter: ``messages[0].role``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.lower() not in _UNION_TAGS and "[" not in part:
            out += f".{part}" if out else part
    return out or "body"


def openai_validation_error(exc: ValidationError) -> SimHTTPError:
    """The first error of *exc* in OpenAI's words (the bound and type forms are its own: research §1.2, §2.5)."""
    err = exc.errors()[0]
    loc, kind, ctx, value = openai_path(err["loc"]), err["type"], err.get("ctx") or {}, err.get("input")
    param = loc if loc != "body" else None
    if kind == "missing":
        return SimHTTPError(400, f"Missing required parameter: '{loc}'.", "missing_required_parameter", param=param)
    number = "decimal" if isinstance(value, float) or isinstance(ctx.get("ge", ctx.get("le")), float) else "integer"
    if kind == "greater_than_equal":
        return SimHTTPError(400, f"Invalid '{loc}': {number} below minimum value. Expected a value >= "
                            f"{_number(ctx['ge'])}, but got {_number(value)} instead.", f"{number}_below_min_value",
                            param=param)
    if kind == "less_than_equal":
        return SimHTTPError(400, f"Invalid '{loc}': {number} above maximum value. Expected a value <= "
                            f"{_number(ctx['le'])}, but got {_number(value)} instead.", f"{number}_above_max_value",
                            param=param)
    if kind == "too_short" and isinstance(value, list) and not value:
        return SimHTTPError(400, f"Invalid '{loc}': empty array. Expected an array with minimum length "
                            f"{ctx.get('min_length', 1)}, but got an empty array instead.", "empty_array", param=param)
    expected = _EXPECTED.get(kind.removesuffix("_type")) if kind.endswith("_type") else None
    if expected:
        return SimHTTPError(400, f"Invalid type for '{loc}': expected {expected}, but got {_kind_of(value)} instead.",
                            "invalid_type", param=param)
    return SimHTTPError(400, f"Invalid value for '{loc}': {err['msg']}.", "invalid_value", param=param)


def chat_thinking(model: str, data: dict[str, Any]) -> Thinking | None:
    """The model-name rules of the chat wire (:mod:`heavy.sim.rules`) for *data*, a request that passed the schema;
    how the model thinks on it."""
    family = openai_model(model)
    if family is not None:
        return check_chat(model, family, data)
    grok = grok_model(model)
    if grok is not None:
        return check_grok(model, grok, data)
    if model.startswith("deepseek-"):
        return check_deepseek(model, data)
    return None


class OpenAIWire(Wire):
    name = "openai"

    def parse(self, body: bytes, path_model: str | None = None, stream: bool = False) -> SimRequest:
        data = json_object(body, "We could not parse the JSON body of your request. The body must be valid JSON.",
                           "The request body must be a JSON object.")
        name = base_name(data["model"]) if isinstance(data.get("model"), str) else ""
        if openai_model(name) is not None:  # OpenAI refuses unknown keys first (its error precedence)
            chat_unknown(data)
        try:
            r = _ChatRequest.model_validate(data)
        except ValidationError as exc:
            raise openai_validation_error(exc) from None
        if r.top_logprobs and not r.logprobs:
            raise SimHTTPError(400, "logprobs must be true when top_logprobs is set.", "invalid_value",
                               param="top_logprobs")
        extra = r.model_extra or {}
        specs = {str(f.get("name")): {"description": f.get("description") or "", "parameters": f.get("parameters") or {}}
                 for t in extra.get("tools") or [] if isinstance(t, dict) for f in [t.get("function") or {}]}
        choice = extra.get("tool_choice")
        called = [str((c.get("function") or {}).get("name")) for m in r.messages
                  for c in (m.model_extra or {}).get("tool_calls") or [] if isinstance(c, dict)]
        return SimRequest(
            model=r.model, messages=[(m.role, m.text()) for m in r.messages], stream=bool(r.stream), seed=r.seed,
            tools=list(specs), tool_specs=specs, called=called,
            tool_choice=choice if choice in ("none", "required") else "required" if isinstance(choice, dict) else "auto",
            tool_choice_name=str((choice.get("function") or {}).get("name")) if isinstance(choice, dict) else None,
            parallel_tool_calls=extra.get("parallel_tool_calls") is not False,
            stop=[r.stop] if isinstance(r.stop, str) else list(r.stop or []),
            max_tokens=r.max_completion_tokens or r.max_tokens, logprobs=bool(r.logprobs),
            top_logprobs=r.top_logprobs or 0, n=r.n or 1,
            include_usage=bool(r.stream_options and r.stream_options.include_usage),
            cache_key=extra.get("prompt_cache_key") if isinstance(extra.get("prompt_cache_key"), str) else None,
            thinking=chat_thinking(name, data),
        )

    def envelope(self, exc: SimHTTPError, request_id: str) -> dict:
        return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}

    def _meta(self, gen: Generation) -> dict:
        return {"id": f"chatcmpl-{gen.id}", "created": gen.created, "model": gen.model,
                "system_fingerprint": FINGERPRINT}

    def response(self, gen: Generation, request: SimRequest) -> dict:
        meta = self._meta(gen)
        shown = bool(request.thinking and request.thinking.shown)
        return {"id": meta["id"], "object": "chat.completion", **meta, "choices": [
            {"index": c.index, "message": _message(c, shown),
             "logprobs": {"content": c.logprobs} if c.logprobs is not None else None,
             "finish_reason": c.finish_reason} for c in gen.choices], "usage": openai_usage(gen)}

    def _chunk(self, gen: Generation, request: SimRequest, choices: list[dict]) -> str:
        meta = self._meta(gen)
        out = {"id": meta["id"], "object": "chat.completion.chunk", **meta, "choices": choices}
        if request.include_usage:  # OpenAI sends "usage": null on every chunk but the last when asked for usage
            out["usage"] = None
        return sse(out)

    def opening(self, gen: Generation, request: SimRequest) -> list[str]:
        frames = [self._chunk(gen, request, [{"index": c.index, "delta": {"role": "assistant", "content": ""},
                                              "logprobs": None, "finish_reason": None}]) for c in gen.choices]
        if request.thinking and request.thinking.shown:  # reasoning_content streams before the answer
            frames += [self._chunk(gen, request, [{"index": c.index, "logprobs": None, "finish_reason": None,
                                                   "delta": {"reasoning_content": "".join(c.reasoning)}}])
                       for c in gen.choices if c.reasoning]
        return frames

    def piece(self, gen: Generation, request: SimRequest, choice: Choice, begin: int, end: int) -> list[str]:
        logprobs = {"content": choice.logprobs[begin:end]} if choice.logprobs is not None else None
        delta = {"index": choice.index, "delta": {"content": "".join(choice.tokens[begin:end])},
                 "logprobs": logprobs, "finish_reason": None}
        return [self._chunk(gen, request, [delta])]

    def closing(self, gen: Generation, request: SimRequest) -> list[str]:
        frames = []
        for c in gen.choices:
            for i, call in enumerate(c.tool_calls or []):
                args = json.dumps(call["arguments"])
                cut = len(args) // 2
                head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
                frames += [self._chunk(gen, request, [{"index": c.index, "delta": {"tool_calls": [piece]},
                                                       "logprobs": None, "finish_reason": None}])
                           for piece in (head, {"index": i, "function": {"arguments": args[:cut]}},
                                         {"index": i, "function": {"arguments": args[cut:]}})]
        frames += [self._chunk(gen, request, [{"index": c.index, "delta": {}, "logprobs": None,
                                              "finish_reason": c.finish_reason}]) for c in gen.choices]
        if request.include_usage:
            meta = self._meta(gen)
            frames.append(sse({"id": meta["id"], "object": "chat.completion.chunk", **meta, "choices": [],
                               "usage": openai_usage(gen)}))
        return frames + [sse("[DONE]")]

    def stream_error(self, exc: SimHTTPError, request_id: str, gen: Generation, request: SimRequest) -> list[str]:
        return [sse(self.error_body(exc, request_id))]


def _message(c: Choice, shown: bool) -> dict:
    out: dict[str, Any] = {"role": "assistant", "content": c.text}
    if shown and c.reasoning:  # DeepSeek and grok-3-mini return their reasoning beside the content
        out["reasoning_content"] = "".join(c.reasoning)
    if not c.tool_calls:
        return out
    return {**out, "content": c.text or None, "tool_calls": [
        {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": json.dumps(t["arguments"])}}
        for t in c.tool_calls]}


def openai_usage(gen: Generation) -> dict:
    """Chat Completions' usage: completion tokens include the reasoning tokens, which the details count apart."""
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": gen.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": gen.reasoning_tokens, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
