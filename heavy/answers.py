"""Final-answer extraction, normalization and equivalence, shared by every strategy.

``final_answer(text)`` finds the answer a model committed to and returns it in a canonical form so
that equal answers compare equal: ``"$1,234.50"``, ``"1234.5"`` and ``"\\boxed{1234.50}"`` all become
``"1234.5"``; ``"(B)"`` becomes ``"B"``; ``"3.0"`` and ``"3"`` both become ``"3"``; ``"\\frac{3}{4}"``
and ``"3/4"`` become ``"0.75"``; ``"x = 5"`` becomes ``"5"``; a mathematical expression such as
``"\\frac{\\sqrt{3}}{2}"`` is kept (compacted) rather than folded to letters. It runs on every hypothesis,
so it is regular expressions only.

Where the answer is looked for, most explicit first (the last occurrence of each wins, since models
restate and correct themselves):

1. ``\\boxed{...}`` (balanced braces; Qwen-style models end with it);
2. ``#### X`` (GSM8K's marker);
3. "the (final) answer is X" / "Answer: X" / "Final answer: X";
4. a reply that *ends* with a fenced code block: that block's code (see :func:`extract_code`);
5. a reply that opens or closes with a bare "Yes"/"No" (see :func:`extract_yes_no`);
6. the last number in the text.

Extraction never raises: any text yields an answer or ``None``.

Equivalence (:func:`equivalent`, :func:`match`, :func:`cluster`) decides whether two *normalized*
answers mean the same: numbers by value, free-form text by a folded key (case, articles, punctuation
and spacing ignored), and mathematical expressions through `math-verify
<https://github.com/huggingface/Math-Verify>`_ when the optional extra is installed
(``pip install 'heavy[math]'``), else through heavy's own numeric check (both sides evaluated at a few
points). :func:`math_backend` says which one is in use, and :func:`match` which path matched a pair.
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

__all__ = [
    "extract_answer", "normalize_answer", "final_answer", "parse_number", "format_number",
    "extract_code", "extract_yes_no", "looks_mathematical", "text_key",
    "match", "equivalent", "cluster", "math_backend", "is_code_answer",
]

_ANSWER_IS = re.compile(
    # "\text{The answer is } 3", "\textbf{Answer:} 3": the phrase may close a LaTeX text group.
    r"(?i)(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*\}?\s*:?\s*(?P<ans>[^\n]+)"
)
_HASHES = re.compile(r"####\s*(?P<ans>[^\n]+)")
_NUMBER = re.compile(r"[-−]?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?|[-−]?\.\d+")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?(?:[.):,]|\s|$)")
_FRAC = re.compile(r"\\d?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_NOISE = re.compile(r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}")
_LEADING_NUMBER = re.compile(
    r"^[-−]?\\?\$?\s?(?:\\d?frac\s*\{[^{}]*\}\s*\{[^{}]*\}|\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|\.\d+)")
_TRAILING_PUNCT = ".,;:!?"
# A fence opens at the start of a line: ```lang (anything after the language is ignored).
_FENCE_OPEN = re.compile(r"(?m)^[ \t]*```[ \t]*(?P<lang>[\w+#.\-]*)[^\n]*\n")
_FENCE_CLOSE = re.compile(r"(?m)^[ \t]*```[ \t]*$")
_YES_NO_START = re.compile(r"(?i)^[\s*_#>]*(yes|no)\b[*_]*(?:[,.!:;]|\s*$)")
_YES_NO_LINE = re.compile(r"(?i)^[\s*_>]*(?:final\s*:?\s*)?(yes|no)[*_]*[.!]?[*_]*\s*$")
# Math delimiters around a whole span: $...$, \(...\), \[...\].
_MATH_DELIMITED = re.compile(r"^(?:\$\$?(?P<a>.+?)\$\$?|\\\((?P<b>.+?)\\\)|\\\[(?P<c>.+?)\\\])$", re.S)
_LATEX_COMMAND = re.compile(r"\\[a-zA-Z]+|[\^_{}]|√|π")
_COMMAND_SPACE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")
_SPACING = re.compile(r"\\(?:left|right|displaystyle|[,;:! ])|\s+")
_WORD = re.compile(r"[A-Za-z]{3,}")
_MATH_WORDS = {"sqrt", "frac", "dfrac", "tfrac", "cdot", "times", "div", "sin", "cos", "tan", "log", "ln",
               "exp", "pi", "infty", "pm", "mp", "leq", "geq", "neq", "le", "ge", "cup", "cap"}
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


# --- extraction ----------------------------------------------------------------------------------


def _last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` with balanced braces."""
    best = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            best = text[m.end() : i - 1]
    return best


