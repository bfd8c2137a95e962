"""The strategy toolkit as a third-party author uses it: a strategy defined here, with nothing but heavy's
public names (``heavy.strategy``, ``heavy.prompts``, ``heavy.voting``), registered through an entry point
exactly as a plugin package registers one, and run by :class:`heavy.Heavy` on the simulated model ``sim``."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from heavy import AGGREGATOR_FAILURES, Context, Heavy, Message, Result, Strategy
from heavy.errors import QuorumError
from heavy.events import StageStarted
from heavy.prompts import VERDICT_FORM, pairwise_messages, parse_verdict
from heavy.registry import _entry_points
from heavy.strategy import load_strategy, registered_strategies, text_of, vote_decision
from heavy.voting import tally

SIM = "sim:heavy-simulated"
FAILS = f"{SIM}@fail_rate=1.0"  # every request fails (after its retries)
REJECTS = f"{SIM}@fail_rate=1.0,fail_status=400"  # every request is refused at once (a 400 is not retried)
QUESTION = "What is 45 * 13 + 7?"  # 592
TIED = f"{SIM}@accuracy=0.4,seed=5"  # its 6 samples of QUESTION: 592 and 1184 twice each, two others once


class RunoffOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    margin: float = 1
    """A lead of at most this many votes goes to the runoff."""
    early_stop: bool = False
    """Stop sampling as soon as one answer has two votes."""
    critic: bool = False
    """Before deciding, each sampling model critiques the leading answer itself (a call with no fallback)."""


class Runoff(Strategy):
    """Runoff: a clear vote wins; a close one goes to a judged runoff between the two leading answers."""

    name = "runoff"
    Options = RunoffOptions

    async def run(self, ctx: Context) -> Result:
        o = self.options
        run = await ctx.sample(until=(lambda done: tally(done).top_count >= 2) if o.early_stop else None)
        only = ctx.single_success(run.hypotheses, method="runoff", path=["sample", "single"])
        if only is not None:
            return only
        t = tally(run.hypotheses)
        critiques = [await self._critique(ctx, ref, t.winner) for ref in ctx.agent_models(len(ctx.sampler.models))
                     ] if o.critic else []
        if len(t.ranking) < 2 or t.margin > o.margin:
            return ctx.decide_by_vote(run.hypotheses, path=["sample", "vote"], why="a clear lead;",
                                      details={"critiques": critiques})
        a, b = (t.first_index[answer] for answer in t.ranking[:2])
        ctx.stage("runoff", between=[a, b])
        prompt = pairwise_messages(ctx.messages, ("A", text_of(run.hypotheses, a)), ("B", text_of(run.hypotheses, b)))
        verdict, calls, failure = await ctx.call_parsed("runoff", prompt, lambda text: parse_verdict(text, ["A", "B"]),
                                                        form=VERDICT_FORM)
        if verdict is None:
            return await ctx.synthesize(run.hypotheses, path=["sample", "runoff failed"], details={"why": failure})
        winner = a if verdict == "A" else b
        decision = vote_decision(t, path=["sample", "runoff"], method="runoff",
                                 why=f"{ctx.aggregator.label} preferred #{winner} in a runoff of {len(calls)} call(s);")
        decision.winner = winner
        chosen = next(h for h in run.hypotheses if h.index == winner)
        return ctx.result(answer=chosen.answer, text=chosen.text, decision=decision)

    @staticmethod
    async def _critique(ctx: Context, ref, answer: str | None) -> dict:
        prompt = pairwise_messages(ctx.messages, ("A", f"The answer is {answer}."), ("B", "I do not know."))
        try:
            call = await ctx.call(f"critique by {ref.label}", prompt, model=ref, stream=False)
        except AGGREGATOR_FAILURES as exc:
            return {"model": ref.label, "error": type(exc).__name__}
        return {"model": ref.label, "verdict": parse_verdict(call.text, ["A", "B"])}


class Rounds(Strategy):
    """Rounds: every sampling model answers, then answers once more per agent with its own answer shown."""

    name = "rounds"

    async def run(self, ctx: Context) -> Result:
        models = ctx.agent_models(ctx.n)
        run = await ctx.sample(stage="round 0", detail={"agents": ctx.n}, models=models, min_successes=0)
        note = ctx.out_of_budget("before round 1")
        if note:
            return ctx.decide_by_vote(run.hypotheses, path=["round 0", "vote"], why=note)
        prompts = [[*ctx.messages, Message(role="assistant", content=h.text or "(no answer)"),
                    Message(role="user", content=f"Check your answer to this question: {ctx.messages[-1].text()}")]
                   for h in run.hypotheses]
        again = await ctx.sample_each(prompts, models, stage="round 1")
        return ctx.decide_by_vote([h for h in again if h.ok] or run.hypotheses, path=["round 0", "round 1", "vote"],
                                  details={"round 1": [h.status for h in again]})


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """Runoff and Rounds installed as a plugin package installs them: a distribution whose entry points name
    them in the ``heavy.strategies`` group."""
    dist = tmp_path / "heavy_runoff-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: heavy-runoff\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[heavy.strategies]\nrunoff = {__name__}:Runoff\nrounds = {__name__}:Rounds\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _entry_points.cache_clear()  # the registry reads the installed entry points once per process
    yield
    _entry_points.cache_clear()


def run_with(strategy: str, models: list[str], **kw) -> tuple[Result, list[StageStarted]]:
    stages: list[StageStarted] = []
    h = Heavy(model=models, strategy=strategy, **kw)
    r = h.ask_sync(QUESTION, seed=1,
                   on_event=lambda e: stages.append(e) if isinstance(e, StageStarted) else None)
    return r, stages


def test_a_plugin_strategy_is_registered_and_loaded_like_a_builtin(plugin):
    assert {"runoff", "rounds", "vote"} <= set(registered_strategies())
    assert load_strategy("runoff") is Runoff


def test_the_context_names_the_strategy_and_runs_the_runoff(plugin):
    r, stages = run_with("runoff", [TIED], n=6)
    assert r.strategy == "runoff"  # the Context knows which strategy it runs for: nobody passed the name
    assert r.decision.method == "runoff" and r.decision.path == ["sample", "runoff"]
    assert r.decision.votes["592"] == 2 and r.decision.votes["1184"] == 2 and len(r.hypotheses) == 6
    assert r.answer == "592" and r.text == next(h.text for h in r.hypotheses if h.index == r.decision.winner)
    assert r.decision.rationale.startswith(f"{TIED} preferred #{r.decision.winner} in a runoff of 1 call(s);")
    assert [(c.purpose, c.error) for c in r.aggregator_calls] == [("runoff", None)]
    assert stages[0].name == "sample" and stages[0].detail == {"n": 6, "models": [TIED]}
    assert stages[1].name == "runoff" and r.decision.winner in stages[1].detail["between"]
    assert not r.stopped_early and not r.deadline_hit


def test_a_clear_lead_is_decided_by_the_toolkit_vote(plugin):
    r, stages = run_with("runoff", [f"{SIM}@accuracy=1.0"], n=4)
    assert r.decision.method == "vote" and r.decision.path == ["sample", "vote"]
    assert r.decision.rationale.startswith("a clear lead; 4 of 4 answers agree")
    assert r.answer == "592" and r.decision.details == {"critiques": []}
    assert [s.name for s in stages] == ["sample", "vote"]


def test_early_stop_through_ctx_sample_sets_the_results_flag(plugin):
    r, _ = run_with("runoff", [f"{SIM}@accuracy=1.0", f"{SIM}@latency=30"], n=4, early_stop=True)
    assert r.stopped_early and not r.deadline_hit and r.answer == "592"
    assert [h.status for h in r.hypotheses] == ["ok", "cancelled", "ok", "cancelled"]


def test_the_deadline_reaches_the_result_without_the_strategy_passing_it(plugin):
    r, _ = run_with("runoff", [f"{SIM}@accuracy=1.0", f"{SIM}@latency=30"], n=4, deadline=1.0)
    assert r.deadline_hit and r.answer == "592"
    assert [h.status for h in r.hypotheses] == ["ok", "cancelled", "ok", "cancelled"]


def test_one_success_takes_the_single_success_exit(plugin):
    r, _ = run_with("runoff", [f"{SIM}@accuracy=1.0", FAILS], n=2)
    assert r.decision.path == ["sample", "single"] and r.decision.method == "runoff"
    assert r.decision.rationale == "only one hypothesis succeeded; nothing to compare"
    assert r.decision.winner == 0 and r.answer == "592" and r.decision.votes == {"592": 1}


def test_a_call_as_one_model_has_no_fallback(plugin):
    # The aggregator (first model) fails on every request: a plain call falls back to the second model,
    # a call made as a given model is that model's alone.
    models = [REJECTS, f"{SIM}@accuracy=1.0"]
    r, _ = run_with("runoff", models, n=4, critic=True)
    critiques = r.decision.details["critiques"]
    assert critiques[0]["model"] == REJECTS and critiques[0]["error"].endswith("Error")
    assert critiques[1]["model"] == models[1] and critiques[1]["verdict"] in ("A", "B")
    by = [(c.purpose, c.model, c.error is None) for c in r.aggregator_calls]
    assert by == [(f"critique by {REJECTS}", REJECTS, False), (f"critique by {models[1]}", models[1], True)]


def test_an_unparseable_runoff_falls_back_to_the_toolkit_synthesis(plugin):
    r, stages = run_with("runoff", [f"{TIED},judge_mode=garbage"], n=6)
    assert [c.purpose for c in r.aggregator_calls] == ["runoff", "runoff-retry", "synthesize"]
    assert r.decision.method == "synthesize" and r.decision.path == ["sample", "runoff failed", "synthesize"]
    assert r.decision.details["why"].startswith("runoff reply unparseable")
    assert [s.name for s in stages] == ["sample", "runoff", "synthesize"]


def test_per_agent_rounds_keep_failures_as_hypotheses(plugin):
    models = [f"{SIM}@accuracy=1.0", FAILS]
    r, stages = run_with("rounds", models, n=4)
    assert r.strategy == "rounds" and r.answer == "592"
    assert r.decision.details["round 1"] == ["ok", "failed", "ok", "failed"]  # never raised, in the prompts' order
    assert len(r.hypotheses) == 8 and [h.index for h in r.hypotheses] == list(range(8))
    assert [s.name for s in stages] == ["round 0", "vote"]  # a round of sample_each announces no stage itself
    assert stages[0].detail == {"agents": 4, "models": [models[0], models[1], models[0], models[1]]}


def test_the_toolkit_quorum_names_every_failure(plugin):
    with pytest.raises(QuorumError, match="only 0 of 2 hypotheses succeeded"):
        run_with("runoff", [FAILS], n=2)


def test_a_spent_budget_ends_the_rounds_with_the_note(plugin):
    r, _ = run_with("rounds", [f"{SIM}@accuracy=1.0"], n=2, max_total_tokens=10)
    assert r.decision.path == ["round 0", "vote"] and r.budget_hit == "tokens"
    assert r.decision.rationale.startswith("the run's tokens budget was spent before round 1; ended with the best")
