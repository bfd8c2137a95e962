"""Evaluation harness behind ``heavy eval``: run strategies over a JSONL dataset and score them.

* **Datasets**: JSONL with ``question`` and ``answer`` (GSM8K-style gold; ``#### N`` solutions work too),
  optionally ``id`` and, for multiple choice, ``choices`` (a list, or a dict keyed by letter) with the
  gold answer as a letter. A **code task** has ``tests`` (Python source whose top-level ``assert`` lines
  are the tests, or a test program without any, as HumanEval ships them: ``def check(candidate): ...``, run
  whole with ``check(entry_point)``; a row's ``graded`` says which) instead of, or besides, ``answer``, and
  optionally ``entry_point``: it is correct when the chosen answer's code passes every test in the sandbox. Those tests *grade*; they never reach the model
  or the strategy (HumanEval-style hidden tests). A strategy that takes a ``tests`` option (``execute``)
  gets what a user would have: the row's optional ``visible_tests`` (same format), else the examples in
  the question (doctest ``>>>`` lines, ``f(x) == y``; :func:`heavy.tools.examples.examples_from`), else
  nothing (``execute`` then has the model write tests, CodeT).
* **Results file** (append-only JSONL): one line per finished (question, strategy, n) with at least
  ``question``, ``gold``, ``answer`` and ``correct``. Re-running with the same file skips what is there,
  so a killed run resumes with no question lost or repeated. Nothing in it is ever deleted: a torn last
  line (a crash mid-write) is ignored and left in place, a file holding other data is refused, and a
  second concurrent writer is refused (see :mod:`heavy.evaluation.files`).
* **Sample pools**: ``record`` stores every hypothesis of every question (one line per question), and
  is reused on the next run; ``replay`` re-runs strategies on a pool with no new sampling calls (only
  judge/aggregator calls), so strategies are compared on identical samples and accuracy-vs-N curves
  (prefixes of the pool) cost nothing extra. A pool named ``*.gz`` is read through gzip (pools with
  token logprobs are large); it can be replayed, not recorded into.
* **Scoring** uses the vote's equivalence (:func:`is_correct`), and a row's ``cost_usd`` is its Result's.

* **Batch runs** (``--batch``): the sampling goes through the providers' batch APIs at batch prices, the
  jobs booked beside the results file so a stopped run resumes them (:mod:`.batching`).

The package, one job a module: :mod:`.items` (datasets), :mod:`.scoring` (is it right, the summary),
:mod:`.runner` (the runs and their rows), :mod:`.files` (results files, pools and the batch book),
:mod:`.batching` (``--batch``), :mod:`.plot` (the SVG of ``--plot``), :mod:`.options` (a run's flags checked,
whatever the shell), :mod:`.tune` and :mod:`.tune_report` (``heavy tune``: every configuration replayed on one
pool, chosen on a tune half and reported on a check half). Everything a user or a bench
script needs is importable from ``heavy.evaluation`` itself.
"""

from __future__ import annotations

from .files import BatchBook, JsonlFile, Pool, ResultsFile, WriterLock
from .items import EvalItem, load_items, selection_tests
from .runner import _with_tests  # noqa: F401  (private, but tests of hidden code-task tests use it)
from .runner import EvalRunner, decision_cost, pool_prefix, route_prefix
from .scoring import SummaryRow, error_summary, is_correct, summarize, wilson

__all__ = [
    "EvalItem", "load_items", "selection_tests", "is_correct", "wilson", "ResultsFile", "Pool", "JsonlFile", "BatchBook",
    "WriterLock", "EvalRunner", "summarize", "SummaryRow", "error_summary", "decision_cost", "pool_prefix",
    "route_prefix",
]
