"""Gemini's refusals on ``generateContent`` / ``streamGenerateContent``, by model name (from the URL).

``generationConfig.thinkingConfig`` (python-genai's ``ThinkingConfig``: ``includeThoughts``, ``thinkingBudget``,
``thinkingLevel``) is bounded per model: Gemini 2.5 takes a budget (Pro 128–32768 and never 0, Flash 0–24576,
Flash-Lite 0 or 512–24576, -1 dynamic everywhere; the docs' table as quoted in snailyp/gemini-balance #195 and
checkmarble/llmberjack PR #14) and no level; Gemini 3 takes a level per model ("3 Pro: low, high"; 3.x Pro
models refuse MINIMAL), not both; Gemini 2.0 takes no thinkingConfig; Gemini 3 returns one candidate only.
Errors are Google RPC bodies, ``{"error": {"code": 400, "message", "status": "INVALID_ARGUMENT"}}``; unknown
JSON names carry ``details`` (a BadRequest with fieldViolations), as proto JSON parsing answers them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..wire import Thinking
from . import rule

__all__ = ["GeminiModel", "gemini_model", "check_generate", "unknown_name", "proto_path", "LEVELS"]

_API, _SHAPE = "Gemini", "gemini"
#: The ThinkingLevel enum's values (python-genai ``types.ThinkingLevel``).
LEVELS = ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH")

UNKNOWN_TOP = rule(
    _API, "an unknown field at the top level", "every model name", 400,
    'Invalid JSON payload received. Unknown name "{name}": Cannot find field.', "free-claude-code #542",
    shape="gemini-details")
UNKNOWN_NESTED = rule(
    _API, "an unknown field inside an object (generationConfig, thinkingConfig, …)", "every model name", 400,
    "Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field.",
    "the form of claude-code-router #187 and simonw/llm-gemini #49 (nested paths); a quote inside "
    "generation_config itself was not found", verbatim=False, shape="gemini-details", param="{where}")
LEVEL_ENUM = rule(
    _API, "a thinkingLevel that is no ThinkingLevel", "every model name", 400,
    "Invalid value at 'generation_config.thinking_config.thinking_level' "
    "(type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), \"{value}\"",
    "python-genai ThinkingLevel enum; wording: Google's proto enum error form", verbatim=False, shape=_SHAPE)
BOTH = rule(
    _API, "thinkingBudget and thinkingLevel together", "every model that thinks", 400,
    "You can only set only one of thinking budget and thinking level.", "probe logs and code comments in the "
    "research notes (2026-07)", shape=_SHAPE)
NO_THINKING_CONFIG = rule(
    _API, "thinkingConfig", "gemini-2.0-* (not the thinking experiments)", 400, "thinking_config is not supported.",
    "immersive-translate #2976", shape=_SHAPE)
LEVEL_25 = rule(
    _API, "thinkingLevel", "gemini-2.5-*", 400, "Thinking level is not supported for this model.",
    "Roo-Code #10700; Google: \"Gemini 2.5 series models don't support thinkingLevel\"", shape=_SHAPE)
LEVEL_MINIMAL = rule(
    _API, "thinkingLevel MINIMAL", "Gemini 3.x Pro, gemini-3.7-flash", 400,
    "Thinking level {level} is not supported for this model. Please retry with other thinking level.",
    "a probe log in the research notes; vellum-assistant PR #32687; models: pydantic-ai", shape=_SHAPE)
LEVEL_OTHER = rule(
    _API, "thinkingLevel MEDIUM", "gemini-3-pro* (levels low, high)", 400,
    "Thinking level {level} is not supported for this model. Please retry with other thinking level.",
    "levels: hexdocs gemini_ex, spring-ai #4983; wording: the MINIMAL refusal's", verbatim=False, shape=_SHAPE)
BUDGET_ZERO = rule(
    _API, "thinkingBudget 0", "gemini-2.5-pro*, Gemini 3.x Pro", 400,
    "Budget 0 is invalid. This model only works in thinking mode.", "vercel/ai #8027 and many code comments "
    "(message; envelope standard)", shape=_SHAPE)
BUDGET_RANGE = rule(
    _API, "a thinkingBudget out of range", "gemini-2.5-pro: 128–32768; 2.5 Flash: 0–24576; 2.5 Flash-Lite: 0 or "
    "512–24576 (-1 everywhere)", 400, "The thinking budget ({value}) is invalid.", "Roo-Code #4399", shape=_SHAPE)
CANDIDATES = rule(
    _API, "candidateCount above 1", "gemini-3*", 400, "Multiple candidates is not enabled for this model",
    "js-genai #1609, python-genai #1723", shape=_SHAPE)


@dataclass(frozen=True)
class GeminiModel:
    """What a Gemini model family takes."""

    thinks: bool = True  #: takes a thinkingConfig
    budget: tuple[int, int] | None = None  #: the budgets it takes besides -1 and 0 (None: not checked)
    zero: bool = True  #: takes budget 0 (thinking off)
    levels: tuple[str, ...] | None = None  #: the thinking levels it takes (None: refuses thinkingLevel)
    by_default: bool = True  #: thinks when the request says nothing
    candidates: bool = True  #: returns several candidates


_PRO25 = GeminiModel(budget=(128, 32768), zero=False)
_FLASH25 = GeminiModel(budget=(1, 24576))
_LITE25 = GeminiModel(budget=(512, 24576), by_default=False)
_GEMINI20 = GeminiModel(thinks=False, by_default=False)
_PRO3 = GeminiModel(zero=False, levels=("LOW", "HIGH"), candidates=False)
_PRO3X = GeminiModel(zero=False, levels=("LOW", "MEDIUM", "HIGH"), candidates=False)
_FLASH3 = GeminiModel(levels=("MINIMAL", "LOW", "MEDIUM", "HIGH"), candidates=False)
_FLASH37 = GeminiModel(levels=("LOW", "MEDIUM", "HIGH"), candidates=False)
_THREE = re.compile(r"^gemini-3(\.\d+)?-(pro|flash)")


def gemini_model(model: str) -> GeminiModel | None:
    """The facts of a Gemini model name, or ``None`` for a name of no known family (image, TTS and live models
    included: their rules are not modelled)."""
    if any(word in model for word in ("image", "tts", "live", "audio", "embedding")):
        return None
    if model.startswith("gemini-2.5-pro"):
        return _PRO25
    if model.startswith("gemini-2.5-flash-lite"):
        return _LITE25
    if model.startswith("gemini-2.5-flash"):
        return _FLASH25
    if model.startswith("gemini-2.0-") and "thinking" not in model:
        return _GEMINI20
    three = _THREE.match(model)
    if three:
        if three.group(2) == "pro":
            return _PRO3 if three.group(1) is None else _PRO3X
        return _FLASH37 if three.group(1) == ".7" else _FLASH3
    return None


def proto_path(loc: str) -> str:
    """A pydantic location (``generationConfig.thinkingConfig``) as the proto path Google names
    (``generation_config.thinking_config``); list indices in brackets."""
    out: list[str] = []
    for part in loc.split("."):
        if part.isdigit() and out:
            out[-1] += f"[{part}]"
        else:
            out.append(re.sub(r"(?<!^)([A-Z])", r"_\1", part).lower())
    return ".".join(out)


def unknown_name(loc: str):
    """The refusal of the unknown JSON name at pydantic location *loc*."""
    where, _, name = loc.rpartition(".")
    return UNKNOWN_NESTED.error(name=name, where=proto_path(where)) if where else UNKNOWN_TOP.error(name=name)


def _effort(level: str | None, budget: int | None) -> str:
    if level:
        return level.lower() if level != "THINKING_LEVEL_UNSPECIFIED" else "medium"
    if budget is None or budget < 0:
        return "medium"
    return "low" if budget <= 1024 else "medium" if budget <= 8192 else "high"


def check_generate(model: str, g: GeminiModel | None, config: dict[str, Any]) -> Thinking | None:
    """The refusals for *g* (the family of *model*; ``None``: a lenient name, which thinks when given a budget or a
    level) given the request's ``generationConfig`` *config*; how the model thinks on the request."""
    thinking = config.get("thinkingConfig") or {}
    level, budget = thinking.get("thinkingLevel"), thinking.get("thinkingBudget")
    if level is not None:
        if str(level).upper() not in LEVELS:
            raise LEVEL_ENUM.error(value=level)
        level = str(level).upper()
    plan = Thinking(_effort(level, budget), shown=bool(thinking.get("includeThoughts")))
    if g is None:
        return plan if (budget not in (None, 0)) or level is not None else None
    if "thinkingConfig" in config and not g.thinks:
        raise NO_THINKING_CONFIG.error()
    if level is not None and budget is not None:
        raise BOTH.error()
    if level is not None:
        if g.levels is None:
            raise LEVEL_25.error()
        if level != "THINKING_LEVEL_UNSPECIFIED" and level not in g.levels:
            raise (LEVEL_MINIMAL if level == "MINIMAL" else LEVEL_OTHER).error(level=level)
    if budget is not None and budget != -1:
        if budget == 0 and not g.zero:
            raise BUDGET_ZERO.error()
        low, high = g.budget or (0, 1 << 31)
        if budget != 0 and not low <= budget <= high:
            raise BUDGET_RANGE.error(value=budget)
    count = config.get("candidateCount")
    if isinstance(count, int) and count > 1 and not g.candidates:
        raise CANDIDATES.error()
    if budget == 0 or not (g.by_default or (budget is not None) or level is not None):
        return None
    return plan
