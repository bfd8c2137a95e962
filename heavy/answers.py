"""Final-answer extraction and normalization, shared by every strategy.

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

Whether two normalized answers mean the same is :mod:`heavy.equivalence`'s job; its names
(:func:`~heavy.equivalence.equivalent`, :func:`~heavy.equivalence.match`, :func:`~heavy.equivalence.cluster`,
:func:`~heavy.equivalence.math_backend`, …) are importable from here too, where they always were.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Re-exported: ``heavy.answers.cluster`` and friends are documented (docs/strategies.md) and widely imported.
from .equivalence import cluster, equivalent, looks_mathematical, match, math_backend, text_key

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
_COMMAND_SPACE = re.compile(r"(\\[a-zA-Z]+)\s+(?=[a-zA-Z])")
_SPACING = re.compile(r"\\(?:left|right|displaystyle|[,;:! ])|\s+")


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
