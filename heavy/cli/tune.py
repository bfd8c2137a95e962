"""``heavy tune``: the user's own data chooses the strategy (the logic is :mod:`heavy.evaluation.tune`)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from ..settings import EVAL
from . import fail, run_guarded
from .flags import run_flags


@click.command(name="tune")
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("--results", "results_dir", required=True, type=click.Path(),
              help="Folder of this tuning: its pool (pool.jsonl, in heavy eval --record's format: put a recorded pool "
                   "there to reuse it) and its decisions. Running the same command again resumes it.")
@click.option("--ns", default="1,2,4,8", show_default=True, help="Comma-separated Ns to compare.")
@click.option("--strategies", default=None,
              help="Comma-separated strategies to compare [default: every registered one that applies].")
# Their own names: run_flags' --max-tokens (a hypothesis's token limit) is `max_tokens`, and a shared name would
# take the run's limit for the budget (and drop it from the run).
@click.option("--max-tokens-per-question", "budget_tokens", type=click.FloatRange(0, min_open=True), default=None,
              metavar="T", help="Budget: recommend only configurations using at most T tokens per question.")
@click.option("--max-calls-per-question", "budget_calls", type=click.FloatRange(0, min_open=True), default=None,
              metavar="C", help="Budget: recommend only configurations making at most C model calls per question.")
@click.option("--split-seed", type=int, default=0, show_default=True,
              help="Seed of the split into a tune half and a check half (stratified by a row's 'category').")
@click.option("--concurrency", type=click.IntRange(1), default=4, show_default=True, help="Questions in flight at once.")
@click.option("--limit", type=int, default=None, help="Only the first K questions (after --offset).")
@click.option("--offset", type=int, default=0)
@run_flags(EVAL)
@click.option("--json", "as_json", is_flag=True, help='Print one JSON object: {"rows": [...], "recommendation": {...}}.')
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Write an SVG of accuracy vs tokens per configuration, the frontier drawn, for each half.")
@click.option("--write-config", is_flag=True,
              help="Write the recommendation into the config file's [defaults] (HEAVY_CONFIG, else "
                   "~/.config/heavy/config.toml), saying where it came from; the file's other lines stay.")
def tune_command(dataset: str, results_dir: str, ns: str, strategies: str | None, budget_tokens: float | None,
                 budget_calls: float | None, split_seed: int, concurrency: int, limit: int | None, offset: int,
                 as_json: bool, plot_path: str | None, write_config: bool, **flags: Any) -> None:
    """Choose the strategy on your own DATASET: sample each question once into a pool, replay every configuration
    that applies on it (strategies at each N, the options that matter), and recommend the best one on a tune half,
    reported by a check half it was not chosen on.

    Only judge, synthesis and check calls are live. Run options default to the config file and HEAVY_<OPTION>
    variables, as for `heavy eval`.
    """
    if flags.get("n") is not None:
        fail("heavy tune compares every N of --ns (default 1,2,4,8): drop -n")
    if flags.get("verify") is not None:
        fail("heavy tune tries --verify python itself wherever the python tool is on (--tools python): drop --verify")
    try:
        n_values = sorted({int(v) for v in ns.split(",") if v.strip()})
    except ValueError:
        fail(f"--ns takes comma-separated integers, got {ns!r}")
    from ..config import run_settings

    settings = run_guarded(run_settings, flags)
    names = [s.strip() for s in strategies.split(",") if s.strip()] if strategies else None

    def go() -> None:
        import asyncio

        from ..evaluation import load_items
        from ..evaluation.tune import categories_of, tune

        items = load_items(dataset, limit=limit, offset=offset)
        report = asyncio.run(tune(
            settings, items, results_dir, ns=n_values, strategies=names, categories=categories_of(dataset, items),
            split_seed=split_seed, max_tokens=budget_tokens, max_calls=budget_calls, concurrency=concurrency,
            on_progress=lambda line: click.echo(line, err=True)))
        if plot_path:
            from ..evaluation.tune_report import frontier_svg

            with open(plot_path, "w", encoding="utf-8") as f:
                f.write(frontier_svg(report.rows, report.recommendation))
            click.echo(f"heavy tune: plot written to {plot_path}", err=True)
        data = report.as_json()
        if as_json:
            click.echo(json.dumps(data))
        else:
            _print(data)
        if write_config:
            _write(data, dataset, settings.model)

    run_guarded(go)


def _print(data: dict[str, Any]) -> None:
    """The table and the recommendation on stdout (``data``: the report as ``--json`` prints it)."""
    from rich.console import Console
    from rich.table import Table

    from ..evaluation.tune_report import TABLE_COLUMNS, table_rows

    rows, rec, how, split = data["rows"], data["recommendation"], data["chosen_by"], data["halves"]
    table = Table(title=f"heavy tune: {split['tune']} tune / {split['check']} check questions"
                  + (" (stratified by category)" if split["stratified"] else ""), show_edge=False)
    for col, justify in TABLE_COLUMNS:
        table.add_column(col, justify=justify, no_wrap=col == "options")  # type: ignore[arg-type]
    for line in table_rows(rows, rec):
        table.add_row(*line)
    Console(width=170).print(table)
    click.echo("tokens, calls and seconds are per question on the check half; frontier: no configuration of that "
               "half is as accurate for fewer tokens")
    if rec is None:
        click.echo(f"no recommendation: {how}")
    else:
        c, base = rec["check"], rec["baseline"]
        versus = f"; vote@{base['n']} there: {base['accuracy']:.1%}" if base else ""
        click.echo(f"recommended: {rec['label']} N={rec['n']}: check half {c['accuracy']:.1%} "
                   f"({c['ci_low']:.0%}–{c['ci_high']:.0%}, {c['correct']:g}/{c['questions']}), {c['tokens']:,.0f} "
                   f"tokens, {c['calls']:.1f} calls, {c['seconds']:.1f} s per question{versus}")
        click.echo(f"chosen by: {how}")
        click.echo(f"run it: {rec['command']}")
    reasons: dict[str, list[str]] = {}
    for name, why in sorted(data["skipped"].items()):
        reasons.setdefault(why, []).append(name)
    for why, names in reasons.items():
        click.echo(f"skipped {', '.join(names)}: {why}")


def _write(data: dict[str, Any], dataset: str, model: list[str]) -> None:
    """``--write-config``: the recommendation into the config file's ``[defaults]``, with where it came from."""
    rec, how, split = data["recommendation"], data["chosen_by"], data["halves"]
    if rec is None:
        fail(f"--write-config: nothing to write: {how}; raise the budget or drop it")
    from ..config import write_defaults
    from ..evaluation.tune_report import config_values

    values, remove = config_values(rec)
    c, t = rec["check"], rec["tune"]
    comment = [
        f"written {time.strftime('%Y-%m-%d')} from {dataset} on {', '.join(model)} "
        f"({split['tune']} tune / {split['check']} check questions, split seed {split['split_seed']})",
        f"{rec['label']} N={rec['n']}: check-half accuracy {c['accuracy']:.1%} ({c['ci_low']:.0%}–{c['ci_high']:.0%}, "
        f"{c['correct']:g}/{c['questions']}); tune half {t['accuracy']:.1%}",
        "chosen by the tune half within the budget; the check half only reports it",
    ]
    path = run_guarded(write_defaults, values, remove=remove, comment=comment)
    click.echo(f"heavy tune: [defaults] of {path} now run {rec['label']} N={rec['n']}", err=True)
