"""The strategy suite end to end on the simulated LLM: each strategy's defining behaviour, its report in
``decision.details``, its stage events, budget caps inside rounds, and its fallbacks."""

import json
import random

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.answers import normalize_answer
from heavy.cli import cli
from heavy.errors import OptionsError
from heavy.events import StageStarted
from heavy.prompts import (CHAIRMAN_INSTRUCTION, CONSISTENCY_INSTRUCTION, CRITIQUE_INSTRUCTION, PAIRWISE_INSTRUCTION,
                           RANK_INSTRUCTION, SYNTHESIZE_INSTRUCTION, debate_messages, pairwise_messages,
                           parse_ranking, parse_status, parse_verdict, rank_messages, critique_messages)
from heavy.strategy import load_strategy, registered_strategies
from heavy.sim import SimConfig, SimulatedLLM
from heavy.sim.followers import follow
from heavy.sim.solver import GoldIndex
from heavy.types import Message
from strategies.adaptive import beta_confidence, dirichlet_confidence
from helpers import arithmetic_questions, sim_heavy

pytestmark = pytest.mark.anyio

SUITE = ["vote", "judge", "synthesize", "heavy", "adaptive", "confidence", "usc", "tournament", "moa", "debate",
         "rsa", "refine", "ranked"]
NEW = SUITE[4:]


async def accuracy(h, questions, *, single=False):
    """(strategy accuracy, hypothesis-0 accuracy, results) over *questions*."""
    right = first = 0
    results = []
    for i, (q, gold) in enumerate(questions):
        r = await h.ask(q, seed=1000 * i)
        results.append(r)
        right += r.answer == gold
        first += r.hypotheses[0].answer == gold
    await h.aclose()
    return right / len(questions), first / len(questions), results


def stages(events):
    return [e.name for e in events if isinstance(e, StageStarted)]


# --- the contract ----------------------------------------------------------------------------------


def test_the_whole_suite_is_registered_with_strict_documented_options():
    names = set(registered_strategies())
    assert set(SUITE) <= names
    for name in NEW:
        cls = load_strategy(name)
        assert cls.name == name and cls.summary(), name
        assert cls.Options.model_config.get("extra") == "forbid", name
        with pytest.raises(OptionsError):
            cls.parse_options({"no_such_option": 1})


@pytest.mark.parametrize("strategy", SUITE)
def test_each_strategy_answers_through_the_cli_on_the_sim(strategy):
    r = CliRunner().invoke(cli, ["ask", "-m", "sim:heavy-simulated@accuracy=0.6", "-s", strategy, "-n", "4",
                                 "What is 17 * 24 + 3?"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1 and r.stdout.strip()


@pytest.mark.parametrize("strategy", NEW)
async def test_each_new_strategy_answers_gsm8k_questions_from_a_dataset(strategy, gsm8k):
    rows = gsm8k[:3]
    cfg = SimConfig(accuracy=0.7, seed=1, dataset={r["question"]: r["answer"] for r in rows})
    h, _ = sim_heavy(cfg, n=4, strategy=strategy)
    right = 0
    for i, row in enumerate(rows):
        r = await h.ask(row["question"], seed=i)
        right += r.answer == normalize_answer(row["answer"])
        assert r.strategy == strategy and r.decision.rationale
        assert r.usage.total_tokens == sum(x.usage.total_tokens for x in r.hypotheses) + sum(
            c.usage.total_tokens for c in r.aggregator_calls)
    await h.aclose()
    assert right >= 2


# --- adaptive --------------------------------------------------------------------------------------


def test_stopping_rules():
    assert beta_confidence(4, 0) == pytest.approx(1 - 1 / 32)  # P(p > 1/2), p ~ Beta(5, 1)
    assert beta_confidence(3, 3) == pytest.approx(0.5)
    assert beta_confidence(6, 1) > 0.95 > beta_confidence(3, 0)
    # With two answers the Dirichlet is that Beta: the Monte Carlo agrees with the exact value.
    assert dirichlet_confidence([5, 2], 20_000, 0) == pytest.approx(beta_confidence(5, 2), abs=0.01)
    assert dirichlet_confidence([4, 1, 1], 4000, 0) < dirichlet_confidence([6, 1, 1], 4000, 0)


async def test_adaptive_uses_far_fewer_samples_at_equal_accuracy_when_accuracy_is_high():
    questions = arithmetic_questions(25, seed=3)
    adaptive, _, ra = await accuracy(sim_heavy(SimConfig(accuracy=0.9, seed=1), n=16, strategy="adaptive",
                                               rule="auto")[0], questions)
    vote, _, rv = await accuracy(sim_heavy(SimConfig(accuracy=0.9, seed=1), n=16, strategy="vote")[0], questions)
    used = sum(r.decision.details["samples_used"] for r in ra) / len(ra)
    assert adaptive >= vote - 0.04, (adaptive, vote)
    assert used <= 8, f"adaptive used {used:.1f} of 16 samples on average"
    assert sum(len(r.hypotheses) for r in ra) < 0.5 * sum(len(r.hypotheses) for r in rv)
    d = ra[0].decision.details
    assert d["samples_used"] + d["samples_saved"] == d["max_samples"] == 16
    assert d["waves"][-1]["confidence"] >= 0.95 and "beta confidence" in d["stopped"]


async def test_adaptive_esc_window_and_stage_per_wave():
    events = []
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=20, strategy="adaptive", rule="window", wave=4, on_event=events.append)
    r = await h.ask("What is 12 * 12?")
    assert r.answer == "144" and r.stopped_early
    assert r.decision.details["samples_used"] == 4 and r.decision.details["samples_saved"] == 16
    assert "ESC window" in r.decision.details["stopped"]
    assert stages(events) == ["wave 1", "vote"]


async def test_adaptive_default_stops_when_a_wave_of_two_agrees():
    """The default (chosen from bench/adaptive.py on the real model) is ESC's window rule, W = 2, waves of 2."""
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=8, strategy="adaptive")
    r = await h.ask("What is 12 * 12?")
    d = r.decision.details
    assert (r.answer, d["rule"], d["window"], d["samples_used"], d["samples_saved"]) == ("144", "window", 2, 2, 6)


