"""When two answers are the same: the equivalence every vote, every merge and ``heavy eval``'s scoring use.

:func:`equivalent`, :func:`match` and :func:`cluster` decide whether two *normalized* answers (as
:func:`heavy.answers.final_answer` gives them) mean the same: numbers by value, free-form text by a folded
key (case, articles, punctuation and spacing ignored: :func:`text_key`), and mathematical expressions
(:func:`looks_mathematical`) through `math-verify <https://github.com/huggingface/Math-Verify>`_ when the
optional extra is installed (``pip install 'heavy[math]'``), else through heavy's own numeric check: a
small LaTeX-to-Python evaluator computes both sides at a few random points. :func:`math_backend` says which
one is in use, and :func:`match` which path matched a pair. Nothing here raises, whatever the input.
"""

from __future__ import annotations

import ast
import math
import random
import re
import threading
import unicodedata
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any

__all__ = ["looks_mathematical", "text_key", "match", "equivalent", "cluster", "math_backend"]

_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+|[\^_{}]|√|π")
_WORD = re.compile(r"[A-Za-z]{3,}")
_MATH_WORDS = {"sqrt", "frac", "dfrac", "tfrac", "cdot", "times", "div", "sin", "cos", "tan", "log", "ln",
               "exp", "pi", "infty", "pm", "mp", "leq", "geq", "neq", "le", "ge", "cup", "cap"}
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


def looks_mathematical(s: str) -> bool:
    """Is *s* (a normalized or raw answer) a mathematical expression rather than prose or a number?"""
    if _LATEX_COMMAND.search(s):
        return True
    if not re.fullmatch(r"[\w\s.,+\-*/()\[\]=<>|]+", s) or not re.search(r"[+\-*/=<>()\[\]]", s):
        return False
    if not re.search(r"\d|(?<![A-Za-z])[A-Za-z](?![A-Za-z])", s):
        return False
    return all(w.lower() in _MATH_WORDS for w in _WORD.findall(s))


def text_key(answer: str) -> str:
    """The key free-form answers are clustered by: Unicode-folded, case-folded, without articles,
    punctuation or repeated spaces (``"The Eiffel Tower."`` and ``"eiffel tower"`` share one)."""
    s = unicodedata.normalize("NFKC", answer).casefold()
    s = re.sub(r"[^\w\s]", " ", s)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


_MATH_VERIFY: Any = None  # the imported module, False when it is not installed, None before trying


def _math_verify() -> Any:
    global _MATH_VERIFY
    if _MATH_VERIFY is None:
        try:
            import math_verify  # optional extra: pip install 'heavy[math]'
            _MATH_VERIFY = math_verify
        except ImportError:
            _MATH_VERIFY = False
    return _MATH_VERIFY or None


def math_backend() -> str:
    """``"math-verify"`` when the ``heavy[math]`` extra is installed, else ``"numeric"`` (heavy's own check)."""
    return "math-verify" if _math_verify() is not None else "numeric"


def _verify(a: str, b: str) -> bool | None:
    """math-verify's judgement, ``None`` if it could parse neither side."""
    mv = _math_verify()
    # Its timeouts use SIGALRM, which exists only in the main thread; elsewhere it must run without.
    main = threading.current_thread() is threading.main_thread()
    limit = 5 if main else None
    try:
        pa = mv.parse(f"${a}$", parsing_timeout=limit)
        pb = mv.parse(f"${b}$", parsing_timeout=limit)
        if not pa or not pb:
            return None
        return bool(mv.verify(pa, pb, timeout_seconds=limit))
    except Exception:  # a third-party parser must never sink a vote
        return None


# -- heavy's numeric fallback: LaTeX-ish expression -> Python expression -> values at a few points.

_FUNCS = {"sqrt": math.sqrt, "sin": math.sin, "cos": math.cos, "tan": math.tan, "log": math.log,
          "ln": math.log, "exp": math.exp}
_CONSTS = {"pi": math.pi, "e": math.e}
_TOKEN = re.compile(r"\d+\.?\d*|\.\d+|[A-Za-z]+|\*\*|[-+*/(),\[\]]")


def _braced(s: str, i: int) -> tuple[str, int]:
    """The content of the group starting at ``s[i]`` (a ``{...}`` group or one character) and the index after it."""
    if i < len(s) and s[i] == "{":
        depth, j = 1, i + 1
        while j < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[j], 0)
            j += 1
        if depth:
            raise ValueError("unbalanced braces")
        return s[i + 1:j - 1], j
    if i < len(s):
        return s[i], i + 1
    raise ValueError("missing argument")


def _delatex(s: str, depth: int = 0) -> str:
    if depth > 20:
        raise ValueError("too deeply nested")
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            num, i = _braced(s, i + 5)
            den, i = _braced(s, i)
            out.append(f"(({_delatex(num, depth + 1)})/({_delatex(den, depth + 1)}))")
        elif s.startswith("\\sqrt", i):
            i += 5
            root = None
            if i < len(s) and s[i] == "[":
                end = s.index("]", i)
                root, i = s[i + 1:end], end + 1
            arg, i = _braced(s, i)
            inner = _delatex(arg, depth + 1)
            out.append(f"(({inner})**(1/({_delatex(root, depth + 1)})))" if root else f"sqrt({inner})")
        elif s[i] == "^":
            arg, i = _braced(s, i + 1)
            out.append(f"**({_delatex(arg, depth + 1)})")
        elif s[i] == "\\":
            m = re.match(r"\\([A-Za-z]+)", s[i:])
            if not m:
                raise ValueError("stray backslash")
            name = m.group(1)
            out.append({"cdot": "*", "times": "*", "div": "/", "pi": " pi "}.get(name, f" {name} "))
            i += len(m.group(0))
        elif s[i] in "{}":
            out.append("(" if s[i] == "{" else ")")
            i += 1
        else:
            out.append({"π": " pi ", "√": " sqrt ", "×": "*", "·": "*", "÷": "/"}.get(s[i], s[i]))
            i += 1
    return "".join(out)