def _cut_sentence(span: str) -> str:
    """The answer part of "the answer is X. Because ..." : up to the end of the sentence."""
    span = span.strip().strip("*").strip()
    # A period ends the sentence unless it is a decimal point.
    m = re.search(r"(?<!\d)\.(?!\d)|\.(?=\s|$)", span)
    if m:
        span = span[: m.start()]
    return span.strip().strip("*").strip()


def _fences(text: str) -> list[tuple[str, str, bool]]:
    """Every fenced block as ``(language, code, closed)``, in order; an unclosed last fence runs to the end."""
    blocks = []
    pos = 0
    while True:
        m = _FENCE_OPEN.search(text, pos)
        if not m:
            return blocks
        close = _FENCE_CLOSE.search(text, m.end())
        if close is None:
            blocks.append((m.group("lang").lower(), text[m.end():], False))
            return blocks
        blocks.append((m.group("lang").lower(), text[m.end():close.start()], True))
        pos = close.end()


def extract_code(text: str, lang: str | None = None) -> str | None:
    """The code of the last fenced block (```lang ... ```), of language *lang* if given; ``None`` if none.

    An unclosed last fence (a reply cut off by the token limit) counts, up to the end of the text.
    """
    try:
        want = lang.lower() if lang else None
        for found, code, _ in reversed(_fences(text or "")):
            if want is None or found == want:
                return code.rstrip("\n")
    except (RecursionError, ValueError):
        return None
    return None


def extract_yes_no(text: str) -> str | None:
    """``"yes"``/``"no"`` when the reply opens with a bare "Yes,"/"No." or its last line is just that."""
    if not text:
        return None
    m = _YES_NO_START.match(text.lstrip()[:40])
    if m:
        return m.group(1).lower()
    lines = [line for line in text.rstrip().splitlines()[-3:] if line.strip()]
    if lines:
        m = _YES_NO_LINE.match(lines[-1])
        if m:
            return m.group(1).lower()
    return None


def _ends_with_code(text: str) -> str | None:
    """The last block's code when the reply ends with a fenced block (nothing but space after it)."""
    blocks = _fences(text)
    if not blocks:
        return None
    lang, code, closed = blocks[-1]
    if closed:
        tail = text[text.rfind("```") + 3:]
        if tail.strip():
            return None
    return code if code.strip() else None


def extract_answer(text: str) -> str | None:
    """Return the raw answer span the text commits to, or ``None``."""
    if not text:
        return None
    boxed = _last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    hashes = list(_HASHES.finditer(text))
    if hashes:
        return _cut_sentence(hashes[-1].group("ans"))
    said = list(_ANSWER_IS.finditer(text))
    if said:
        raw = said[-1].group("ans")
        for _ in range(3):  # "Final Answer: The final answer is $18$. I hope it is correct."
            inner = _ANSWER_IS.search(raw)
            if inner is None:
                break
            raw = inner.group("ans")
        span = _cut_sentence(raw)
        if span:
            return span
    if "```" in text:
        code = _ends_with_code(text)
        if code is not None:
            return "```\n" + code
    yes_no = extract_yes_no(text)
    if yes_no is not None:
        return yes_no
    numbers = list(_NUMBER.finditer(text))
    if numbers:
        return numbers[-1].group(0).strip()
    return None


# --- normalization -------------------------------------------------------------------------------


