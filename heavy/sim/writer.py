"""The simulated model's replies: worked answers, judge verdicts, syntheses, tokens and logprobs.

Prompts of the strategy suite (pairwise judging, ranking, critiques, debate turns, aggregations, …) are
answered by :mod:`heavy.sim.followers`, reached through :func:`answer_reply`.

Everything here is a pure function of its inputs and a ``random.Random``, which is what makes the
server's output reproducible. Filler sentences never contain digits or the word "answer", so the
only thing :func:`heavy.answers.final_answer` can find in a reply is the answer the simulator meant.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..answers import final_answer, normalize_answer
from ..prompts import parse_candidates
from .codetasks import code_reply_text, mutant, parse_code_gold
from .config import SimConfig
from .followers import follow
from .solver import GoldIndex, format_like_gold, wrong_answer

__all__ = ["Reply", "derive_seed", "answer_reply", "judge_reply", "synthesize_reply", "tokenize", "token_logprobs",
           "worked_text", "reasoning_text", "UNKNOWN_TEXT"]

#: Typical |logprob| per token of a reply the model "knows" is right, of a wrong one, and of a reply
#: about a question the simulator cannot check. Confidence-weighted voting relies on right > wrong.
CONFIDENT, UNSURE, NEUTRAL = 0.05, 0.6, 0.3

_OPENINGS = [
    "Let me work through this step by step.",
    "I will break the problem into smaller parts.",
    "First, I restate what the question is asking for.",
    "Let me think about this carefully before computing anything.",
    "Here is my reasoning, one step at a time.",
]
_STEPS = [
    "I start by identifying the quantities given in the problem.",
    "Next, I combine them in the order the problem describes.",
    "Each intermediate result gets checked before moving on.",
    "The units stay consistent throughout, so no conversion is needed.",
    "It helps to write every quantity down before combining them.",
    "Now I carry the partial result into the next step.",
    "Going over the arithmetic once more, nothing seems off.",
    "The problem mentions a few details that do not affect the result.",
    "I make sure not to count anything twice.",
    "Multiplication and division come before addition and subtraction here.",
    "Then I look at what remains after the earlier steps.",
    "The relationship between the quantities is the key to this problem.",
    "A quick sanity check on the size of the result looks reasonable.",
    "I keep track of which values are totals and which are per item.",
    "This step only rearranges what we already know.",
    "After that, the remaining part follows directly.",
    "I am careful to use the right quantity at each stage.",
    "Rounding is not needed because the values work out cleanly.",
    "The wording tells us exactly which operation to apply.",
    "Putting the pieces together is straightforward from here.",
]
UNKNOWN_TEXT = (
    "I am heavy's simulated model, not a real language model. I can only solve simple arithmetic "
    "(for example: what is seventeen times three?) and the questions in my configured dataset, and "
    "this question is neither, so I cannot give a final result for it."
)
# A reasoning model's thoughts: clearly simulated, no digits (the answer is only ever in the reply's text), longer
# the harder it is asked to think.
_THOUGHTS = (
    "(Simulated reasoning: heavy's simulator is not a real model.)",
    "I restate what the question asks for.",
    "I list the quantities it gives and what each one means.",
    "I work through the steps in order and check each intermediate result.",
    "I look for a slip by redoing the key step another way.",
    "I compare the result with the question once more before answering.",
)
_THOUGHTS_BY_EFFORT = {"none": 1, "minimal": 2, "low": 3, "medium": 4, "high": 5, "xhigh": 6, "max": 6}


def reasoning_text(effort: str) -> str:
    """What a simulated reasoning model thinks before it answers, longer with a higher *effort*."""
    return " ".join(_THOUGHTS[: _THOUGHTS_BY_EFFORT.get(effort, 4)])


_ALT_TOKENS = ["the", "a", "so", "then", "and", "it", "is", "we", "to", "of", "that", "this", "first",
               "next", "total", "each", "one", "two", "now", "here", ".", ","]
# Trailing whitespace sticks to the last word, so the token count equals the word count.
_TOKEN = re.compile(r"\s*\S+(?:\s+$)?|\s+")


@dataclass(frozen=True)
class Reply:
    """A reply before tokenization. ``confidence`` is the typical |logprob| per token (smaller = surer);
    ``kind`` is "answer", "judge" or "synthesize"; ``correct`` is None when the simulator cannot tell."""

    text: str
    confidence: float
    kind: str = "answer"
    correct: bool | None = None
    tool_calls: tuple[dict, ...] = ()  #: native tool calls ({"id", "name", "arguments"}) instead of/after text


_RECHECK = ("Before deciding I redo the arithmetic of every response line by line, restating each quantity, "
            "each operation and each intermediate result, and comparing it with the question's numbers. ")


def verbose(reply: Reply) -> Reply:
    """A judge-type reply preceded by a long re-derivation (``judge_mode="verbose"``): some 200 tokens
    before the decision, which a small ``max_tokens`` cuts off as it does with small real models."""
    return replace(reply, text=_RECHECK * 6 + "\n\n" + reply.text)


def decision_only(reply: Reply) -> Reply:
    """What a model says when asked for its decision alone after an undecided reply: the reply's own
    ``VERDICT:`` line or ``FINAL RANKING:`` section, or (if it had none) a refusal to pick."""
    text = reply.text
    at = max(text.upper().rfind("VERDICT:"), text.upper().rfind("FINAL RANKING"))
    decided = text[at:].strip() if at >= 0 else "I would rather not single one out."
    return replace(reply, text=decided, tool_calls=())


def derive_seed(*parts: object) -> int:
    """A 64-bit seed that depends only on *parts* (unlike ``hash()``, stable across processes)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode("utf-8")).digest()[:8], "big")


