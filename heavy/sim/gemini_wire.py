"""The Gemini ``generateContent`` shape of the simulator.

``POST /v1beta/models/{model}:generateContent`` answers one ``GenerateContentResponse``;
``…:streamGenerateContent?alt=sse`` streams several, the last carrying ``finishReason`` and the usage.
The model comes from the URL, so ``heavy-simulated@accuracy=0.6`` overrides work in the path too. Like
the real API it rejects unknown fields (``Unknown name "seed"``) and answers errors as
``{"error": {"code", "message", "status"}}`` (429 ``RESOURCE_EXHAUSTED``, 503 ``UNAVAILABLE``, …).

``SimConfig.gemini_block`` makes the answer blocked: ``SAFETY`` (or another ``blockReason``) blocks
the prompt (``promptFeedback.blockReason``, no candidates); ``finish:SAFETY`` (or ``RECITATION``, …)
returns a candidate stopped with that ``finishReason`` and no content.

Tool calls are ``functionCall`` parts (``name``, ``args``, ``id``) of the last chunk, with finishReason
``STOP`` as Gemini sends it; ``functionResponse`` parts of a user turn reach the model as tool messages;
``toolConfig.functionCallingConfig`` (AUTO, ANY, NONE, one ``allowedFunctionNames``) is honoured.

Implicit caching (:mod:`heavy.sim.cache`): a prompt from the model's minimum length on is cached by itself,
and ``usageMetadata.cachedContentTokenCount`` (part of ``promptTokenCount``) says how much was read.

``thinkingConfig`` (``includeThoughts``, ``thinkingBudget``, ``thinkingLevel``) is checked per model
(:mod:`heavy.sim.rules.gemini`); unknown names anywhere are refused in proto JSON's words with their path
(``Unknown name "x" at 'generation_config.thinking_config'``). A model that thinks reports
``usageMetadata.thoughtsTokenCount`` (apart from ``candidatesTokenCount``, inside ``totalTokenCount``) and, with
``includeThoughts``, its thoughts as ``{"text", "thought": true}`` parts first.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .rules.gemini import check_generate, gemini_model, proto_path, unknown_name
from .rules import base_name
from .wire import Choice, Generation, SimHTTPError, SimRequest, Wire, first_error, json_object, sse

__all__ = ["GeminiWire", "error_status"]

_STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
             409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
             504: "DEADLINE_EXCEEDED"}
_SAFETY_RATINGS = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]


def error_status(status: int) -> str:
    """The google.rpc status name Gemini reports for an HTTP status."""
    return _STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class _Content(_Strict):
    role: Literal["user", "model"] | None = None
    parts: list[dict[str, Any]] = Field(min_length=1)


class _SystemInstruction(_Strict):
    role: str | None = None
    parts: list[dict[str, Any]] = Field(min_length=1)


class _ThinkingConfig(_Strict):
    includeThoughts: bool | None = None
    thinkingBudget: int | None = None
    thinkingLevel: str | None = None


class _GenerationConfig(_Strict):
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    topP: float | None = Field(None, ge=0.0, le=1.0)
    topK: int | None = Field(None, ge=1)
    maxOutputTokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stopSequences: list[str] | None = Field(None, max_length=5)
    responseLogprobs: bool | None = None
    logprobs: int | None = Field(None, ge=0, le=20)
    candidateCount: int | None = Field(None, ge=1, le=8)
    presencePenalty: float | None = None
    frequencyPenalty: float | None = None
    responseMimeType: str | None = None
    responseSchema: dict[str, Any] | None = None
    responseModalities: list[str] | None = None
    thinkingConfig: _ThinkingConfig | None = None


class _GenerateRequest(_Strict):
    contents: list[_Content] = Field(min_length=1)
    systemInstruction: _SystemInstruction | None = None
    generationConfig: _GenerationConfig | None = None
    safetySettings: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    toolConfig: dict[str, Any] | None = None
    cachedContent: str | None = None


def _response_text(response: Any) -> str:
    if isinstance(response, dict) and set(response) <= {"result", "output"}:
        return str(response.get("result", response.get("output", "")))
    return json.dumps(response)


def _text(parts: list[dict[str, Any]]) -> str:
    return "\n".join(str(p["text"]) for p in parts if isinstance(p.get("text"), str) and not p.get("thought"))


class GeminiWire(Wire):
    name = "gemini"

    def parse(self, body: bytes, path_model: str | None = None, stream: bool = False) -> SimRequest:
        data = json_object(body, "Invalid JSON payload received. Unexpected token.",
                           "Invalid JSON payload received. Expected an object.")
        try:
            r = _GenerateRequest.model_validate(data)
        except ValidationError as exc:
            loc, kind, msg = first_error(exc)
            if kind == "extra_forbidden":
                raise unknown_name(loc) from None
            raise SimHTTPError(400, f"Invalid value at '{proto_path(loc)}': {msg}", "invalid_argument") from None
        messages = [("system", _text(r.systemInstruction.parts))] if r.systemInstruction else []
        for c in r.contents:
            responses = [p["functionResponse"] for p in c.parts if isinstance(p.get("functionResponse"), dict)]
            messages += [("tool", _response_text(fr.get("response"))) for fr in responses]
            text = _text(c.parts)
            if text or c.role == "model" or not responses:
                messages.append(("assistant" if c.role == "model" else "user", text))
        specs = {str(d.get("name")): {"description": d.get("description") or "", "parameters": d.get("parameters") or {}}
                 for t in r.tools or [] if isinstance(t, dict)
                 for d in t.get("functionDeclarations") or [] if isinstance(d, dict)}
        called = [str(p["functionCall"].get("name")) for c in r.contents if c.role == "model"
                  for p in c.parts if isinstance(p.get("functionCall"), dict)]
        calling = (r.toolConfig or {}).get("functionCallingConfig") or {}
        allowed = calling.get("allowedFunctionNames") or []
        g = r.generationConfig or _GenerationConfig()
        name = base_name(path_model or "")
        thinking = check_generate(name, gemini_model(name), g.model_dump(exclude_unset=True))
        return SimRequest(model=path_model, thinking=thinking, messages=messages, stream=stream, seed=g.seed,
                          stop=list(g.stopSequences or []), max_tokens=g.maxOutputTokens,
                          logprobs=bool(g.responseLogprobs), top_logprobs=g.logprobs or 0, n=g.candidateCount or 1,
                          tools=list(specs), tool_specs=specs, called=called,
                          tool_choice={"ANY": "required", "NONE": "none"}.get(calling.get("mode"), "auto"),
                          tool_choice_name=str(allowed[0]) if len(allowed) == 1 else None)

    def envelope(self, exc: SimHTTPError, request_id: str) -> dict:
        return {"error": {"code": exc.status, "message": exc.message, "status": error_status(exc.status)}}

    def _envelope(self, gen: Generation, final: bool = False, **fields: Any) -> dict:
        usage: dict[str, int] = {"promptTokenCount": gen.prompt_tokens}
        if gen.cache_read:  # Gemini names the field only when something was read from the cache
            usage["cachedContentTokenCount"] = gen.cache_read
        if final:  # candidates exclude the thoughts; the total counts both (python-genai's usage metadata)
            thoughts = gen.reasoning_tokens
            usage["candidatesTokenCount"] = gen.completion_tokens - thoughts
            if thoughts:
                usage["thoughtsTokenCount"] = thoughts
            usage["totalTokenCount"] = gen.prompt_tokens + gen.completion_tokens
        else:
            usage["totalTokenCount"] = gen.prompt_tokens
        return {**fields, "usageMetadata": usage, "modelVersion": gen.model, "responseId": gen.id}

    def _candidate(self, c: Choice, tokens: list[str], logprobs: list[dict] | None, finished: bool,
                   thoughts: bool = False) -> dict:
        # Thought summaries come first, as parts marked "thought" (only when includeThoughts asked for them).
        parts: list[dict[str, Any]] = [{"text": "".join(c.reasoning), "thought": True}] if thoughts and c.reasoning \
            else []
        parts += [{"text": "".join(tokens)}] if tokens or not (c.tool_calls or parts) else []
        if finished:
            parts += [{"functionCall": {"name": t["name"], "args": t["arguments"], "id": t["id"]}}
                      for t in c.tool_calls or []]
        out: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finished:
            out["finishReason"] = "MAX_TOKENS" if c.finish_reason == "length" else "STOP"
        if logprobs is not None:
            out["logprobsResult"] = _logprobs_result(logprobs)
        out["index"] = c.index
        return out

    def _blocked(self, gen: Generation) -> dict | None:
        block = gen.gemini_block
        if not block:
            return None
        if block.startswith("finish:"):
            reason = block[len("finish:"):]
            candidate: dict[str, Any] = {"finishReason": reason, "index": 0}
            if reason == "SAFETY":
                candidate["safetyRatings"] = _SAFETY_RATINGS
            return self._envelope(gen, True, candidates=[candidate])
        return self._envelope(gen, promptFeedback={"blockReason": block, "safetyRatings": _SAFETY_RATINGS})

    def response(self, gen: Generation, request: SimRequest) -> dict:
        blocked = self._blocked(gen)
        if blocked is not None:
            return blocked
        shown = bool(request.thinking and request.thinking.shown)
        return self._envelope(gen, True, candidates=[
            self._candidate(c, c.tokens, c.logprobs, True, shown) for c in gen.choices])

    def piece(self, gen: Generation, request: SimRequest, choice: Choice, begin: int, end: int) -> list[str]:
        if gen.gemini_block:
            return []
        last = end == len(choice.tokens)
        logprobs = choice.logprobs[begin:end] if choice.logprobs is not None else None
        candidate = self._candidate(choice, choice.tokens[begin:end], logprobs, last)
        return [sse(self._envelope(gen, last, candidates=[candidate]))]

    def opening(self, gen: Generation, request: SimRequest) -> list[str]:
        if gen.gemini_block or not (request.thinking and request.thinking.shown):
            return []
        return [sse(self._envelope(gen, candidates=[self._candidate(c, [], None, False, True)]))
                for c in gen.choices if c.reasoning]

    def closing(self, gen: Generation, request: SimRequest) -> list[str]:
        blocked = self._blocked(gen)
        if blocked is not None:
            return [sse(blocked)]
        # Choices with no tokens had no piece to carry their finishReason.
        empty = [self._candidate(c, [], [] if c.logprobs is not None else None, True) for c in gen.choices if not c.tokens]
        return [sse(self._envelope(gen, True, candidates=empty))] if empty else []

    def stream_error(self, exc: SimHTTPError, request_id: str, gen: Generation, request: SimRequest) -> list[str]:
        return [sse(self.error_body(exc, request_id))]


def _logprobs_result(entries: list[dict]) -> dict:
    """OpenAI-shaped logprob entries as Gemini's ``logprobsResult``."""
    result: dict[str, Any] = {"chosenCandidates": [{"token": e["token"], "logProbability": e["logprob"]}
                                                   for e in entries]}
    if any(e.get("top_logprobs") for e in entries):
        result["topCandidates"] = [{"candidates": [{"token": t["token"], "logProbability": t["logprob"]}
                                                   for t in e.get("top_logprobs") or []]} for e in entries]
    return result