def _python_expr(s: str) -> str:
    """A Python expression for *s* with implicit multiplication made explicit (``2x`` -> ``2*x``)."""
    text = _delatex(s).replace("^", "**")
    if _TOKEN.sub("", text).strip():
        raise ValueError("characters outside arithmetic")
    tokens: list[str] = []
    for tok in _TOKEN.findall(text):
        if tok.isalpha() and tok not in _FUNCS and tok not in _CONSTS:
            if len(tok) > 3:
                raise ValueError(f"word {tok!r} in an expression")
            tokens.extend(tok)  # "xy" is x*y
        else:
            tokens.append(tok)
    out: list[str] = []
    for tok in tokens:
        if out:
            prev = out[-1]
            ends_value = prev[0].isdigit() or prev[0] == "." or prev == ")" or (prev.isalpha() and prev not in _FUNCS)
            starts_value = tok[0].isdigit() or tok[0] == "." or tok == "(" or tok.isalpha()
            if ends_value and starts_value:
                out.append("*")
        out.append(tok)
    return "".join(out)


def _evaluate(node: ast.AST, env: dict[str, float]) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, env)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id in _CONSTS:
            return _CONSTS[node.id]
        if len(node.id) == 1:
            return env.setdefault(node.id, 0.0)
        raise ValueError("unknown name")
    if isinstance(node, ast.Tuple | ast.List):
        return tuple(_evaluate(e, env) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        v = _evaluate(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp):
        a, b = _evaluate(node.left, env), _evaluate(node.right, env)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            return a * b
        if isinstance(node.op, ast.Div):
            return a / b
        if isinstance(node.op, ast.Pow):
            if abs(b) > 64 or abs(a) > 1e6:
                raise ValueError("power too large")
            return a ** b
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and len(node.args) == 1:
        return _FUNCS[node.func.id](_evaluate(node.args[0], env))
    raise ValueError(f"{type(node).__name__} not allowed")


def _values(expr: str, points: list[dict[str, float]]) -> list[Any] | None:
    try:
        tree = ast.parse(_python_expr(expr), mode="eval")
        out = []
        for env in points:
            v = _evaluate(tree, dict(env))
            if isinstance(v, complex):
                return None
            out.append(v)
        return out
    except (ValueError, SyntaxError, ZeroDivisionError, OverflowError, TypeError, RecursionError, MemoryError):
        return None


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and all(map(_close, a, b))
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def _numeric_equal(a: str, b: str) -> bool | None:
    """Both sides evaluated at three random points of their variables (the same points for both);
    ``None`` when either cannot be evaluated."""
    rng = random.Random(0x5EED)
    points = [{v: rng.uniform(0.5, 2.5) for v in "abcdfghjkmnpqrstuvwxyz"} for _ in range(3)]
    va, vb = _values(a, points), _values(b, points)
    if va is None or vb is None:
        return None
    try:
        return all(_close(x, y) for x, y in zip(va, vb))
    except TypeError:
        return None


def _canonical_number(s: str) -> Fraction | None:
    """The value of a number in normalized form (``-12``, ``0.75``); not "1,2", which may be a pair."""
    return Fraction(s) if re.fullmatch(r"-?\d+(?:\.\d+)?", s) else None


@lru_cache(maxsize=8192)
def match(a: str, b: str) -> str | None:
    """How two normalized answers are the same, or ``None`` if they are not (or it cannot be told):

    ``"exact"`` (same text), ``"numeric"`` (same number, or expressions equal in value at sample points
    when math-verify is absent), ``"math-verify"`` (math-verify says equal), ``"text"`` (same
    :func:`text_key`). Never raises.
    """
    if a == b:
        return "exact"
    if a.startswith("```") or b.startswith("```"):
        return None
    try:
        na, nb = _canonical_number(a), _canonical_number(b)
        if na is not None and nb is not None:
            return "numeric" if na == nb else None
        if looks_mathematical(a) or looks_mathematical(b):
            if math_backend() == "math-verify":
                return "math-verify" if _verify(a, b) else None
            return "numeric" if _numeric_equal(a, b) else None
        if na is not None or nb is not None:
            return None
        ka, kb = text_key(a), text_key(b)
        return "text" if ka and ka == kb else None
    except (RecursionError, ValueError, OverflowError):
        return None


def equivalent(a: str | None, b: str | None) -> bool:
    """Do two normalized answers mean the same? (``None`` is equivalent to nothing.)"""
    return a is not None and b is not None and match(a, b) is not None


def cluster(answers: Sequence[str]) -> list[list[str]]:
    """Group answers by equivalence, in order: each joins the first group whose first member it matches.

    The first member of each group is its representative, so pass the answers most-voted first.
    """
    groups: list[list[str]] = []
    for a in answers:
        for g in groups:
            if match(g[0], a) is not None:
                g.append(a)
                break
        else:
            groups.append([a])
    return groups
