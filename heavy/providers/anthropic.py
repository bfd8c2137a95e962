"""Anthropic Messages wire format (``POST {root}/v1/messages``).

``root_url`` is the API root without a version (``https://api.anthropic.com``, or a proxy's root):
requests go to ``{root}/v1/messages`` with the key in ``x-api-key`` and ``anthropic-version: 2023-06-01``.

What differs from OpenAI's format, and how heavy bridges it:

- ``max_tokens`` is required: when the caller sets none, ``default_max_tokens`` is sent.
- System messages move to the top-level ``system`` field; ``developer`` counts as system, ``tool`` as user.
- OpenAI-style ``image_url`` parts become ``image`` blocks (a ``data:`` URL becomes a base64 source,
  anything else a URL source); other parts are passed on as they are (native Anthropic blocks).
- Prompt caching: a request's ``cache_prefix`` (the messages its siblings share, :mod:`heavy.fanout`) puts
  ``cache_control: {"type": "ephemeral"}`` (5 minutes) on the last block of that prefix (a system prompt
  becomes blocks then), unless the caller's own markers already use the four breakpoints a request may have.
  Everything before the mark (tools, system, messages) is the cached prefix; the API caches it only from its
  model's minimum length on (1024 tokens for most models, more for some: :mod:`heavy.caching`).
- There is no ``seed`` and no logprobs: neither is sent, so ``Completion.logprobs`` stays ``None``.
- Thinking: a thinking budget (``thinking_budget``, or a ``reasoning_effort`` as 1024/8192/24576 tokens)
  goes out as ``thinking: {"type": "enabled", "budget_tokens": B}`` (at least 1024, the API's minimum; a
  budget of 0 sends nothing: no thinking), unless ``extra_body`` carries its own ``thinking``. The newest
  models (their profile's thinking control is ``adaptive``: :mod:`heavy.profiles`) refuse a budget: they get
  ``thinking: {"type": "adaptive"}`` and the effort as ``output_config: {"effort": E}``. ``thinking``
  blocks go to ``Completion.reasoning``, never into the text. With thinking on, heavy's temperature/top_p
  are not sent (the API rejects them then), and a max_tokens not above ``budget_tokens`` (which counts
  against it) becomes budget + max_tokens (or budget + the default). Anthropic counts thinking inside
  ``output_tokens`` and does not report it apart, so ``Usage.reasoning_tokens`` stays 0. (The API takes no
  thinking with a ``tool_choice`` that forces a call: that combination is its error to report.)
- ``input_tokens`` excludes cache reads and writes; heavy's ``prompt_tokens`` is the whole prompt
  (input + cache reads + cache writes, as OpenAI and Gemini count it), ``cache_read_tokens`` the reads
  (``cache_read_input_tokens``) and ``cache_write_tokens`` the writes (``cache_creation_input_tokens``).
- Stop reasons are reported in OpenAI's words where one exists (``end_turn``/``stop_sequence`` →
  ``stop``, ``max_tokens`` → ``length``, ``tool_use`` → ``tool_calls``); others pass through.
- Tool use: offered tools go out as ``tools: [{name, description, input_schema}]``; the answer's
  ``tool_use`` blocks (``id``, ``name``, ``input``) become tool calls, streamed as a ``content_block_start``
  carrying the id and name followed by ``input_json_delta`` pieces of the input's JSON. An assistant turn
  that made calls is sent back as ``tool_use`` blocks, and each ``tool`` message as a ``tool_result``
  block (``tool_use_id``) in a user turn. OpenAI's ``tool_choice`` maps to ``{"type": "auto"}``,
  ``{"type": "any"}`` (required), ``{"type": "tool", "name"}`` and ``{"type": "none"}``;
  ``parallel_tool_calls: false`` to ``disable_parallel_tool_use: true`` in it.
- A stream may carry ``event: error`` after a 200 (e.g. ``overloaded_error``): it raises a
  :class:`ProviderError` whose ``status`` is what the same error would have had as an HTTP answer
  (529 for overloaded), retryable when the error is transient.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ProviderError, ProviderResponseError
from ..http import Timeout, decode_json, request_id
from ..profiles import Profiles
from ..types import Message, ToolCall, ToolChoice, Usage
from .base import DATA_URL, Completion, CompletionRequest, Delta, HTTPProvider

__all__ = ["AnthropicProvider", "ANTHROPIC_VERSION", "DEFAULT_MAX_TOKENS"]

ANTHROPIC_VERSION = "2023-06-01"
#: Sent when the caller sets no max_tokens (the API requires one). Every Claude model accepts 4096.
DEFAULT_MAX_TOKENS = 4096
#: The smallest ``budget_tokens`` the API accepts.
MIN_THINKING_BUDGET = 1024
MESSAGES_PATH = "v1/messages"

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
#: Error types that arrive in a stream, with the HTTP status they carry as a plain answer.
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                 "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                 "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}
_TRANSIENT = {"rate_limit_error", "api_error", "timeout_error", "overloaded_error"}


class AnthropicProvider(HTTPProvider):
    """The Anthropic Messages API at ``root_url`` (``https://api.anthropic.com`` or a compatible root)."""

    def __init__(
        self,
        root_url: str,
        api_key: str | None = None,
        *,
        name: str = "anthropic",
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        timeout: Timeout | None = None,
        transport: Any = None,
        extra_headers: dict[str, str] | None = None,
        auth_hint: str | None = None,
        profiles: Profiles | None = None,
    ) -> None:
        if default_max_tokens < 1:
            raise ValueError("default_max_tokens must be at least 1")
        self.default_max_tokens = default_max_tokens
        #: How each model thinks (a budget, or adaptively with an effort): heavy.profiles.
        self.profiles = profiles or Profiles(name, root_url)
        headers = {"anthropic-version": ANTHROPIC_VERSION, **({"x-api-key": api_key} if api_key else {})}
        super().__init__(root_url, name=name, headers=headers, timeout=timeout, transport=transport,
                         extra_headers=extra_headers, auth_hint=auth_hint)

    @classmethod
    def from_spec(cls, spec: Any, profiles: Any, *, transport: Any = None, background: bool = False) -> "AnthropicProvider":
        """The ``anthropic`` wire of a resolved spec (:meth:`Provider.from_spec`)."""
        return cls(spec.base_url, spec.api_key, name=spec.preset.name, transport=transport,
                   auth_hint=spec.withheld_key_hint(), profiles=profiles)

    # --- request --------------------------------------------------------------------------------

    def build_body(self, request: CompletionRequest, *, stream: bool) -> dict[str, Any]:
        """The JSON body for *request* (public so tests and the proxy can inspect it)."""
        p = request.params
        mark = min(request.cache_prefix, len(request.messages)) - 1
        system, messages = _convert_messages(request.messages, mark)
        if mark >= 0 and _breakpoints(system, messages) > MAX_CACHE_BREAKPOINTS:  # the caller's own use them all
            system, messages = _convert_messages(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": p.max_tokens if p.max_tokens is not None else self.default_max_tokens,
            "messages": messages,
        }
        if system is not None:
            body["system"] = system
        if request.tools:
            body["tools"] = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
                             for t in request.tools]
            choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
            if choice is not None:
                body["tool_choice"] = choice
        if p.temperature is not None:
            body["temperature"] = p.temperature
        if p.top_p is not None:
            body["top_p"] = p.top_p
        if p.stop is not None:
            body["stop_sequences"] = [p.stop] if isinstance(p.stop, str) else list(p.stop)
        if stream:
            body["stream"] = True
        thinking = request.extra_body.get("thinking")
        control = self.profiles(request.model).thinking.control
        effort = p.effort()
        if thinking is None and control == "adaptive" and effort not in (None, "none"):
            # The newest models think adaptively: no budget, an effort (output_config.effort) instead.
            thinking = body["thinking"] = {"type": "adaptive"}
            body["output_config"] = {"effort": effort}
        budget = p.thinking_tokens() if control != "adaptive" else None
        if thinking is None and budget:  # a budget of 0: no thinking, the API's default
            thinking = body["thinking"] = {"type": "enabled", "budget_tokens": max(budget, MIN_THINKING_BUDGET)}
        if isinstance(thinking, dict) and thinking.get("type") not in (None, "disabled"):
            # Thinking rejects sampling modifications, and its budget counts against max_tokens.
            body.pop("temperature", None)
            body.pop("top_p", None)
            budget = thinking.get("budget_tokens")
            if isinstance(budget, int) and budget >= body["max_tokens"]:
                body["max_tokens"] = budget + (p.max_tokens or self.default_max_tokens)
        body.update(request.extra_body)
        return body

    # --- response -------------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        resp = await self._http.post_json(MESSAGES_PATH, self.build_body(request, stream=False), model=request.model)
        data = decode_json(resp.text, provider=self.name, model=request.model)
        return self.parse_message(data, model=request.model, request_id=request_id(resp.headers), raw=resp.text)

    def parse_message(self, data: Any, *, model: str, request_id: str | None = None, raw: str = "") -> Completion:
        """A decoded Messages API body as a Completion (also how a batch's ``succeeded`` results are read);
        ``raw`` is the body's text for error excerpts."""
        rid = request_id or (data.get("id") if isinstance(data, dict) else None)
        if isinstance(data, dict) and data.get("type") == "error":
            raise self._api_error(data, model, rid, raw, "error in a 200 response")
        blocks = data.get("content") if isinstance(data, dict) else None
        if not isinstance(blocks, list):
            raise ProviderResponseError("response has no content blocks", provider=self.name, model=model,
                                        request_id=rid, body=raw[:500])
        text = "".join(str(b.get("text") or "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        thinking = "".join(str(b.get("thinking") or "") for b in blocks
                           if isinstance(b, dict) and b.get("type") == "thinking")
        calls = [_tool_call(b.get("id"), b.get("name"), b.get("input"), i) for i, b in enumerate(blocks)
                 if isinstance(b, dict) and b.get("type") == "tool_use"]
        return Completion(
            text=text,
            reasoning=thinking or None,
            finish_reason=_finish(data.get("stop_reason")),
            usage=_usage(data.get("usage")),
            model=data.get("model"),
            request_id=rid,
            tool_calls=calls or None,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        text: list[str] = []
        reasoning: list[str] = []
        usage: dict[str, Any] = {}
        stop_reason = model = message_id = None
        stopped = False
        tools: dict[int, dict[str, Any]] = {}  # tool_use blocks by content index: id, name, input JSON pieces
        async with self._http.stream_sse(
            MESSAGES_PATH, self.build_body(request, stream=True), model=request.model
        ) as (headers, events):
            rid = request_id(headers)
            async for event in events:
                try:
                    data = json.loads(event.data)
                except ValueError:
                    raise ProviderResponseError("stream event is not JSON", provider=self.name, model=request.model,
                                                request_id=rid, body=event.data[:500]) from None
                if not isinstance(data, dict):
                    continue
                kind = data.get("type") or event.event
                if kind == "error":
                    raise self._api_error(data, request.model, rid or message_id, event.data, "error inside stream")
                if kind == "message_start":
                    message = data.get("message") or {}
                    model, message_id = message.get("model"), message.get("id")
                    usage.update({k: v for k, v in (message.get("usage") or {}).items() if v is not None})
                elif kind == "content_block_start":
                    block = data.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        tools[int(data.get("index", len(tools)))] = {"id": block.get("id"), "name": block.get("name"),
                                                                     "input": block.get("input"), "json": []}
                    # A block may open with content already in it (normally empty).
                    piece = str(block.get("text") or "") if block.get("type") == "text" else ""
                    thought = str(block.get("thinking") or "") if block.get("type") == "thinking" else ""
                    if piece or thought:
                        text.append(piece)
                        reasoning.append(thought)
                        yield Delta(text=piece, reasoning=thought)
                elif kind == "content_block_delta":
                    delta = data.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        text.append(delta["text"])
                        yield Delta(text=delta["text"])
                    elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                        reasoning.append(delta["thinking"])
                        yield Delta(reasoning=delta["thinking"])
                    elif delta.get("type") == "input_json_delta":
                        slot = tools.get(int(data.get("index", -1)))
                        if slot is not None:
                            slot["json"].append(delta.get("partial_json") or "")
                    # signature_delta, citations_delta: nothing to show
                elif kind == "message_delta":
                    stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
                    usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
                elif kind == "message_stop":
                    stopped = True
                    break
                # ping and event types added later are ignored, as the API asks of clients
        if not stopped:
            raise ProviderResponseError("stream ended before message_stop (truncated response)", provider=self.name,
                                        model=request.model, request_id=rid or message_id, retryable=True)
        yield Completion(
            text="".join(text),
            reasoning="".join(reasoning) or None,
            finish_reason=_finish(stop_reason),
            usage=_usage(usage),
            model=model,
            request_id=rid or message_id,
            tool_calls=[_tool_call(t["id"], t["name"], "".join(t["json"]) if t["json"] else t["input"], i)
                        for i, (_, t) in enumerate(sorted(tools.items()))] or None,
        )

    def _api_error(self, data: dict, model: str, rid: str | None, raw: str, where: str) -> ProviderError:
        """An ``{"type": "error", ...}`` body that arrived with status 200 (in a stream, or from a proxy)."""
        err = data.get("error") if isinstance(data.get("error"), dict) else {}
        kind = str(err.get("type") or "error")
        message = err.get("message") or kind
        return ProviderError(f"{where}: {kind}: {message}", provider=self.name, model=model,
                             status=_ERROR_STATUS.get(kind), request_id=rid or data.get("request_id"),
                             body=raw[:500], retryable=kind in _TRANSIENT)


# --- conversions ------------------------------------------------------------------------------------


def _tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    """OpenAI's ``tool_choice`` and ``parallel_tool_calls`` as Anthropic's ``tool_choice`` (None: not sent)."""
    if choice is None and parallel is not False:
        return None
    choice = choice or ToolChoice()
    if choice.mode == "none":
        return {"type": "none"}
    out: dict[str, Any] = {"type": "tool", "name": choice.name} if choice.name else \
        {"type": "any" if choice.mode == "required" else "auto"}
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _convert_messages(messages: list[Message], mark: int = -1) -> tuple[str | list[dict] | None, list[dict[str, Any]]]:
    """heavy's messages as (``system``, ``messages``); consecutive same-role turns are merged. The last block
    of message *mark* (an index; -1: none) gets ``cache_control``: the end of the prefix siblings share."""
    system: list[str | list[dict[str, Any]]] = []
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if m.role in ("system", "developer"):
            system.append(_marked(_as_list(m.content)) if i == mark else m.content)
            continue
        role = "assistant" if m.role == "assistant" else "user"
        content = _blocks(m.content)
        if m.role == "tool" and m.tool_call_id:
            result = m.content if isinstance(m.content, str) else [b for b in _as_list(m.content)]
            content = [{"type": "tool_result", "tool_use_id": m.tool_call_id or "", "content": result}]
        elif m.tool_calls:
            content = [b for b in _as_list(content) if b.get("type") != "text" or b.get("text")]
            content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in m.tool_calls]
        if i == mark:
            content = _marked(_as_list(content))
        if out and out[-1]["role"] == role:
            prev = out[-1]["content"]
            out[-1]["content"] = _as_list(prev) + _as_list(content)
        else:
            out.append({"role": role, "content": content})
    if not system:
        return None, out
    if all(isinstance(s, str) for s in system):
        return "\n\n".join(s for s in system if isinstance(s, str)), out
    # Some system content is a list of blocks (e.g. with cache_control): keep blocks.
    blocks: list[dict[str, Any]] = []
    for s in system:
        blocks += [{"type": "text", "text": s}] if isinstance(s, str) else [b for b in s if b.get("type") == "text"]
    return blocks, out


#: Breakpoints a request may carry (the API refuses a fifth).
MAX_CACHE_BREAKPOINTS = 4
_EPHEMERAL = {"type": "ephemeral"}


def _marked(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """*blocks* with ``cache_control`` on the last one that can carry it (a copy: the caller's parts stay as
    they are). Empty text and thinking blocks cannot; a block already marked keeps its own."""
    for j in range(len(blocks) - 1, -1, -1):
        b = blocks[j]
        if b.get("type") in ("thinking", "redacted_thinking") or (b.get("type") == "text" and not b.get("text")):
            continue
        if "cache_control" not in b:
            blocks = [*blocks[:j], {**b, "cache_control": dict(_EPHEMERAL)}, *blocks[j + 1:]]
        break
    return blocks


def _breakpoints(system: str | list[dict] | None, messages: list[dict[str, Any]]) -> int:
    """``cache_control`` markers among the system and message blocks."""
    blocks = list(system) if isinstance(system, list) else []
    for m in messages:
        blocks += m["content"] if isinstance(m["content"], list) else []
    return sum(1 for b in blocks if isinstance(b, dict) and "cache_control" in b)


def _as_list(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _blocks(content: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    return [_image_block(part) if part.get("type") == "image_url" else part for part in content]


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI ``image_url`` part as an Anthropic ``image`` block."""
    ref = part.get("image_url")
    url = str(ref.get("url", "")) if isinstance(ref, dict) else str(ref or "")
    match = DATA_URL.match(url)
    if match:
        return {"type": "image", "source": {"type": "base64", "media_type": match["mime"], "data": match["data"]}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tool_call(call_id: Any, name: Any, raw_input: Any, position: int) -> ToolCall:
    """A ``tool_use`` block as a ToolCall; ``raw_input`` is the input object, or its streamed JSON text."""
    args: Any = raw_input if raw_input is not None else {}
    error = None
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            args, error = {}, f"input is not valid JSON: {raw_input[:200]}"
    if not isinstance(args, dict):
        args, error = {}, "input is not a JSON object"
    return ToolCall(id=str(call_id or f"toolu_{position}"), name=str(name or ""), arguments=args, arguments_error=error)


def _finish(reason: Any) -> str | None:
    if not reason:
        return None
    return _FINISH.get(str(reason), str(reason))


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    cache_write = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0) + cache_read + cache_write,
        completion_tokens=int(raw.get("output_tokens") or 0),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
