"""Google Gemini API wire format (``generateContent``).

``root_url`` is the API root without a version (``https://generativelanguage.googleapis.com``, or a
proxy's root). Requests go to ``{root}/v1beta/models/{model}:generateContent`` and, streaming, to
``…:streamGenerateContent?alt=sse``; the key travels in the ``x-goog-api-key`` header (never in the URL,
so it cannot end up in logs or error messages). A model id that already names its collection
(``tunedModels/x``) is used as the path as it is.

How heavy's request maps onto Gemini's:

- ``assistant`` turns become role ``model``; ``system``/``developer`` messages become the
  ``systemInstruction``; ``tool`` turns count as ``user``; consecutive same-role turns are merged.
- OpenAI-style parts are converted: ``text`` → ``{text}``, an ``image_url`` ``data:`` URL →
  ``inlineData``, any other URL → ``fileData``, ``input_audio`` → ``inlineData``; parts of any
  other type are passed on without their ``type`` key (native Gemini parts).
- Sampling parameters go to ``generationConfig`` (``temperature``, ``topP``, ``maxOutputTokens``,
  ``seed``, ``stopSequences``, ``responseLogprobs``/``logprobs``, and a thinking budget as
  ``thinkingConfig.thinkingBudget``: ``thinking_budget``, or a ``reasoning_effort`` as 1024/8192/24576
  tokens, Google's own mapping; 0 turns thinking off where the model allows it; Gemini 3 models take the effort
  as ``thinkingConfig.thinkingLevel`` instead, per their profile, :mod:`heavy.profiles`); a ``generationConfig`` in
  ``extra_body`` is merged into it, other ``extra_body`` keys are sent as they are.

Tool use: offered tools go out as ``tools: [{"functionDeclarations": [{name, description, parameters}]}]``
(the parameters schema reduced to the OpenAPI subset Gemini accepts); ``functionCall`` parts of the answer
become tool calls (whole in one chunk when streaming; Gemini's finishReason stays ``STOP``, heavy reports
``tool_calls``). An assistant turn that made calls is sent back with its original ``functionCall`` parts
(so a ``thoughtSignature`` survives), each result as a ``functionResponse`` part (``name``, ``response:
{"result": ...}``, and the call's ``id`` when Gemini gave one) in a user turn. OpenAI's ``tool_choice``
becomes ``toolConfig.functionCallingConfig``: ``mode`` AUTO, NONE or ANY (required), one named tool ANY
with ``allowedFunctionNames: [name]``; Gemini has no switch for parallel calls, so ``parallel_tool_calls``
is not sent.

And the answer back:

- Parts marked ``thought: true`` are thinking: they go to ``Completion.reasoning``, never the text.
- ``candidatesTokenCount`` does not include thinking: heavy's ``completion_tokens`` is candidates +
  ``thoughtsTokenCount`` (as OpenAI counts reasoning), ``reasoning_tokens`` the thoughts alone,
  ``cache_read_tokens`` the ``cachedContentTokenCount`` (implicit and explicit caching: ``promptTokenCount``
  includes them; Gemini charges no cache write).
- A blocked prompt (``promptFeedback.blockReason``), a candidate stopped by a filter (finishReason
  ``SAFETY``, ``RECITATION``, ``BLOCKLIST``, …) or a response without candidates raises a
  :class:`ProviderResponseError` naming the reason: a failed hypothesis, not an empty answer.
- ``logprobsResult.chosenCandidates`` (with ``topCandidates``) become :class:`TokenLogprob` entries.
- Finish reasons are reported in OpenAI's words where one exists (``STOP`` → ``stop``,
  ``MAX_TOKENS`` → ``length``); others are passed on lower-cased.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from ..errors import ProviderError, ProviderResponseError
from ..http import Timeout, decode_json, request_id
from ..profiles import Profiles
from ..types import Message, TokenLogprob, ToolCall, ToolChoice, Usage
from .base import DATA_URL, Completion, CompletionRequest, Delta, HTTPProvider

__all__ = ["GeminiProvider", "API_VERSION"]

API_VERSION = "v1beta"
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
#: Finish reasons that mean a filter withheld the answer.
_BLOCKED = {"SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
#: Error statuses (google.rpc codes) worth retrying.
_TRANSIENT = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"}


class GeminiProvider(HTTPProvider):
    """The Gemini API at ``root_url`` (``https://generativelanguage.googleapis.com`` or a compatible root)."""

    def __init__(
        self,
        root_url: str,
        api_key: str | None = None,
        *,
        name: str = "gemini",
        api_version: str = API_VERSION,
        timeout: Timeout | None = None,
        transport: Any = None,
        extra_headers: dict[str, str] | None = None,
        auth_hint: str | None = None,
        profiles: Profiles | None = None,
    ) -> None:
        self.api_version = api_version.strip("/")
        #: How each model thinks (a budget, or Gemini 3's level): heavy.profiles.
        self.profiles = profiles or Profiles(name, root_url)
        super().__init__(root_url, name=name, headers={"x-goog-api-key": api_key} if api_key else {},
                         timeout=timeout, transport=transport, extra_headers=extra_headers,
                         auth_hint=auth_hint)

    def path(self, model: str, *, stream: bool) -> str:
        """The request path (relative to the root) for *model*."""
        resource = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.api_version}/{quote(resource, safe='/@=,')}:{method}"

    @classmethod
    def from_spec(cls, spec: Any, profiles: Any, *, transport: Any = None, background: bool = False) -> "GeminiProvider":
        """The ``gemini`` wire of a resolved spec (:meth:`Provider.from_spec`)."""
        return cls(spec.base_url, spec.api_key, name=spec.preset.name, transport=transport,
                   auth_hint=spec.withheld_key_hint(), profiles=profiles)

    # --- request --------------------------------------------------------------------------------

    def build_body(self, request: CompletionRequest, *, stream: bool = False) -> dict[str, Any]:
        """The JSON body for *request* (the same streaming or not: the URL differs, not the body)."""
        p = request.params
        system, contents = _convert_messages(request.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        if request.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parameters": _schema(t.parameters)}
                for t in request.tools]}]
            if request.tool_choice is not None:
                body["toolConfig"] = {"functionCallingConfig": _calling_config(request.tool_choice)}
        config: dict[str, Any] = {}
        if p.temperature is not None:
            config["temperature"] = p.temperature
        if p.top_p is not None:
            config["topP"] = p.top_p
        if p.max_tokens is not None:
            config["maxOutputTokens"] = p.max_tokens
        if p.seed is not None:
            config["seed"] = p.seed
        if p.stop is not None:
            config["stopSequences"] = [p.stop] if isinstance(p.stop, str) else list(p.stop)
        if p.logprobs:
            config["responseLogprobs"] = True
            if p.top_logprobs:
                config["logprobs"] = p.top_logprobs
        if self.profiles(request.model).thinking.control == "level":
            level = p.effort()  # Gemini 3 thinks at a level (its profile fitted the effort to the model's levels)
            if level is not None:
                config["thinkingConfig"] = {"thinkingLevel": level.upper()}
        elif (budget := p.thinking_tokens()) is not None:
            config["thinkingConfig"] = {"thinkingBudget": budget}
        extra = dict(request.extra_body)
        if isinstance(extra.get("generationConfig"), dict):
            config.update(extra.pop("generationConfig"))
        if config:
            body["generationConfig"] = config
        body.update(extra)
        return body

    # --- response -------------------------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion:
        resp = await self._http.post_json(self.path(request.model, stream=False), self.build_body(request),
                                          model=request.model)
        data = decode_json(resp.text, provider=self.name, model=request.model)
        if not isinstance(data, dict):
            raise ProviderResponseError("response is not a JSON object", provider=self.name, model=request.model,
                                        request_id=request_id(resp.headers), body=resp.text[:500])
        rid = request_id(resp.headers) or data.get("responseId")
        chunk = _Chunk(data, self.name, request.model, rid, resp.text, "error in a 200 response")
        if chunk.candidate is None:
            raise chunk.no_candidates()
        return Completion(
            text=chunk.text,
            reasoning=chunk.thought or None,
            finish_reason="tool_calls" if chunk.calls else _finish(chunk.finish),
            tool_calls=chunk.calls or None,
            usage=_usage(data.get("usageMetadata")),
            logprobs=chunk.logprobs if request.params.logprobs else None,
            model=data.get("modelVersion"),
            request_id=rid,
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        text: list[str] = []
        reasoning: list[str] = []
        logprobs: list[TokenLogprob] = []
        finish = model = None
        usage: Any = None
        saw_candidate = False
        calls: list[ToolCall] = []
        async with self._http.stream_sse(
            self.path(request.model, stream=True), self.build_body(request), model=request.model
        ) as (headers, events):
            rid = request_id(headers)
            async for event in events:
                try:
                    data = json.loads(event.data)
                except ValueError:
                    raise ProviderResponseError("stream chunk is not JSON", provider=self.name, model=request.model,
                                                request_id=rid, body=event.data[:500]) from None
                if not isinstance(data, dict):
                    continue
                rid = rid or data.get("responseId")
                model = data.get("modelVersion") or model
                usage = data.get("usageMetadata") or usage  # cumulative: the last one counts
                chunk = _Chunk(data, self.name, request.model, rid, event.data)
                if chunk.candidate is None:
                    continue  # e.g. a usage-only chunk
                saw_candidate = True
                if chunk.text or chunk.thought:
                    text.append(chunk.text)
                    reasoning.append(chunk.thought)
                    yield Delta(text=chunk.text, reasoning=chunk.thought)
                logprobs.extend(chunk.logprobs or [])
                for c in chunk.calls:  # ids we made up are numbered over the whole answer
                    api_id = (c.extra or {}).get("part", {}).get("functionCall", {}).get("id")
                    calls.append(c if api_id else c.model_copy(update={"id": f"call_{len(calls)}"}))
                finish = chunk.finish or finish
        if not saw_candidate:
            raise ProviderResponseError("stream has no candidates (and no blockReason)", provider=self.name,
                                        model=request.model, request_id=rid)
        if finish is None:
            raise ProviderResponseError("stream ended without a finishReason (truncated response)",
                                        provider=self.name, model=request.model, request_id=rid, retryable=True)
        yield Completion(
            text="".join(text),
            reasoning="".join(reasoning) or None,
            finish_reason="tool_calls" if calls else _finish(finish),
            tool_calls=calls or None,
            usage=_usage(usage),
            logprobs=(logprobs or None) if request.params.logprobs else None,
            model=model,
            request_id=rid,
        )


class _Chunk:
    """One GenerateContentResponse (a whole answer, or one streamed chunk), checked for errors and blocks."""

    def __init__(self, data: dict[str, Any], provider: str, model: str, rid: str | None, raw: str,
                 where: str = "error inside stream") -> None:
        self.provider, self.model, self.rid, self.raw = provider, model, rid, raw
        if "error" in data:  # an error reported with status 200 (in a stream, or from a proxy)
            err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
            status = str(err.get("status") or "")
            code = err.get("code") if isinstance(err.get("code"), int) else None
            raise ProviderError(f"{where}: {status or 'error'}: {err.get('message') or 'no message'}",
                                provider=provider, model=model, status=code, request_id=rid, body=raw[:500],
                                retryable=status in _TRANSIENT or (code is not None and (code == 429 or code >= 500)))
        feedback = data.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            detail = f": {feedback['blockReasonMessage']}" if feedback.get("blockReasonMessage") else ""
            raise self._blocked(f"prompt blocked by Gemini (promptFeedback.blockReason {feedback['blockReason']}{detail})")
        candidates = data.get("candidates")
        self.candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        self.text = self.thought = ""
        self.finish = self.logprobs = None
        self.calls: list[ToolCall] = []
        if not isinstance(self.candidate, dict):
            self.candidate = None
            return
        c = self.candidate
        self.finish = c.get("finishReason")
        if self.finish in _BLOCKED:
            raise self._blocked(f"answer blocked by Gemini (finishReason {self.finish})")
        parts = (c.get("content") or {}).get("parts") or []
        texts = [p for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
        self.text = "".join(p["text"] for p in texts if not p.get("thought"))
        self.thought = "".join(p["text"] for p in texts if p.get("thought"))
        for part in parts:
            fc = part.get("functionCall") if isinstance(part, dict) else None
            if isinstance(fc, dict):
                args = fc.get("args") if isinstance(fc.get("args"), dict) else {}
                self.calls.append(ToolCall(id=str(fc.get("id") or f"call_{len(self.calls)}"), name=str(fc.get("name") or ""),
                                           arguments=args, extra={"part": part}))
        self.logprobs = _logprobs(c.get("logprobsResult"))

    def _blocked(self, message: str) -> ProviderResponseError:
        return ProviderResponseError(message, provider=self.provider, model=self.model, request_id=self.rid,
                                     body=self.raw[:500])

    def no_candidates(self) -> ProviderResponseError:
        return self._blocked("response has no candidates (and no blockReason)")


# --- conversions ------------------------------------------------------------------------------------


def _convert_messages(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """heavy's messages as (system instruction parts, ``contents``)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    calls: dict[str, ToolCall] = {}
    for m in messages:
        parts = _parts(m.content)
        if m.tool_calls:
            parts = [p for p in parts if p.get("text")] + [_call_part(c) for c in m.tool_calls]
            calls.update({c.id: c for c in m.tool_calls})
        if m.role == "tool" and m.tool_call_id:
            parts = [_response_part(m, calls.get(m.tool_call_id or ""))]
        if m.role in ("system", "developer"):
            system += parts
            continue
        role = "model" if m.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _calling_config(choice: ToolChoice) -> dict[str, Any]:
    """OpenAI's ``tool_choice`` as Gemini's ``functionCallingConfig``: auto AUTO, none NONE, required ANY
    (one named tool: ANY limited to it by ``allowedFunctionNames``)."""
    if choice.mode == "none":
        return {"mode": "NONE"}
    if choice.mode == "auto":
        return {"mode": "AUTO"}
    return {"mode": "ANY", **({"allowedFunctionNames": [choice.name]} if choice.name else {})}


def _call_part(call: ToolCall) -> dict[str, Any]:
    """A tool call as the ``functionCall`` part Gemini sent (verbatim when we have it)."""
    if call.extra and isinstance(call.extra.get("part"), dict):
        return call.extra["part"]
    return {"functionCall": {"name": call.name, "args": call.arguments}}


def _response_part(m: Message, call: ToolCall | None) -> dict[str, Any]:
    result = m.content if isinstance(m.content, str) else m.text()
    response: dict[str, Any] = {"name": m.name or (call.name if call else ""), "response": {"result": result}}
    original = (call.extra or {}).get("part", {}).get("functionCall", {}) if call else {}
    if original.get("id"):
        response["id"] = original["id"]
    return {"functionResponse": response}


#: Schema keywords of the OpenAPI subset Gemini's ``parameters`` accepts (others, e.g. ``title`` or
#: ``additionalProperties`` from pydantic, are dropped).
_SCHEMA_KEYS = {"type", "format", "description", "nullable", "enum", "items", "properties", "required", "minimum",
                "maximum", "minItems", "maxItems", "minLength", "maxLength", "pattern", "anyOf"}


def _schema(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _schema(sub) for name, sub in value.items()}
        else:
            out[key] = _schema(value)
    return out


def _parts(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    out = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            out.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            ref = part.get("image_url")
            out.append(_media(str(ref.get("url", "")) if isinstance(ref, dict) else str(ref or "")))
        elif kind == "image" and isinstance(part.get("source"), dict):  # Anthropic-shaped image
            src = part["source"]
            if src.get("type") == "base64":
                out.append({"inlineData": {"mimeType": src.get("media_type"), "data": src.get("data")}})
            else:
                out.append(_media(str(src.get("url", ""))))
        elif kind == "input_audio" and isinstance(part.get("input_audio"), dict):
            audio = part["input_audio"]
            out.append({"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data")}})
        else:
            out.append({k: v for k, v in part.items() if k != "type"})
    return out


def _media(url: str) -> dict[str, Any]:
    match = DATA_URL.match(url)
    if match:
        return {"inlineData": {"mimeType": match["mime"], "data": match["data"]}}
    file_data: dict[str, Any] = {"fileUri": url}
    mime = mimetypes.guess_type(url.split("?")[0])[0]
    if mime:
        file_data["mimeType"] = mime
    return {"fileData": file_data}


def _finish(reason: Any) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    return _FINISH.get(str(reason), str(reason).lower())


def _usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    thoughts = int(raw.get("thoughtsTokenCount") or 0)
    return Usage(
        prompt_tokens=int(raw.get("promptTokenCount") or 0),
        completion_tokens=int(raw.get("candidatesTokenCount") or 0) + thoughts,
        reasoning_tokens=thoughts,
        cache_read_tokens=int(raw.get("cachedContentTokenCount") or 0),
    )


def _logprobs(raw: Any) -> list[TokenLogprob] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("chosenCandidates"), list):
        return None
    tops = raw.get("topCandidates") if isinstance(raw.get("topCandidates"), list) else []
    out = []
    for i, chosen in enumerate(raw["chosenCandidates"]):
        if not isinstance(chosen, dict):
            continue
        step = tops[i].get("candidates") if i < len(tops) and isinstance(tops[i], dict) else None
        top = {str(t.get("token", "")): float(t.get("logProbability", 0.0)) for t in step or [] if isinstance(t, dict)}
        out.append(TokenLogprob(token=str(chosen.get("token", "")), logprob=float(chosen.get("logProbability", 0.0)),
                                top=top or None))
    return out
