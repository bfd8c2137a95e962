"""``heavy eval``: score strategies on a JSONL dataset, resumably."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .. import constants as C
from ..settings import EVAL
from . import fail, run_guarded
from .ask import parse_options
from .flags import run_flags


def _csv(value: str | None, cast: Any = str) -> list[Any]:
    return [cast(v.strip()) for v in value.split(",") if v.strip()] if value else []


@click.command(name="eval")
@click.argument("dataset", type=click.Path(dir_okay=False))
@click.option("-s", "--strategy", "strategy_list", multiple=True,
              help="Strategy (repeatable) [default: the config file's, else heavy].")
@click.option("--strategies", default=None, help="Comma-separated strategies, compared on the same samples.")
@click.option("--ns", default=None, help="Comma-separated Ns (e.g. 1,2,4,8): prefixes of one pool of max(N).")
@click.option("--results", "results_path", required=True, type=click.Path(dir_okay=False),
              help="Append-only JSONL of per-question results; re-running resumes it.")
@click.option("--concurrency", type=int, default=4, show_default=True, help="Questions in flight at once.")
@click.option("--record", "record_path", default=None, type=click.Path(dir_okay=False),
              help="Store every hypothesis here (and reuse what is already stored).")
@click.option("--replay", "replay_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Decide on recorded hypotheses: the question is never sampled again (judge calls and the "
                   "later rounds of debate, refine, … are the only new calls). A .gz pool is read through gzip.")
@click.option("--limit", type=int, default=None, help="Only the first K questions (after --offset).")
@click.option("--offset", type=int, default=0)
@run_flags(EVAL)
@click.option("--logprobs", "top_logprobs", type=click.IntRange(0, 20), default=None, metavar="K",
              help="Ask for token logprobs (and the top K alternatives) with every sample, so a --record pool "
                   "can be replayed by `confidence`.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Strategy option, applied to every strategy that accepts it.")
@click.option("--retry-errors", is_flag=True, help="Redo questions whose earlier result is an error.")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False),
              help="Write an SVG of accuracy vs N and vs tokens.")
@click.option("--programs", type=click.IntRange(0, C.MAX_N), default=0, show_default=True, metavar="M",
              help="With a pool (--record, several strategies or Ns): also sample M program hypotheses per "
                   "question (the model writes Python, the sandbox runs it; needs --tools python), for "
                   "strategies that use them (crosscheck).")
@click.option("--batch", is_flag=True,
              help="Sample through the provider's batch API (OpenAI, Anthropic: half price, answered within 24 h); "
                   "the jobs are kept in RESULTS.batches, so running the same command again picks them up.")
@click.option("--batch-poll", type=click.FloatRange(0.05), default=60.0, show_default=True, metavar="SEC",
              help="With --batch: the longest pause between two looks at the running jobs.")
@click.option("--batch-wait", type=click.FloatRange(0), default=None, metavar="SEC",
              help="With --batch: stop waiting after SEC seconds (the jobs keep running; run again to pick them "
                   "up) [default: until they end].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def eval_command(dataset: str, strategy_list: tuple[str, ...], strategies: str | None, ns: str | None,
                 results_path: str, concurrency: int, record_path: str | None, replay_path: str | None,
                 limit: int | None, offset: int, top_logprobs: int | None, options: tuple[str, ...],
                 retry_errors: bool, plot_path: str | None, programs: int, batch: bool, batch_poll: float,
                 batch_wait: float | None, as_json: bool, **flags: Any) -> None:
    """Run strategies over DATASET (JSONL: question, answer) and print accuracy with a 95 % interval.

    Run options default to the config file and HEAVY_<OPTION> variables, as for `heavy ask`.
    """
    from ..config import run_settings
    from ..evaluation.options import check_run, strategy_options

    settings = run_guarded(run_settings, {**flags, "top_logprobs": top_logprobs or None,
                                          "logprobs": True if top_logprobs is not None else None})
    names = list(strategy_list) + _csv(strategies) or [settings.strategy]
    try:
        n_values = sorted(set(_csv(ns, int))) or [settings.n]
    except ValueError:
        fail(f"--ns takes comma-separated integers, got {ns!r}")
    run_guarded(check_run, dataset=dataset, results=results_path, ns=n_values, concurrency=concurrency,
                record=record_path, replay=replay_path, programs=programs,
                python="python" in (settings.tools or []) or settings.verify == "python", batch=batch,
                tools=bool(settings.tools))
    given_options = parse_options(options)

    def go() -> None:
        import asyncio

        from ..api import Heavy
        from ..evaluation import BatchBook, EvalRunner, Pool, ResultsFile, summarize
        from ..evaluation.items import read_dataset

        data = read_dataset(dataset, limit=limit, offset=offset)
        items = data.items
        for duplicate in data.conflicts:  # once per question, before anything runs
            click.echo(f"heavy eval: warning: {duplicate.warning}", err=True)
        if not items:
            fail(f"{dataset}: no questions" + (f" after --offset {offset}" if offset else ""))
        per_strategy = strategy_options(names, given_options)
        heavy = Heavy(settings=settings.merged(n=max(n_values), strategy=names[0], options=per_strategy[names[0]]))
        if batch:
            from ..evaluation.batching import check_batch_models

            check_batch_models(heavy)
        # Locked from before reading until the end: a second writer is refused, and the rows this run
        # resumes from cannot change under it. The replayed pool is only read, so it takes no lock.
        results = ResultsFile(results_path, lock=True)
        opened.append(results)
        record = Pool(record_path, lock=True) if record_path else None
        opened.append(record)
        book = BatchBook.beside(results_path, lock=True) if batch else None
        opened.append(book)
        runner = EvalRunner(heavy=heavy, strategies=names, ns=n_values, results=results, concurrency=concurrency,
                            record=record, replay=Pool(replay_path) if replay_path else None,
                            retry_errors=retry_errors, options=per_strategy, programs=programs, batch=book,
                            batch_poll=batch_poll, batch_wait=batch_wait,
                            on_progress=lambda line: click.echo(line, err=True))
        work = runner.todo(items)
        total = sum(len(p) for _, p in work)
        already = len(items) * len(names) * len(n_values) - total
        if already:
            click.echo(f"heavy eval: resuming {results_path}: {already} results already there, {total} to go",
                       err=True)

        async def main() -> None:
            try:
                await runner.evaluate(items)
            finally:
                await heavy.aclose()

        if sys.stderr.isatty() and total and not batch:  # a batch run reports its jobs line by line instead
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                          TimeRemainingColumn(), transient=True) as progress:
                task = progress.add_task("", total=total)
                right = [0, 0]

                def on_row(row: dict[str, Any]) -> None:
                    right[0] += bool(row["correct"])
                    right[1] += 1
                    progress.update(task, advance=1, description=f"{right[0]}/{right[1]} correct")

                runner.on_row = on_row
                asyncio.run(main())
        else:
            asyncio.run(main())
        for f in opened:
            if f is not None:
                f.close()
        if runner.still_running:
            click.echo(f"heavy eval: {len(runner.still_running)} batch job(s) still running "
                       f"({', '.join(runner.still_running[:3])}{', …' if len(runner.still_running) > 3 else ''}); "
                       "run the same command again to pick them up", err=True)
        if runner.skipped:
            click.echo(f"heavy eval: {runner.skipped} question(s) are not in the replayed pool and were skipped",
                       err=True)
        ids = {i.id for i in items}
        summary = summarize(results.rows, ids=ids)
        if not summary and replay_path:
            fail(f"none of the {len(items)} question(s) of {dataset} are in the replayed pool {replay_path}: "
                 "replay a pool recorded from this dataset")
        if plot_path:
            _plot(summary, plot_path)
        counts = {"duplicates_merged": data.merged, "duplicates_conflicting": len(data.conflicts)}
        if as_json:
            click.echo(json.dumps([{**s.as_dict(), **counts} for s in summary]))
        else:
            _print_table(summary)
            if data.merged or data.conflicts:
                click.echo(f"dataset {dataset}: {len(data.conflicts)} question(s) with conflicting duplicates "
                           f"(warned above), {data.merged} duplicate row(s) merged")
        if batch:
            _print_savings(results.rows, ids)
        _check_errors(results.rows, ids, results_path)

    opened: list[Any] = []
    try:
        run_guarded(go)
    finally:
        for f in opened:
            if f is not None:
                f.close()


def _check_errors(rows: list[dict[str, Any]], ids: set[str], results_path: str) -> None:
    """Exit 1 when every result is an error (an unreachable model must not look like a finished eval)."""
    from ..evaluation import error_summary

    errors, total, first = error_summary(rows, ids)
    if not errors:
        return
    if errors < total:
        click.echo(f"heavy eval: {errors} of {total} results are errors (e.g. {first}); "
                   "re-run with --retry-errors to redo them", err=True)
        return
    fail(f"all {total} results are errors, e.g. {first} (written to {results_path}): fix the cause "
         "and re-run with --retry-errors")


def _print_savings(rows: list[dict[str, Any]], ids: set[str]) -> None:
    """What sampling through batch jobs saved, on stderr (stdout keeps the table and the accuracy lines)."""
    from ..evaluation.batching import batch_savings

    costs = batch_savings(rows, ids)
    if costs is None:
        return
    paid, interactive, live = costs
    share = f" ({1 - paid / interactive:.0%})" if interactive else ""
    click.echo(f"heavy eval --batch: ${paid:.4f} at batch prices, ${interactive:.4f} interactive: saved "
               f"${interactive - paid:.4f}{share}", err=True)
    if live:
        click.echo(f"heavy eval --batch: the strategies also made {live} live call(s) (judge, aggregator, later "
                   "rounds), at interactive prices", err=True)


def _print_table(summary: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="heavy eval", show_edge=False)
    for col, justify in [("strategy", "left"), ("N", "right"), ("accuracy", "right"), ("95% CI", "right"),
                         ("correct", "right"), ("errors", "right"), ("tokens/q", "right"), ("calls/q", "right"),
                         ("$", "right"), ("saved $", "right"), ("wall s", "right")]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for s in summary:
        lo, hi = s.interval
        table.add_row(s.strategy, str(s.n), f"{s.accuracy:.1%}", f"{lo:.0%}–{hi:.0%}", f"{s.correct}/{s.total}",
                      str(s.errors), f"{s.tokens_per_question:,.0f}", f"{s.calls_per_question:.1f}",
                      "—" if s.cost_usd is None else f"{s.cost_usd:.2f}",
                      "—" if s.saved_usd is None else f"{s.saved_usd:.2f}", f"{s.wall_s:,.0f}")
    Console(width=120).print(table)
    for s in summary:
        click.echo(f"accuracy {s.strategy} N={s.n}: {s.accuracy:.3f} ({s.correct}/{s.total})")


def _plot(summary: list[Any], path: str) -> None:
    from ..evaluation.plot import accuracy_svg

    with open(path, "w", encoding="utf-8") as f:
        f.write(accuracy_svg(summary))
    click.echo(f"heavy eval: plot written to {path}", err=True)
