"""The datasets of ``heavy eval``: JSONL rows read into :class:`EvalItem` with a clear error per bad line.

A row has ``question`` and ``answer`` (GSM8K-style gold; a ``#### N`` solution works too), optionally ``id``
and, for multiple choice, ``choices`` (a list, or a dict keyed by letter) with the gold answer as a letter.
A **code task** has ``tests`` (Python source whose top-level ``assert`` lines are the tests) instead of, or
besides, ``answer``, and optionally ``entry_point`` and ``visible_tests``: see :func:`selection_tests` for
which tests a strategy may see (never ``tests``: those grade).

**Duplicates.** A row whose id was seen already (an explicit ``id``, else its question's hash) is dropped: the
same question with the same gold is *merged*; a repeat that differs (another gold answer, other tests, another
question under the same id) is a *conflict*, and so are two ids holding the same prompt with different gold
answers (both scored). :func:`read_dataset` counts the first and describes the second, one
:class:`Duplicate` per question, for ``heavy eval`` to warn about and count in its summary.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["EvalItem", "Dataset", "Duplicate", "load_items", "read_dataset", "selection_tests", "LETTERS"]

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class EvalItem:
    id: str
    question: str
    gold: str
    prompt: str
    tests: str | None = None  #: a code task's tests (correct = the answer's code passes them all); hidden
    entry_point: str | None = None
    visible_tests: str | None = None  #: tests a user would have, given to the strategy (never ``tests``)


def _gold(raw: Any) -> str:
    text = str(raw).strip()
    return text.rsplit("####", 1)[1].strip() if "####" in text else text


def _show(value: Any) -> str:
    """A JSON value as a short excerpt for an error message."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _item(row: Any, where: str) -> EvalItem:
    """One dataset line as an EvalItem; ConfigError (``where`` = file:line) naming what to fix."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: got a JSON {type(row).__name__}: each line must be a JSON object with "
                          "'question' and 'answer' (or 'tests' for a code task)")
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: 'question' must be a non-empty string, got {_show(question)}: "
                          "each line needs 'question' and 'answer' (or 'tests' for a code task)")
    tests = row.get("tests")
    if tests is not None and not isinstance(tests, str):
        raise ConfigError(f"{where}: 'tests' must be a string of Python assert lines, got {_show(tests)}")
    tests = tests if tests and tests.strip() else None
    answer = row.get("answer")
    if "answer" not in row and tests is None:
        raise ConfigError(f"{where}: no 'answer': each line needs 'question' and 'answer' "
                          "(or 'tests' for a code task)")
    if answer is not None and not isinstance(answer, str | int | float):
        raise ConfigError(f"{where}: 'answer' must be a string or a number, got {_show(answer)}")
    gold = _gold(answer) if answer is not None else ""
    if not gold and tests is None:
        raise ConfigError(f"{where}: 'answer' is empty: give the gold answer (or 'tests' for a code task)")
    choices = row.get("choices")
    prompt = question
    if choices:
        if isinstance(choices, dict):
            pairs = [(str(k), v) for k, v in choices.items()]
        elif isinstance(choices, list) and len(choices) <= len(LETTERS):
            pairs = list(zip(LETTERS, choices))
        else:
            pairs = []
        if not pairs or not all(isinstance(v, str | int | float) for _, v in pairs):
            raise ConfigError(f"{where}: 'choices' must be a list of at most {len(LETTERS)} options (strings) or "
                              f"an object keyed by letter, got {_show(choices)}")
        prompt = question + "\n\n" + "\n".join(f"{k}) {v}" for k, v in pairs) + \
            "\n\nAnswer with the letter of the correct choice."
    raw_id = row.get("id")
    if raw_id is not None and not isinstance(raw_id, str | int):
        raise ConfigError(f"{where}: 'id' must be a string or an integer, got {_show(raw_id)}")
    entry = row.get("entry_point")
    if entry is not None and not isinstance(entry, str):
        raise ConfigError(f"{where}: 'entry_point' must be the name of the function under test, got {_show(entry)}")
    visible = _visible_tests(row.get("visible_tests"), tests, where)
    item_id = str(raw_id or hashlib.sha256(question.encode()).hexdigest()[:16])
    return EvalItem(item_id, question, gold, prompt, tests, entry or None, visible)


def _visible_tests(value: Any, tests: str | None, where: str) -> str | None:
    """A row's ``visible_tests``: Python source with at least one top-level ``assert``, beside ``tests``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: 'visible_tests' must be a string of Python assert lines, got {_show(value)}")
    if not value.strip():
        return None
    if tests is None:
        raise ConfigError(f"{where}: 'visible_tests' needs 'tests' beside it: 'tests' grade the answer, "
                          "'visible_tests' are what the strategy may run")
    from ..tools.codecheck import split_tests

    try:
        asserts = split_tests(value)[1]
    except SyntaxError as exc:
        raise ConfigError(f"{where}: 'visible_tests' is not valid Python ({exc.msg}, line {exc.lineno}): "
                          "give assert lines such as 'assert f(2) == 4'") from None
    if not asserts:
        raise ConfigError(f"{where}: 'visible_tests' has no top-level assert: give assert lines such as "
                          "'assert f(2) == 4'")
    return value


