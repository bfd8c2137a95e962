"""Each strategy end to end on the simulated LLM, asserting its defining behaviour."""


import httpx
import pytest

from heavy import Heavy
from heavy.answers import normalize_answer
from heavy.events import AggregatorDelta, StageStarted
from heavy.prompts import SYNTHESIZE_INSTRUCTION
from heavy.sim import SimConfig, SimulatedLLM
from helpers import arithmetic_questions, sim_heavy

pytestmark = pytest.mark.anyio


async def test_vote_beats_a_single_sample_at_accuracy_0_6():
    questions = arithmetic_questions(60)
    h, _ = sim_heavy(SimConfig(accuracy=0.6, seed=7), n=9, strategy="vote")
    single_right = vote_right = 0
    for i, (q, gold) in enumerate(questions):
        r = await h.ask(q, seed=1000 * i)
        vote_right += r.answer == gold
        single_right += r.hypotheses[0].answer == gold  # hypothesis 0 alone is a single sample
    await h.aclose()
    single, vote = single_right / 60, vote_right / 60
    assert 0.4 <= single <= 0.8, f"single-sample accuracy {single:.2f} should be near 0.6"
    assert vote >= 0.85 and vote >= single + 0.2, f"vote@9 {vote:.2f} vs single {single:.2f}"


async def test_vote_result_explains_itself():
    h, app = sim_heavy(SimConfig(accuracy=0.6, seed=3), n=9, strategy="vote")
    r = await h.ask("What is 23 * 7 + 5?", seed=11)
    d = r.decision
    assert d.method == "vote" and d.path == ["sample", "vote"]
    assert sum(d.votes.values()) + d.no_answer == 9
    assert d.votes[r.answer] == max(d.votes.values())
    winner = next(x for x in r.hypotheses if x.index == d.winner)
    assert winner.answer == r.answer and r.text == winner.text
    assert f"{d.votes[r.answer]} of 9" in r.explain()
    assert r.usage.completion_tokens == sum(x.usage.completion_tokens for x in r.hypotheses) > 0
    assert app.stats.max_in_flight >= 1 and not r.aggregator_calls


async def test_vote_with_no_extractable_answer_falls_back_and_says_so():
    h, _ = sim_heavy(n=3, strategy="vote")
    r = await h.ask("Write a haiku about autumn.")
    assert r.decision.method == "fallback:first" and r.decision.no_answer == 3
    assert "no hypothesis stated an extractable final answer" in r.decision.rationale
    assert r.text and r.answer == r.text.strip()


async def test_vote_early_stop_cancels_undecidable_stragglers():
    cfg = SimConfig(accuracy=1.0, latency=0.05, latency_sigma=1.5, seed=5)
    h, _ = sim_heavy(cfg, n=9, strategy="vote", early_stop=True)
    r = await h.ask("What is 12 * 12?", seed=2)
    ok = [x for x in r.hypotheses if x.ok]
    assert r.answer == "144" and r.stopped_early
    assert len(ok) == 5, "with unanimous answers, 5 of 9 decide the vote"
    assert [x.status for x in r.hypotheses].count("cancelled") == 4


async def test_judge_can_pick_a_minority_right_answer():
    # Weak samplers: the plurality is often wrong, but a judge that checks work picks the right one.
    questions = arithmetic_questions(20, seed=1)
    h, _ = sim_heavy(SimConfig(accuracy=0.3, seed=9), n=8, strategy="judge")
    hv, _ = sim_heavy(SimConfig(accuracy=0.3, seed=9), n=8, strategy="vote")
    judge_right = vote_right = covered = 0
    for i, (q, gold) in enumerate(questions):
        r = await h.ask(q, seed=i)
        rv = await hv.ask(q, seed=i)
        covered += any(x.answer == gold for x in r.hypotheses)
        judge_right += r.answer == gold
        vote_right += rv.answer == gold
        assert r.decision.method == "judge"
        assert sorted(r.decision.details["labels"].values()) == sorted(x.index for x in r.hypotheses if x.ok)
    assert judge_right == covered, "the simulated judge picks the gold answer whenever one candidate has it"
    assert judge_right > vote_right