async def test_adaptive_goes_to_the_maximum_when_answers_stay_split():
    h, _ = sim_heavy(SimConfig(accuracy=0.3, seed=2), n=6, strategy="adaptive")
    r = await h.ask("What is 77 * 13 + 1?", seed=4)
    assert r.decision.details["samples_used"] == 6 and r.decision.details["stopped"] == "max samples reached"
    assert len(r.decision.details["waves"]) == 3


# --- confidence ------------------------------------------------------------------------------------


async def test_confidence_beats_plain_vote_when_wrong_answers_are_less_confident():
    questions = arithmetic_questions(20, seed=5)
    conf, single, rc = await accuracy(sim_heavy(SimConfig(accuracy=0.3, seed=3), n=8, strategy="confidence",
                                                keep=0.5, top_logprobs=2)[0], questions)
    vote, _, _ = await accuracy(sim_heavy(SimConfig(accuracy=0.3, seed=3), n=8, strategy="vote")[0], questions)
    assert conf > vote + 0.1, (conf, vote)
    d = rc[0].decision
    assert d.method == "confidence" and len(d.details["kept"]) == 4 and len(d.details["dropped"]) == 4
    assert all(x.logprobs for x in rc[0].hypotheses)
    right = [float(v) for r, (_, g) in zip(rc, questions) for i, v in r.decision.details["confidence"].items()
             if next(x for x in r.hypotheses if x.index == int(i)).answer == g]
    wrong = [float(v) for r, (_, g) in zip(rc, questions) for i, v in r.decision.details["confidence"].items()
             if next(x for x in r.hypotheses if x.index == int(i)).answer != g]
    assert sum(right) / len(right) > sum(wrong) / len(wrong)


async def test_confidence_falls_back_to_vote_without_logprobs_and_says_so():
    app = SimulatedLLM(SimConfig(accuracy=0.8, seed=1))
    h = Heavy(model="anthropic:heavy-simulated", base_url="http://sim.test", api_key="k", n=4, strategy="confidence",
              transport=httpx.ASGITransport(app=app))
    r = await h.ask("What is 19 * 3?", seed=1)
    assert r.answer == "57" and r.decision.method == "vote"
    assert r.decision.path == ["sample", "no logprobs", "vote"]
    assert "no logprobs" in r.decision.rationale and "fell back to the plain vote" in r.decision.rationale


# --- usc -------------------------------------------------------------------------------------------