@dataclass(frozen=True)
class Duplicate:
    """One question a dataset holds more than once with different gold answers (or content): its ``lines``
    (the first is scored), the gold answer of each, and ``kept_all`` when they are different ids, each scored
    against its own gold."""

    path: str
    id: str
    question: str
    lines: tuple[int, ...]
    golds: tuple[str, ...]
    kept_all: bool = False
    same_id_other_question: bool = False

    @property
    def warning(self) -> str:
        """One line for stderr, naming the file, the lines and what differs."""
        where = f"{self.path}: lines {', '.join(map(str, self.lines))}"
        rest = self.lines[1:]
        dropped = f"line{'s' if len(rest) > 1 else ''} {', '.join(map(str, rest))} {'are' if len(rest) > 1 else 'is'} " \
            "dropped"
        if self.same_id_other_question:
            return (f"{where} use id {self.id!r} for different questions: only line {self.lines[0]}'s is run, "
                    f"{dropped} (give each question its own id)")
        golds = ", ".join(f"{_show(g or '(tests)')} at line {n}" for g, n in zip(self.golds, self.lines))
        if self.kept_all:
            return (f"{where} hold the same question ({_show(self.question)}) under different ids with different "
                    f"gold answers ({golds}): each is scored against its own gold, so at most one can be right")
        return (f"{where} hold the same question ({_show(self.question)}) with different gold answers ({golds}): "
                f"only line {self.lines[0]}'s is scored, {dropped}")


@dataclass
class Dataset:
    """A dataset as ``heavy eval`` runs it: its questions (after ``offset`` and ``limit``), how many rows among
    them were merged as exact repeats, and the questions held more than once with different gold answers."""

    items: list[EvalItem]
    merged: int = 0
    conflicts: list[Duplicate] = field(default_factory=list)


def read_dataset(path: str | Path, *, limit: int | None = None, offset: int = 0) -> Dataset:
    """Read a JSONL dataset (UTF-8, a BOM is fine); a bad line is a ConfigError naming the line and the fix.
    Repeated questions are dropped after the first (module docstring); the counts cover the questions run."""
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit must be 0 or more (got {limit}): it is how many questions to run")
    if offset < 0:
        raise ConfigError(f"--offset must be 0 or more (got {offset}): it is how many questions to skip")
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"dataset {str(p)!r} not found")
    if not p.is_file():
        raise ConfigError(f"dataset {str(p)!r} is not a file: give a JSONL file (one JSON object per line)")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the dataset {p}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{p}:{lineno}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the dataset as "
                          "UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
    items: list[EvalItem] = []
    rows: dict[str, list[tuple[int, EvalItem]]] = {}  # every row of each id, the kept one first
    # Split on \n only: a JSON string may hold U+2028, which str.splitlines would cut (and misnumber lines).
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"{p}:{lineno}: not JSON ({getattr(exc, 'msg', exc)}): each line must be one JSON "
                              "object with 'question' and 'answer'") from None
        item = _item(row, f"{p}:{lineno}")
        if item.id not in rows:
            items.append(item)  # the same question twice would be scored twice; the first is kept
        rows.setdefault(item.id, []).append((lineno, item))
    items = items[offset:]
    items = items[:limit] if limit is not None else items
    return Dataset(items, *_duplicates(str(p), items, rows))


def _duplicates(path: str, items: list[EvalItem], rows: dict[str, list[tuple[int, EvalItem]]]
                ) -> tuple[int, list[Duplicate]]:
    """Rows of the questions *items* merged as exact repeats, and the questions held more than once with
    different gold answers (or other content)."""
    merged = 0
    conflicts: list[Duplicate] = []
    by_prompt: dict[str, list[tuple[int, EvalItem]]] = {}
    for item in items:
        first = rows[item.id][0]
        by_prompt.setdefault(item.prompt, []).append(first)
        differ = [(n, other) for n, other in rows[item.id][1:] if other != item]
        merged += len(rows[item.id]) - 1 - len(differ)
        if differ:
            group = [first, *differ]
            conflicts.append(Duplicate(path, item.id, item.question, tuple(n for n, _ in group),
                                       tuple(i.gold for _, i in group),
                                       same_id_other_question=any(i.prompt != item.prompt for _, i in differ)))
    for group in by_prompt.values():
        if len(group) > 1 and len({(i.gold, i.tests) for _, i in group}) > 1:
            conflicts.append(Duplicate(path, group[0][1].id, group[0][1].question, tuple(n for n, _ in group),
                                       tuple(i.gold for _, i in group), kept_all=True))
    return merged, sorted(conflicts, key=lambda c: c.lines)


def load_items(path: str | Path, *, limit: int | None = None, offset: int = 0) -> list[EvalItem]:
    """The questions of a JSONL dataset (:func:`read_dataset` without its duplicate counts)."""
    return read_dataset(path, limit=limit, offset=offset).items


def selection_tests(item: EvalItem) -> str | None:
    """The tests a strategy may run on a code task: its ``visible_tests``, else the examples in its
    question, else None. Never its ``tests``: those grade, and a user does not have them."""
    if item.visible_tests:
        return item.visible_tests
    from ..tools.examples import examples_from

    return examples_from(item.question, item.entry_point) or None
