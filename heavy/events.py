"""Progress events emitted while a run works: the CLI renders them, the proxy will stream them.

Events are small slotted dataclasses rather than pydantic models because token deltas are on the hot
path (one per streamed chunk per hypothesis). ``kind`` names the type for consumers that switch on it.
An event sink is any callable taking one event; sinks must be quick and must not raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import Hypothesis, Result

__all__ = [
    "Event",
    "HypothesisStarted",
    "TokenDelta",
    "HypothesisFinished",
    "HypothesisFailed",
    "HypothesisRestarted",
    "ToolCallStarted",
    "ToolCallFinished",
    "StageStarted",
    "AggregatorDelta",
    "Final",
    "EventSink",
    "broadcast",
]


@dataclass(slots=True)
class Event:
    kind = "event"


@dataclass(slots=True)
class HypothesisStarted(Event):
    index: int
    model: str
    stage: str = "sample"
    kind = "hypothesis_started"


@dataclass(slots=True)
class TokenDelta(Event):
    index: int
    text: str
    reasoning: str = ""
    kind = "token_delta"


@dataclass(slots=True)
class HypothesisFinished(Event):
    hypothesis: "Hypothesis"
    kind = "hypothesis_finished"


@dataclass(slots=True)
class HypothesisFailed(Event):
    hypothesis: "Hypothesis"
    kind = "hypothesis_failed"


@dataclass(slots=True)
class HypothesisRestarted(Event):
    """A stream broke mid-way; the hypothesis is re-sampled from scratch (its shown text is void)."""

    index: int
    reason: str
    kind = "hypothesis_restarted"


@dataclass(slots=True)
class ToolCallStarted(Event):
    """Hypothesis ``index`` runs a tool (step ``step`` of its agent loop, or a verification check)."""

    index: int
    step: int
    tool: str
    arguments: dict[str, Any]
    kind = "tool_call_started"


@dataclass(slots=True)
class ToolCallFinished(Event):
    """The tool run of ``ToolCallStarted`` ended: ``ok``, an excerpt of its result and how long it took."""

    index: int
    step: int
    tool: str
    ok: bool
    result: str
    seconds: float
    kind = "tool_call_finished"


@dataclass(slots=True)
class StageStarted(Event):
    """A strategy step: ``name`` is e.g. "sample", "vote", "judge", "synthesize"; ``detail`` is free."""

    name: str
    detail: dict[str, Any] | None = None
    kind = "stage_started"


@dataclass(slots=True)
class AggregatorDelta(Event):
    """Streamed text of a judge/aggregator call (e.g. the synthesized answer as it is written)."""

    purpose: str
    text: str
    kind = "aggregator_delta"


@dataclass(slots=True)
class Final(Event):
    result: "Result"
    kind = "final"


EventSink = Callable[[Event], None]


def _drop(_: Event) -> None:
    return None


def broadcast(*sinks: EventSink | None) -> EventSink:
    """One sink that forwards to each of *sinks* (``None`` entries ignored)."""
    live = [s for s in sinks if s is not None]
    if not live:
        return _drop
    if len(live) == 1:
        return live[0]

    def emit(event: Event) -> None:
        for sink in live:
            sink(event)

    return emit