def parse_number(raw: str) -> Fraction | None:
    """Parse a number written as 1,234.5 / $12 / 45% / 3/4 / \\frac{3}{4} / -2; ``None`` if not one."""
    s = raw.strip().replace("−", "-")
    s = _FRAC.sub(r"(\1)/(\2)", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    s = s.replace("\\!", "").replace("{,}", "").replace(",", "").replace(" ", "")
    s = s.strip("()").rstrip(_TRAILING_PUNCT)
    m = re.fullmatch(r"\(?(-?\d*\.?\d+)\)?(?:/\(?(-?\d*\.?\d+)\)?)?", s)
    if not m:
        return None
    try:
        value = Fraction(m.group(1))
        if m.group(2) is not None:
            den = Fraction(m.group(2))
            if den == 0:
                return None
            value /= den
    except (ValueError, ZeroDivisionError):
        return None
    return value


def format_number(value: Fraction) -> str:
    """Canonical text of a number: integers without a decimal point, others with at most six decimals."""
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _math_tail(tail: str) -> bool:
    """Does what follows a leading number continue a mathematical expression (``3\\sqrt{2}``, ``2x+1``)
    rather than name a unit (``18 dollars``, ``45%``, ``12 (before tax)``)?"""
    if not tail:
        return False
    if re.match(r"[a-zA-Zπ](?![a-zA-Z])", tail):  # 2x, 3i, 5π: a coefficient times a variable
        return True
    t = tail.lstrip()
    if not t:
        return False
    if t[0] == "\\":
        return not re.match(r"\\(?:[%$,;:! ]|text|mathrm|mbox|textbf|quad|qquad)", t)
    if t[0] in "^*+=_{":
        return True
    if t[0] == "(" and tail[0] == "(":  # 2(x+1), but not "12 (before tax)"
        return True
    return bool(re.match(r"-\s*[\d(\\a-z]", t)) and not re.match(r"-\s*[a-z]{3,}", t)


def looks_mathematical(s: str) -> bool:
    """Is *s* (a normalized or raw answer) a mathematical expression rather than prose or a number?"""
    if _LATEX_COMMAND.search(s):
        return True
    if not re.fullmatch(r"[\w\s.,+\-*/()\[\]=<>|]+", s) or not re.search(r"[+\-*/=<>()\[\]]", s):
        return False
    if not re.search(r"\d|(?<![A-Za-z])[A-Za-z](?![A-Za-z])", s):
        return False
    return all(w.lower() in _MATH_WORDS for w in _WORD.findall(s))


def _compact_math(s: str) -> str:
    """Spacing and sizing commands dropped (``\\left( 3, \\pi \\right)`` -> ``(3,\\pi)``), except the space
    that ends a command before a letter (``\\pi r`` is not ``\\pir``)."""
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("−", "-")
    s = _COMMAND_SPACE.sub("\\1\0", s)
    s = _SPACING.sub("", s).replace("\0", " ")
    return s.rstrip(_TRAILING_PUNCT)


def normalize_answer(raw: str) -> str:
    """Canonical form of an answer span: code, numbers, choice letters, yes/no, math, else folded text."""
    if raw.startswith("```\n"):  # a code answer: compare code, not prose
        lines = [line.rstrip() for line in raw[4:].splitlines()]
        return "```\n" + "\n".join(line for line in lines if line.strip())
    s = _LATEX_NOISE.sub(r"\1", raw.strip())
    s = s.strip().strip("*`").strip()
    delimited = _MATH_DELIMITED.match(s)
    if delimited and len(s) > 2:
        s = next(g for g in delimited.groups() if g is not None).strip()
    if "=" in s:  # "x = 5", "18 + 2 = 20": the value is the last side
        right = s.rsplit("=", 1)[1].strip()
        if right and not right.startswith("="):
            s = right
    # A leading number followed by units ("18 dollars", "$18.00 per hour") is that number.
    m = _LEADING_NUMBER.match(s)
    if m and not _math_tail(s[m.end():]):
        value = parse_number(m.group(0))
        if value is not None:
            return format_number(value)
    choice = _CHOICE.match(s)
    if choice and (len(s) <= 3 or s[1:2] in ").:" or s[:1] == "("):
        return choice.group(1).upper()
    low = s.lower().rstrip(_TRAILING_PUNCT).strip()
    if low in ("yes", "no", "true", "false"):
        return {"true": "yes", "false": "no"}.get(low, low)
    if looks_mathematical(s):
        return _compact_math(s)
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s./+\-]", "", low)).strip()


def is_code_answer(answer: str | None) -> bool:
    """Is *answer* (as :func:`final_answer` gives it) a program rather than a value? A reply that ends
    with a code block answers with that code."""
    return bool(answer and answer.startswith("```"))


def final_answer(text: str) -> str | None:
    """Extract and normalize the final answer of *text*; ``None`` when it commits to none."""
    try:
        raw = extract_answer(text)
        if raw is None:
            return None
        norm = normalize_answer(raw)
        return norm or None
    except (RecursionError, ValueError, OverflowError):  # pathological input: no answer, never a crash
        return None


# --- equivalence ---------------------------------------------------------------------------------


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
