"""A run's ledger: what one run (one ``ask``) has spent against its budget, its shared retry allowance, and the
notes it owes its caller.

It travels in a context variable, so provider wrappers (which are shared across runs and know nothing of
the sampler) can consult the current run's retry budget and leave notes for the hypothesis trace: tasks
created by the sampler inherit the context of the run that created them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic import BaseModel, ConfigDict, Field

from .types import Usage

__all__ = ["Budget", "Ledger", "charge", "current_ledger", "note", "result_note", "collecting_notes", "using_ledger"]


class Budget(BaseModel):
    """Per-run caps. Reaching one stops new calls, cancels outstanding hypotheses, and the strategy
    decides on what arrived (the Result says which cap was hit). Wall time is capped by ``deadline``."""

    model_config = ConfigDict(extra="forbid")

    max_total_tokens: int | None = Field(default=None, gt=0, description="prompt + completion tokens of all calls "
                                         "(each hypothesis's own limit is SamplingParams.max_tokens)")
    max_cost_usd: float | None = Field(default=None, gt=0, description="dollars, from the price table")


class Ledger:
    """One run's spend so far (usage, cost), its shared retry allowance and its notes."""

    def __init__(self, budget: Budget | None = None, *, retries: int = 0,
                 price: Callable[[str, Usage], float | None] | None = None) -> None:
        self.budget = budget or Budget()
        self.retries_left = retries
        self.retries_used = 0
        self.usage = Usage()
        self.cost_usd: float | None = 0.0
        self._price = price
        #: What the run should tell its caller (the Result's ``notes``): fields a model refused, lessons learned.
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        """Add *text* to the run's notes (once, however many calls say it)."""
        if text not in self.notes:
            self.notes.append(text)

    def take_retry(self) -> bool:
        """Consume one retry from the run's shared allowance; ``False`` when it is spent."""
        if self.retries_left <= 0:
            return False
        self.retries_left -= 1
        self.retries_used += 1
        return True

    def charge(self, model: str, usage: Usage) -> None:
        """Add one call's usage (successful, failed or cancelled alike: all of it is paid for)."""
        self.usage = self.usage + usage
        if self._price is not None and self.cost_usd is not None:
            c = self._price(model, usage)
            self.cost_usd = None if c is None else self.cost_usd + c

    def exhausted(self) -> str | None:
        """Which cap is spent (``"tokens"`` or ``"cost"``), or ``None``."""
        b = self.budget
        if b.max_total_tokens is not None and self.usage.total_tokens >= b.max_total_tokens:
            return "tokens"
        if b.max_cost_usd is not None and self.cost_usd is not None and self.cost_usd >= b.max_cost_usd:
            return "cost"
        return None


_LEDGER: ContextVar[Ledger | None] = ContextVar("heavy_ledger", default=None)
_NOTES: ContextVar[list[str] | None] = ContextVar("heavy_call_notes", default=None)


def current_ledger() -> Ledger | None:
    return _LEDGER.get()


@contextmanager
def using_ledger(state: Ledger) -> Iterator[Ledger]:
    token = _LEDGER.set(state)
    try:
        yield state
    finally:
        _LEDGER.reset(token)


def note(text: str) -> None:
    """Leave a note for the trace of the hypothesis (or aggregator call) being made, if any."""
    notes = _NOTES.get()
    if notes is not None:
        notes.append(text)


def result_note(text: str) -> None:
    """Leave a note for the whole run (the Result's ``notes``), if a run is going on."""
    ledger = _LEDGER.get()
    if ledger is not None:
        ledger.note(text)


def charge(model: str, usage: Usage) -> None:
    """Charge one call's *usage* to the run going on, if any (see :meth:`Ledger.charge`)."""
    ledger = _LEDGER.get()
    if ledger is not None:
        ledger.charge(model, usage)


@contextmanager
def collecting_notes() -> Iterator[list[str]]:
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)
