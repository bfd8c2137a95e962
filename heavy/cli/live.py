"""The rich live view of ``heavy ask``, on stderr: one panel per hypothesis while they stream, then how
the answer was decided. Only used when stderr is a terminal (or ``--live``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..events import (AggregatorDelta, Event, HypothesisFailed, HypothesisFinished, HypothesisRestarted,
                      HypothesisStarted, StageStarted, TokenDelta, ToolCallFinished, ToolCallStarted)
from ..types import Result

_TAIL_CHARS = 100


@dataclass
class _Row:
    model: str
    started: float = field(default_factory=time.monotonic)
    status: str = "running"
    tail: str = ""
    pieces: int = 0
    tokens: int | None = None
    seconds: float | None = None
    answer: str | None = None
    tool_calls: int = 0


class LiveView:
    """Event sink + context manager that renders a run on stderr."""

    def __init__(self, n: int, question: str, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.question = question.strip().splitlines()[0][:100] if question.strip() else ""
        self.rows: dict[int, _Row] = {}
        self.stage = "starting"
        self.aggregate = ""
        self._live = Live(console=self.console, refresh_per_second=8, transient=False,
                          get_renderable=self._render)

    def __enter__(self) -> "LiveView":
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._live.__exit__(*exc)

    def on_event(self, event: Event) -> None:
        if isinstance(event, HypothesisStarted):
            self.rows[event.index] = _Row(model=event.model)
        elif isinstance(event, TokenDelta):
            row = self.rows.get(event.index)
            if row:
                row.tail = (row.tail + (event.text or event.reasoning))[-_TAIL_CHARS:]
                row.pieces += 1
        elif isinstance(event, (HypothesisFinished, HypothesisFailed)):
            h = event.hypothesis
            row = self.rows.setdefault(h.index, _Row(model=h.model))
            row.status = h.status if h.ok else f"{h.status}: {(h.error or '')[:60]}"
            row.tokens = h.usage.completion_tokens
            row.seconds = h.latency_s
            row.answer = h.answer
            if h.ok:
                row.tail = h.text[-_TAIL_CHARS:]
        elif isinstance(event, ToolCallStarted):
            row = self.rows.get(event.index)
            if row:
                row.tail = (row.tail + f" [running {event.tool}…] ")[-_TAIL_CHARS:]
        elif isinstance(event, ToolCallFinished):
            row = self.rows.get(event.index)
            if row:
                row.tool_calls += 1
                mark = "ok" if event.ok else "failed"
                row.tail = (row.tail + f" [{event.tool} {mark} in {event.seconds:.1f}s: {event.result[:40]}] ")[-_TAIL_CHARS:]
        elif isinstance(event, HypothesisRestarted):
            row = self.rows.get(event.index)
            if row:
                row.tail, row.pieces = "[stream broke; re-sampling] ", 0
        elif isinstance(event, StageStarted):
            self.stage = event.name
        elif isinstance(event, AggregatorDelta):
            self.aggregate = (self.aggregate + event.text)[-400:]

    def _render(self) -> Any:
        panels = []
        for index in sorted(self.rows):
            r = self.rows[index]
            secs = r.seconds if r.seconds is not None else time.monotonic() - r.started
            style = {"running": "yellow", "ok": "green"}.get(r.status, "red")
            tokens = r.tokens if r.tokens is not None else r.pieces
            title = f"#{index} {r.model}"
            subtitle = f"{r.status.split(':')[0]} · {tokens} tok · {secs:.1f}s" + (
                f" · {r.tool_calls} tool" if r.tool_calls else "") + (f" · answer {r.answer}" if r.answer else "")
            body = Text(r.tail.replace("\n", " ").strip()[-_TAIL_CHARS:] or "…", overflow="fold")
            panels.append(Panel(body, title=title, subtitle=subtitle, border_style=style, width=40, height=5))
        header = Text(f"heavy · {self.stage} · {self.question}", style="bold")
        parts: list[Any] = [header, Columns(panels)]
        if self.aggregate:
            parts.append(Panel(Text(self.aggregate), title="aggregator", border_style="cyan"))
        return Group(*parts)

    def print_decision(self, result: Result) -> None:
        """After the run: the vote table and the rationale (stderr)."""
        d = result.decision
        if d.votes:
            self.console.print(Text(f"{result.strategy}: {' → '.join(d.path)}", style="bold"))
            table = Table(show_edge=False)
            table.add_column("answer")
            table.add_column("votes", justify="right")
            for answer, count in sorted(d.votes.items(), key=lambda kv: -kv[1]):
                mark = " ✓" if answer == result.answer else ""
                table.add_row(f"{answer}{mark}", str(count))
            if d.no_answer:
                table.add_row("(no answer)", str(d.no_answer))
            self.console.print(table)
        if d.rationale:
            self.console.print(Text(d.rationale, style="dim"))
        u, t = result.usage, result.timings
        self.console.print(Text(
            f"{len(result.successes)}/{len(result.hypotheses)} hypotheses ok · {u.total_tokens} tokens · "
            f"{t.total_s:.1f}s (sampling {t.sampling_s:.1f}s)", style="dim"))
        for note in result.notes:
            self.console.print(Text(f"note: {note}", style="yellow"))
