"""Tests a user has without the grading tests: a task's own examples, and probe inputs derived from tests.

HumanEval-style benchmarks grade code with tests the solver never sees; what the solver does see is the
prompt, and prompts carry examples. :func:`examples_from` turns them into ``assert`` lines that
``execute`` can run:

* **doctest lines**: ``>>> f(3)`` followed by its expected output ``9`` becomes ``assert f(3) == 9``; a
  ``>>>`` line without output (``>>> x = [1, 2]``) is setup for the examples after it; an example whose
  output is a traceback, or not a Python expression, is skipped; ``>>> print(f(x))`` compares the
  printed text.
* **inline examples**: ``f(2, 3) == 5``, ``f(2, 3) -> 5`` (also ``=>``, ``==>``, ``➞``, ``→``, ``=``) and the
  prose forms ``f(5) is "101"``, ``f(5) returns 7``, ``gives``, ``should return``, ``should be``. Only a
  call whose arguments are all Python literals counts, and only a literal as the expected value, so a
  signature (``f(xs)``) or a sentence (``f(x) is the largest ...``) is never taken for an example.

:func:`probe_calls` derives *probe inputs* from tests: each call with literal arguments in an
``assert`` is re-made with one argument changed the way edge cases look (empty, one element, reversed,
zero, negative, off by one, upper-case, doubled). Probes have no expected value: running every candidate
on them shows which candidates *behave* alike beyond the few tests a user has, which is what
``execute`` uses to break ties between candidates that pass the same tests (AlphaCode's clustering on
generated inputs; the mutations are EvalPlus-style type-aware ones).
"""

from __future__ import annotations

import ast
import doctest
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["examples_from", "probe_calls", "PROBE_EXPECTED"]

#: The right-hand side of every probe: probes record the candidate's output (``repr`` of the left side);
#: whether they "pass" means nothing.
PROBE_EXPECTED = "None"

