"""xAI's and DeepSeek's refusals on the OpenAI chat wire, by model name.

**xAI** (``grok-*``) answers a refused argument with HTTP 400 and a body of its own, not OpenAI's envelope:
``{"code": "Client specified an invalid argument", "error": "<message>"}`` (2025; in 2026 the code became
``invalid-argument``), parameter names in camelCase. Its reasoning guide: "presencePenalty, frequencyPenalty and
stop parameters are not supported by reasoning models"; "reasoning_effort is not supported by grok-3, grok-4 and
grok-4-fast-reasoning … Only grok-3-mini supports reasoning_effort" (low, high); "only grok-3-mini returns
message.reasoning_content". Later models per the research notes (hermes-agent PR #23435 live matrix; pydantic-ai
and vercel/ai for grok-4.3 to 4.6). The May-2026 retirement (old names redirected to grok-4.3) is not modelled:
the old names keep their documented behaviour.

**DeepSeek** (``deepseek-reasoner``): "Setting logprobs、top_logprobs will trigger an error" while temperature,
top_p and the penalties "will not trigger an error but will also have no effect" (its Reasoning Model guide); the
answer carries ``reasoning_content``. Errors are OpenAI-shaped with ``code`` equal to ``type``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..wire import Thinking
from . import present, rule

__all__ = ["Grok", "grok_model", "check_grok", "check_deepseek"]

_XAI, _OLD, _NEW = "xAI chat", "Client specified an invalid argument", "invalid-argument"
_CAMEL = {"presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty", "stop": "stop",
          "reasoning_effort": "reasoningEffort"}
_PENALTIES = ("presence_penalty", "frequency_penalty")
_ALL = ("presence_penalty", "frequency_penalty", "stop")

XAI_EFFORT = rule(
    _XAI, "reasoning_effort", "grok-3, grok-4, grok-4-0709, grok-4-latest, grok-4-fast*, grok-4-1-fast*, "
    "grok-code-fast-1", 400, "Model {model} does not support parameter reasoningEffort.",
    "docs.x.ai reasoning guide; body: BerriAI/litellm PR #16265; models: hermes-agent PR #23435", shape="xai",
    code=_OLD)
XAI_ARGUMENT = rule(
    _XAI, "presence_penalty, frequency_penalty, stop", "reasoning models: grok-3-mini*, grok-4, grok-4-0709, "
    "grok-4-fast(-reasoning), grok-4-1-fast(-reasoning), grok-code-fast-1", 400,
    "Argument not supported on this model: {name}", "docs.x.ai reasoning guide; bodies: litellm #12635, "
    "smolagents #1765, uni-api #105, lobehub #8381", shape="xai", code=_OLD)
XAI_NEW_STOP = rule(
    _XAI, "stop", "grok-4.20-*-reasoning, grok-4.20-multi-agent*, grok-4.3, grok-4.5, grok-4.6, grok-build-0.1", 400,
    "Model {model} does not support parameter stop.", "opencodex #5278 (grok-4.6), litellm-docs PR #817 (grok-4.5); "
    "modelparams.dev PR #20 smoke (grok-4.3)", shape="xai", code=_NEW)
XAI_NEW_PARAM = rule(
    _XAI, "presence_penalty, frequency_penalty; reasoning_effort where the model has no dial",
    "grok-4.20-* (penalties; effort except multi-agent), grok-4.3, grok-4.5, grok-4.6 (penalties), grok-build-0.1 "
    "(effort)", 400, "Model {model} does not support parameter {name}.", "refusals: modelparams.dev PR #20, "
    "hermes-agent PR #23435, docs.x.ai reasoning guide; wording: the 2026 stop refusal's", verbatim=False,
    shape="xai", code=_NEW)
XAI_EFFORT_VALUE = rule(
    _XAI, "a reasoning_effort value the model does not take", "grok-3-mini*: low, high; grok-4.3: none..high; "
    "grok-4.5: low..high; grok-4.6: low..xhigh", 400,
    "This model does not support 'reasoning_effort' value '{value}'", "values: docs.x.ai, pydantic-ai "
    "profiles/grok.py, vercel/ai; wording: a pydantic-ai code comment (grok-4.5), envelope assumed", verbatim=False,
    shape="xai", code=_OLD)
DS_LOGPROBS = rule(
    "DeepSeek chat", "logprobs, top_logprobs", "deepseek-reasoner", 400,
    "deepseek-reasoner does not support the parameter `{name}`", "refusal: DeepSeek Reasoning Model guide; wording: "
    "its Jan-2025 penalty refusal (flutter_gpt_box #213)", verbatim=False, shape="deepseek",
    code="invalid_request_error")
DS_JSON = rule(
    "DeepSeek chat", "response_format json_object", "deepseek-reasoner", 400,
    "deepseek-reasoner does not support Json Output.", "DeepSeek guide (not supported: Json Output); body: TrustRAG "
    "#140", shape="deepseek", code="invalid_request_error")


@dataclass(frozen=True)
class Grok:
    """What an xAI model takes."""

    reasoning: bool  #: reasons (hidden, counted in reasoning_tokens; shown for grok-3-mini)
    refuses: tuple[str, ...] = ()  #: parameters it refuses
    efforts: tuple[str, ...] | None = None  #: the reasoning efforts it takes (None: refuses the parameter)
    any_effort: bool = False  #: takes reasoning_effort, values not documented
    default: str = "medium"
    shown: bool = False  #: returns message.reasoning_content
    new: bool = False  #: answers in the 2026 wording


_GROK4 = Grok(True, _ALL)
_GROK_NON = Grok(False)
_GROK3_MINI = Grok(True, _ALL, ("low", "high"), default="low", shown=True)
_G420 = Grok(True, _ALL, new=True)
_G420_NON = Grok(False, _PENALTIES, new=True)
_G420_MULTI = Grok(True, _ALL, any_effort=True, new=True)
_VERSIONS = {"grok-4.3": Grok(True, _ALL, ("none", "low", "medium", "high"), new=True),
             "grok-4.5": Grok(True, _ALL, ("low", "medium", "high"), default="high", new=True),
             "grok-4.6": Grok(True, _ALL, ("low", "medium", "high", "xhigh"), default="high", new=True),
             "grok-build": Grok(True, _ALL, new=True)}


def grok_model(name: str) -> Grok | None:
    """The facts of an xAI model name, or ``None`` for a name of no known xAI family."""
    if not name.startswith("grok-"):
        return None
    if name.startswith("grok-4.20"):
        return _G420_NON if name.endswith("non-reasoning") else _G420_MULTI if "multi-agent" in name else _G420
    if name.endswith("-non-reasoning"):
        return _GROK_NON
    if name.startswith("grok-3-mini"):
        return _GROK3_MINI
    if name in ("grok-3", "grok-3-latest", "grok-3-beta"):
        return _GROK_NON
    for prefix, model in _VERSIONS.items():
        if name.startswith(prefix):
            return model
    if name in ("grok-4", "grok-4-0709", "grok-4-latest") or name.startswith(("grok-4-fast", "grok-4-1-fast",
                                                                               "grok-code-fast")):
        return _GROK4
    return None


def check_grok(model: str, g: Grok, data: dict[str, Any]) -> Thinking | None:
    """xAI's refusals for *g* (the family of *model*); how it thinks when it accepts."""
    effort = data.get("reasoning_effort")
    if effort is not None and g.efforts is None and not g.any_effort:
        raise (XAI_NEW_PARAM.error(model=model, name="reasoningEffort") if g.new else XAI_EFFORT.error(model=model))
    if effort is not None and g.efforts is not None and effort not in g.efforts:
        raise XAI_EFFORT_VALUE.error(value=effort)
    for name in g.refuses:
        if present(data, name):
            if not g.new:
                raise XAI_ARGUMENT.error(name=_CAMEL[name])
            raise (XAI_NEW_STOP if name == "stop" else XAI_NEW_PARAM).error(model=model, name=_CAMEL[name])
    effort = effort if isinstance(effort, str) else g.default
    if not g.reasoning or effort == "none":
        return None
    return Thinking(effort, shown=g.shown)


def check_deepseek(model: str, data: dict[str, Any]) -> Thinking | None:
    """DeepSeek's refusals; ``deepseek-reasoner`` thinks (its default effort is high) and shows it."""
    if model != "deepseek-reasoner":
        return None
    for name in ("logprobs", "top_logprobs"):
        if present(data, name):
            raise DS_LOGPROBS.error(name=name)
    response_format = data.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        raise DS_JSON.error()
    return Thinking("high", shown=True)