async def test_usc_picks_the_most_consistent_response():
    h, app = sim_heavy(SimConfig(accuracy=0.5, seed=4), n=5, strategy="usc")
    for i, (q, _) in enumerate(arithmetic_questions(6, seed=6)):
        r = await h.ask(q, seed=i)
        assert r.decision.method == "usc" and [c.purpose for c in r.aggregator_calls] == ["usc"]
        assert r.decision.votes[r.answer] == max(r.decision.votes.values())
        assert r.text == next(x.text for x in r.hypotheses if x.index == r.decision.winner)


async def test_usc_works_for_free_form_answers():
    h, _ = sim_heavy(n=3, strategy="usc")
    r = await h.ask("Describe the sea in one sentence.")
    assert r.decision.method == "usc" and r.decision.winner is not None and r.text


# --- tournament ------------------------------------------------------------------------------------


async def test_tournament_beats_vote_with_a_weak_sampler_and_a_strong_judge():
    questions = arithmetic_questions(20, seed=1)
    cfg = SimConfig(accuracy=0.3, judge_accuracy=1.0, seed=9)
    tour, _, rt = await accuracy(sim_heavy(cfg, n=8, strategy="tournament")[0], questions)
    vote, _, _ = await accuracy(sim_heavy(cfg, n=8, strategy="vote")[0], questions)
    covered = sum(any(x.answer == g for x in r.hypotheses) for r, (_, g) in zip(rt, questions)) / len(questions)
    assert tour == covered, "a judge that recognises the gold answer never lets it lose a comparison"
    assert tour > vote
    for r in rt:
        d = r.decision.details
        assert len(r.aggregator_calls) == d["judge_calls"] <= 7 * d["k"]
        assert len(r.hypotheses) + len(r.aggregator_calls) <= 8 * (d["k"] + 1)


async def test_tournament_bracket_judges_both_orders_and_gives_byes():
    events = []
    h, _ = sim_heavy(SimConfig(accuracy=0.0, judge_accuracy=0.0, seed=1), n=5, strategy="tournament",
                     on_event=events.append)
    r = await h.ask("What is 41 * 7 + 9?", seed=2)
    bracket = r.decision.details["bracket"]
    assert [b["round"] for b in bracket] == [1, 2, 3] and bracket[0]["bye"] is not None
    assert [s for s in stages(events) if s.startswith("round")] == ["round 1/3", "round 2/3", "round 3/3"]
    judged = [pair for rnd in bracket for pair in rnd["pairs"] if pair["verdicts"]]
    assert len(judged) >= 3
    for rnd in bracket:
        for pair in rnd["pairs"]:
            if pair["verdicts"]:
                first, second = pair["verdicts"]
                assert first["order"] == second["order"][::-1]  # both orders
                # A judge that only ever prefers the first position splits 1-1: the bias cancels out.
                assert first["winner"] == first["order"][0] and second["winner"] == second["order"][0]
                assert pair["how"].startswith("tie 1-1")
    assert r.text == next(x.text for x in r.hypotheses if x.index == r.decision.winner)


# --- mixture of agents -----------------------------------------------------------------------------


async def test_moa_improves_on_a_single_sample_with_heterogeneous_layers():
    models = ["openai:heavy-simulated@accuracy=0.5", "openai:heavy-simulated@accuracy=0.3"]
    events = []
    h, _ = sim_heavy(SimConfig(seed=2), model=models, n=4, strategy="moa", on_event=events.append)
    moa, single, results = await accuracy(h, arithmetic_questions(12, seed=8))
    assert moa >= single + 0.25, (moa, single)
    layers = results[0].decision.details["layers"]
    assert [layer["layer"] for layer in layers] == [1, 2]
    assert [a["model"] for a in layers[0]["agents"]] == models * 2
    assert [a["model"] for a in layers[1]["agents"]] == models[::-1] * 2  # rotated: agents change model per layer
    assert results[0].aggregator_calls[-1].purpose == "synthesize"
    assert "layer 2/3" in stages(events) and "layer 3/3: aggregate" in stages(events)


async def test_moa_layer_models_option():
    models = ["openai:heavy-simulated@accuracy=0.5", "openai:heavy-simulated@accuracy=0.9"]
    h, _ = sim_heavy(model=models, n=2, strategy="moa", layers=4, layer_models=[[models[0]], [models[1]]])
    r = await h.ask("What is 6 * 7?", seed=1)
    layers = r.decision.details["layers"]
    assert [a["model"] for a in layers[0]["agents"]] == [models[0]] * 2
    assert [a["model"] for a in layers[1]["agents"]] == [models[1]] * 2
    assert [a["model"] for a in layers[2]["agents"]] == models  # unlisted: round-robin from model 3 % 2
    bad, _ = sim_heavy(n=2, strategy="moa", layer_models=[["openai:nope"]])
    with pytest.raises(OptionsError, match="openai:nope"):
        await bad.ask("What is 6 * 7?")


