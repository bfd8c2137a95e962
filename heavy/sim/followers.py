"""How the simulated model follows the strategy suite's prompts (``heavy.prompts``): pairwise verdicts,
consistency picks, peer rankings, self-critiques, the chairman's answer, and revisions (debate turns,
self-aggregation, mixture-of-agents layers, self-refine revisions).

Each prompt is recognised by its instruction constant and parsed back (question, candidates, previous
answer); the gold answer of the question decides what a competent model would say, and the request's
random generator (seeded by the request's seed when it has one) decides whether this reply gets it right:

* **Judging** (pairwise, ranking, critique, chairman): sees the gold answer among the candidates with
  probability ``judge_accuracy``; otherwise it falls back to a bias: the first response shown (pairwise),
  the plurality answer (ranking, chairman), or "looks correct" (critique).
* **Consistency** (universal self-consistency): the first response of the plurality answer; it never
  consults the gold answer, because that is not what the prompt asks.
* **Revision**: right with probability ``accuracy + (1 - accuracy) / 2`` when the gold answer is among the
  answers it reads (checking a right answer is easier than finding it), ``accuracy`` when it was told its
  previous answer is wrong (self-refine), and ``accuracy / 2`` when every answer it reads is wrong (anchoring);
  when not right it repeats the wrong answer most of its inputs give, or makes a new slip.

Questions the simulator cannot check get neutral replies: judges pick the first response, critiques say
correct, revisions say (as :func:`~heavy.sim.writer.answer_reply` does) that it cannot answer.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..answers import final_answer, normalize_answer
from ..prompts import (AGGREGATE_INSTRUCTION, CHAIRMAN_INSTRUCTION, CONSISTENCY_INSTRUCTION, CRITIQUE_INSTRUCTION,
                       DEBATE_INSTRUCTION, MOA_INSTRUCTION, PAIRWISE_INSTRUCTION, RANK_INSTRUCTION, REVISE_INSTRUCTION,
                       parse_block, parse_candidates)
from .config import SimConfig
from .solver import GoldIndex, format_like_gold, wrong_answer

if TYPE_CHECKING:  # writer imports this module, so its names are imported lazily at run time
    from .writer import Reply

__all__ = ["follow"]

_REVISIONS = (DEBATE_INSTRUCTION, AGGREGATE_INSTRUCTION, MOA_INSTRUCTION, REVISE_INSTRUCTION)
#: Chance that a reviser who got it wrong repeats the wrong answer most of its inputs give.
_ANCHORING = 0.6


def follow(prompt: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply | None:
    """The reply to one of the suite's prompts, or ``None`` if *prompt* is none of them."""
    if PAIRWISE_INSTRUCTION in prompt:
        return _pairwise(prompt, config, index, rng)
    if CONSISTENCY_INSTRUCTION in prompt:
        return _consistency(prompt, config)
    if RANK_INSTRUCTION in prompt:
        return _rank(prompt, config, index, rng)
    if CRITIQUE_INSTRUCTION in prompt:
        return _critique(prompt, config, index, rng)
    if CHAIRMAN_INSTRUCTION in prompt:
        return _chairman(prompt, config, index, rng)
    if any(marker in prompt for marker in _REVISIONS):
        return _revision(prompt, config, index, rng)
    return None


def _gold(question: str, index: GoldIndex) -> str | None:
    gold = index.lookup(question) if question else None
    return normalize_answer(gold) if gold is not None else None


