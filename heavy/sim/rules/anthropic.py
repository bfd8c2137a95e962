"""Anthropic's refusals on the Messages API (``POST /v1/messages``), by model name.

Extended thinking (``thinking: {"type": "enabled", "budget_tokens": N}``) takes a budget of at least 1024 tokens
below ``max_tokens``, and no temperature but 1, no ``top_k``, no ``top_p`` below 0.95 and no ``tool_choice`` that
forces a tool (anthropic-sdk-python's types and the extended-thinking docs). Claude 4.6 models add adaptive
thinking (``{"type": "adaptive"}``) and ``output_config.effort``; the newest families (Opus 4.7 and later, the
Claude 5 models) take only adaptive thinking and refuse the sampling parameters. Several Claude 4.x models refuse
``temperature`` and ``top_p`` together. Model matrix: pydantic-ai's ``profiles/anthropic.py``; error bodies: the
public issues each rule names. Every error is ``{"type": "error", "error": {"type": "invalid_request_error",
"message"}, "request_id"}`` with HTTP 400.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from ..wire import Thinking
from . import present, rule

__all__ = ["Claude", "claude_model", "check_messages", "MIN_BUDGET"]

#: The smallest ``budget_tokens`` the API takes.
MIN_BUDGET = 1024
_API, _SHAPE = "Anthropic", "anthropic"
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
_NEWEST = "claude-opus-4-7, claude-opus-4-8, claude-opus-5, claude-sonnet-5, claude-fable-5, claude-mythos-*"
_BOTH_MODELS = "claude-opus-4-1, claude-sonnet-4-5, claude-haiku-4-5, claude-opus-4-5, claude-opus-4-6, " \
               "claude-sonnet-4-6 (and the newest)"

THINKING_SHAPE = rule(
    _API, "a thinking object of another type, or enabled without budget_tokens", "every model name (the schema)", 400,
    "{loc}: {problem}", "the SDK's ThinkingConfigParam types; wording: the pydantic form of the budget refusal below",
    verbatim=False, shape=_SHAPE)
NO_THINKING = rule(
    _API, "thinking", "claude-3-haiku, claude-3-sonnet, claude-3-opus, claude-3-5-sonnet, claude-3-5-haiku, "
    "claude-2*, claude-instant*", 400, "'{model}' does not support thinking.", "claude-code #2245", shape=_SHAPE)
ENABLED_REFUSED = rule(
    _API, "thinking type enabled", _NEWEST, 400,
    '"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
    '"output_config.effort" to control thinking behavior.', "jetbrains-cc-gui #1003; aelix-ai #258 (live, opus-5, "
    "fable-5, opus-4-8, sonnet-5)", shape=_SHAPE)
DISABLED_REFUSED = rule(
    _API, "thinking type disabled", "claude-fable-5, claude-mythos-*", 400,
    '"thinking.type.disabled" is not supported for this model.', "cline #13203 (fable-5); mythos: spinchange notes "
    "on Anthropic's docs", shape=_SHAPE)
ADAPTIVE_REFUSED = rule(
    _API, "thinking type adaptive", "Claude models before 4.6 that think (3-7-sonnet, sonnet-4, opus-4, opus-4-1, "
    "sonnet-4-5, haiku-4-5, opus-4-5)", 400, "adaptive thinking is not supported on this model",
    "askalf/dario PR #273 (live probe), docker/docker-agent #3362", shape=_SHAPE)
BUDGET_MIN = rule(
    _API, "budget_tokens below 1024", "every Claude model that takes enabled thinking", 400,
    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    "SDK thinking_config_enabled_param; llm.js #30, workglow-dev/libs PR #746", shape=_SHAPE)
BUDGET_MAX = rule(
    _API, "budget_tokens not below max_tokens", "every Claude model that takes enabled thinking", 400,
    f"`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at {_DOCS}"
    "#max-tokens-and-context-window-size", "router-for-me/CLIProxyAPI #413 (interleaved thinking's exemption is not "
    "modelled)", shape=_SHAPE)
MAX_TOKENS_CAP = rule(
    _API, "max_tokens above the model's output cap", "claude-3-opus, claude-3-5-sonnet-20240620: 4096; "
    "3-7-sonnet, sonnet-4-5, haiku-4-5, opus-4-5, sonnet-4-6: 64000; opus-4-6, opus-4-7: 128000", 400,
    "max_tokens: {value} > {cap}, which is the maximum allowed number of output tokens for {model}",
    "claude-code #24451; caps: CoolCline #23, litellm PR #15715, chathub #1222, NextChat #4964, models-overview "
    "mirrors (4.6, 4.7)", shape=_SHAPE)
TEMPERATURE_THINKING = rule(
    _API, "temperature other than 1 while thinking (enabled or adaptive)", "every Claude model that thinks", 400,
    "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please consult our "
    "documentation at https://platform.claude.com/docs/en/build-with-claude/extended-thinking",
    "mnfst/modelparams.dev #214 (2026; one-hub #529 has the 2025 wording)", shape=_SHAPE)
TOP_K_THINKING = rule(
    _API, "top_k while thinking", "every Claude model that thinks", 400,
    f"`top_k` must be unset when thinking is enabled. Please consult our documentation at {_DOCS}"
    "#important-considerations-when-using-extended-thinking", "quarkus-langchain4j #1812, LibreChat #6023",
    shape=_SHAPE)
TOP_P_THINKING = rule(
    _API, "top_p below 0.95 while thinking", "every Claude model that thinks", 400,
    f"`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. Please consult our "
    f"documentation at {_DOCS}#important-considerations-when-using-extended-thinking",
    "refusal: Anthropic's thinking docs as quoted by docs.memberjunction.org and SEMOSS PR #1655; wording modelled "
    "on the top_k refusal", verbatim=False, shape=_SHAPE)
FORCED_TOOL = rule(
    _API, "tool_choice any or tool while thinking", "every Claude model that thinks", 400,
    "Thinking may not be enabled when tool_choice forces tool use.", "extended-thinking docs; workglow-dev/libs PR "
    "#746 (live probe)", shape=_SHAPE)
FORCED_TOOL_ALWAYS = rule(
    _API, "tool_choice any or tool, even without thinking", "claude-fable-5, claude-mythos-*", 400,
    "Thinking may not be enabled when tool_choice forces tool use.", "refusal: pydantic-ai profiles/anthropic.py; "
    "wording: the thinking refusal's", verbatim=False, shape=_SHAPE)
BOTH = rule(
    _API, "temperature and top_p together", _BOTH_MODELS, 400,
    "`temperature` and `top_p` cannot both be specified for this model. Please use only one.",
    "litellm #15097; models: opencode #1644, bedrock-access-gateway #191, OpenHands #11838 and PR #12909, "
    "ChatterUI #564", shape=_SHAPE)
DEPRECATED = rule(
    _API, "temperature other than 1", _NEWEST, 400, "`temperature` is deprecated for this model.",
    "inspect_ai #3721 (opus-4-7), pr-agent #2456 (opus-4-8, fable-5)", shape=_SHAPE)
DEPRECATED_OTHER = rule(
    _API, "top_p, top_k", _NEWEST, 400, "`{name}` is deprecated for this model.", "refusal: pydantic-ai "
    "profiles/anthropic.py (disallows_sampling_settings); wording: the temperature refusal's", verbatim=False,
    shape=_SHAPE)
NO_EFFORT = rule(
    _API, "output_config.effort", "Claude models before opus-4-5", 400,
    "This model does not support the effort parameter.", "claude-code #30010", shape=_SHAPE)
EFFORT_LEVEL = rule(
    _API, "an effort level the model does not take", "opus-4-5: low, medium, high (list assumed); opus-4-6, "
    "sonnet-4-6: low, medium, high, max; the newest: also xhigh", 400,
    "This model does not support effort level '{value}'. Supported levels: {levels}.",
    "pydantic-ai cassette test_anthropic_explicit_effort_xhigh_unsupported_model_errors (opus-4-6)", shape=_SHAPE)


@dataclass(frozen=True)
class Claude:
    """What a Claude model family takes."""

    thinks: bool = True  #: takes thinking at all
    enabled: bool = True  #: takes ``thinking.type: enabled``
    adaptive: bool = False  #: takes ``thinking.type: adaptive``
    disabled: bool = True  #: takes ``thinking.type: disabled``
    efforts: tuple[str, ...] | None = None  #: output_config.effort levels (None: refuses the parameter)
    exclusive: bool = False  #: refuses temperature and top_p together
    deprecated: bool = False  #: refuses the sampling parameters (temperature 1 alone excepted)
    forced_tools: bool = True  #: takes a tool_choice that forces a tool (without thinking)
    cap: int | None = None  #: the largest max_tokens (None: not documented, not checked)


_OLD = Claude(thinks=False, enabled=False)
_ENABLED = Claude()
_EXCLUSIVE = Claude(exclusive=True, cap=64000)
_FOUR_SIX = Claude(adaptive=True, efforts=("low", "medium", "high", "max"), exclusive=True, cap=64000)
_NEWEST_MODEL = Claude(enabled=False, adaptive=True, efforts=("low", "medium", "high", "xhigh", "max"),
                       exclusive=True, deprecated=True)
_ALWAYS = replace(_NEWEST_MODEL, disabled=False, forced_tools=False)

_MODELS: dict[str, Claude] = {
    "claude-3-opus": replace(_OLD, cap=4096), "claude-3-sonnet": _OLD, "claude-3-haiku": _OLD,
    "claude-3-5-sonnet": _OLD, "claude-3-5-sonnet-20240620": replace(_OLD, cap=4096), "claude-3-5-haiku": _OLD,
    "claude-3-7-sonnet": replace(_ENABLED, cap=64000),
    "claude-sonnet-4": _ENABLED, "claude-sonnet-4-0": _ENABLED, "claude-opus-4": _ENABLED, "claude-opus-4-0": _ENABLED,
    "claude-opus-4-1": replace(_EXCLUSIVE, cap=None), "claude-sonnet-4-5": _EXCLUSIVE, "claude-haiku-4-5": _EXCLUSIVE,
    "claude-opus-4-5": replace(_EXCLUSIVE, efforts=("low", "medium", "high")),
    "claude-opus-4-6": replace(_FOUR_SIX, cap=128000), "claude-sonnet-4-6": _FOUR_SIX,
    "claude-opus-4-7": replace(_NEWEST_MODEL, cap=128000), "claude-opus-4-8": _NEWEST_MODEL,
    "claude-opus-5": _NEWEST_MODEL, "claude-sonnet-5": _NEWEST_MODEL, "claude-fable-5": _ALWAYS,
}
_DATED = re.compile(r"-(\d{8}|latest)$")


def claude_model(model: str) -> Claude | None:
    """The facts of a Claude model name (dated or ``-latest``), or ``None`` for a name of no known family."""
    if model in _MODELS:
        return _MODELS[model]
    name = _DATED.sub("", model)
    if name in _MODELS:
        return _MODELS[name]
    if name.startswith("claude-mythos"):
        return _ALWAYS
    if name.startswith(("claude-2", "claude-instant")):
        return _OLD
    return None


def _effort_of_budget(budget: int) -> str:
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def _thinking_kind(thinking: Any) -> str:
    """The thinking type of the request ("none" when absent), refusing a malformed object."""
    if thinking is None:
        return "none"
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise THINKING_SHAPE.error(loc="thinking", problem="Input tag found using 'type' does not match any of the "
                                   "expected tags: 'enabled', 'disabled', 'adaptive'")
    if kind == "enabled" and not isinstance(thinking.get("budget_tokens"), int):
        raise THINKING_SHAPE.error(loc="thinking.enabled.budget_tokens", problem="Field required")
    return kind


def check_messages(model: str, c: Claude | None, data: dict[str, Any]) -> Thinking | None:
    """The Messages API's refusals for *c* (the family of *model*; ``None``: a lenient name, which thinks when
    asked to); how the model thinks on the request."""
    thinking = data.get("thinking")
    kind = _thinking_kind(thinking)
    effort = (data.get("output_config") or {}).get("effort") if isinstance(data.get("output_config"), dict) else None
    shown = not (isinstance(thinking, dict) and thinking.get("display") == "omitted")
    budget = thinking.get("budget_tokens") if kind == "enabled" else None
    plan = Thinking(effort or (_effort_of_budget(budget) if budget else "medium"), shown=shown)
    if c is None:
        return plan if kind in ("enabled", "adaptive") else None
    thinks = kind in ("enabled", "adaptive")
    if thinks and not c.thinks:
        raise NO_THINKING.error(model=model)
    if kind == "enabled" and not c.enabled:
        raise ENABLED_REFUSED.error()
    if kind == "disabled" and not c.disabled:
        raise DISABLED_REFUSED.error()
    if kind == "adaptive" and not c.adaptive:
        raise ADAPTIVE_REFUSED.error()
    max_tokens = data.get("max_tokens")
    if c.cap is not None and isinstance(max_tokens, int) and max_tokens > c.cap:
        raise MAX_TOKENS_CAP.error(value=max_tokens, cap=c.cap, model=model)
    if budget is not None:
        if budget < MIN_BUDGET:
            raise BUDGET_MIN.error()
        if isinstance(max_tokens, int) and budget >= max_tokens:
            raise BUDGET_MAX.error()
    _check_sampling(c, data, thinks)
    choice = (data.get("tool_choice") or {}).get("type") if isinstance(data.get("tool_choice"), dict) else None
    if choice in ("any", "tool") and (thinks or not c.forced_tools):
        raise (FORCED_TOOL if thinks else FORCED_TOOL_ALWAYS).error()
    if effort is not None:
        if c.efforts is None:
            raise NO_EFFORT.error()
        if effort not in c.efforts:
            raise EFFORT_LEVEL.error(value=effort, levels=", ".join(sorted(c.efforts)))
    return plan if thinks else None


def _check_sampling(c: Claude, data: dict[str, Any], thinks: bool) -> None:
    temperature = data.get("temperature")
    if thinks and temperature is not None and temperature != 1:
        raise TEMPERATURE_THINKING.error()
    if c.exclusive and present(data, "temperature") and present(data, "top_p"):
        raise BOTH.error()
    if c.deprecated:
        if temperature is not None and temperature != 1:
            raise DEPRECATED.error()
        for name in ("top_p", "top_k"):
            if present(data, name):
                raise DEPRECATED_OTHER.error(name=name)
    if thinks and present(data, "top_k"):
        raise TOP_K_THINKING.error()
    top_p = data.get("top_p")
    if thinks and top_p is not None and top_p < 0.95:
        raise TOP_P_THINKING.error()
