"""What each model accepts, in one place: model profiles.

The models people pick for hard questions are reasoning models, and their APIs refuse fields other models
take: OpenAI's o-series and GPT-5 accept no temperature but 1 and no ``max_tokens``; grok-4 takes no
reasoning effort and no ``stop``; Claude with thinking takes no temperature; Gemini 2.5 Pro cannot stop
thinking. A :class:`ModelProfile` says, for one model behind one preset:

- which **wire** serves it: Chat Completions (``openai``), OpenAI's Responses API (``responses``: the pro and
  codex models live only there), ``anthropic`` or ``gemini``;
- which request **fields** it refuses (``refuses``; ``reasoning_refuses`` only while it reasons), which it
  accepts but ignores (``ignores``), the one temperature it accepts (``temperature``), fields that may not be
  sent together (``exclusive``), and the name of its token-limit field;
- how its **reasoning** is controlled (:class:`Thinking`): by an effort (which values), a budget (bounds,
  whether 0 turns it off), a level (Gemini 3) or adaptively (the newest Claude models), or not at all;
- its prompt **cache**, **batch** discount, how many **choices** one request may ask for, whether it streams.

:meth:`ModelProfile.shape` turns a request into one the model accepts and says what it changed (a
:class:`Drop` per field): a refused field is not sent, an effort the model lacks becomes the nearest one it
has, a budget is clamped to its bounds. ``Heavy`` reports the drops of fields the user set explicitly in the
Result's notes; the providers send what the shaped request holds.

**What profiles do not know, endpoints teach.** :class:`Profiles` (one endpoint's models) adds to the static
knowledge what that endpoint refused during this process: when it answers a 400 naming an unsupported
parameter or value (:func:`refusal` reads every shape the providers use), the field is dropped for that
(endpoint, model) for the rest of the process and the request is sent again (:mod:`heavy.providers.adapt`).

Every rule names its source in :data:`SOURCES`; docs/profiles.md has the table. Models the profiles do not
name get the preset's defaults: everything is sent, and the endpoint may still teach.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .caching import CacheRules, cache_rules
from .models import PRESETS

__all__ = ["ModelProfile", "Thinking", "Drop", "Lesson", "Profiles", "profile", "EFFORTS", "SOURCES", "FIELDS",
           "learned", "forget"]

#: Reasoning efforts, weakest first (OpenAI's ``ReasoningEffort`` enum; Anthropic's ``output_config.effort``).
EFFORTS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

#: The request fields a profile may leave out, in heavy's words. Nothing else is ever dropped: not the model,
#: the messages, the caller's tools or tool choice, the response format: what is asked.
FIELDS: tuple[str, ...] = ("temperature", "top_p", "seed", "stop", "logprobs", "max_tokens", "reasoning",
                           "n", "cache_key", "parallel_tool_calls", "stream")

Control = Literal["none", "effort", "budget", "level", "adaptive"]


@dataclass(frozen=True)
class Thinking:
    """How a model's reasoning is controlled.

    ``control``: ``effort`` (OpenAI/xAI ``reasoning_effort``: one of ``efforts``; an empty tuple: the values are
    not known, any is sent and the endpoint says), ``budget`` (tokens, from ``min_budget`` to ``max_budget``),
    ``level`` (Gemini 3's ``thinkingLevel``: one of ``efforts``), ``adaptive`` (Claude's adaptive thinking with an
    ``output_config.effort`` among ``efforts``) or ``none`` (nothing to set). ``always``: the model reasons
    whatever is sent (no way to turn it off); ``default``: it reasons when nothing is sent.
    """

    control: Control = "none"
    efforts: tuple[str, ...] = ()
    min_budget: int = 0
    max_budget: int | None = None
    always: bool = False
    default: bool = False

    @property
    def off(self) -> bool:
        """Whether thinking can be turned off (a budget of 0, an effort of ``none`` where the model takes it)."""
        return not self.always


@dataclass(frozen=True)
class Drop:
    """One change :meth:`ModelProfile.shape` made: ``field`` (heavy's name) was ``value``; ``sent`` is what went
    instead (``None``: nothing); ``why`` says which rule, in words."""

    field: str
    value: Any
    sent: Any = None
    why: str = ""

    def note(self, label: str) -> str:
        what = f"{self.field}={self.value!r}"
        instead = f"sent as {self.sent!r}" if self.sent is not None else "not sent"
        return f"{label}: {what} {instead}: {self.why}"


@dataclass(frozen=True)
class ModelProfile:
    """What one model accepts (see the module docstring). Frozen; :func:`dataclasses.replace` makes variants."""

    family: str = "any model"
    wire: str = "openai"
    refuses: frozenset[str] = frozenset()
    reasoning_refuses: frozenset[str] = frozenset()
    ignores: frozenset[str] = frozenset()
    temperature: float | None = None
    exclusive: tuple[str, ...] = ()
    max_tokens_field: str = "max_tokens"
    max_output: int | None = None
    thinking: Thinking = Thinking()
    max_choices: int = 1
    auto_n: bool = False
    cache_key_field: str | None = None
    cache: CacheRules | None = None
    stagger_free: bool = False
    paid: bool = True
    batch_discount: float | None = None
    streams: bool = True
    source: str = ""

    # --- shaping ---------------------------------------------------------------------------------

    def reasons(self, effort: str | None, budget: int | None) -> bool:
        """Whether a request asking for *effort* / *budget* makes this model reason."""
        t = self.thinking
        if t.always:
            return True
        if effort is None and budget is None:
            return t.default
        if t.control == "budget":
            return bool(budget if budget is not None else effort != "none")
        return (effort or "low") != "none" and t.control != "none"

    def shape(self, request: Any) -> tuple[Any, list[Drop]]:
        """*request* (a :class:`~heavy.providers.base.CompletionRequest`) as this model accepts it, and what changed."""
        p = request.params
        drops: list[Drop] = []
        params: dict[str, Any] = {}
        other: dict[str, Any] = {}
        effort, budget = _reasoning(self, p, drops, params)
        thinking = self.reasons(effort, budget)
        refused = self.refuses | (self.reasoning_refuses if thinking else frozenset())
        why_refused = f"refused by {self.family}" + (" while reasoning" if thinking and self.reasoning_refuses else "")

        def drop(name: str, value: Any, why: str, *, sent: Any = None, key: str | None = None) -> None:
            drops.append(Drop(name, value, sent, why))
            params[key or name] = sent

        if p.temperature is not None:
            if "temperature" in refused:
                drop("temperature", p.temperature, why_refused)
            elif "temperature" in self.ignores:
                drop("temperature", p.temperature, f"ignored by {self.family}")
            elif self.temperature is not None and p.temperature != self.temperature:
                drop("temperature", p.temperature, f"only temperature {self.temperature:g} is accepted by "
                     f"{self.family}; its hypotheses sample at {self.temperature:g}")
        if p.top_p is not None:
            if "top_p" in refused or "top_p" in self.ignores:
                drop("top_p", p.top_p, why_refused if "top_p" in refused else f"ignored by {self.family}")
            elif "top_p" in self.exclusive and params.get("temperature", p.temperature) is not None:
                drop("top_p", p.top_p, f"temperature and top_p together are refused by {self.family}; temperature "
                     "kept")
        for name in ("seed", "stop"):
            if getattr(p, name) is not None and name in refused:
                drop(name, getattr(p, name), why_refused)
        if p.logprobs and "logprobs" in refused:
            drop("logprobs", True, why_refused, sent=False)
            params["top_logprobs"] = None
        if p.max_tokens is not None and self.max_output is not None and p.max_tokens > self.max_output:
            drop("max_tokens", p.max_tokens, f"at most {self.max_output} output tokens for {self.family}",
                 sent=self.max_output)
        if request.n > 1 and "n" in refused:
            drops.append(Drop("n", request.n, 1, why_refused))
            other["n"] = 1
        if request.cache_key and "cache_key" in refused:
            other["cache_key"] = None  # heavy's own routing hint: nobody set it, nobody needs telling
        if request.parallel_tool_calls is not None and "parallel_tool_calls" in refused:
            drops.append(Drop("parallel_tool_calls", request.parallel_tool_calls, None, why_refused))
            other["parallel_tool_calls"] = None
        if not drops and not params and not other:
            return request, drops
        if params:
            other["params"] = p.model_copy(update=params)
        return request.model_copy(update=other), drops


def _reasoning(profile: ModelProfile, p: Any, drops: list[Drop], params: dict[str, Any]) -> tuple[str | None, int | None]:
    """Fit the request's effort / budget to the model's control (recording drops into *drops* and the new values
    into *params*); return the (effort, budget) actually sent."""
    t = profile.thinking
    effort, budget = p.reasoning_effort, p.thinking_budget
    if effort is None and budget is None:
        return None, None
    asked = effort if effort is not None else budget
    name = "reasoning_effort" if effort is not None else "thinking_budget"
    cleared = {"reasoning_effort": None, "thinking_budget": None}
    if t.control == "none" or "reasoning" in profile.refuses:
        why = (f"no effort or budget is accepted by {profile.family} (it always reasons)" if t.always else
               f"no reasoning control in {profile.family}")
        drops.append(Drop(name, asked, None, why))
        params.update(cleared)
        return None, None
    if t.control == "budget":
        want = p.thinking_tokens() or 0
        sent = want
        if want == 0 and not t.off:
            sent = max(t.min_budget, 1)
        elif 0 < want < t.min_budget:
            sent = t.min_budget
        elif t.max_budget is not None and want > t.max_budget:
            sent = t.max_budget
        if sent != want or effort is not None:
            if sent != want:
                why = (f"thinking cannot be turned off in {profile.family}; smallest budget {sent}" if want == 0 else
                       f"thinking budgets of {profile.family}: {t.min_budget} to {t.max_budget or 'any'}")
                drops.append(Drop(name, asked, sent, why))
            params.update(cleared, thinking_budget=sent)
        return None, sent
    want_effort = p.effort()
    choices = t.efforts
    sent_effort = want_effort
    if choices and want_effort not in choices:
        sent_effort = nearest_effort(want_effort or "none", choices)
        drops.append(Drop(name, asked, sent_effort, f"efforts accepted by {profile.family}: {', '.join(choices)}"))
    if sent_effort != effort:
        params.update(cleared, reasoning_effort=sent_effort)
    return sent_effort, None


def nearest_effort(want: str, choices: tuple[str, ...]) -> str:
    """The accepted effort nearest *want*: the weakest at least as strong, else the strongest weaker one."""
    rank = {e: i for i, e in enumerate(EFFORTS)}
    ordered = sorted(choices, key=lambda e: rank.get(e, 0))
    stronger = [e for e in ordered if rank.get(e, 0) >= rank.get(want, 0)]
    return stronger[0] if stronger else ordered[-1]


# --- the knowledge --------------------------------------------------------------------------------------

_OPENAI_SOURCE = "OpenAI API reference (openapi.yaml: max_tokens, stop, ReasoningEffort, ResponsesOnlyModel); " \
                 "reasoning guide"
#: What OpenAI's reasoning models refuse on Chat Completions (the temperature is fixed at 1, which is accepted).
_REASONING = frozenset({"top_p", "logprobs"})
#: Presets that speak OpenAI's own API (the model rules of OpenAI apply by model id).
_OPENAI_PRESETS = frozenset({"openai", "openai-responses", "azure"})
_RESPONSES_ONLY = ("o1-pro", "o3-pro", "gpt-5-pro", "gpt-5.5-pro", "gpt-5-codex", "gpt-5.1-codex-max",
                   "gpt-5.1-codex-mini", "o3-deep-research", "o4-mini-deep-research", "computer-use-preview",
                   "codex-mini", "gpt-5.2-codex", "gpt-5.3-codex")
#: Responses-only models that do not stream (OpenAI's o1-pro; gpt-5.5-pro per its model page).
_NO_STREAM = ("o1-pro", "gpt-5.5-pro")


def _bare(model: str) -> str:
    """The model id without a routing prefix (``openai/…``), the simulator's ``@overrides`` or a date suffix."""
    return model.split("/")[-1].partition("@")[0].strip().lower()


def _openai_family(model: str) -> ModelProfile | None:
    m = _bare(model)
    reasoning = dict(refuses=_REASONING, temperature=1.0, max_tokens_field="max_completion_tokens",
                     source=_OPENAI_SOURCE)
    if m.startswith(_RESPONSES_ONLY) or "codex" in m:
        efforts = ("high",) if m.startswith("gpt-5-pro") else ()
        return ModelProfile(family=f"{m.split('-20')[0]} (OpenAI Responses API only)", wire="responses",
                            thinking=Thinking("effort", efforts, always=True, default=True),
                            refuses=_REASONING | {"temperature", "seed", "stop", "n"},
                            max_tokens_field="max_output_tokens", streams=not m.startswith(_NO_STREAM),
                            source=_OPENAI_SOURCE)
    if re.match(r"gpt-5(\.\d+)?-chat", m):
        if m.startswith("gpt-5-chat"):
            return ModelProfile(family="gpt-5-chat (not a reasoning model)", refuses=frozenset({"reasoning"}),
                                max_tokens_field="max_completion_tokens", source=_OPENAI_SOURCE)
        return ModelProfile(family="OpenAI's chat-latest reasoning models", **reasoning,
                            thinking=Thinking("effort", ("medium",), always=True, default=True))
    if re.match(r"o\d", m):
        o_series = reasoning | {"refuses": _REASONING | {"parallel_tool_calls"} |
                                ({"stop"} if m.startswith(("o3", "o4")) else set())}
        efforts = () if m.startswith(("o1-mini", "o1-preview")) else ("low", "medium", "high")
        return ModelProfile(family="OpenAI's o-series reasoning models", **o_series,
                            thinking=Thinking("effort" if efforts else "none", efforts, always=True, default=True))
    match = re.match(r"gpt-5(?:\.(\d+))?(?![\d.])", m)
    if match:
        minor = int(match.group(1) or 0)
        if minor == 0:
            return ModelProfile(family="OpenAI's GPT-5 reasoning models", **(reasoning | {
                "refuses": _REASONING | {"stop"}}),
                thinking=Thinking("effort", ("minimal", "low", "medium", "high"), always=True, default=True))
        # GPT-5.1 and later reason only when asked (effort "none" by default), and then refuse sampling fields.
        efforts = ("none", "low", "medium", "high") if minor == 1 else ("none", "low", "medium", "high", "xhigh")
        default = minor >= 5  # gpt-5.5 and 5.6 reason by default
        return ModelProfile(family=f"OpenAI's GPT-5.{minor} models", reasoning_refuses=_REASONING | {"temperature"},
                            max_tokens_field="max_completion_tokens",
                            thinking=Thinking("effort", efforts if minor < 5 else (), default=default),
                            source=_OPENAI_SOURCE)
    if m.startswith(("gpt-4", "gpt-3.5", "chatgpt-4o")):
        return ModelProfile(family=f"{m.split('-20')[0]} (not a reasoning model)", refuses=frozenset({"reasoning"}),
                            max_tokens_field="max_completion_tokens", source=_OPENAI_SOURCE)
    return None


_XAI_SOURCE = "xAI docs, guides/reasoning (stop and penalties refused by reasoning models; effort only on grok-3-mini)"


def _xai_family(model: str) -> ModelProfile | None:
    m = _bare(model)
    if m.startswith("grok-3-mini"):
        return ModelProfile(family="grok-3-mini", refuses=frozenset({"stop"}),
                            thinking=Thinking("effort", ("low", "high"), always=True, default=True),
                            source=_XAI_SOURCE)
    if m.startswith("grok-4.3"):
        return ModelProfile(family="grok-4.3", refuses=frozenset({"stop"}),
                            thinking=Thinking("effort", ("none", "low", "medium", "high"), default=True),
                            source=_XAI_SOURCE)
    if re.match(r"grok-4\.(5|6)", m):
        efforts = ("low", "medium", "high") + (("xhigh",) if m.startswith("grok-4.6") else ())
        return ModelProfile(family=m[:8], refuses=frozenset({"stop"}),
                            thinking=Thinking("effort", efforts, always=True, default=True), source=_XAI_SOURCE)
    if m.startswith(("grok-4", "grok-code", "grok-build")):
        plain = "non-reasoning" in m
        return ModelProfile(family="xAI's grok-4 family" if m.startswith("grok-4") else "xAI's grok code models",
                            refuses=frozenset() if plain else frozenset({"stop"}),
                            thinking=Thinking("none", always=not plain, default=not plain), source=_XAI_SOURCE)
    return None


_ANTHROPIC_SOURCE = "Anthropic docs, extended thinking (budget >= 1024 and < max_tokens; temperature 1, no top_k); " \
                    "models overview (output limits)"


def _anthropic_family(model: str) -> ModelProfile | None:
    m = _bare(model)
    budget = Thinking("budget", min_budget=1024)
    while_thinking = frozenset({"temperature", "top_p"})
    if m.startswith(("claude-3-5", "claude-3-opus", "claude-3-haiku", "claude-3-sonnet", "claude-2", "claude-instant")):
        return ModelProfile(family=f"{m.split('-20')[0]} (no extended thinking)", wire="anthropic",
                            refuses=frozenset({"reasoning"}), source=_ANTHROPIC_SOURCE)
    newest = re.match(r"claude-(opus-4-[7-9]|opus-[5-9]|sonnet-[5-9]|fable|mythos|haiku-[5-9])", m)
    if newest:
        return ModelProfile(family=f"{m.split('-20')[0]} (adaptive thinking only)", wire="anthropic",
                            refuses=frozenset({"temperature", "top_p"}), max_output=128000,
                            thinking=Thinking("adaptive", ("low", "medium", "high", "xhigh", "max")),
                            source=_ANTHROPIC_SOURCE + "; 400s: thinking.type.enabled, temperature deprecated")
    both = m.startswith(("claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5",
                         "claude-opus-4-6", "claude-sonnet-4-6"))
    caps = {"claude-opus-4-6": 128000, "claude-3-7-sonnet": 64000, "claude-sonnet-4": 64000,
            "claude-haiku-4-5": 64000, "claude-opus-4-5": 64000, "claude-opus-4": 32000}
    cap = next((v for k, v in sorted(caps.items(), key=lambda kv: -len(kv[0])) if m.startswith(k)), None)
    if m.startswith("claude-"):
        return ModelProfile(family=f"{m.split('-20')[0]}", wire="anthropic", reasoning_refuses=while_thinking,
                            exclusive=("temperature", "top_p") if both else (), thinking=budget, max_output=cap,
                            source=_ANTHROPIC_SOURCE + ("; temperature and top_p refused together" if both else ""))
    return None


_GEMINI_SOURCE = "Gemini API docs, thinking (budget ranges; 2.5 Pro cannot stop thinking; Gemini 3 levels)"


def _gemini_family(model: str) -> ModelProfile | None:
    m = _bare(model).removeprefix("models/")
    if m.startswith("gemini-2.5-pro"):
        return ModelProfile(family="Gemini 2.5 Pro", wire="gemini", source=_GEMINI_SOURCE,
                            thinking=Thinking("budget", min_budget=128, max_budget=32768, always=True, default=True))
    if m.startswith("gemini-2.5-flash-lite"):
        return ModelProfile(family="Gemini 2.5 Flash-Lite", wire="gemini", source=_GEMINI_SOURCE,
                            thinking=Thinking("budget", min_budget=512, max_budget=24576))
    if m.startswith("gemini-2.5-flash"):
        return ModelProfile(family="Gemini 2.5 Flash", wire="gemini", source=_GEMINI_SOURCE,
                            thinking=Thinking("budget", max_budget=24576, default=True))
    if re.match(r"gemini-[3-9]", m):
        pro = "-pro" in m
        levels = ("low", "high") if pro else ("minimal", "low", "medium", "high")
        return ModelProfile(family=f"{m.split('-preview')[0]}", wire="gemini", refuses=frozenset({"n"}),
                            thinking=Thinking("level", levels, always=pro, default=True), source=_GEMINI_SOURCE)
    if m.startswith(("gemini-2.0", "gemini-1", "gemma")):
        return ModelProfile(family=f"{m} (no thinking)", wire="gemini", refuses=frozenset({"reasoning"}),
                            source=_GEMINI_SOURCE)
    return None


_DEEPSEEK_SOURCE = "DeepSeek API docs, reasoning model (sampling fields have no effect; logprobs are an error)"


def _deepseek_family(model: str) -> ModelProfile | None:
    if _bare(model).startswith("deepseek-reasoner"):
        return ModelProfile(family="deepseek-reasoner", ignores=frozenset({"temperature", "top_p"}),
                            refuses=frozenset({"logprobs"}), thinking=Thinking("none", always=True, default=True),
                            source=_DEEPSEEK_SOURCE)
    return None


_FAMILIES = {"openai": _openai_family, "openai-responses": _openai_family, "azure": _openai_family,
             "xai": _xai_family, "anthropic": _anthropic_family, "gemini": _gemini_family,
             "deepseek": _deepseek_family}

#: Sources of the per-preset rules (docs/profiles.md lists them with the model rules).
SOURCES: dict[str, str] = {
    "openai": "OpenAI API reference: n up to 128; prompt_cache_key; Batch API at half price",
    "anthropic": "Anthropic docs: no n; prompt caching; Message Batches at half price",
    "groq": "Groq docs, OpenAI compatibility: logprobs, logit_bias, top_logprobs refused; n must be 1",
    "mistral": "Mistral API: max_tokens (max_completion_tokens refused as an extra field, 422)",
    "vllm": "vLLM OpenAI server: n supported", "llamacpp": "llama-server: n up to its slots (/props)",
}


def _cache_wire(wire: str) -> str | None:
    """Whose prompt-cache rules apply on *wire* (the simulator and the Responses API cache as OpenAI does)."""
    return {"sim": "openai", "responses": "openai", "custom": None}.get(wire, wire)


def _preset_profile(preset: str, own: bool) -> ModelProfile:
    """The defaults of every model behind *preset* (``own``: at the preset's own endpoint, not a URL of the user's)."""
    known = PRESETS.get(preset)
    wire = known.wire if known is not None else "custom"
    # A model no family names gets everything sent as asked (its endpoint may still refuse, and teach): an effort
    # on the OpenAI-style wires, a budget where the API takes one (Anthropic's at least 1024 tokens).
    thinking = {"anthropic": Thinking("budget", min_budget=1024), "gemini": Thinking("budget")}.get(
        wire, Thinking("effort"))
    # A preset heavy does not know (a caller's own provider) is not assumed free: its models are priced by id.
    base = ModelProfile(family=f"{preset} models", wire=wire, paid=known is None or known.key_required,
                        thinking=thinking, source=SOURCES.get(preset, ""))
    if preset in _OPENAI_PRESETS:
        base = replace(base, max_tokens_field="max_completion_tokens")
    if preset == "openai-responses":
        base = replace(base, max_tokens_field="max_output_tokens", refuses=frozenset({"seed", "stop", "n"}))
    elif preset == "openai":
        # The Batch API bills at half price wherever OpenAI's batches are served; n and prompt_cache_key are known
        # only of OpenAI's own endpoint (another server behind OPENAI_BASE_URL may refuse them).
        base = replace(base, batch_discount=0.5)
        if own:
            base = replace(base, max_choices=128, auto_n=True, cache_key_field="prompt_cache_key")
    elif preset == "anthropic":
        base = replace(base, batch_discount=0.5, refuses=frozenset({"seed", "logprobs", "n"}))
    elif preset == "gemini":
        base = replace(base, refuses=frozenset({"n"}), max_tokens_field="maxOutputTokens")
    elif preset == "groq":
        base = replace(base, refuses=frozenset({"logprobs", "n"}))
    elif preset == "vllm":
        base = replace(base, max_choices=128, auto_n=True)
    elif preset in ("llamacpp", "local"):
        # llama-server generates up to its slot count per request (asked of its /props); heavy's own build shares
        # an evaluated prefix across its slots, so staggering pays there (measured: docs/benchmarks.md).
        base = replace(base, max_choices=0, stagger_free=preset == "local")
    return base


def _merge(preset: str, base: ModelProfile, family: ModelProfile) -> ModelProfile:
    """The preset's defaults with a model family's rules laid over them. A Responses-only model stays on the
    preset's wire where the preset speaks no Responses API (another vendor's OpenAI-compatible server)."""
    wire = base.wire
    if family.wire == "responses" and preset in _OPENAI_PRESETS:
        wire = "responses"
    refuses = family.refuses | base.refuses
    if wire == "responses":
        refuses |= {"seed", "stop", "n"}  # the Responses API has no such fields
        if family.temperature is not None:  # a reasoning model there refuses even its own temperature
            refuses |= {"temperature"}
    field = "max_output_tokens" if wire == "responses" else (
        family.max_tokens_field if family.max_tokens_field != "max_tokens" else base.max_tokens_field)
    return replace(family, wire=wire, refuses=refuses, max_tokens_field=field,
                   max_choices=1 if "n" in refuses else base.max_choices, auto_n=base.auto_n and "n" not in refuses,
                   cache_key_field=base.cache_key_field, stagger_free=base.stagger_free, paid=base.paid,
                   batch_discount=base.batch_discount if wire == base.wire else None,
                   source=family.source or base.source)


def profile(preset: str, model: str, *, own: bool = True) -> ModelProfile:
    """The static profile of *model* behind *preset* (``own``: at the preset's own endpoint)."""
    base = _preset_profile(preset, own)
    family = _FAMILIES.get(preset)
    found = family(model) if family is not None else None
    merged = _merge(preset, base, found) if found is not None else base
    cache_wire = _cache_wire(merged.wire)
    return replace(merged, cache=cache_rules(cache_wire, model) if cache_wire else None)


# --- what endpoints taught -----------------------------------------------------------------------------------


@dataclass
class _Lessons:
    refuses: set[str] = field(default_factory=set)
    efforts: tuple[str, ...] | None = None
    control: Control | None = None
    no_off: bool = False
    max_tokens_field: str | None = None
    wire: str | None = None
    streams: bool | None = None
    why: dict[str, str] = field(default_factory=dict)


_LESSONS: dict[tuple[str, str, str], _Lessons] = {}
_LOCK = threading.Lock()  # providers on several event loops (ask_sync's threads) may learn at once


def forget() -> None:
    """Forget every lesson endpoints taught this process (a fresh start: tests, or an endpoint that changed)."""
    with _LOCK:
        _LESSONS.clear()


def learned(preset: str, base_url: str, model: str) -> dict[str, str]:
    """What the endpoint at *base_url* taught this process about *model*: field -> why (for notes and tests)."""
    lesson = _LESSONS.get((preset, base_url, model))
    return dict(lesson.why) if lesson else {}


class Profiles:
    """The profiles of one endpoint's models: static knowledge (:func:`profile`) plus what this endpoint refused
    during this process (shared by every ``Profiles`` of the same endpoint). Call it with a model id."""

    def __init__(self, preset: str, base_url: str = "", *, own: bool | None = None) -> None:
        known = PRESETS.get(preset)
        if own is None:  # OpenAI's preset may point anywhere: what its own endpoint offers is known only of it
            own = preset != "openai" or (known is not None and base_url.rstrip("/") == known.base_url)
        self.preset, self.base_url, self.own = preset, base_url.rstrip("/"), own
        self._cache: dict[str, tuple[int, ModelProfile]] = {}

    def __call__(self, model: str) -> ModelProfile:
        lesson = _LESSONS.get((self.preset, self.base_url, model))
        version = id(lesson) + len(lesson.why) if lesson else 0
        hit = self._cache.get(model)
        if hit is not None and hit[0] == version:
            return hit[1]
        base = profile(self.preset, model, own=self.own)
        if lesson is not None:
            base = _taught(base, lesson)
        if len(self._cache) > 256:
            self._cache.clear()
        self._cache[model] = (version, base)
        return base

    def learn(self, model: str, lesson: "Lesson") -> bool:
        """Remember *lesson* for *model* at this endpoint; ``False`` when it teaches nothing new (never loop)."""
        with _LOCK:
            known = _LESSONS.setdefault((self.preset, self.base_url, model), _Lessons())
            key = lesson.key()
            if key in known.why:
                return False
            if lesson.field == "wire":
                known.wire = lesson.value
            elif lesson.field == "max_tokens":
                known.max_tokens_field = lesson.value
            elif lesson.field == "stream":
                known.streams = False
            elif lesson.field == "efforts":
                known.efforts = lesson.value
            elif lesson.field == "control":
                known.control = lesson.value
            elif lesson.field == "no_off":
                known.no_off = True
            else:
                known.refuses.add(lesson.field)
            known.why[key] = lesson.message
            return True


def _taught(base: ModelProfile, lesson: _Lessons) -> ModelProfile:
    thinking = base.thinking
    if lesson.control is not None:
        thinking = replace(thinking, control=lesson.control)
    if lesson.efforts is not None:
        control = thinking.control if thinking.control != "none" else "effort"
        thinking = replace(thinking, control=control, efforts=lesson.efforts)
    if lesson.no_off:
        thinking = replace(thinking, always=True, min_budget=max(thinking.min_budget, 1))
    update: dict[str, Any] = {"refuses": base.refuses | lesson.refuses, "thinking": thinking}
    if lesson.max_tokens_field:
        update["max_tokens_field"] = lesson.max_tokens_field
    if lesson.wire:
        update.update(wire=lesson.wire, max_tokens_field="max_output_tokens", max_choices=1, auto_n=False,
                      refuses=update["refuses"] | {"seed", "stop", "n"})
    if lesson.streams is False:
        update["streams"] = False
    return replace(base, **update)


@dataclass(frozen=True)
class Lesson:
    """What one refusal taught: ``field`` is one of :data:`FIELDS` (dropped from then on), or ``wire``
    (``value``: the wire that serves the model), ``max_tokens`` (``value``: the field to use), ``efforts``
    (``value``: the accepted efforts), ``control`` (``value``: how thinking is set), ``no_off`` (thinking cannot
    be turned off). ``message`` is the endpoint's own words."""

    field: str
    value: Any = None
    message: str = ""

    def key(self) -> str:
        return self.field if self.value is None else f"{self.field}={self.value}"


#: The models docs/profiles.md shows, one per family (``profiles_table()`` renders them; a test keeps it current).
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("openai", "gpt-4.1"), ("openai", "gpt-5-chat-latest"), ("openai", "o3"), ("openai", "o4-mini"),
    ("openai", "gpt-5-mini"), ("openai", "gpt-5.1"), ("openai", "gpt-5.2"), ("openai", "gpt-5.2-chat-latest"),
    ("openai", "gpt-5-pro"), ("openai", "o3-pro"), ("openai", "o1-pro"), ("openai", "gpt-5-codex"),
    ("openai-responses", "gpt-4.1"), ("azure", "gpt-5-mini"),
    ("xai", "grok-4"), ("xai", "grok-4-fast-reasoning"), ("xai", "grok-3-mini"), ("xai", "grok-4.3"),
    ("anthropic", "claude-3-5-haiku-latest"), ("anthropic", "claude-sonnet-4"), ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-opus-4-6"), ("anthropic", "claude-opus-4-7"),
    ("gemini", "gemini-2.0-flash"), ("gemini", "gemini-2.5-flash"), ("gemini", "gemini-2.5-flash-lite"),
    ("gemini", "gemini-2.5-pro"), ("gemini", "gemini-3-pro-preview"), ("gemini", "gemini-3-flash-preview"),
    ("deepseek", "deepseek-reasoner"), ("groq", "llama-3.3-70b-versatile"), ("vllm", "any"), ("local", "local"),
)