def _plurality(answers: Sequence[str | None]) -> str | None:
    """The most frequent answer; ties go to the one seen first."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    top = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == top)


def _reply(text: str, correct: bool | None, kind: str) -> Reply:
    from .writer import CONFIDENT, NEUTRAL, UNSURE, Reply

    confidence = NEUTRAL if correct is None else (CONFIDENT if correct else UNSURE)
    return Reply(text, confidence, kind, correct)


def _describe(label: str, answer: str | None, good: bool, noun: str = "Response") -> str:
    if answer is None:
        return f"{noun} {label} never commits to a final result."
    if good:
        return f"{noun} {label} arrives at {answer}, and its steps hold up when I redo them."
    return f"{noun} {label} arrives at {answer}, but I find a slip in its steps."


def _garbage(kind: str) -> Reply:
    return _reply("Each response has some merit, and I would rather not single one out.", None, kind)


# --- judging -------------------------------------------------------------------------------------


def _pairwise(prompt: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    question, cands = parse_candidates(prompt)
    if len(cands) < 2:
        return _reply("I could not find two responses to compare in the prompt.", None, "judge")
    if config.judge_mode == "garbage":
        return _garbage("judge")
    gold = _gold(question, index)
    answers = [(label, final_answer(text)) for label, text in cands]
    winner = answers[0][0]  # position bias: the response shown first, unless the gold answer is recognised
    if gold is not None and rng.random() < config.judge_accuracy:
        winner = next((label for label, a in answers if a == gold), winner)
    chosen = dict(answers)[winner]
    lines = [_describe(label, a, label == winner) for label, a in answers]
    lines.append(f"\nVERDICT: {winner}")
    return _reply("\n".join(lines), None if gold is None or chosen is None else chosen == gold, "judge")


def _consistency(prompt: str, config: SimConfig) -> Reply:
    _, cands = parse_candidates(prompt)
    if not cands:
        return _reply("I could not find any responses in the prompt.", None, "judge")
    if config.judge_mode == "garbage":
        return _garbage("judge")
    answers = [(label, final_answer(text)) for label, text in cands]
    top = _plurality([a for _, a in answers])
    if top is None:  # free-form: the most common text
        top_text = _plurality([" ".join(text.split()) for _, text in cands])
        label = next(lb for lb, text in cands if " ".join(text.split()) == top_text)
    else:
        label = next(lb for lb, a in answers if a == top)
    shared = sum(1 for _, a in answers if a == top) if top is not None else 0
    body = (f"Response {label} agrees with the largest group of responses" +
            (f" ({shared} of {len(answers)} reach {top})." if top is not None else "."))
    return _reply(f"{body}\n\nVERDICT: {label}", None, "judge")


def _rank(prompt: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    question, cands = parse_candidates(prompt)
    if not cands:
        return _reply("I could not find any responses to rank in the prompt.", None, "judge")
    if config.judge_mode == "garbage":
        return _garbage("judge")
    gold = _gold(question, index)
    answers = [(label, final_answer(text)) for label, text in cands]
    counts = Counter(a for _, a in answers if a is not None)
    sees_gold = gold is not None and rng.random() < config.judge_accuracy

    def key(item: tuple[int, tuple[str, str | None]]) -> tuple:
        position, (_, a) = item
        return (not (sees_gold and a == gold), a is None, -counts.get(a, 0), position)

    order = [label for _, (label, _) in sorted(enumerate(answers), key=key)]
    best = dict(answers)[order[0]]
    lines = [_describe(label, a, label == order[0] or a == best) for label, a in answers]
    lines.append("\nFINAL RANKING:")
    lines += [f"{place}. Response {label}" for place, label in enumerate(order, 1)]
    return _reply("\n".join(lines), None if gold is None or best is None else best == gold, "judge")


def _critique(prompt: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    question = parse_candidates(prompt)[0]
    response = parse_block(prompt, "response") or ""
    if config.judge_mode == "garbage":
        return _reply("The response is interesting, and there is a lot one could say about it.", None, "judge")
    gold = _gold(question, index)
    answer = final_answer(response)
    if gold is None:
        return _reply("I redid every step and found nothing to object to.\n\nSTATUS: CORRECT", None, "judge")
    right = answer == gold
    sees = rng.random() < config.judge_accuracy
    says_correct = right if sees else not right
    if says_correct:
        text = "I redid every step and each one holds up; the final result follows.\n\nSTATUS: CORRECT"
    elif answer is None:
        text = "The response never commits to a final result; it should finish the computation.\n\nSTATUS: INCORRECT"
    else:
        text = (f"Redoing the steps, the response's result of {answer} does not follow: one of the quantities "
                "is combined the wrong way. Recompute that step carefully.\n\nSTATUS: INCORRECT")
    return _reply(text, says_correct == right, "judge")


def _chairman(prompt: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    from .writer import worked_text

    question, cands = parse_candidates(prompt)
    gold = _gold(question, index)
    answers = dict((label, final_answer(text)) for label, text in cands)
    ranking = [line.split()[-1] for line in (parse_block(prompt, "ranking") or "").splitlines() if line.strip()]
    chosen = next((answers[lb] for lb in ranking if answers.get(lb) is not None), None)
    chosen = chosen if chosen is not None else _plurality(list(answers.values()))
    if gold is not None and gold in answers.values() and rng.random() < config.judge_accuracy:
        chosen = gold
    if chosen is None:
        return _reply("After reading the council's responses, I cannot settle on a definite final result.",
                      None, "synthesize")
    return _reply(worked_text(chosen, rng), None if gold is None else chosen == gold, "synthesize")


# --- revisions -----------------------------------------------------------------------------------


def _revision(prompt: str, config: SimConfig, index: GoldIndex, rng: random.Random) -> Reply:
    from .writer import UNKNOWN_TEXT, worked_text

    question, cands = parse_candidates(prompt)
    gold_raw = index.lookup(question) if question else None
    if gold_raw is None:
        return _reply(UNKNOWN_TEXT, None, "answer")
    gold = normalize_answer(gold_raw)
    previous = parse_block(prompt, "previous_answer")
    own = final_answer(previous) if previous is not None else None
    inputs = [final_answer(text) for _, text in cands] + ([own] if previous is not None else [])
    told_wrong = REVISE_INSTRUCTION in prompt
    if gold in inputs:
        p = config.accuracy + (1 - config.accuracy) / 2
    elif told_wrong:
        p = config.accuracy
    else:
        p = config.accuracy / 2
    if rng.random() < p:
        return _reply(worked_text(format_like_gold(gold_raw), rng), True, "answer")
    wrong = [a for a in inputs if a is not None and a != gold]
    value = _plurality(wrong) if wrong and not told_wrong and rng.random() < _ANCHORING else wrong_answer(gold_raw, rng)
    return _reply(worked_text(value, rng), False, "answer")
