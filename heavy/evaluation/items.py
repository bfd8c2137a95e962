"""The datasets of ``heavy eval``: JSONL rows read into :class:`EvalItem` with a clear error per bad line.

A row has ``question`` and ``answer`` (GSM8K-style gold; a ``#### N`` solution works too), optionally ``id``
and, for multiple choice, ``choices`` (a list, or a dict keyed by letter) with the gold answer as a letter.
A **code task** has ``tests`` (Python source whose top-level ``assert`` lines are the tests) instead of, or
besides, ``answer``, and optionally ``entry_point`` and ``visible_tests``: see :func:`selection_tests` for
which tests a strategy may see (never ``tests``: those grade).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["EvalItem", "load_items", "selection_tests", "LETTERS"]

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


def load_items(path: str | Path, *, limit: int | None = None, offset: int = 0) -> list[EvalItem]:
    """Read a JSONL dataset (UTF-8, a BOM is fine); a bad line is a ConfigError naming the line and the fix."""
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
    seen: set[str] = set()
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
        if item.id in seen:
            continue  # the same question twice would be scored twice; keep the first
        seen.add(item.id)
        items.append(item)
    items = items[offset:]
    return items[:limit] if limit is not None else items


def selection_tests(item: EvalItem) -> str | None:
    """The tests a strategy may run on a code task: its ``visible_tests``, else the examples in its
    question, else None. Never its ``tests``: those grade, and a user does not have them."""
    if item.visible_tests:
        return item.visible_tests
    from ..tools.examples import examples_from

    return examples_from(item.question, item.entry_point) or None
