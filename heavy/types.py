"""Public data types: messages, sampling parameters, hypotheses and results.

All are pydantic v2 models with ``extra="forbid"`` so a typo in an option is an error, not a silent
no-op. The same models validate library arguments, CLI ``-o`` flags and (later) the proxy body.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "Message",
    "ToolSpec",
    "ToolChoice",
    "ClientTools",
    "ToolCall",
    "ToolStep",
    "SamplingParams",
    "Usage",
    "TokenLogprob",
    "Hypothesis",
    "AggregatorCall",
    "Decision",
    "Timings",
    "Result",
    "as_messages",
    "as_tool_specs",
    "EFFORT_BUDGETS",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Role = Literal["system", "user", "assistant", "tool", "developer"]


class ToolSpec(_Strict):
    """A tool offered to a model: its name, what it does, and the JSON schema of its arguments."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


def as_tool_specs(tools: Any) -> list[ToolSpec]:
    """Tool definitions as ToolSpecs: each a ToolSpec, OpenAI's ``{"type": "function", "function": {name,
    description, parameters}}`` or a plain ``{name, description, parameters}``; :class:`ValueError` names a
    bad one. (OpenAI's ``strict`` flag is dropped: no other wire format has it.)"""
    if isinstance(tools, (ToolSpec, dict)) or not isinstance(tools, (list, tuple)):
        raise ValueError("tools must be a list of function definitions, e.g. [{\"type\": \"function\", "
                         "\"function\": {\"name\": \"get_weather\", \"parameters\": {...}}}]")
    out: list[ToolSpec] = []
    for i, tool in enumerate(tools):
        if isinstance(tool, ToolSpec):
            out.append(tool)
            continue
        if not isinstance(tool, dict):
            raise ValueError(f"tools.{i}: a function definition is an object, not {type(tool).__name__} "
                             f"(heavy's own tools, such as python, are Heavy(tools=[...]))")
        if "function" in tool or "type" in tool:
            if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
                raise ValueError(f"tools.{i}: only {{\"type\": \"function\", \"function\": {{...}}}} tools are "
                                 "supported")
            tool = tool["function"]
        fields = {k: v for k, v in tool.items() if k in ("name", "description", "parameters")}
        if not isinstance(fields.get("name"), str):
            raise ValueError(f"tools.{i}: the function needs a name")
        if fields.get("parameters") is None:
            fields.pop("parameters", None)
        if fields.get("description") is None:
            fields.pop("description", None)
        try:
            out.append(ToolSpec.model_validate(fields))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"tools.{i}.function{'.' + where if where else ''}: {first['msg']}") from None
    seen: dict[str, int] = {}  # linear: a request may carry thousands of tools
    for i, spec in enumerate(out):
        first = seen.setdefault(spec.name, i)
        if first != i:
            raise ValueError(f"tools.{i}: the name {spec.name!r} is defined twice (also tools.{first})")
    return out


class ToolChoice(_Strict):
    """Whether the model may (``auto``), must (``required``) or must not (``none``) call the offered tools;
    ``name`` (with ``required``) forces that one tool. :meth:`parse` reads OpenAI's ``tool_choice``."""

    mode: Literal["auto", "none", "required"] = "auto"
    name: str | None = None

    @classmethod
    def parse(cls, value: Any) -> "ToolChoice":
        """OpenAI's forms: ``"auto"``, ``"none"``, ``"required"``, ``{"type": "function", "function":
        {"name": N}}``; ``None`` is auto. :class:`ValueError` for anything else."""
        if value is None:
            return cls()
        if isinstance(value, ToolChoice):
            return value
        if value in ("auto", "none", "required"):
            return cls(mode=value)
        if isinstance(value, dict) and value.get("type") == "function" and isinstance(value.get("function"), dict) \
                and isinstance(value["function"].get("name"), str):
            return cls(mode="required", name=value["function"]["name"])
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:39] + "…"  # a client's value, never echoed whole
        raise ValueError(f"tool_choice {shown}: give 'auto', 'none', 'required' or "
                         "{\"type\": \"function\", \"function\": {\"name\": ...}}")

    def openai(self) -> str | dict[str, Any]:
        """This choice as OpenAI's ``tool_choice`` value."""
        return {"type": "function", "function": {"name": self.name}} if self.name else self.mode


class ClientTools(_Strict):
    """The caller's own tools, offered to every hypothesis (``Heavy.ask(tools=...)``, a ``heavy serve``
    client's ``tools``): heavy never runs them; a hypothesis that calls them ends with its calls, and the
    calls are voted on (:mod:`heavy.toolvote`). Unlike heavy's tools (``Heavy(tools=["python"])``), which
    hypotheses run while they answer."""

    specs: list[ToolSpec] = Field(min_length=1)
    choice: ToolChoice = Field(default_factory=ToolChoice)
    parallel: bool | None = Field(default=None, description="parallel_tool_calls (None: the API's default)")

    @property
    def names(self) -> set[str]:
        return {t.name for t in self.specs}


