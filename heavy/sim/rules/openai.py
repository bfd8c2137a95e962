"""OpenAI's refusals by model name, on Chat Completions (``/v1/chat/completions``) and the Responses API
(``/v1/responses``); Azure's v1 routes serve the same models under deployment names and answer in the same shape.

A model's facts are an :class:`OpenAIModel` (:func:`openai_model` finds a name's family, dated snapshots such as
``gpt-5-2025-08-07`` included). Reasoning is *active* on a request when the model reasons and the effort sent (or
its default) is not ``none``; then the sampling parameters are refused. Sources: OpenAI's OpenAPI spec
(openai/openai-openapi, 2025-02 to 2026-08), pydantic-ai's recorded exchanges and profiles, and the public issues
each rule names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from ..wire import Thinking
from . import listing, present, quote, rule

__all__ = ["OpenAIModel", "openai_model", "check_chat", "check_responses", "chat_unknown", "CHAT_FIELDS",
           "SAMPLING", "R_UNKNOWN", "AZURE_NOT_FOUND", "NOT_BACKGROUND", "NOT_FOUND", "NO_PREVIOUS"]

_CHAT, _RESP = "OpenAI chat", "OpenAI Responses"
_REASONING = "reasoning models while reasoning (o-series, gpt-5 family; gpt-5.1+ at effort none exempt)"

RESPONSES_ONLY = rule(
    _CHAT, "a Responses-only model", "o1-pro, o3-pro, gpt-5-pro, gpt-5-codex, gpt-5.1-codex-mini, gpt-5.1-codex-max, "
    "gpt-5.5-pro, gpt-5.6-cyber, computer-use-preview, gpt-daybreak-*, *-deep-research", 404,
    "This model is only supported in v1/responses and not in v1/chat/completions.",
    "SPEC ResponsesOnlyModel enum; issues n8n-io/n8n#18352, alvinunreal/tmuxai#82, simonw/llm#1169, "
    "HeyPuter/puter#2110",
    param="model")
UNRECOGNIZED_EFFORT = rule(
    _CHAT, "reasoning_effort", "non-reasoning models: gpt-4o*, gpt-4.1*, gpt-4*, gpt-3.5*, gpt-5-chat*", 400,
    "Unrecognized request argument supplied: reasoning_effort",
    "issues davidmigloz/langchain_dart#712, AAswordman/Operit#1048, umputun/tg-spam#304")
UNKNOWN_CHAT = rule(
    _CHAT, "a parameter Chat Completions does not have", "every OpenAI model name", 400, "Unknown parameter: '{name}'.",
    "3P conformance file, direct observation on gpt-5.6-terra (2026-08-30); param assumed to name the parameter",
    param="{name}", code="unknown_parameter")
SYSTEM_ROLE = rule(
    _CHAT, "a system or developer message", "o1-mini, o1-preview", 400,
    "Unsupported value: 'messages[{index}].role' does not support '{role}' with this model.",
    "pydantic-ai cassette test_openai_o1_mini_system_role; issue tarasglek/chatcraft.org#762",
    param="messages[{index}].role", code="unsupported_value")
MAX_TOKENS = rule(
    _CHAT, "max_tokens", "every reasoning model (o1 to gpt-5.x)", 400,
    "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
    "issues griptape-ai/ComfyUI-Griptape#312, fish2018/YPrompt#26; vercel/ai fixture", param="max_tokens",
    code="unsupported_parameter")
TEMPERATURE = rule(
    _CHAT, "temperature other than 1", _REASONING, 400,
    "Unsupported value: 'temperature' does not support {value} with this model. Only the default (1) value is "
    "supported.", "issues johny-b/llmcomp#69, gabrii/Cursor-Azure-GPT-5#33, diffbot/code-gpt-docs#445",
    param="temperature", code="unsupported_value")
UNSUPPORTED = rule(
    _CHAT, "top_p, presence_penalty, frequency_penalty, logprobs, top_logprobs, logit_bias (any value)", _REASONING,
    400, "Unsupported parameter: '{name}' is not supported with this model.",
    "issues aandrew-me/tgpt#333 (top_p), oracle/ai-optimizer#240 and nextai-translator#1781 (penalties); logprobs, "
    "logit_bias: 3P conformance file (gpt-5.6); top_logprobs: same wording assumed", param="{name}",
    code="unsupported_parameter")
STOP = rule(
    _CHAT, "stop", "o3, o4-mini, the gpt-5 family (not gpt-5-chat)", 400,
    "Unsupported parameter: 'stop' is not supported with this model.",
    "SPEC stop docstring; issues crewAIInc/crewAI#2738, langgenius/dify#18971, BittnerPierre/AI-Agent-Casebook#133",
    param="stop", code="unsupported_parameter")
PARALLEL = rule(
    _CHAT, "parallel_tool_calls", "o1, o3-mini, o3, o4-mini", 400,
    "Unsupported parameter: 'parallel_tool_calls' is not supported with this model.",
    "issues browser-use/browser-use#283, evalstate/fast-agent#279, UKGovernmentBEIS/inspect_ai#1023",
    param="parallel_tool_calls", code="unsupported_parameter")
NO_EFFORT = rule(
    _CHAT, "reasoning_effort", "o1-mini, o1-preview", 400,
    "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
    "3P: issue dzhng/deep-research#89 (effort only on o1 and o3-mini); wording of the 3P fixture in research §1.3",
    verbatim=False, param="reasoning_effort", code="unsupported_parameter")
EFFORT_VALUE = rule(
    _CHAT, "a reasoning_effort the model does not take",
    "o1/o3-mini/o3/o4-mini: low, medium, high; gpt-5/-mini/-nano: minimal..high; gpt-5.1: none..high; gpt-5.2, "
    "gpt-5.3, gpt-5.4*, gpt-5.6*: none..xhigh; gpt-5.4-pro: medium..xhigh; gpt-5.x-chat-latest: medium", 400,
    "Unsupported value: 'reasoning_effort' does not support {value} with this model. Supported values are: "
    "{supported}.", "issue egoist/chatwise-releases#1257; livekit/agents PR #3966 and #6147; SPEC@2026-05 "
    "ReasoningEffort", param="reasoning_effort", code="unsupported_value")
N_ABOVE = rule(
    _CHAT, "n above the maximum", "every model (128); gpt-5.6*: 8", 400,
    "Invalid 'n': integer above maximum value. Expected a value <= {limit}, but got {value} instead.",
    "SPEC n maximum 128; issue thisisartium/continuous-alignment-testing#25; gpt-5.6 limit: 3P probe",
    param="n", code="integer_above_max_value")
TOOLS_REASONING = rule(
    _CHAT, "function tools while reasoning", "gpt-5.6*", 400,
    "Function tools with reasoning_effort are not supported for {model} in /v1/chat/completions. To use function "
    "tools, use /v1/responses or set reasoning_effort to 'none'.", "3P: a docstring saying it was observed live")
R_UNKNOWN = rule(
    _RESP, "a parameter the Responses API does not have (nested ones by their path)", "every model name", 400,
    "Unknown parameter: '{name}'.", "3P conformance file (chat, gpt-5.6-terra); the same wording assumed on "
    "/v1/responses and for nested names", verbatim=False, param="{name}", code="unknown_parameter")
R_TEMPERATURE = rule(
    _RESP, "temperature, top_p (any value)", _REASONING, 400,
    "Unsupported parameter: '{name}' is not supported with this model.",
    "issues JetBrains/koog#1263, OpenHands/software-agent-sdk#1837; vercel/ai fixture (temperature); top_p assumed "
    "the same", param="{name}")
R_EFFORT_VALUE = rule(
    _RESP, "a reasoning.effort the model does not take", "as on chat; gpt-5-pro: high only", 400,
    "Unsupported value: {value} is not supported with the '{model}' model. Supported values are: {supported}.",
    "issue openai/openai-agents-python#2089; anomalyco/models.dev PR #331 (gpt-5-pro)", param="reasoning.effort",
    code="unsupported_value")
R_NO_REASONING = rule(
    _RESP, "reasoning.effort (a summary alone is accepted)", "non-reasoning models: gpt-4o*, gpt-4.1*, gpt-5-chat*",
    400, "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
    "BoundaryML/baml PR #2708, issue RageAgainstThePixel/OpenAI-DotNet#500, BerriAI/litellm PR #38842",
    param="reasoning.effort", code="unsupported_parameter")
R_NO_STREAM = rule(
    _RESP, "stream: true", "o1-pro, gpt-5.5-pro", 400,
    "Unsupported value: 'stream' does not support true with this model. Only the default (false) value is supported.",
    "refusal: BerriAI/litellm PR #9419 (o1-pro), lobehub PR #14238 (gpt-5.5-pro); wording of o1's 2024 chat refusal "
    "(issue animalnots/BetterChatGPT-PLUS#62)", verbatim=False, param="stream", code="unsupported_value")
AZURE_NOT_FOUND = rule(
    "Azure OpenAI", "a route the v1 API does not serve", "every deployment (/openai/v1/...)", 404,
    "Resource not found", "issues MicrosoftDocs/azure-docs#110272, BerriAI/litellm#8572", shape="azure", code="404")

NOT_BACKGROUND = rule(
    _RESP, "cancelling a response created without background", "every model name", 400,
    "Only responses created with the 'background' parameter set to true can be cancelled.",
    "refusal: SPEC cancel endpoint and pydantic-ai's cancel_suspended_response (400); wording: the SPEC's "
    "description", verbatim=False, param="response_id")
NOT_FOUND = rule(
    _RESP, "an unknown or unstored response id", "every model name", 404,
    "Response with id '{id}' not found.", "SPEC (404 Error on retrieve, cancel, delete); wording assumed",
    verbatim=False, param="response_id")
NO_PREVIOUS = rule(
    _RESP, "a previous_response_id that is not stored", "every model name", 400,
    "Previous response with id '{id}' not found.", "SPEC previous_response_id; wording assumed", verbatim=False,
    param="previous_response_id", code="previous_response_not_found")

_LMH = ("low", "medium", "high")
_GPT5 = ("minimal", "low", "medium", "high")
_GPT51 = ("none", "low", "medium", "high")
_GPT52 = ("none", "low", "medium", "high", "xhigh")
_DATE = re.compile(r"-\d{4}-\d{2}-\d{2}$")

#: What a reasoning model refuses while it reasons (PAI's SAMPLING_PARAMS), temperature apart: it takes 1.
SAMPLING = ("top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias")

#: The request fields of Chat Completions (SPEC CreateChatCompletionRequest); anything else is an unknown parameter.
CHAT_FIELDS = frozenset((
    "messages", "model", "modalities", "verbosity", "reasoning_effort", "max_completion_tokens", "frequency_penalty",
    "presence_penalty", "web_search_options", "top_logprobs", "response_format", "audio", "store", "stream", "stop",
    "logit_bias", "logprobs", "max_tokens", "n", "prediction", "seed", "stream_options", "tools", "tool_choice",
    "parallel_tool_calls", "function_call", "functions", "metadata", "temperature", "top_p", "user",
    "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "service_tier"))


@dataclass(frozen=True)
class OpenAIModel:
    """What an OpenAI model family takes (see the module docstring for the sources)."""

    reasoning: bool = True  #: refuses the sampling parameters and max_tokens while it reasons
    efforts: tuple[str, ...] | None = None  #: the reasoning efforts it takes (None: not documented, not checked)
    default: str = "medium"  #: the effort when none is sent ("none": it does not reason by default)
    none_ok: bool = False  #: effort "none" turns reasoning off (gpt-5.1 and later)
    effort_param: bool = True  #: takes a reasoning effort at all
    chat: bool = True  #: served on Chat Completions (else 404: Responses only)
    stop: bool = True  #: takes ``stop``
    parallel_tool_calls: bool = True  #: takes ``parallel_tool_calls``
    system_role: bool = True  #: takes system/developer messages
    streams: bool = True  #: streams on the Responses API
    max_n: int = 128  #: the largest ``n``
    tools_while_reasoning: bool = True  #: takes function tools on chat while reasoning

    def active(self, effort: str | None) -> bool:
        """Whether the model reasons on a request sending *effort* (``None``: not sent)."""
        effort = effort or self.default
        return self.reasoning and not (effort == "none" and (self.none_ok or "none" in (self.efforts or ())))


_NON = OpenAIModel(reasoning=False, effort_param=False, default="none")
_O = OpenAIModel(efforts=_LMH, parallel_tool_calls=False)
_GPT5_MODEL = OpenAIModel(efforts=_GPT5, stop=False)
_GPT52_MODEL = OpenAIModel(efforts=_GPT52, default="none", none_ok=True, stop=False)
_CHAT_LATEST = OpenAIModel(efforts=("medium",), stop=False)
_RESPONSES_ONLY = OpenAIModel(chat=False, stop=False)
_LENIENT_RESPONSES_ONLY = OpenAIModel(reasoning=False, chat=False)  # only the 404 is documented

_MODELS: dict[str, OpenAIModel] = {
    "o1-mini": OpenAIModel(system_role=False, effort_param=False),
    "o1-preview": OpenAIModel(system_role=False, effort_param=False),
    "o1": _O, "o3-mini": _O,
    "o3": replace(_O, stop=False), "o4-mini": replace(_O, stop=False),
    "o1-pro": OpenAIModel(chat=False, streams=False), "o3-pro": OpenAIModel(chat=False),
    "gpt-5": _GPT5_MODEL, "gpt-5-mini": _GPT5_MODEL, "gpt-5-nano": _GPT5_MODEL,
    "gpt-5-chat": _NON, "gpt-5-chat-latest": _NON,
    "gpt-5-pro": replace(_RESPONSES_ONLY, efforts=("high",), default="high"),
    "gpt-5-codex": _RESPONSES_ONLY,
    "gpt-5.1": OpenAIModel(efforts=_GPT51, default="none", stop=False),
    "gpt-5.1-mini": OpenAIModel(efforts=_GPT51, default="none", stop=False),
    "gpt-5.1-chat-latest": _CHAT_LATEST, "gpt-5.2-chat-latest": _CHAT_LATEST, "gpt-5.3-chat-latest": _CHAT_LATEST,
    "gpt-5.1-codex": OpenAIModel(stop=False),
    "gpt-5.1-codex-mini": _RESPONSES_ONLY, "gpt-5.1-codex-max": _RESPONSES_ONLY,
    "gpt-5.2": _GPT52_MODEL, "gpt-5.3": _GPT52_MODEL,
    "gpt-5.2-pro": OpenAIModel(stop=False), "gpt-5.2-codex": OpenAIModel(stop=False),
    "gpt-5.3-codex": OpenAIModel(stop=False),
    "gpt-5.4": _GPT52_MODEL, "gpt-5.4-mini": _GPT52_MODEL, "gpt-5.4-nano": _GPT52_MODEL,
    "gpt-5.4-pro": OpenAIModel(efforts=("medium", "high", "xhigh"), stop=False),
    "gpt-5.5": OpenAIModel(none_ok=True, stop=False),
    "gpt-5.5-pro": replace(_RESPONSES_ONLY, streams=False),
    "gpt-5.6-cyber": _RESPONSES_ONLY,
    "computer-use-preview": _LENIENT_RESPONSES_ONLY,
}
_GPT56 = OpenAIModel(efforts=_GPT52, none_ok=True, stop=False, max_n=8, tools_while_reasoning=False)
_NON_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4-", "gpt-3.5", "chatgpt-4o")


def openai_model(model: str) -> OpenAIModel | None:
    """The facts of an OpenAI model name (overrides already stripped), or ``None`` for a name of no OpenAI family."""
    name = _DATE.sub("", model)
    if name in _MODELS:
        return _MODELS[name]
    if name.endswith("-deep-research") or name.startswith("gpt-daybreak-"):
        return _LENIENT_RESPONSES_ONLY
    if name.startswith("gpt-5.6-"):
        return _GPT56
    if name == "gpt-4" or name.startswith(_NON_PREFIXES):
        return _NON
    return None


def chat_unknown(data: dict[str, Any]) -> None:
    """Refuse a field Chat Completions does not have (checked first, as the API does: unknown key, type, bounds,
    then what the model does not support)."""
    for key in data:
        if key not in CHAT_FIELDS:
            raise UNKNOWN_CHAT.error(name=key)


def check_chat(model: str, m: OpenAIModel, data: dict[str, Any]) -> Thinking | None:
    """Chat Completions' refusals for *m* (the family of *model*); how it thinks when it accepts."""
    if not m.chat:
        raise RESPONSES_ONLY.error()
    if not m.reasoning:
        if "reasoning_effort" in data and not m.effort_param:
            raise UNRECOGNIZED_EFFORT.error()
        return None
    if not m.system_role:
        for index, message in enumerate(data.get("messages") or []):
            role = message.get("role") if isinstance(message, dict) else None
            if role in ("system", "developer"):
                raise SYSTEM_ROLE.error(index=index, role=role)
    if present(data, "max_tokens"):
        raise MAX_TOKENS.error()
    sent, effort = "reasoning_effort" in data, data.get("reasoning_effort")
    if sent and not m.effort_param:
        raise NO_EFFORT.error()
    if sent and m.efforts is not None and effort not in m.efforts:
        raise EFFORT_VALUE.error(value=quote(effort), supported=listing(m.efforts))
    effort = effort if isinstance(effort, str) else None
    active = m.active(effort)
    if not m.stop and present(data, "stop"):  # reported before the sampling parameters (3P precedence probe)
        raise STOP.error()
    if active:
        temperature = data.get("temperature")
        if temperature is not None and temperature != 1:
            raise TEMPERATURE.error(value=quote(temperature))
        for name in SAMPLING:
            if present(data, name):
                raise UNSUPPORTED.error(name=name)
    if not m.parallel_tool_calls and present(data, "parallel_tool_calls"):
        raise PARALLEL.error()
    n = data.get("n")
    if isinstance(n, int) and n > m.max_n:
        raise N_ABOVE.error(limit=m.max_n, value=n)
    if active and not m.tools_while_reasoning and data.get("tools"):
        raise TOOLS_REASONING.error(model=model)
    return Thinking(effort or m.default) if active else None