# --- debate ----------------------------------------------------------------------------------------


async def test_debate_improves_on_a_single_sample():
    events = []
    h, _ = sim_heavy(SimConfig(accuracy=0.45, seed=5), n=3, strategy="debate", on_event=events.append)
    debate, single, results = await accuracy(h, arithmetic_questions(25, seed=2))
    assert debate >= single + 0.2, (debate, single)
    assert any(s.startswith("round 1/2") for s in stages(events))
    d = results[0].decision.details
    assert d["rounds"][0]["round"] == 0 and len(d["agents"]) == 3


async def test_debate_stops_early_on_consensus():
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=3, strategy="debate", rounds=3)
    r = await h.ask("What is 25 * 4?")
    assert r.answer == "100" and len(r.hypotheses) == 3
    assert r.decision.details["consensus"] and r.decision.details["stopped"] == "consensus after round 0"


async def test_a_budget_cap_mid_debate_ends_it_early_and_says_why():
    h, _ = sim_heavy(SimConfig(accuracy=0.3, seed=3), n=3, strategy="debate", rounds=3, stop_on_consensus=False,
                     max_total_tokens=600)
    r = await h.ask("What is 37 * 11 + 8?", seed=1)
    d = r.decision
    assert r.budget_hit == "tokens"
    assert [x["round"] for x in d.details["rounds"]] == [0, 1] and d.details["stopped"] == "tokens budget spent"
    assert "budget was spent before round 2 of 3" in d.rationale and "best answer so far" in d.rationale
    assert len(r.hypotheses) == 6 and r.answer


async def test_debate_final_by_aggregator():
    h, _ = sim_heavy(SimConfig(accuracy=0.4, seed=1), n=3, strategy="debate", final="aggregator",
                     stop_on_consensus=False, rounds=1)
    r = await h.ask("What is 13 * 13?", seed=3)
    assert r.decision.method == "synthesize" and r.aggregator_calls[-1].purpose == "synthesize"


# --- recursive self-aggregation --------------------------------------------------------------------


async def test_rsa_improves_on_a_single_sample_with_seeded_subsets():
    events = []
    h, _ = sim_heavy(SimConfig(accuracy=0.4, seed=6), n=4, strategy="rsa", on_event=events.append)
    rsa, single, results = await accuracy(h, arithmetic_questions(20, seed=4))
    assert rsa >= single + 0.2, (rsa, single)
    steps = results[0].decision.details["steps"]
    assert [s["step"] for s in steps] == [0, 1, 2]
    previous = {m["index"] for m in steps[0]["members"]}
    for member in steps[1]["members"]:
        assert len(set(member["from"])) == 3 and set(member["from"]) <= previous
    assert [s for s in stages(events) if s.startswith("step")][:2] == ["step 1/2", "step 2/2"]
    h2, _ = sim_heavy(SimConfig(accuracy=0.4, seed=6), n=4, strategy="rsa")
    again = await h2.ask(arithmetic_questions(1, seed=4)[0][0], seed=0)
    assert again.decision.details["steps"] == steps  # same seed, same subsets, same answers


# --- self-refine -----------------------------------------------------------------------------------


async def test_refine_improves_on_its_first_answer():
    refine, single, results = await accuracy(
        sim_heavy(SimConfig(accuracy=0.4, seed=7), n=1, strategy="refine", iterations=3)[0], arithmetic_questions(25, seed=9))
    assert refine >= single + 0.25, (refine, single)
    assert any(len(r.decision.details["chains"][0]["steps"]) > 1 for r in results)


async def test_refine_stops_when_the_critique_says_correct():
    events = []
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=2, strategy="refine", on_event=events.append)
    r = await h.ask("What is 9 * 8?")
    assert r.answer == "72" and len(r.hypotheses) == 2
    assert [c.purpose for c in r.aggregator_calls] == ["critique 1 of chain 0", "critique 1 of chain 1"]
    assert all(c["stopped"] == "critique 1 says correct" for c in r.decision.details["chains"])
    assert "critique 1/2" in stages(events) and not any(s.startswith("revise") for s in stages(events))


