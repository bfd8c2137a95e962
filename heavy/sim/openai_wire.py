"""The OpenAI Chat Completions shape of the simulator (``POST /v1/chat/completions``).

Offered ``tools`` (with ``tool_choice`` and ``parallel_tool_calls``) are read, as are the ``tool_calls`` of
assistant turns. Tool calls are answered as ``message.tool_calls`` (arguments as a JSON string, ``finish_reason:
"tool_calls"``), streamed as ``delta.tool_calls`` fragments: the id, type and name first, then the
arguments in pieces, all keyed by ``index``.

``n`` choices are generated in one request (the prompt counted once in the usage), streamed interleaved with
each chunk naming its choice's ``index``. Prompts of 1024 tokens or more are cached as OpenAI caches them
(:mod:`heavy.sim.cache`): ``usage.prompt_tokens_details.cached_tokens`` says how many were read, in 128-token
steps; ``prompt_cache_key`` is accepted (one machine: it routes nowhere else).
"""

from __future__ import annotations

import json

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .wire import Choice, Generation, SimHTTPError, SimRequest, Wire, first_error, json_object, sse

__all__ = ["OpenAIWire", "FINGERPRINT"]

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


def _validation_error(exc: ValidationError) -> SimHTTPError:
    loc, kind, msg = first_error(exc)
    param = loc.split(".")[0] if loc != "body" else None
    if kind == "missing":
        return SimHTTPError(400, f"Missing required parameter: '{loc}'.", "missing_required_parameter", param=param)
    code = "invalid_type" if kind.endswith("_type") else "invalid_value"
    return SimHTTPError(400, f"Invalid value for '{loc}': {msg}.", code, param=param)


class OpenAIWire(Wire):
    name = "openai"

    def parse(self, body: bytes, path_model: str | None = None, stream: bool = False) -> SimRequest:
        data = json_object(body, "We could not parse the JSON body of your request. The body must be valid JSON.",
                           "The request body must be a JSON object.")
        try:
            r = _ChatRequest.model_validate(data)
        except ValidationError as exc:
            raise _validation_error(exc) from None
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
        )

    def error_body(self, exc: SimHTTPError, request_id: str) -> dict:
        return {"error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}}

    def _meta(self, gen: Generation) -> dict:
        return {"id": f"chatcmpl-{gen.id}", "created": gen.created, "model": gen.model,
                "system_fingerprint": FINGERPRINT}

    def response(self, gen: Generation, request: SimRequest) -> dict:
        meta = self._meta(gen)
        return {"id": meta["id"], "object": "chat.completion", **meta, "choices": [
            {"index": c.index, "message": _message(c),
             "logprobs": {"content": c.logprobs} if c.logprobs is not None else None,
             "finish_reason": c.finish_reason} for c in gen.choices], "usage": _usage(gen)}

    def _chunk(self, gen: Generation, request: SimRequest, choices: list[dict]) -> str:
        meta = self._meta(gen)
        out = {"id": meta["id"], "object": "chat.completion.chunk", **meta, "choices": choices}
        if request.include_usage:  # OpenAI sends "usage": null on every chunk but the last when asked for usage
            out["usage"] = None
        return sse(out)

    def opening(self, gen: Generation, request: SimRequest) -> list[str]:
        return [self._chunk(gen, request, [{"index": c.index, "delta": {"role": "assistant", "content": ""},
                                            "logprobs": None, "finish_reason": None}]) for c in gen.choices]

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
                               "usage": _usage(gen)}))
        return frames + [sse("[DONE]")]

    def stream_error(self, exc: SimHTTPError, request_id: str) -> list[str]:
        return [sse(self.error_body(exc, request_id))]


def _message(c: Choice) -> dict:
    if not c.tool_calls:
        return {"role": "assistant", "content": c.text}
    return {"role": "assistant", "content": c.text or None, "tool_calls": [
        {"id": t["id"], "type": "function", "function": {"name": t["name"], "arguments": json.dumps(t["arguments"])}}
        for t in c.tool_calls]}


def _usage(gen: Generation) -> dict:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": gen.cache_read, "audio_tokens": 0}}