# The words and arrows that join an inline example's call to its expected value, longest first so
# "==>" is not read as "==" followed by ">".
_JOINERS = ("should return", "should be", "returns", "gives", "==>", "==", "=>", "->", "➞", "→", "=", "is")
_CALL_START = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(")
_MAX_LINE = 400  # an inline example longer than this is not an example a reader would write
_MAX_EXPECTED = 200  # characters of an inline example's expected value (bounds the parse attempts per call)


def _literal(source: str) -> bool:
    try:
        ast.literal_eval(source)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def _expression(source: str) -> bool:
    try:
        ast.parse(source, mode="eval")
    except SyntaxError:
        return False
    return True


def _doctest_asserts(text: str) -> tuple[list[str], list[str]]:
    """(setup, asserts) from the ``>>>`` examples of *text*."""
    try:
        examples = doctest.DocTestParser().get_examples(text)
    except ValueError:  # e.g. inconsistent indentation inside one example
        return [], []
    setup: list[str] = []
    asserts: list[str] = []
    for ex in examples:
        source, want = ex.source.strip(), _until_docstring_end(ex.want).strip()
        if not want:
            try:
                compile(source, "<example>", "exec")
            except SyntaxError:
                continue
            setup.append(source)
            continue
        if ex.exc_msg is not None or want.startswith("Traceback") or not _expression(source):
            continue
        printed = _printed_arg(source)
        if printed is not None:
            asserts.append(f"assert str({printed}) == {want!r}")
        elif _expression(want) and "\n" not in want:
            asserts.append(f"assert {source} == {want}")
        elif _expression(" ".join(want.split())):  # a long list wrapped over lines by the doctest's author
            asserts.append(f"assert {source} == {' '.join(want.split())}")
    return setup, asserts


def _until_docstring_end(want: str) -> str:
    """A doctest's expected output without the closing quotes of the docstring it sits in: in a raw
    prompt (HumanEval's is a function header and its docstring) the last example's output runs on to
    the line of closing quotes."""
    lines = want.splitlines()
    for k, line in enumerate(lines):
        if line.strip() in ('"""', "'''"):
            return "\n".join(lines[:k])
    return want


def _printed_arg(source: str) -> str | None:
    """``x`` when *source* is ``print(x)``."""
    node = ast.parse(source, mode="eval").body
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" \
            and len(node.args) == 1 and not node.keywords:
        return ast.get_source_segment(source, node.args[0])
    return None


def _call_at(line: str, start: int, entry_point: str | None) -> tuple[str, int] | None:
    """(call source, end index) of a call with literal arguments starting at *start*, else None."""
    m = _CALL_START.match(line, start)
    if m is None or (entry_point and m.group(1) != entry_point):
        return None
    for end in (i + 1 for i, ch in enumerate(line) if ch == ")" and i > m.end() - 1):
        source = line[start:end]
        try:
            node = ast.parse(source, mode="eval").body
        except SyntaxError:
            continue
        if isinstance(node, ast.Call) and ast.get_source_segment(source, node) == source:
            args = [*node.args, *(k.value for k in node.keywords)]
            if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
                return None
            if all(_literal(ast.get_source_segment(source, a) or "") for a in args):
                return source, end
            return None
    return None


def _expected_after(rest: str) -> str | None:
    """The longest literal at the start of *rest* (the text after the joiner), without the sentence's
    punctuation after it."""
    rest = rest.strip()[:_MAX_EXPECTED]
    for end in range(len(rest), 0, -1):
        candidate = rest[:end].rstrip()
        if not candidate or (end < len(rest) and rest[end - 1].isalnum() and rest[end].isalnum()):
            continue
        if _literal(candidate):
            # "is 2." / "is "101", ..." : the sentence's punctuation, not a float or a one-element tuple
            while candidate[-1] in ".,;:" and _literal(candidate[:-1].rstrip()):
                candidate = candidate[:-1].rstrip()
            return candidate
    return None


def _inline_asserts(text: str, entry_point: str | None) -> list[str]:
    found: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith((">>>", "...")) or len(line) > _MAX_LINE:
            continue
        pos = 0
        while (m := _CALL_START.search(line, pos)) is not None:
            pos = m.end()
            call = _call_at(line, m.start(), entry_point)
            if call is None:
                continue
            source, end = call
            rest = line[end:].lstrip()
            joiner = next((j for j in _JOINERS if rest.startswith(j) and
                           (not j[-1].isalpha() or not rest[len(j):len(j) + 1].isalnum())), None)
            if joiner is None:
                continue
            expected = _expected_after(rest[len(joiner):])
            if expected is not None:
                found.append(f"assert {source} == {expected}")
                pos = end
    return found


def examples_from(text: str, entry_point: str | None = None) -> str:
    """The examples of a task's text as test source (setup lines, then one ``assert`` per example); ``""``
    when it has none. With *entry_point*, inline examples must call it (doctest examples are taken as
    written)."""
    setup, asserts = _doctest_asserts(text)
    asserts += _inline_asserts(text, entry_point)
    asserts = [a for a in dict.fromkeys(asserts) if _compiles(a)]
    if not asserts:
        return ""
    return "\n".join([*setup, *asserts]) + "\n"


def _compiles(source: str) -> bool:
    try:
        compile(source, "<example>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _mutations(value: Any) -> list[Any]:
    """Edge-case neighbours of one literal argument."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [0, 1, -value if value else -1, value + 1]
    if isinstance(value, float):
        return [0.0, -value, value + 0.5]
    if isinstance(value, str):
        return ["", value[:1], value[::-1], value.upper(), value + value]
    if isinstance(value, list | tuple):
        return [value[:0], value[:1], value[::-1], value + value[:1]]
    if isinstance(value, dict):
        return [{}]
    if isinstance(value, set | frozenset):
        return [type(value)()]
    return []


def _literal_call(node: ast.expr) -> tuple[str, list[Any], list[tuple[str, Any]]] | None:
    if not isinstance(node, ast.Call) or any(k.arg is None for k in node.keywords):
        return None
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = [(str(k.arg), ast.literal_eval(k.value)) for k in node.keywords]
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not args and not kwargs:
        return None
    return ast.unparse(node.func), args, kwargs


def _render(func: str, args: Sequence[Any], kwargs: Sequence[tuple[str, Any]]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs]
    return f"{func}({', '.join(parts)})"


def probe_calls(tests: Sequence[str], limit: int, entry_point: str | None = None) -> list[str]:
    """Up to *limit* probe statements (``assert <call> == None``) derived from the calls with literal
    arguments in *tests* (the tested call of each ``assert f(...) == y`` or ``assert f(...)``); with
    *entry_point*, only calls to it. Each probe changes one argument of one test's call; probes are taken
    from each test in turn, so a few tests all contribute, and none repeats a test's own call."""
    per_test: list[list[str]] = []
    seen: set[str] = set()
    for src in tests:
        try:
            node = ast.parse(src).body[0]
        except (SyntaxError, IndexError):
            continue
        test = getattr(node, "test", None)
        call = test.left if isinstance(test, ast.Compare) else test
        parsed = _literal_call(call) if call is not None else None
        if parsed is None or (entry_point and parsed[0] != entry_point):
            continue
        func, args, kwargs = parsed
        seen.add(_render(func, args, kwargs))
        probes: list[str] = []
        for i, arg in enumerate(args):
            probes += [_render(func, [*args[:i], m, *args[i + 1:]], kwargs) for m in _mutations(arg)]
        for i, (key, arg) in enumerate(kwargs):
            probes += [_render(func, args, [*kwargs[:i], (key, m), *kwargs[i + 1:]]) for m in _mutations(arg)]
        per_test.append(probes)
    out: list[str] = []
    while len(out) < limit and any(per_test):
        for probes in per_test:
            while probes:
                call = probes.pop(0)
                if call not in seen:
                    seen.add(call)
                    out.append(call)
                    break
            if len(out) >= limit:
                break
    return [f"assert {call} == {PROBE_EXPECTED}" for call in out]