def _filler(rng: random.Random, target_words: int) -> list[str]:
    sentences = [rng.choice(_OPENINGS)]
    steps = rng.sample(_STEPS, len(_STEPS))
    words = len(sentences[0].split())
    while words < target_words and steps:
        sentences.append(steps.pop())
        words += len(sentences[-1].split())
    return sentences


def worked_text(value: str, rng: random.Random) -> str:
    """A worked answer of 30-150 words that ends ``The answer is <value>.`` (filler has no digits)."""
    closing = f"Putting it all together gives {value}."
    final = f"The answer is {value}."
    # Filler overshoots its target by at most one sentence (< 12 words): total stays within 30..150.
    target = rng.randint(30, 138) - len(closing.split()) - len(final.split())
    sentences = _filler(rng, target)
    # Paragraph breaks at random places: replies should not all look alike.
    body = ""
    for i, sentence in enumerate(sentences):
        body += sentence if i == 0 else ("\n" if rng.random() < 0.2 else " ") + sentence
    return f"{body} {closing}\n\n{final}"


def answer_reply(question: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    """A worked answer of 30-150 words ending ``The answer is N.``; right with probability
    ``config.accuracy``. Questions without a known gold get a short "I am simulated" reply instead.
    Prompts of the strategy suite (debate turns, aggregations, critiques, rankings, …) are followed as
    :mod:`heavy.sim.followers` describes."""
    followed = follow(question, config, index, rng)
    if followed is not None:
        return followed
    gold = index.lookup(question)
    if gold is None:
        return Reply(UNKNOWN_TEXT, NEUTRAL)
    code = parse_code_gold(gold)
    if code is not None:  # a code task: the reference solution, or a mutant of it
        correct = rng.random() < config.accuracy
        solution = code[0] if correct else mutant(code[0], rng)
        return Reply(code_reply_text(solution, rng), CONFIDENT if correct else UNSURE, "answer", correct)
    correct = rng.random() < config.accuracy
    value = format_like_gold(gold) if correct else wrong_answer(gold, rng)
    return Reply(worked_text(value, rng), CONFIDENT if correct else UNSURE, "answer", correct)


def _choose(
    answers: Sequence[tuple[str, str | None]], gold: str | None, accuracy: float, rng: random.Random
) -> tuple[str | None, str | None]:
    """(label, answer) an aggregator settles on: the first candidate with the gold answer with
    probability *accuracy* (when there is one), else the first label of the plurality answer."""
    hit = rng.random() < accuracy
    if gold is not None and hit:
        for label, answer in answers:
            if answer == gold:
                return label, answer
    counts = Counter(answer for _, answer in answers if answer is not None)
    if not counts:
        return (answers[0][0], None) if answers else (None, None)
    top = max(counts.values())
    for label, answer in answers:  # candidates are in label order, so ties go to the earliest label
        if answer is not None and counts[answer] == top:
            return label, answer
    raise AssertionError("unreachable: some answer has the top count")


def _aggregate(
    prompt: str, config: SimConfig, index: GoldIndex, salt: str
) -> tuple[list[tuple[str, str | None]], str | None, str | None, float, bool | None]:
    """Parse an aggregator prompt and decide: (answers by label, label, answer, confidence, correct)."""
    question, candidates = parse_candidates(prompt)
    # Deterministic given the prompt (and the server seed): an aggregator at temperature 0.
    rng = random.Random(derive_seed(config.seed, salt, prompt))
    answers = [(label, final_answer(text)) for label, text in candidates]
    gold = index.lookup(question) if question else None
    gold_norm = normalize_answer(gold) if gold is not None else None
    label, chosen = _choose(answers, gold_norm, config.judge_accuracy, rng)
    if gold_norm is None or chosen is None:
        confidence, correct = NEUTRAL, None
    else:
        correct = chosen == gold_norm
        confidence = CONFIDENT if correct else UNSURE
    return answers, label, chosen, confidence, correct


def judge_reply(prompt: str, config: SimConfig, index: GoldIndex) -> Reply:
    """One sentence per candidate, then ``VERDICT: <label>`` (no verdict at all in "garbage" mode)."""
    answers, label, chosen, confidence, correct = _aggregate(prompt, config, index, "judge")
    if not answers:
        return Reply("I could not find any candidates to compare in the prompt.", NEUTRAL, "judge")
    lines = []
    for cand, answer in answers:
        if answer is None:
            lines.append(f"Candidate {cand} never commits to a final result.")
        elif config.judge_mode == "garbage":
            lines.append(f"Candidate {cand} arrives at {answer}, which might be right.")
        elif cand == label or answer == chosen:
            lines.append(f"Candidate {cand} arrives at {answer}, and its steps hold up when I redo them.")
        else:
            lines.append(f"Candidate {cand} arrives at {answer}, but I find a slip in its steps.")
    if config.judge_mode == "garbage":
        # A judge that rambles without deciding: callers must survive an unparseable reply.
        lines.append("All of these have some merit, and I would rather not single one out.")
        return Reply("\n".join(lines), UNSURE, "judge", None)
    lines.append(f"\nVERDICT: {label}")
    return Reply("\n".join(lines), confidence, "judge", correct)


def synthesize_reply(prompt: str, config: SimConfig, index: GoldIndex) -> Reply:
    """A short synthesis ending ``The answer is X.``, X chosen like the judge's verdict."""
    _, _, chosen, confidence, correct = _aggregate(prompt, config, index, "synthesize")
    if chosen is None:
        text = "After working through the problem again, I cannot settle on a definite final result."
        return Reply(text, NEUTRAL, "synthesize", None)
    text = (
        "Working through the problem again from the start, the quantities combine in a single "
        f"consistent way, and checking each step confirms the result of {chosen}.\n\nThe answer is {chosen}."
    )
    return Reply(text, confidence, "synthesize", correct)


def tokenize(text: str) -> list[str]:
    """Words with their leading whitespace attached: ``"".join(tokenize(t)) == t`` for every *t*."""
    return _TOKEN.findall(text)


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def token_logprobs(tokens: Sequence[str], confidence: float, top_k: int, rng: random.Random) -> list[dict]:
    """OpenAI-shaped ``logprobs.content`` entries for *tokens*.

    Each reply draws its own confidence level (lognormal around *confidence*), then each token's
    |logprob| is exponential around that level: right and wrong replies overlap a little, as with real
    models, but right ones are clearly surer on average.
    """
    scale = confidence * math.exp(rng.gauss(0.0, 0.4))
    out = []
    for token in tokens:
        logprob = round(-min(rng.expovariate(1.0 / scale), 20.0), 6)
        entry = _entry(token, logprob)
        top: list[dict] = []
        if top_k > 0:
            top.append(_entry(token, logprob))
            # The probability mass the sampled token leaves goes to a few alternatives, geometrically.
            rest = max(1.0 - math.exp(logprob), 1e-6)
            lead = token[: len(token) - len(token.lstrip())]
            alternatives = [lead + alt for alt in rng.sample(_ALT_TOKENS, len(_ALT_TOKENS)) if lead + alt != token]
            share = 0.6
            for alt in alternatives[: top_k - 1]:
                top.append(_entry(alt, round(math.log(rest * share), 6)))
                share *= 0.4
            top.sort(key=lambda e: -e["logprob"])
        entry["top_logprobs"] = top
        out.append(entry)
    return out
