"""The Anthropic Messages shape of the simulator (``POST /v1/messages``).

Like the real API it rejects fields it does not know (so a client sending OpenAI-only fields such as
``seed`` fails loudly here rather than against Anthropic), requires ``max_tokens``, answers errors as
``{"type": "error", "error": {"type", "message"}}`` with a ``request-id`` header, and streams named
events: ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``,
``content_block_stop``, ``message_delta``, ``message_stop`` (and ``error`` inside a 200 stream).

Tool calls are ``tool_use`` blocks (``stop_reason: "tool_use"``), streamed as a ``content_block_start``
with the id and name and an empty input, then ``input_json_delta`` pieces of the input's JSON;
``tool_result`` blocks of a user turn reach the model as tool messages; ``tool_choice`` (auto, any, tool,
none, ``disable_parallel_tool_use``) is honoured.

Prompt caching: ``cache_control`` marks (``{"type": "ephemeral"}``, ``ttl`` ``5m`` or ``1h``; at most four; never
on an empty text block) are validated as the API does and honoured by :mod:`heavy.sim.cache`; the usage says
``input_tokens`` (neither read nor written), ``cache_creation_input_tokens`` and ``cache_read_input_tokens``.

Claude model names are held to the documented thinking, sampling, effort and max_tokens rules
(:mod:`heavy.sim.rules.anthropic`). When thinking is enabled or adaptive the reply starts with a ``thinking`` block
(its text empty with ``display: "omitted"``) and a ``signature``, counted inside ``output_tokens``; streamed as
``thinking_delta`` and ``signature_delta`` events of block 0, the text block following at index 1.
"""

from __future__ import annotations

import json

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .rules import base_name
from .rules.anthropic import check_messages, claude_model
from .wire import Choice, Generation, SimHTTPError, SimRequest, Wire, first_error, json_object, sse

__all__ = ["AnthropicWire", "error_type"]

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                500: "api_error", 504: "timeout_error", 529: "overloaded_error"}


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Message(_Strict):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class _MessagesRequest(_Strict):
    model: str
    max_tokens: int = Field(ge=1)
    messages: list[_Message] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    service_tier: str | None = None
    output_config: dict[str, Any] | None = None


#: Seconds a cache entry lives after its last use, by cache_control ``ttl``.
_TTLS = {"5m": 300.0, "1h": 3600.0}
_MAX_BREAKPOINTS = 4