class ToolCall(_Strict):
    """A tool call a model made. ``extra`` keeps what a wire format needs to send the call back
    verbatim (e.g. Gemini's ``thoughtSignature``); ``arguments_error`` says why arguments did not parse."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    arguments_error: str | None = None
    extra: dict[str, Any] | None = None


class ToolStep(_Strict):
    """One tool run inside a hypothesis (an agent step, or a verification check)."""

    step: int
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    result: str = Field("", description="excerpt of what the model was shown")
    ok: bool = True
    seconds: float = 0.0
    protocol: str = Field("native", description="native | text | verify")
    details: dict[str, Any] | None = None


class Message(_Strict):
    """One chat message. ``content`` is text, or a list of content parts passed through untouched
    (so image/audio parts reach providers that understand them exactly as the caller wrote them).

    Tool use: an assistant message may carry ``tool_calls``; a ``tool`` message answers one of them
    (``tool_call_id``, and the tool's ``name``, which Gemini needs)."""

    role: Role
    content: str | list[dict[str, Any]]
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @field_validator("content")
    @classmethod
    def _parts_have_type(cls, v: str | list[dict[str, Any]]) -> str | list[dict[str, Any]]:
        if isinstance(v, list):
            for i, part in enumerate(v):
                if "type" not in part:
                    raise ValueError(f"content part {i} has no 'type' (e.g. 'text' or 'image_url')")
        return v

    def text(self) -> str:
        """The text of this message (text parts joined; other parts left out)."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


def as_messages(prompt: str | Message | list[Message] | list[dict[str, Any]], system: str | None = None) -> list[Message]:
    """Normalize a question string, one message or a message list into a validated message list."""
    if isinstance(prompt, str):
        msgs = [Message(role="user", content=prompt)]
    elif isinstance(prompt, Message):
        msgs = [prompt]
    else:
        msgs = [m if isinstance(m, Message) else Message.model_validate(m) for m in prompt]
    if not msgs:
        raise ValueError("no messages: give a question or at least one message")
    if system is not None:
        msgs = [Message(role="system", content=system)] + [m for m in msgs if m.role != "system"]
    return msgs


#: Thinking tokens of each reasoning effort, where a provider takes a budget (Anthropic, Gemini) and the
#: caller gave an effort: Google's own mapping of OpenAI's efforts onto Gemini budgets.
EFFORT_BUDGETS: dict[str, int] = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576,
                                  "xhigh": 32768, "max": 65536}
#: Reasoning efforts, weakest first (OpenAI's values; which a model takes is its profile's: heavy.profiles).
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class SamplingParams(_Strict):
    """Sampling parameters common to every provider; ``None`` means "provider default"."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    stop: str | list[str] | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    reasoning_effort: Effort | None = None
    thinking_budget: int | None = Field(default=None, ge=0)

    def thinking_tokens(self) -> int | None:
        """The thinking budget in tokens: ``thinking_budget``, else the effort's (:data:`EFFORT_BUDGETS`)."""
        if self.thinking_budget is not None:
            return self.thinking_budget
        return EFFORT_BUDGETS[self.reasoning_effort] if self.reasoning_effort else None

    def effort(self) -> str | None:
        """The reasoning effort: ``reasoning_effort``, else the one whose budget covers ``thinking_budget``
        (0: none, up to 1024 tokens low, up to 8192 medium, beyond high)."""
        if self.reasoning_effort or self.thinking_budget is None:
            return self.reasoning_effort
        if self.thinking_budget == 0:
            return "none"
        return "low" if self.thinking_budget <= 1024 else "medium" if self.thinking_budget <= 8192 else "high"

    def merged(self, **overrides: Any) -> "SamplingParams":
        """A validated copy with the non-None *overrides* applied."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return SamplingParams.model_validate(data)

    def with_seed(self, seed: int) -> "SamplingParams":
        """A copy with another seed (hot path: one per hypothesis, so no re-validation of the rest)."""
        return self.model_copy(update={"seed": seed})


class Usage(_Strict):
    """Token usage as reported by the API (reasoning and cache tokens where the API reports them).

    ``prompt_tokens`` is every input token of the call, however it was billed: uncached input, plus
    ``cache_read_tokens`` (read from the provider's prompt cache, billed at its cached-input price) and
    ``cache_write_tokens`` (written to it, billed at its cache-write price: Anthropic charges more for a write).
    A provider that reports no caching leaves both at 0. ``shared_prompt_tokens`` are prompt tokens a call
    used without sending them: its share of one request that generated several hypotheses (native ``n``,
    :mod:`heavy.fanout`), i.e. what a fan-out of separate requests would have sent on top. Old records'
    ``cached_tokens`` is read as ``cache_read_tokens``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cache_read_tokens: int = Field(0, validation_alias=AliasChoices("cache_read_tokens", "cached_tokens"))
    cache_write_tokens: int = 0
    shared_prompt_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def uncached_tokens(self) -> int:
        """Prompt tokens billed at the plain input price (neither read from nor written to a cache)."""
        return max(0, self.prompt_tokens - self.cache_read_tokens - self.cache_write_tokens)

    @property
    def cached_tokens(self) -> int:
        """The former name of :attr:`cache_read_tokens` (OpenAI's ``prompt_tokens_details.cached_tokens``)."""
        return self.cache_read_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{name: getattr(self, name) + getattr(other, name) for name in _USAGE_FIELDS})

    def __sub__(self, other: "Usage") -> "Usage":
        return Usage(**{name: getattr(self, name) - getattr(other, name) for name in _USAGE_FIELDS})

    @staticmethod
    def sum(items: "list[Usage]") -> "Usage":
        total = Usage()
        for u in items:
            total = total + u
        return total


_USAGE_FIELDS = tuple(Usage.model_fields)


class TokenLogprob(_Strict):
    token: str
    logprob: float
    top: dict[str, float] | None = None


#: ``Hypothesis.route`` of a program hypothesis (:mod:`heavy.tools.program`); reasoning chains have ``None``.
PROGRAM_ROUTE = "program"


class Hypothesis(_Strict):
    """One sampled answer, or the record of a sample that failed or was cancelled."""

    index: int
    model: str
    status: Literal["ok", "failed", "cancelled"] = "ok"
    text: str = ""
    reasoning: str | None = None
    answer: str | None = Field(default=None, description="final answer extracted from text, if any")
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    seed: int | None = None
    request_id: str | None = None
    logprobs: list[TokenLogprob] | None = None
    error: str | None = None
    error_type: str | None = None
    trace: list[str] | None = Field(default=None, description="retries, restarts and other notes of this call")
    usage_estimated: bool = Field(default=False, description="usage estimated (cancelled mid-stream), not reported")
    steps: list[ToolStep] | None = Field(default=None, description="tool runs of this hypothesis (agents, checks)")
    weight: float | None = Field(default=None, description="vote weight when a check lowered it (default 1)")
    route: str | None = Field(default=None, description="'program' for a program hypothesis (its code was run "
                              "and what it printed is its answer); None for a reasoning chain")
    tool_calls: list[ToolCall] | None = Field(default=None, description="the caller's tools this hypothesis "
                                              "called instead of answering (tools offered to ask(tools=...))")

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class AggregatorCall(_Strict):
    """One judge/aggregator call made while deciding."""

    purpose: str
    model: str
    text: str = ""
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    error: str | None = None
    trace: list[str] | None = None


class Decision(_Strict):
    """How the final answer was chosen. ``rationale`` is the one-paragraph human explanation."""

    method: str = Field(description="vote | judge | synthesize | fallback:… (what finally decided)")
    path: list[str] = Field(default_factory=list, description="steps taken, e.g. ['sample', 'vote']")
    rationale: str = ""
    votes: dict[str, int] | None = Field(default=None, description="answer -> number of hypotheses")
    no_answer: int = Field(default=0, description="successful hypotheses with no extractable answer")
    winner: int | None = Field(default=None, description="index of the chosen hypothesis, if one was chosen")
    scores: dict[str, float] | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Timings(_Strict):
    started_at: float = 0.0
    total_s: float = 0.0
    sampling_s: float = 0.0
    aggregation_s: float = 0.0


class Result(_Strict):
    """The outcome of a Heavy run: the answer, and everything needed to see why it won."""

    answer: str = Field(description="the final answer (extracted when possible, else the final text)")
    text: str = Field(description="the full final text")
    strategy: str
    decision: Decision
    hypotheses: list[Hypothesis]
    aggregator_calls: list[AggregatorCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage, description="all hypotheses plus aggregator calls")
    timings: Timings = Field(default_factory=Timings)
    stopped_early: bool = False
    deadline_hit: bool = False
    budget_hit: str | None = Field(default=None, description="which per-run cap stopped sampling, if any")
    cost_usd: float | None = Field(default=None, description="from the price table; None when a price is unknown")
    saved_usd: float | None = Field(default=None, description="what prompt caching and native n saved against "
                                    "separate uncached requests at list prices (usage's cache reads, writes and "
                                    "shared prompt tokens); None when a price is unknown")
    retries: int = Field(default=0, description="retries spent from the run's shared retry budget")
    tool_calls: list[ToolCall] | None = Field(default=None, description="the decided call(s) of the caller's "
                                              "tools, when the hypotheses chose to call rather than answer")
    notes: list[str] = Field(default_factory=list, description="what heavy changed in the requests and why: fields "
                             "a model refuses that were set explicitly, refusals learned from an endpoint")

    @property
    def successes(self) -> list[Hypothesis]:
        return [h for h in self.hypotheses if h.ok]

    def explain(self) -> str:
        """A short human explanation of why this answer won."""
        d = self.decision
        lines = [f"strategy {self.strategy}: {' -> '.join(d.path) or d.method}"]
        if d.votes:
            total = sum(d.votes.values())
            dist = ", ".join(f"{a!r}: {c}" for a, c in sorted(d.votes.items(), key=lambda kv: -kv[1]))
            lines.append(f"votes ({total} with an answer, {d.no_answer} without): {dist}")
        if d.rationale:
            lines.append(d.rationale)
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
