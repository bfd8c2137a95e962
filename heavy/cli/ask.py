"""``heavy ask``: one question, N hypotheses, one answer on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .. import constants as C
from . import fail, run_guarded


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-o key=value`` pairs; values are read as JSON when they parse (numbers, true/false, lists)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"option {pair!r} is not key=value (e.g. -o early_stop=true)")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def read_question(question: str | None) -> str:
    if question in (None, "-"):
        if sys.stdin is None or sys.stdin.isatty():
            fail('no question: give it as an argument (heavy ask "...") or on stdin')
        question = sys.stdin.read()
    if not question.strip():
        fail("the question is empty")
    return question


@click.command()
@click.argument("question", required=False)
@click.option("-m", "--model", "models", multiple=True, metavar="PROVIDER:MODEL",
              help="Sampling model; repeat to round-robin several. Default: sim (simulated, not a real model).")
@click.option("-n", "n", type=int, default=C.DEFAULT_N, show_default=True, help="Number of hypotheses.")
@click.option("-s", "--strategy", default=C.DEFAULT_STRATEGY, show_default=True, help="See `heavy strategies`.")
@click.option("--aggregator-model", default=None, metavar="PROVIDER:MODEL",
              help="Model for judge/synthesis calls (default: the first sampling model).")
@click.option("--system", default=None, help="System prompt.")
@click.option("-t", "--temperature", type=float, default=C.DEFAULT_TEMPERATURE, show_default=True)
@click.option("--max-tokens", type=int, default=None)
@click.option("--seed", type=int, default=None, help="Base seed; hypothesis i uses seed+i.")
@click.option("--timeout", type=float, default=None, help="Seconds allowed for each hypothesis.")
@click.option("--deadline", type=float, default=None,
              help="Seconds for the whole sampling phase; late hypotheses are cancelled, the rest decide.")
@click.option("--min-successes", type=int, default=1, show_default=True)
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Strategy option (repeatable).")
@click.option("--base-url", default=None, help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole Result as one JSON object.")
@click.option("--live/--no-live", default=None, help="Live view on stderr (default: when stderr is a terminal).")
def ask(question: str | None, models: tuple[str, ...], n: int, strategy: str, aggregator_model: str | None,
        system: str | None, temperature: float, max_tokens: int | None, seed: int | None, timeout: float | None,
        deadline: float | None, min_successes: int, options: tuple[str, ...], base_url: str | None,
        as_json: bool, live: bool | None) -> None:
    """Ask QUESTION (or stdin): sample N hypotheses in parallel, decide, print only the answer."""
    text = read_question(question)
    strategy_options = parse_options(options)

    def go() -> None:
        from ..api import Heavy

        h = Heavy(
            model=list(models) or "sim", n=n, strategy=strategy, aggregator_model=aggregator_model,
            base_url=base_url, system=system, temperature=temperature, max_tokens=max_tokens, seed=seed,
            timeout=timeout, deadline=deadline, min_successes=min_successes, options=strategy_options,
        )
        show_live = sys.stderr.isatty() if live is None else live
        if show_live:
            from .live import LiveView

            with LiveView(n=n, question=text) as view:
                result = h.ask_sync(text, on_event=view.on_event)
            view.print_decision(result)
        else:
            result = h.ask_sync(text)
        if as_json:
            click.echo(result.model_dump_json())
        else:
            click.echo(result.answer)

    run_guarded(go)