def profiles_table() -> str:
    """docs/profiles.md's table: what each example model accepts (from :data:`EXAMPLES`)."""
    rows = ["| model | wire | refuses | while reasoning | temperature | token limit | reasoning control | "
            "n per request | source |", "|---|---|---|---|---|---|---|---|---|"]
    for preset, model in EXAMPLES:
        p = profile(preset, model)
        t = p.thinking
        control = {"none": "none", "effort": "effort", "budget": "budget", "level": "thinkingLevel",
                   "adaptive": "adaptive + effort"}[t.control]
        if t.control in ("effort", "level", "adaptive"):
            control += f" ({', '.join(t.efforts) or 'any'})"
        elif t.control == "budget":
            control += f" ({t.min_budget}-{t.max_budget or 'any'})"
        control += "; always on" if t.always else "; on by default" if t.default else ""
        refused = sorted(p.refuses | {f"{f} (ignored)" for f in p.ignores})
        temperature = "not sent" if "temperature" in p.refuses | p.ignores else \
            f"{p.temperature:g} only" if p.temperature is not None else "any"
        if p.exclusive:
            temperature += ", not with top_p"
        n = {0: "server's slots", 1: "1"}.get(p.max_choices, str(p.max_choices))
        rows.append(f"| `{preset}:{model}` | {p.wire}{'' if p.streams else ' (no streaming)'} | "
                    f"{', '.join(refused) or '—'} | {', '.join(sorted(p.reasoning_refuses)) or '—'} | {temperature} | "
                    f"`{p.max_tokens_field}`{f' ≤ {p.max_output}' if p.max_output else ''} | {control} | {n} | "
                    f"{p.source or '—'} |")
    return "\n".join(rows) + "\n"