def _cache_marks(r: _MessagesRequest) -> dict[int, float]:
    """Where the request's ``cache_control`` marks end, in prompt tokens (counted as :func:`heavy.sim.cache.
    prompt_tokens` counts them), with their entries' lifetimes; a 400 for what the API refuses (another type
    than ephemeral, an unknown ttl, an empty text block, more than four marks)."""
    marks: dict[int, float] = {}
    count = 0

    def mark(block: dict[str, Any], at: int) -> None:
        nonlocal count
        control = block.get("cache_control")
        if control is None:
            return
        count += 1
        if count > _MAX_BREAKPOINTS:
            raise SimHTTPError(400, f"A maximum of {_MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                               f"Found {count}.", "invalid_request")
        if not isinstance(control, dict) or control.get("type") != "ephemeral":
            raise SimHTTPError(400, "cache_control.type: Input should be 'ephemeral'", "invalid_request")
        ttl = control.get("ttl", "5m")
        if ttl not in _TTLS:
            raise SimHTTPError(400, "cache_control.ttl: Input should be '5m' or '1h'", "invalid_request")
        if block.get("type") == "text" and not block.get("text"):
            raise SimHTTPError(400, "cache_control cannot be set for empty text blocks", "invalid_request")
        marks[at] = max(marks.get(at, 0.0), _TTLS[ttl])

    for tool in r.tools or []:  # tools come first in the cached prefix; the simulator counts none of their tokens
        mark(tool, 0)
    at = 0
    for b in r.system if isinstance(r.system, list) else []:
        at += len(str(b.get("text") or "").split()) if b.get("type") == "text" else 0
        mark(b, at)
    at += len(r.system.split()) if isinstance(r.system, str) else 0
    for m in r.messages:
        blocks = m.content if isinstance(m.content, list) else []
        for b in blocks:  # tool results reach the model first, as tool messages
            if b.get("type") == "tool_result":
                at += len(_text(b.get("content")).split())
                mark(b, at)
        at += 0 if blocks else len(str(m.content).split())
        for b in blocks:
            if b.get("type") == "text":
                at += len(str(b.get("text") or "").split())
            if b.get("type") != "tool_result":
                mark(b, at)
    return marks


def _has_text_block(c: Choice) -> bool:
    """A reply that goes straight to a tool call has no text block (as with the real API)."""
    return bool(c.tokens) or not c.tool_calls


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    return content or ""


class AnthropicWire(Wire):
    name = "anthropic"
    request_id_header = "request-id"

    def parse(self, body: bytes, path_model: str | None = None, stream: bool = False) -> SimRequest:
        data = json_object(body, "There was an issue with the JSON body of your request: it is not valid JSON.",
                           "The request body must be a JSON object.")
        try:
            r = _MessagesRequest.model_validate(data)
        except ValidationError as exc:
            loc, _, msg = first_error(exc)
            raise SimHTTPError(400, f"{loc}: {msg}", "invalid_request") from None
        messages = [("system", _text(r.system))] if r.system else []
        for m in r.messages:
            blocks = m.content if isinstance(m.content, list) else []
            messages += [("tool", _text(b.get("content"))) for b in blocks if b.get("type") == "tool_result"]
            text = _text(m.content)
            if text or m.role == "assistant" or not any(b.get("type") == "tool_result" for b in blocks):
                messages.append((m.role, text))
        marks = _cache_marks(r)
        specs = {str(t.get("name")): {"description": t.get("description") or "", "parameters": t.get("input_schema") or {}}
                 for t in r.tools or [] if isinstance(t, dict)}
        called = [str(b.get("name")) for m in r.messages if m.role == "assistant" and isinstance(m.content, list)
                  for b in m.content if b.get("type") == "tool_use"]
        choice = r.tool_choice or {}
        kind = choice.get("type", "auto")
        name = base_name(r.model)
        thinking = check_messages(name, claude_model(name), data)
        return SimRequest(model=r.model, thinking=thinking, messages=messages, stream=bool(r.stream),
                          stop=list(r.stop_sequences or []),
                          max_tokens=r.max_tokens, tools=list(specs), tool_specs=specs, called=called,
                          cache_marks=marks,
                          tool_choice={"any": "required", "tool": "required", "none": "none"}.get(kind, "auto"),
                          tool_choice_name=choice.get("name") if kind == "tool" else None,
                          parallel_tool_calls=not choice.get("disable_parallel_tool_use"))

    def envelope(self, exc: SimHTTPError, request_id: str) -> dict:
        return {"type": "error", "error": {"type": error_type(exc.status), "message": exc.message},
                "request_id": request_id}

    @staticmethod
    def _stop_reason(c: Choice) -> str:
        if c.tool_calls:
            return "tool_use"
        if c.finish_reason == "length":
            return "max_tokens"
        return "stop_sequence" if c.stop_sequence else "end_turn"

    def _message(self, gen: Generation, content: list[dict], stop_reason: str | None, stop_sequence: str | None,
                 output_tokens: int) -> dict:
        return {"id": f"msg_{gen.id}", "type": "message", "role": "assistant", "model": gen.model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
                "usage": {"input_tokens": gen.prompt_tokens - gen.cache_read - gen.cache_write,
                          "cache_creation_input_tokens": gen.cache_write, "cache_read_input_tokens": gen.cache_read,
                          "cache_creation": {"ephemeral_5m_input_tokens": gen.cache_write,
                                             "ephemeral_1h_input_tokens": 0},
                          "output_tokens": output_tokens}}

    @staticmethod
    def _thinking_block(c: Choice, request: SimRequest) -> dict:
        """A thinking block (its text empty with ``display: "omitted"``), signed as the API signs them."""
        shown = bool(request.thinking and request.thinking.shown)
        return {"type": "thinking", "thinking": "".join(c.reasoning) if shown else "",
                "signature": f"sim-signature-{len(c.reasoning)}"}

    @staticmethod
    def _text_index(request: SimRequest) -> int:
        """The index of the text block: after the thinking block when the model thinks."""
        return 1 if request.thinking else 0

    def response(self, gen: Generation, request: SimRequest) -> dict:
        c = gen.choices[0]
        content = [self._thinking_block(c, request)] if request.thinking else []
        content += [{"type": "text", "text": c.text}] if _has_text_block(c) else []
        content += [{"type": "tool_use", "id": t["id"], "name": t["name"], "input": t["arguments"]}
                    for t in c.tool_calls or []]
        return self._message(gen, content, self._stop_reason(c), c.stop_sequence, gen.completion_tokens)

    def opening(self, gen: Generation, request: SimRequest) -> list[str]:
        c = gen.choices[0]
        frames = [sse({"type": "message_start", "message": self._message(gen, [], None, None, 1)}, "message_start")]
        if request.thinking:
            block = self._thinking_block(c, request)
            frames += [sse({"type": "content_block_start", "index": 0, "content_block": {
                              "type": "thinking", "thinking": "", "signature": ""}}, "content_block_start"),
                       sse({"type": "content_block_delta", "index": 0, "delta": {
                           "type": "thinking_delta", "thinking": block["thinking"]}}, "content_block_delta"),
                       sse({"type": "content_block_delta", "index": 0, "delta": {
                           "type": "signature_delta", "signature": block["signature"]}}, "content_block_delta"),
                       sse({"type": "content_block_stop", "index": 0}, "content_block_stop")]
        if _has_text_block(c):
            frames.append(sse({"type": "content_block_start", "index": self._text_index(request),
                               "content_block": {"type": "text", "text": ""}}, "content_block_start"))
        return frames + [sse({"type": "ping"}, "ping")]

    def piece(self, gen: Generation, request: SimRequest, choice: Choice, begin: int, end: int) -> list[str]:
        delta = {"type": "text_delta", "text": "".join(choice.tokens[begin:end])}
        return [sse({"type": "content_block_delta", "index": self._text_index(request), "delta": delta},
                    "content_block_delta")]

    def closing(self, gen: Generation, request: SimRequest) -> list[str]:
        c = gen.choices[0]
        delta = {"stop_reason": self._stop_reason(c), "stop_sequence": c.stop_sequence}
        at = self._text_index(request)
        frames = [sse({"type": "content_block_stop", "index": at}, "content_block_stop")] if _has_text_block(c) else []
        for i, t in enumerate(c.tool_calls or [], start=at + len(frames)):
            args = json.dumps(t["arguments"])
            cut = len(args) // 2
            frames.append(sse({"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": t["id"], "name": t["name"], "input": {}}}, "content_block_start"))
            frames += [sse({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta",
                                                                                 "partial_json": piece}},
                           "content_block_delta") for piece in (args[:cut], args[cut:])]
            frames.append(sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
        return frames + [sse({"type": "message_delta", "delta": delta, "usage": {"output_tokens": gen.completion_tokens}},
                             "message_delta"),
                         sse({"type": "message_stop"}, "message_stop")]

    def stream_error(self, exc: SimHTTPError, request_id: str, gen: Generation, request: SimRequest) -> list[str]:
        return [sse({"type": "error", "error": {"type": error_type(exc.status), "message": exc.message}}, "error")]
