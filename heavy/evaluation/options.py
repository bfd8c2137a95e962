"""What a ``heavy eval`` run is asked to do, checked before anything runs: any shell's part that is not
about its own syntax (the click command in :mod:`heavy.cli.eval` maps its flags onto these).

Every problem is one :class:`~heavy.errors.ConfigError` naming the flag and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["check_run", "strategy_options"]


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (existing or not)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def check_run(*, dataset: str, results: str, ns: Sequence[int], concurrency: int, record: str | None = None,
              replay: str | None = None, programs: int = 0, python: bool = False, batch: bool = False,
              tools: bool = False) -> None:
    """Refuse a run that cannot be right: N or concurrency below 1, program hypotheses without a pool or
    without the python tool (*python*: the run may execute code), ``--record`` beside ``--replay`` or into
    a gzip file, a results file that is also the pool or the dataset, or ``--batch`` with what a batch job
    cannot sample (``--replay``, ``--programs``, hypotheses that run *tools*). ``--limit`` and ``--offset`` are
    checked where the dataset is read (:func:`~heavy.evaluation.items.load_items`), the models of a batch run
    where they are resolved (:func:`~heavy.evaluation.batching.check_batch_models`)."""
    if min(ns) < 1 or concurrency < 1:
        raise ConfigError("N and --concurrency must be at least 1")
    if batch and replay:
        raise ConfigError("--batch samples through batch jobs and --replay never samples: use one of them")
    if batch and programs:
        raise ConfigError("--programs runs each program as it comes back, which a batch job cannot: drop --batch "
                          "or --programs")
    if batch and tools:
        raise ConfigError("--batch sends one completion per hypothesis, and --tools makes each hypothesis a loop of "
                          "calls and tool runs: drop --tools or --batch")
    if programs and not record:
        raise ConfigError("--programs records program hypotheses into a pool: give --record POOL.jsonl too")
    if programs and not python:
        raise ConfigError("--programs runs the programs the model writes: enable the python tool with --tools python")
    if record and replay:
        raise ConfigError("use --record or --replay, not both (--record already reuses what it has stored)")
    if record and record.endswith(".gz"):
        raise ConfigError(f"--record {record}: pools are recorded as plain JSONL (gzip one afterwards to replay "
                          "it compressed)")
    for flag, other in (("--record", record), ("--replay", replay), ("DATASET", dataset)):
        if other and _same_file(results, other):
            raise ConfigError(f"--results and {flag} name the same file ({results}): give the results a file of "
                              "their own")


def strategy_options(names: Sequence[str], options: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each strategy's share of the ``-o key=value`` options: those its ``Options`` model accepts. An option
    no strategy of the run accepts is a ConfigError (a typo must not be silently ignored by all)."""
    from ..strategy import load_strategy

    per_strategy = {}
    for name in names:
        fields = load_strategy(name).Options.model_fields
        per_strategy[name] = {k: v for k, v in options.items() if k in fields}
    unknown = set(options) - {k for o in per_strategy.values() for k in o}
    if unknown:
        raise ConfigError(f"option(s) {', '.join(sorted(unknown))} are not accepted by {', '.join(names)}")
    return per_strategy