async def test_refine_stops_when_the_answer_stops_changing():
    # A critic that is always wrong calls a right answer incorrect; the revision keeps it: stop.
    h, _ = sim_heavy(SimConfig(accuracy=1.0, judge_accuracy=0.0), n=1, strategy="refine", iterations=3)
    r = await h.ask("What is 9 * 8?", seed=1)
    chain = r.decision.details["chains"][0]
    assert r.answer == "72" and chain["stopped"] == "revision 1 did not change the answer"
    assert chain["steps"][0]["critique"] == "incorrect" and len(r.hypotheses) == 2


# --- council ranking -------------------------------------------------------------------------------


def _recording(app, seen):
    sim = httpx.ASGITransport(app=app)

    async def endpoint(req: httpx.Request) -> httpx.Response:
        seen.append(json.loads(req.content))
        return await sim.handle_async_request(req)

    return httpx.MockTransport(endpoint)


async def test_ranked_never_lets_a_model_rank_its_own_answer():
    models = ["openai:heavy-simulated@accuracy=0.9", "openai:heavy-simulated@accuracy=0.4"]
    seen = []
    app = SimulatedLLM(SimConfig(seed=1))
    h = Heavy(model=models, base_url="http://sim.test/v1", transport=_recording(app, seen), n=4, strategy="ranked")
    r = await h.ask("What is 17 * 23 + 4?", seed=5)
    d = r.decision.details
    assert d["mode"] == "models" and {x["ranker"] for x in d["rankers"]} == set(models)
    by_model = {m: [x for x in r.hypotheses if x.model == m] for m in models}
    for ranker in d["rankers"]:
        own = {x.index for x in by_model[ranker["ranker"]]}
        assert set(ranker["own"]) == own and not own & set(ranker["sees"]) and not own & set(ranker["ballot"])
        assert set(d["matrix"][ranker["ranker"]]) == {f"#{i}" for i in ranker["sees"]}
    # What was actually sent: a ranking prompt to model M contains no answer written by M.
    rank_requests = [b for b in seen if RANK_INSTRUCTION in b["messages"][-1]["content"]]
    assert len(rank_requests) == 2
    for body in rank_requests:
        label = "openai:" + body["model"]
        for x in by_model[label]:
            assert x.text not in body["messages"][-1]["content"]
    assert r.aggregator_calls[-1].purpose == "chairman" and r.decision.path[-1] == "chairman"
    assert set(d["borda"]) == {f"#{x.index}" for x in r.hypotheses}


async def test_ranked_with_one_model_ranks_by_seat_and_helps_a_weak_sampler():
    events = []
    h, _ = sim_heavy(SimConfig(accuracy=0.35, seed=3), n=4, strategy="ranked", on_event=events.append)
    ranked, single, results = await accuracy(h, arithmetic_questions(12, seed=10))
    assert ranked >= single + 0.25
    d = results[0].decision.details
    assert d["mode"] == "seats" and len(d["rankers"]) == 4
    for ranker in d["rankers"]:
        assert ranker["own"] == [int(ranker["ranker"].split("#")[1])] and len(ranker["ballot"]) == 3
    assert stages(events)[:3] == ["sample", "rank", "chairman"]


async def test_ranked_skips_the_council_when_every_answer_agrees_unless_told_not_to():
    h, _ = sim_heavy(SimConfig(accuracy=1.0), n=4, strategy="ranked")
    r = await h.ask("What is 12 * 12?")
    assert (r.answer, r.decision.path, r.aggregator_calls) == ("144", ["sample", "unanimous", "vote"], [])
    assert "all 4 answers agree" in r.decision.rationale
    r = await h.ask("What is 12 * 12?", options={"skip_unanimous": False})
    assert r.decision.path[-1] == "chairman" and len(r.aggregator_calls) == 5  # 4 seats rank, 1 chairman


# --- fallbacks when every judge/aggregator call fails -----------------------------------------------

_AGGREGATOR_MARKERS = [m.encode() for m in (PAIRWISE_INSTRUCTION, CONSISTENCY_INSTRUCTION, RANK_INSTRUCTION,
                                            CHAIRMAN_INSTRUCTION, SYNTHESIZE_INSTRUCTION, CRITIQUE_INSTRUCTION)]


