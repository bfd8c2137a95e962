"""Dependency-free SVG line charts for ``heavy eval --plot`` (accuracy vs N, accuracy vs tokens) and ``heavy tune
--plot`` (accuracy vs tokens per configuration, the frontier as a line)."""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from html import escape
from typing import Any

__all__ = ["line_chart", "side_by_side", "accuracy_svg"]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 460, 320, 56, 130, 36, 48


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step) + 1)]


def line_chart(series: dict[str, Sequence[tuple[float, float]]], *, title: str, xlabel: str, ylabel: str,
               log2_x: bool = False, y_range: tuple[float, float] | None = (0.0, 1.0),
               connect: Container[str] | None = None) -> str:
    """An SVG ``<g>`` fragment (W×H) with one line per series; points are (x, y). With *connect*, only the
    series named there are lines; the others are their points alone."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return f'<g><text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text></g>'
    fx = (lambda v: math.log2(v)) if log2_x else (lambda v: v)
    xs = [fx(x) for x, _ in pts]
    x0, x1 = min(xs), max(xs)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = y_range or (min(y for _, y in pts), max(y for _, y in pts))
    if y0 == y1:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def sx(v: float) -> float:
        return PAD_L + (fx(v) - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return PAD_T + (1 - (v - y0) / (y1 - y0)) * ph

    out = [f'<text x="{PAD_L + pw / 2}" y="20" text-anchor="middle" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{PAD_L}" x2="{PAD_L + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#eee"/>')
        label = f"{t:.0%}" if y_range == (0.0, 1.0) else f"{t:g}"
        out.append(f'<text x="{PAD_L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="11">{label}</text>')
    xticks = sorted({x for x, _ in pts}) if log2_x else _ticks(min(x for x, _ in pts), max(x for x, _ in pts))
    for t in xticks:
        out.append(f'<text x="{sx(t):.1f}" y="{PAD_T + ph + 16}" text-anchor="middle" font-size="11">{t:g}</text>')
    out.append(f'<text x="{PAD_L + pw / 2}" y="{H - 8}" text-anchor="middle" font-size="12">{escape(xlabel)}</text>')
    out.append(f'<text x="14" y="{PAD_T + ph / 2}" text-anchor="middle" font-size="12" '
               f'transform="rotate(-90 14 {PAD_T + ph / 2})">{escape(ylabel)}</text>')
    for i, (name, s) in enumerate(series.items()):
        color = _COLORS[i % len(_COLORS)]
        ordered = sorted(s)
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ordered)
        if connect is None or name in connect:
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>' for x, y in ordered]
        ly = PAD_T + 14 + 18 * i
        out.append(f'<line x1="{PAD_L + pw + 10}" x2="{PAD_L + pw + 28}" y1="{ly - 4}" y2="{ly - 4}" '
                   f'stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{PAD_L + pw + 32}" y="{ly}" font-size="11">{escape(name)}</text>')
    return "<g>" + "".join(out) + "</g>"


def side_by_side(*charts: str) -> str:
    """A complete SVG document with the chart fragments laid out left to right."""
    body = "".join(f'<g transform="translate({i * W},0)">{c}</g>' for i, c in enumerate(charts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W * len(charts)}" height="{H}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{body}</svg>\n')


def accuracy_svg(summary: Sequence[Any]) -> str:
    """Accuracy vs N and accuracy vs tokens per question, one line per strategy, side by side; *summary*
    holds rows with ``strategy``, ``n``, ``accuracy`` and ``tokens_per_question`` (``heavy eval``'s)."""
    by_n: dict[str, list[tuple[float, float]]] = {}
    by_tokens: dict[str, list[tuple[float, float]]] = {}
    for s in summary:
        by_n.setdefault(s.strategy, []).append((s.n, s.accuracy))
        by_tokens.setdefault(s.strategy, []).append((s.tokens_per_question, s.accuracy))
    return side_by_side(
        line_chart(by_n, title="accuracy vs N", xlabel="N (hypotheses)", ylabel="accuracy", log2_x=True),
        line_chart(by_tokens, title="accuracy vs tokens", xlabel="tokens per question", ylabel="accuracy"),
    )