async def test_judge_shuffles_candidates_reproducibly():
    h, _ = sim_heavy(n=6, strategy="judge", seed=4)
    a = (await h.ask("What is 9 * 9?", seed=1)).decision.details["labels"]
    b = (await h.ask("What is 9 * 9?", seed=1)).decision.details["labels"]
    assert a == b and list(a.values()) != sorted(a.values())
    h2, _ = sim_heavy(n=6, strategy="judge", shuffle=False)
    c = (await h2.ask("What is 9 * 9?", seed=1)).decision.details["labels"]
    assert list(c.values()) == sorted(c.values())


async def test_judge_unparseable_verdict_retries_once_then_votes():
    h, _ = sim_heavy(SimConfig(judge_mode="garbage", accuracy=0.8, seed=1), n=5, strategy="judge")
    r = await h.ask("What is 31 * 3?", seed=3)
    assert [c.purpose for c in r.aggregator_calls] == ["judge", "judge-retry"]
    assert r.decision.method == "vote" and r.decision.path == ["sample", "judge", "vote"]
    assert "unparseable" in r.decision.rationale
    assert r.answer == "93"


@pytest.mark.parametrize("strategy, path", [("judge", ["sample", "judge"]), ("usc", ["sample", "select most consistent"]),
                                            ("ranked", ["sample", "rank", "borda", "chairman"])])
async def test_a_decision_cut_at_max_tokens_is_asked_for_alone_not_lost(strategy, path):
    """Small models run out of max_tokens mid-analysis: the follow-up asks for the decision line(s) only."""
    config = SimConfig(judge_mode="verbose", accuracy=0.5, judge_accuracy=1.0, seed=2)
    h, _ = sim_heavy(config, n=6, strategy=strategy, max_tokens=150)
    r = await h.ask("What is 31 * 3?", seed=3)
    assert r.decision.path == path and r.answer == "93"
    firsts = [c for c in r.aggregator_calls if not c.purpose.endswith("-retry") and c.purpose != "chairman"]
    follow_ups = [c for c in r.aggregator_calls if c.purpose.endswith("-retry")]
    assert firsts and len(follow_ups) == len(firsts)  # every analysis was cut, every decision still arrived
    assert all(c.usage.completion_tokens == 150 for c in firsts)
    assert all(c.usage.completion_tokens < 20 for c in follow_ups)  # the decision alone, not a new analysis
    if strategy != "ranked":
        h, _ = sim_heavy(config, n=6, strategy=strategy, max_tokens=150, retries=0)
        r = await h.ask("What is 31 * 3?", seed=3)
        assert r.decision.path[-1] == "vote"  # without the follow-up the cut verdict is lost


async def test_synthesize_streams_the_final_answer_and_counts_its_usage():
    events = []
    h, _ = sim_heavy(SimConfig(accuracy=0.5, seed=2), n=6, strategy="synthesize", on_event=events.append)
    r = await h.ask("What is 45 * 6 + 2?", seed=8)
    assert r.answer == "272" and r.decision.method == "synthesize"
    streamed = "".join(e.text for e in events if isinstance(e, AggregatorDelta))
    assert streamed == r.text and "The answer is 272" in streamed
    [call] = r.aggregator_calls
    assert call.purpose == "synthesize" and call.model == "openai:heavy-simulated"
    assert r.usage.completion_tokens == sum(x.usage.completion_tokens for x in r.hypotheses) + call.usage.completion_tokens
    assert [e.name for e in events if isinstance(e, StageStarted)] == ["sample", "synthesize"]