def check_responses(model: str, m: OpenAIModel | None, data: dict[str, Any]) -> Thinking | None:
    """The Responses API's refusals for *m* (the family of *model*, ``None`` for a lenient name); how it thinks."""
    reasoning = data.get("reasoning") if isinstance(data.get("reasoning"), dict) else {}
    effort, summary = reasoning.get("effort"), reasoning.get("summary")
    encrypted = "reasoning.encrypted_content" in (data.get("include") or [])
    if m is None:  # a lenient name thinks when asked to, so the reasoning items can be exercised
        if effort is None and summary is None:
            return None
        return Thinking(effort if isinstance(effort, str) else "medium", summary=summary is not None,
                        encrypted=encrypted)
    if not m.reasoning:
        if effort is not None and not m.effort_param:
            raise R_NO_REASONING.error()
        return None
    if effort is not None and m.efforts is not None and effort not in m.efforts:
        raise R_EFFORT_VALUE.error(value=quote(effort), model=model, supported=listing(m.efforts))
    if data.get("stream") is True and not m.streams:
        raise R_NO_STREAM.error()
    effort = effort if isinstance(effort, str) else None
    if not m.active(effort):
        return None
    for name in ("temperature", "top_p"):
        if present(data, name):
            raise R_TEMPERATURE.error(name=name)
    return Thinking(effort or m.default, summary=summary is not None, encrypted=encrypted)