@pytest.mark.parametrize("strategy,options,says", [
    ("usc", {}, "fell back to the vote"),
    ("tournament", {}, "fell back to the vote"),
    ("ranked", {}, "fell back to the vote"),
    ("moa", {}, "fell back to the vote"),
    ("debate", {"final": "aggregator", "stop_on_consensus": False, "rounds": 1}, "fell back to the vote"),
    ("refine", {}, "critique call failed"),
])
async def test_failing_aggregators_fall_back_to_the_vote(strategy, options, says):
    sim = httpx.ASGITransport(app=SimulatedLLM(SimConfig(accuracy=0.7, seed=2)))

    async def endpoint(req: httpx.Request) -> httpx.Response:
        if any(m in req.content for m in _AGGREGATOR_MARKERS):
            return httpx.Response(400, json={"error": {"message": "context too long"}})
        return await sim.handle_async_request(req)

    h = Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1", transport=httpx.MockTransport(endpoint),
              n=5, strategy=strategy, **options)
    r = await h.ask("What is 8 * 7?", seed=3)
    assert r.answer == "56"
    assert says in r.decision.rationale
    assert r.aggregator_calls and all("context too long" in c.error for c in r.aggregator_calls)


# --- the simulator follows each new prompt -----------------------------------------------------------


def _user(content):
    return [Message(role="user", content=content)]


def test_the_simulator_follows_the_suite_prompts():
    index, cfg, rng = GoldIndex({}), SimConfig(), random.Random(0)
    q = _user("What is 6 * 7?")
    right, wrong = "Six sevens.\nThe answer is 42.", "Hmm.\nThe answer is 41."

    def ask(messages, config=cfg):
        return follow(messages[-1].text(), config, index, rng)

    assert parse_verdict(ask(pairwise_messages(q, ("A", wrong), ("B", right))).text, ["A", "B"]) == "B"
    biased = SimConfig(judge_accuracy=0.0)
    assert parse_verdict(ask(pairwise_messages(q, ("A", wrong), ("B", right)), biased).text, ["A", "B"]) == "A"
    garbage = SimConfig(judge_mode="garbage")
    assert parse_verdict(ask(pairwise_messages(q, ("A", wrong), ("B", right)), garbage).text, ["A", "B"]) is None
    ranking = ask(rank_messages(q, [("A", wrong), ("B", wrong), ("C", right)])).text
    assert parse_ranking(ranking, ["A", "B", "C"]) == ["C", "A", "B"]
    assert parse_status(ask(critique_messages(q, right)).text) is True
    assert parse_status(ask(critique_messages(q, wrong)).text) is False
    revised = [ask(debate_messages(q, wrong, [("A", right)]), SimConfig(accuracy=0.5)) for _ in range(40)]
    assert 0.6 < sum(x.correct for x in revised) / 40 < 0.95  # moves toward gold with probability 0.75
    assert follow("What is 6 * 7?", cfg, index, rng) is None  # ordinary questions are not the followers' business


@pytest.mark.parametrize("strategy", ["adaptive", "tournament", "moa", "debate", "rsa", "refine", "ranked", "usc"])
async def test_a_spent_budget_ends_every_multi_round_strategy_with_an_answer_and_a_reason(strategy):
    h, _ = sim_heavy(SimConfig(accuracy=0.5, seed=1), n=4, strategy=strategy, max_total_tokens=60)
    r = await h.ask("What is 29 * 3 + 1?", seed=2)
    assert r.budget_hit == "tokens" and r.answer
    assert "budget" in r.decision.rationale or "fell back" in r.decision.rationale, r.decision.rationale
    rounds_after_sampling = [x for x in r.hypotheses if x.ok and x.index >= 4]
    assert not rounds_after_sampling, "no new round starts once the budget is spent"


@pytest.mark.parametrize("text, label", [
    ("VERDICT: B", "B"), ("VERDICT: `B`", "B"), ("**VERDICT:** C", "C"), ("VERDICT: <A>", "A"),
    ("Verdict: Candidate D", "D"), ("VERDICT: (B)", "B"), ("VERDICT: [A]", "A"), ('VERDICT: "B"', "B"),
    ("verdict: response C.", "C"), ("VERDICT: A\n...\nVERDICT: C", "C"), ("VERDICT: Z", None),
    ("I pick B.", None), ("VERDICT:", None)])
def test_verdict_lines_as_small_models_write_them(text, label):
    assert parse_verdict(text, ["A", "B", "C", "D"]) == label
