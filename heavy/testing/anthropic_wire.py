"""The Anthropic Messages shape of the simulator (``POST /v1/messages``).

Like the real API it rejects fields it does not know (so a client sending OpenAI-only fields such as
``seed`` fails loudly here rather than against Anthropic), requires ``max_tokens``, answers errors as
``{"type": "error", "error": {"type", "message"}}`` with a ``request-id`` header, and streams named
events: ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``,
``content_block_stop``, ``message_delta``, ``message_stop`` (and ``error`` inside a 200 stream).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
        messages += [(m.role, _text(m.content)) for m in r.messages]
        return SimRequest(model=r.model, messages=messages, stream=bool(r.stream), stop=list(r.stop_sequences or []),
                          max_tokens=r.max_tokens)

    def error_body(self, exc: SimHTTPError, request_id: str) -> dict:
        return {"type": "error", "error": {"type": error_type(exc.status), "message": exc.message},
                "request_id": request_id}

    @staticmethod
    def _stop_reason(c: Choice) -> str:
        if c.finish_reason == "length":
            return "max_tokens"
        return "stop_sequence" if c.stop_sequence else "end_turn"

    def _message(self, gen: Generation, content: list[dict], stop_reason: str | None, stop_sequence: str | None,
                 output_tokens: int) -> dict:
        return {"id": f"msg_{gen.id}", "type": "message", "role": "assistant", "model": gen.model,
                "content": content, "stop_reason": stop_reason, "stop_sequence": stop_sequence,
                "usage": {"input_tokens": gen.prompt_tokens, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": output_tokens}}

    def response(self, gen: Generation, request: SimRequest) -> dict:
        c = gen.choices[0]
        return self._message(gen, [{"type": "text", "text": c.text}], self._stop_reason(c), c.stop_sequence,
                             gen.completion_tokens)

    def opening(self, gen: Generation, request: SimRequest) -> list[str]:
        return [sse({"type": "message_start", "message": self._message(gen, [], None, None, 1)}, "message_start"),
                sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                    "content_block_start"),
                sse({"type": "ping"}, "ping")]

    def piece(self, gen: Generation, request: SimRequest, choice: Choice, begin: int, end: int) -> list[str]:
        delta = {"type": "text_delta", "text": "".join(choice.tokens[begin:end])}
        return [sse({"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta")]

    def closing(self, gen: Generation, request: SimRequest) -> list[str]:
        c = gen.choices[0]
        delta = {"stop_reason": self._stop_reason(c), "stop_sequence": c.stop_sequence}
        return [sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
                sse({"type": "message_delta", "delta": delta, "usage": {"output_tokens": gen.completion_tokens}},
                    "message_delta"),
                sse({"type": "message_stop"}, "message_stop")]

    def stream_error(self, exc: SimHTTPError, request_id: str) -> list[str]:
        return [sse({"type": "error", "error": {"type": error_type(exc.status), "message": exc.message}}, "error")]
