"""Requests as each model accepts them, and refusals learned from the endpoint.

:class:`Adapt` is the innermost wrapper of every provider stack (``Retry(RateLimit(ConcurrencyLimit(Adapt(wire))))``):
it shapes each request by its model's profile (:mod:`heavy.profiles`: refused fields left out, efforts and
budgets fitted), and when the endpoint still answers with a refusal of a parameter or value (:func:`lesson_of`
reads the error shapes of OpenAI, Azure, xAI, Anthropic, Gemini, Groq, Mistral, DeepSeek, vLLM and
llama-server), it remembers the lesson for that (endpoint, model) for the rest of the process and sends the
request again at once. The resend is outside the retry budget (Retry is above and never sees the refusal);
each resend must have learned something new, at most :data:`heavy.constants.LEARNED_RESENDS` times a call:
it never loops. What is learned is never the model, the messages, the tools or anything else that changes
what is asked (only :data:`heavy.profiles.FIELDS`), and the run's notes say what was dropped and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

from .. import constants as C
from ..errors import ProviderHTTPError
from ..profiles import Lesson, ModelProfile, Profiles
from ..ledger import note, result_note
from .base import Completion, CompletionRequest, Delta, Provider
from .wrappers import WrapperProvider

__all__ = ["Adapt", "lesson_of", "profiles_of"]

#: Parameter names as APIs spell them in their errors, in heavy's words (:data:`heavy.profiles.FIELDS`).
_NAMES: dict[str, str] = {
    "temperature": "temperature", "top_p": "top_p", "topp": "top_p", "seed": "seed", "stop": "stop",
    "stop_sequences": "stop", "stopsequences": "stop", "logprobs": "logprobs", "top_logprobs": "logprobs",
    "toplogprobs": "logprobs", "responselogprobs": "logprobs", "reasoning_effort": "reasoning",
    "reasoningeffort": "reasoning", "reasoning": "reasoning", "reasoning.effort": "reasoning", "thinking": "reasoning",
    "thinking.budget_tokens": "reasoning", "thinking_config": "reasoning", "thinkingconfig": "reasoning",
    "thinkingbudget": "reasoning", "thinking_budget": "reasoning", "output_config": "reasoning",
    "output_config.effort": "reasoning", "effort": "reasoning", "prompt_cache_key": "cache_key",
    "parallel_tool_calls": "parallel_tool_calls", "stream": "stream",
}
_QUOTED = r"[`'\"]?([A-Za-z_]\w*(?:\.\w+)*)[`'\"]?"
#: Sentences that name a refused parameter (OpenAI/Azure, xAI, Anthropic, Gemini, Groq, DeepSeek, vLLM).
_REFUSING = [re.compile(p, re.IGNORECASE) for p in (
    rf"Unsupported parameter: {_QUOTED}",
    rf"Unsupported value: {_QUOTED} does not support",
    rf"Unrecognized request argument supplied: {_QUOTED}",
    rf"Unknown parameter: {_QUOTED}",
    rf"Argument not supported on this model: {_QUOTED}",
    rf"does not support (?:the )?parameter {_QUOTED}",
    rf"^{_QUOTED} may only be set to 1 when thinking",
    rf"^{_QUOTED} must be unset when thinking",
    rf"^{_QUOTED} is deprecated for this model",
    rf"{_QUOTED} and [`'\"]?top_p[`'\"]? cannot both be specified",
    rf"^{_QUOTED} is not supported with this model",
    r"Unknown name \\?\"([A-Za-z_]\w*)\\?\" at 'generation_config",
    r"^(thinking_config) is not supported",
    rf"Unsupported param: {_QUOTED}",
)]
_SUPPORTED = re.compile(r"Supported (?:values|levels) are:?\s*(.+?)\.?\s*$|Supported levels: (.+?)\.?\s*$",
                        re.IGNORECASE | re.DOTALL)


def _error(body: str | None) -> tuple[str, str | None]:
    """(message, param) of an error body in any of the shapes the APIs use; ("", None) when unreadable."""
    try:
        data = json.loads(body or "")
    except ValueError:
        return (body or ""), None
    if not isinstance(data, dict):
        return "", None
    err = data.get("error")
    if isinstance(err, dict):  # OpenAI, Azure, Anthropic, Gemini, Groq, DeepSeek, llama-server, new vLLM
        return str(err.get("message") or ""), err.get("param") if isinstance(err.get("param"), str) else None
    if isinstance(err, str):  # xAI: {"code": "...", "error": "..."}
        return err, None
    message = data.get("message")
    if isinstance(message, dict):  # Mistral's 422: {"message": {"detail": [{"type": "extra_forbidden", "loc": [...]}]}}
        for item in message.get("detail") or []:
            loc = item.get("loc") if isinstance(item, dict) else None
            if item.get("type") == "extra_forbidden" and isinstance(loc, list) and loc:
                return f"Unrecognized request argument supplied: {loc[-1]}", str(loc[-1])
        return json.dumps(message), None
    return str(message or ""), None  # old vLLM: {"object": "error", "message": ...}


def _efforts(text: str) -> tuple[str, ...] | None:
    match = _SUPPORTED.search(text)
    if not match:
        return None
    listed = re.findall(r"[a-z]+", (match.group(1) or match.group(2) or "").replace(" and ", ", "))
    known = [e for e in listed if e in ("none", "minimal", "low", "medium", "high", "xhigh", "max")]
    return tuple(dict.fromkeys(known)) or None


def lesson_of(exc: ProviderHTTPError) -> Lesson | None:
    """What a refusal teaches, or ``None`` when it is not a refusal of something heavy may leave out."""
    if exc.status not in (400, 404, 422):
        return None
    message, param = _error(exc.body)
    if not message:
        return None
    if "only supported in v1/responses" in message:
        return Lesson("wire", "responses", message)
    if '"thinking.type.enabled" is not supported' in message:
        return Lesson("control", "adaptive", message)
    if "adaptive thinking is not supported" in message:
        return Lesson("control", "budget", message)
    if "Thinking level is not supported" in message:
        return Lesson("control", "budget", message)
    if "only works in thinking mode" in message or "thinking_budget to 0" in message:
        return Lesson("no_off", None, message)
    if "max_tokens" in (param or message) and "max_completion_tokens" in message:
        return Lesson("max_tokens", "max_completion_tokens", message)
    if param == "max_completion_tokens" and "Unrecognized" in message:  # Mistral's name for it is max_tokens
        return Lesson("max_tokens", "max_tokens", message)
    if "cannot both be specified" in message and "top_p" in message:
        return Lesson("top_p", None, message)  # Claude: temperature or top_p; heavy keeps the temperature
    names = [param.lower()] if param else []
    names += [m.group(1).lower() for pattern in _REFUSING for m in [pattern.search(message)] if m]
    if re.search(r"does not support thinking|does not support (the effort parameter|effort level)", message):
        names.append("reasoning")
    fields = [_NAMES[n] for n in names if n in _NAMES]
    if not fields:
        return None
    field = fields[0]
    if field == "reasoning":
        efforts = _efforts(message)
        if efforts:
            return Lesson("efforts", efforts, message)
    return Lesson(field, None, message)


def _sent(request: CompletionRequest, field: str) -> bool:
    """Whether *request* carries *field* at all (a refusal of something not sent teaches nothing)."""
    p = request.params
    return {"temperature": p.temperature is not None, "top_p": p.top_p is not None, "seed": p.seed is not None,
            "stop": p.stop is not None, "logprobs": p.logprobs, "cache_key": request.cache_key is not None,
            "parallel_tool_calls": request.parallel_tool_calls is not None,
            "reasoning": p.reasoning_effort is not None or p.thinking_budget is not None}.get(field, True)


def profiles_of(provider: Provider) -> Profiles | None:
    """The :class:`Profiles` a provider stack was built with, if any (wrappers pass it up)."""
    return getattr(provider, "profiles", None)


class Adapt(WrapperProvider):
    """Shapes each request by its model's profile and learns refusals (see the module docstring). ``label`` is
    the preset's name, used in notes (``openai:gpt-5-mini: ...``)."""

    def __init__(self, inner: Provider, profiles: Profiles, *, label: str | None = None,
                 routes: frozenset[str] = frozenset()) -> None:
        super().__init__(inner)
        self.profiles = profiles
        self.label = label or profiles.preset
        #: Wires this endpoint also serves, besides the one it was built for (a Responses-only lesson needs it).
        self.routes = routes

    def _learned(self, request: CompletionRequest, exc: ProviderHTTPError) -> bool:
        lesson = lesson_of(exc)
        if lesson is None:
            return False
        if lesson.field == "wire" and lesson.value not in self.routes:
            return False
        if lesson.field == "n" or not _sent(request, lesson.field):
            return False  # n belongs to the fan-out (heavy.fanout), which asks again per hypothesis
        if not self.profiles.learn(request.model, lesson):
            return False
        what = {"wire": "it is served by the Responses API", "max_tokens": f"its token limit is {lesson.value}",
                "efforts": f"it takes reasoning effort {', '.join(lesson.value or ())}",
                "control": f"its thinking is set as {lesson.value}", "no_off": "it cannot stop thinking"}.get(
            lesson.field, f"{lesson.field} not sent")
        text = (f"{self.label}:{request.model}: the endpoint refused the request ({lesson.message[:160]}); "
                f"{what} for the rest of this process, and the request was sent again")
        note(text)
        result_note(text)
        return True

    def _shaped(self, request: CompletionRequest) -> tuple[CompletionRequest, ModelProfile]:
        prof = self.profiles(request.model)
        return prof.shape(request)[0], prof

    async def complete(self, request: CompletionRequest) -> Completion:
        for attempt in range(C.LEARNED_RESENDS + 1):
            shaped, _ = self._shaped(request)
            try:
                return await self.inner.complete(shaped)
            except ProviderHTTPError as exc:
                if attempt == C.LEARNED_RESENDS or not self._learned(shaped, exc):
                    raise
        raise AssertionError("unreachable")

    async def stream(self, request: CompletionRequest) -> AsyncIterator[Delta | Completion]:
        for attempt in range(C.LEARNED_RESENDS + 1):
            shaped, prof = self._shaped(request)
            started = False
            try:
                if not prof.streams:  # the model cannot stream: one complete answer, delivered as deltas
                    completion = await self.inner.complete(shaped)
                    started = True
                    if completion.reasoning:
                        yield Delta(reasoning=completion.reasoning)
                    if completion.text:
                        yield Delta(text=completion.text)
                    yield completion
                    return
                async for item in self.inner.stream(shaped):
                    started = True
                    yield item
                return
            except ProviderHTTPError as exc:
                if started or attempt == C.LEARNED_RESENDS or not self._learned(shaped, exc):
                    raise
