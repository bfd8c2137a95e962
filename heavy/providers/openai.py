"""OpenAI Chat Completions wire format (``POST {base}/chat/completions``).

Serves OpenAI itself and every server that speaks the same format: xAI, OpenRouter, Together, Groq,
DeepSeek, Mistral, vLLM, Ollama, llama.cpp, LM Studio and heavy's own simulator. We never send
``n>1``: Ollama and llama.cpp ignore it or bill it oddly, so N hypotheses are N requests.

Reasoning text arrives under different names depending on the server (``reasoning_content`` from
DeepSeek, vLLM and llama.cpp; ``reasoning`` from OpenRouter); both are kept apart from the answer.

Tool use: offered tools go out as ``tools: [{"type": "function", "function": {name, description,
parameters}}]``; calls come back in ``message.tool_calls`` (``function.arguments`` is a JSON *string*)
or, streaming, as ``delta.tool_calls`` fragments keyed by ``index`` (the id and name arrive first, the
arguments in pieces). An assistant message that made calls is sent back with its ``tool_calls`` and
each result as a ``{"role": "tool", "tool_call_id", "content"}`` message. ``tool_choice`` goes out as is
(``auto``, ``none``, ``required`` or ``{"type": "function", "function": {"name"}}``), as does
``parallel_tool_calls``.

Thinking: ``reasoning_effort`` (low/medium/high) is sent as is (OpenAI's o-series and GPT-5, xAI's Grok
reasoning models; which efforts a model takes is its API's to say). Given only a thinking budget, the effort
that covers it is sent (up to 1024 tokens low, up to 8192 medium, beyond that high). Reasoning tokens are
read from ``usage.completion_tokens_details.reasoning_tokens`` (they are part of ``completion_tokens``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ProviderError, ProviderResponseError
from ..http import Timeout, decode_json, request_id
from ..types import Message, TokenLogprob, ToolCall, Usage
from .base import Completion, CompletionRequest, Delta, HTTPProvider

__all__ = ["OpenAIProvider"]


class OpenAIProvider(HTTPProvider):
    """An OpenAI-compatible endpoint at ``base_url`` (ending in ``/v1`` for most servers)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        name: str = "openai",
        max_tokens_field: str = "max_tokens",
        timeout: Timeout | None = None,
        transport: Any = None,
        extra_headers: dict[str, str] | None = None,
        auth_hint: str | None = None,
    ) -> None:
        self.max_tokens_field = max_tokens_field
        super().__init__(base_url, name=name, headers={"authorization": f"Bearer {api_key}"} if api_key else {},
                         timeout=timeout, transport=transport, extra_headers=extra_headers,
                         auth_hint=auth_hint)

    # --- request --------------------------------------------------------------------------------

    def build_body(self, request: CompletionRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for *request* (public so tests and the proxy can inspect it)."""
        p = request.params
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(m) for m in request.messages],
        }
        if request.tools:
            body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                               "parameters": t.parameters}} for t in request.tools]
            if request.tool_choice is not None:
                body["tool_choice"] = request.tool_choice.openai()
            if request.parallel_tool_calls is not None:
                body["parallel_tool_calls"] = request.parallel_tool_calls
        if p.temperature is not None:
            body["temperature"] = p.temperature
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.max_tokens is not None:
            body[self.max_tokens_field] = p.max_tokens
        if p.seed is not None:
            body["seed"] = p.seed
        if p.stop is not None:
            body["stop"] = p.stop
        if p.logprobs:
            body["logprobs"] = True
            if p.top_logprobs is not None:
                body["top_logprobs"] = p.top_logprobs
        effort = p.effort()
        if effort is not None:
            body["reasoning_effort"] = effort
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(request.extra_body)
        return body

    # --- response -------------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        resp = await self._http.post_json(
            "chat/completions", self.build_body(request, stream=False), model=request.model
        )
        data = decode_json(resp.text, provider=self.name, model=request.model)
        return self.parse_completion(data, model=request.model, request_id=request_id(resp.headers), raw=resp.text)

    def parse_completion(self, data: Any, *, model: str, request_id: str | None = None, raw: str = "") -> Completion:
        """A decoded chat completion body as a Completion (also how a batch's output lines are read);
        ``raw`` is the body's text for error excerpts."""
        rid = request_id or (data.get("id") if isinstance(data, dict) else None)
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
            text = _content_text(message.get("content"))
            calls = [_tool_call(raw_call, i) for i, raw_call in enumerate(message.get("tool_calls") or [])]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderResponseError(
                "response has no choices[0].message", provider=self.name, model=model,
                request_id=rid, body=raw[:500],
            ) from None
        return Completion(
            text=text,
            reasoning=message.get("reasoning_content") or message.get("reasoning") or None,
            finish_reason=choice.get("finish_reason"),
            usage=_usage(data.get("usage")),
            logprobs=_logprobs(choice.get("logprobs")),
            model=data.get("model"),
            request_id=rid,
            tool_calls=calls or None,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        text: list[str] = []
        reasoning: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish_reason = model = None
        usage = Usage()
        pending: dict[int, dict[str, Any]] = {}  # streamed tool calls by index: id, name, argument pieces
        async with self._http.stream_sse(
            "chat/completions", self.build_body(request, stream=True), model=request.model
        ) as (headers, events):
            rid = request_id(headers)
            async for event in events:
                if event.data.strip() == "[DONE]":
                    break
                try:
                    chunk = json.loads(event.data)
                except ValueError:
                    raise ProviderResponseError(
                        "stream chunk is not JSON", provider=self.name, model=request.model,
                        request_id=rid, body=event.data[:500],
                    ) from None
                if isinstance(chunk, dict) and "error" in chunk:  # some servers report errors in-stream
                    err = chunk["error"]
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                    raise ProviderError(f"error inside stream: {msg}", provider=self.name, model=request.model,
                                        request_id=rid, body=event.data[:500], retryable=True)
                model = chunk.get("model") or model
                rid = rid or chunk.get("id")
                if chunk.get("usage"):
                    usage = _usage(chunk["usage"])
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece = _content_text(delta.get("content"))
                    thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
                    if piece or thought:
                        text.append(piece)
                        reasoning.append(thought)
                        yield Delta(text=piece, reasoning=thought)
                    for piece_call in delta.get("tool_calls") or []:
                        slot = pending.setdefault(int(piece_call.get("index", len(pending))),
                                                  {"id": None, "name": "", "arguments": []})
                        fn = piece_call.get("function") or {}
                        slot["id"] = piece_call.get("id") or slot["id"]
                        slot["name"] += fn.get("name") or ""
                        slot["arguments"].append(fn.get("arguments") or "")
                    if choice.get("logprobs"):
                        logprobs.extend(_logprobs(choice["logprobs"]) or [])
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
        yield Completion(
            text="".join(text),
            reasoning="".join(reasoning) or None,
            finish_reason=finish_reason,
            usage=usage,
            logprobs=logprobs or None,
            model=model,
            request_id=rid,
            tool_calls=[_tool_call({"id": slot["id"], "function": {"name": slot["name"],
                                                                   "arguments": "".join(slot["arguments"])}}, i)
                        for i, slot in sorted(pending.items())] or None,
        )


def _message(m: Message) -> dict[str, Any]:
    """One message in OpenAI's shape (tool calls and tool results included)."""
    out: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                             for c in m.tool_calls]
    if m.role == "tool" and m.tool_call_id:
        out["tool_call_id"] = m.tool_call_id
    return out


def _tool_call(raw: Any, position: int) -> ToolCall:
    """A ``tool_calls`` entry as a ToolCall; arguments that are not a JSON object are reported, not raised."""
    fn = (raw.get("function") or {}) if isinstance(raw, dict) else {}
    text = fn.get("arguments")
    args: Any = {}
    error = None
    if isinstance(text, dict):
        args = text
    elif text:
        try:
            args = json.loads(text)
        except ValueError:
            args, error = {}, f"arguments are not valid JSON: {str(text)[:200]}"
    if not isinstance(args, dict):
        args, error = {}, "arguments are not a JSON object"
    call_id = (raw.get("id") if isinstance(raw, dict) else None) or f"call_{position}"
    return ToolCall(id=str(call_id), name=str(fn.get("name") or ""), arguments=args, arguments_error=error)


def _content_text(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("completion_tokens_details") or {}
    prompt_details = raw.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
        reasoning_tokens=int(details.get("reasoning_tokens") or 0),
        cache_read_tokens=int(prompt_details.get("cached_tokens") or 0),
    )


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    out = []
    for item in raw["content"]:
        if not isinstance(item, dict) or "logprob" not in item:
            continue
        top = item.get("top_logprobs") or None
        out.append(
            TokenLogprob(
                token=str(item.get("token", "")),
                logprob=float(item["logprob"]),
                top={str(t.get("token", "")): float(t.get("logprob", 0.0)) for t in top} if top else None,
            )
        )
    return out