async def test_a_failing_aggregator_falls_back_to_another_listed_model():
    app = SimulatedLLM(SimConfig(accuracy=1.0))
    h = Heavy(model="openai:heavy-simulated", aggregator_model="openai:heavy-simulated@fail_rate=1,fail_status=400",
              base_url="http://sim.test/v1", transport=httpx.ASGITransport(app=app), n=4, strategy="synthesize")
    r = await h.ask("What is 8 * 7?")
    assert r.answer == "56" and r.decision.method == "synthesize"
    failed, used = r.aggregator_calls
    assert failed.model.endswith("fail_rate=1,fail_status=400") and "400" in failed.error
    assert used.model == "openai:heavy-simulated" and used.purpose == "synthesize (fallback model)"


async def test_synthesize_falls_back_to_vote_when_every_aggregator_fails():
    sim = httpx.ASGITransport(app=SimulatedLLM(SimConfig(accuracy=1.0)))

    async def endpoint(req: httpx.Request) -> httpx.Response:
        if SYNTHESIZE_INSTRUCTION.encode() in req.content:  # every aggregator prompt is rejected
            return httpx.Response(400, json={"error": {"message": "context too long"}})
        return await sim.handle_async_request(req)

    h = Heavy(model=["openai:heavy-simulated", "openai:heavy-simulated@accuracy=1"], base_url="http://sim.test/v1",
              transport=httpx.MockTransport(endpoint), n=4, strategy="synthesize")
    r = await h.ask("What is 8 * 7?")
    assert r.answer == "56"
    assert r.decision.method == "vote" and "synthesize failed" in r.decision.path
    assert [c.model for c in r.aggregator_calls] == ["openai:heavy-simulated", "openai:heavy-simulated@accuracy=1"]
    assert all("context too long" in c.error for c in r.aggregator_calls)


async def test_heavy_votes_on_a_clear_majority():
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=6)  # default strategy
    r = await h.ask("What is 14 * 3?")
    assert r.strategy == "heavy" and r.answer == "42"
    assert r.decision.path == ["sample", "majority", "vote"] and not r.aggregator_calls


async def test_heavy_synthesizes_when_answers_split():
    h, _ = sim_heavy(SimConfig(accuracy=0.2, seed=4), n=6)
    r = await h.ask("What is 77 * 13 + 1?", seed=5)
    assert r.decision.method == "synthesize" and "no clear majority" in r.decision.path[1]
    assert r.answer == "1002"  # the simulated aggregator recovers the gold answer present in a candidate
    assert len(r.aggregator_calls) == 1


async def test_heavy_synthesizes_free_form_answers():
    h, _ = sim_heavy(n=3)
    r = await h.ask("Describe the sea.")
    assert r.decision.path[:2] == ["sample", "no extractable answers"] and r.aggregator_calls


async def test_mixed_models_are_round_robined_and_aggregator_defaults_to_the_first():
    app = SimulatedLLM(SimConfig(accuracy=1.0))
    h = Heavy(model=["openai:heavy-simulated@accuracy=1", "openai:heavy-simulated@accuracy=0"],
              base_url="http://sim.test/v1", transport=httpx.ASGITransport(app=app), n=4, strategy="synthesize")
    r = await h.ask("What is 6 * 6?")
    assert [x.model for x in r.hypotheses] == ["openai:heavy-simulated@accuracy=1",
                                              "openai:heavy-simulated@accuracy=0"] * 2
    assert [x.answer == "36" for x in r.hypotheses] == [True, False, True, False]
    assert r.aggregator_calls[0].model == "openai:heavy-simulated@accuracy=1"


@pytest.mark.parametrize("strategy", ["vote", "judge", "synthesize", "heavy"])
async def test_every_strategy_answers_gsm8k_questions_from_a_dataset(strategy, gsm8k):
    rows = gsm8k[:5]
    cfg = SimConfig(accuracy=0.7, seed=1, dataset={r["question"]: r["answer"] for r in rows})
    h, _ = sim_heavy(cfg, n=7, strategy=strategy)
    right = 0
    for i, row in enumerate(rows):
        r = await h.ask(row["question"], seed=i)
        right += r.answer == normalize_answer(row["answer"])
        assert r.strategy == strategy and len(r.hypotheses) == 7
    assert right >= 4
