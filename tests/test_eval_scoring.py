"""`heavy eval` scores with the vote's equivalence and reports each row's cost from its Result."""

import json
from contextlib import nullcontext

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy, pricing
from heavy.answers import final_answer
from heavy.cli import cli
from heavy.equivalence import equivalent
from heavy.evaluation import EvalRunner, Pool, ResultsFile, is_correct, load_items, summarize
from heavy.models import PRESETS
from heavy.pricing import FREE_PRESETS, Price
from heavy.sim import SimConfig, SimulatedLLM
from heavy.types import Usage

from test_answers import numeric_only


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


TOWER = "Which structure did Gustave Eiffel's company build for the 1889 World's Fair?"
SQUARE = "Write x^2+2x+1 as a perfect square."


def test_eval_cli_scores_what_the_vote_merges(tmp_path, monkeypatch):
    """The simulated model answers "The Eiffel Tower" and "(x+1)^2"; the golds are "eiffel tower" and
    "x^2+2x+1". The vote counts those as the same answer, and so does the score."""
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("HEAVY_CONFIG", str(tmp_path / "empty.toml"))
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(write_jsonl(tmp_path / "sim.jsonl", [
        {"question": TOWER, "answer": "The Eiffel Tower"}, {"question": SQUARE, "answer": "(x+1)^2"}])))
    data = write_jsonl(tmp_path / "data.jsonl", [
        {"id": "tower", "question": TOWER, "answer": "eiffel tower"},
        {"id": "square", "question": SQUARE, "answer": "x^2+2x+1"}])
    out = tmp_path / "results.jsonl"
    r = CliRunner().invoke(cli, ["eval", str(data), "-m", "sim:heavy-simulated@accuracy=1", "-s", "vote", "-n", "3",
                                 "--results", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rows = {row["id"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert rows["tower"]["answer"] == "the eiffel tower" and rows["tower"]["gold"] == "eiffel tower"
    assert rows["square"]["answer"] == "(x+1)^2" and rows["square"]["gold"] == "x^2+2x+1"
    assert rows["tower"]["correct"] is True and rows["square"]["correct"] is True
    [summary] = json.loads(r.stdout)
    assert (summary["correct"], summary["total"], summary["accuracy"]) == (2, 2, 1.0)


@pytest.mark.parametrize("backend", ["installed", "numeric"])
def test_is_correct_is_the_vote_equivalence_on_either_math_backend(backend):
    with numeric_only() if backend == "numeric" else nullcontext():
        check_scores_as_the_vote_merges()


def check_scores_as_the_vote_merges():
    for answer, gold in [("The Eiffel Tower", "eiffel tower"), ("(x+1)^2", "x^2+2x+1"), ("the eiffel tower.", "Eiffel Tower"),
                         ("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2"), ("3\\sqrt{2}", "\\sqrt{18}")]:
        assert is_correct(answer, gold), (answer, gold)
        assert equivalent(final_answer(f"The answer is {answer}."), final_answer(f"The answer is {gold}.")), \
            "the vote merges what the score accepts"
    for answer, gold in [("Paris", "eiffel tower"), ("(x+1)^3", "x^2+2x+1"), ("x^2+1", "x^2+2x+1"), ("A", "B"),
                         ("the", "A"), ("yes", "no"), ("The Eiffel Tower", "72")]:
        assert not is_correct(answer, gold), (answer, gold)


def test_is_correct_keeps_numbers_choices_and_gsm8k_golds(tmp_path):
    gold = load_items(write_jsonl(tmp_path / "d.jsonl", [{"question": "q", "answer": "She pays 3 * 6 = 18.\n#### 18"}]))[0].gold
    assert gold == "18" and is_correct("18", gold) and is_correct("$18.00", gold) and not is_correct("19", gold)
    assert is_correct("0.333333", "1/3") and is_correct("0.3333333", "1/3"), "numbers within 1e-6 relative"
    assert not is_correct("0.3333", "1/3") and not is_correct(None, "18") and not is_correct("", "18")
    assert is_correct("(C)", "c") and not is_correct("D", "C")


def sim_heavy(app, **kw):
    return Heavy(model="openai:heavy-simulated", base_url="http://sim.test/v1", transport=httpx.ASGITransport(app=app),
                 **kw)


def priced(usage: dict, price: Price) -> float:
    return pricing.cost(Usage(**usage), price)


@pytest.mark.anyio
async def test_rows_cost_what_their_result_cost_live_and_replayed(tmp_path, monkeypatch, gsm8k):
    """A priced model: each row's cost_usd is the Result's cost (a replayed row adds the recorded hypotheses
    it decided on, priced alike), so it is the price of the row's usage, and the summary adds the rows."""
    price = Price(input=2.0, output=8.0)
    monkeypatch.setitem(pricing.PRICES, "heavy-simulated", price)
    rows = gsm8k[:4]
    app = SimulatedLLM(SimConfig(accuracy=0.7, seed=1, dataset={r["question"]: r["answer"] for r in rows}))
    items = load_items(write_jsonl(tmp_path / "d.jsonl", rows))

    live = ResultsFile(tmp_path / "live.jsonl")
    await EvalRunner(heavy=sim_heavy(app, n=3, seed=4), strategies=["vote"], ns=[3], results=live).evaluate(items)
    assert len(live.rows) == 4
    for row in live.rows:
        assert row["cost_usd"] == pytest.approx(priced(row["usage"], price)) and row["cost_usd"] > 0
    result = await sim_heavy(app, n=3, seed=4).ask(items[0].prompt, strategy="vote")
    assert result.cost_usd and live.rows[0]["cost_usd"] == pytest.approx(result.cost_usd), "the Result's own cost"
    [summary] = summarize(live.rows)
    assert summary.cost_usd == pytest.approx(sum(r["cost_usd"] for r in live.rows))

    pool = Pool(tmp_path / "pool.jsonl")
    await EvalRunner(heavy=sim_heavy(app, n=4, seed=4), strategies=["vote"], ns=[4], results=ResultsFile(tmp_path / "rec.jsonl"),
                     record=pool).evaluate(items)
    replayed = ResultsFile(tmp_path / "replay.jsonl")
    await EvalRunner(heavy=sim_heavy(app, n=4, seed=4), strategies=["vote", "judge"], ns=[2, 4], results=replayed,
                     replay=Pool(tmp_path / "pool.jsonl")).evaluate(items)
    assert len(replayed.rows) == 16
    for row in replayed.rows:
        assert row["cost_usd"] == pytest.approx(priced(row["usage"], price)), row
    cost = {(r["id"], r["strategy"], r["n"]): r["cost_usd"] for r in replayed.rows}
    for item in items:
        assert cost[(item.id, "vote", 2)] < cost[(item.id, "vote", 4)] < cost[(item.id, "judge", 4)], \
            "a bigger prefix and a judge call cost more"


@pytest.mark.anyio
async def test_an_unpriced_model_costs_unknown_and_a_free_one_nothing(tmp_path, gsm8k):
    rows = gsm8k[:2]
    app = SimulatedLLM(SimConfig(seed=1, dataset={r["question"]: r["answer"] for r in rows}))
    items = load_items(write_jsonl(tmp_path / "d.jsonl", rows))
    unpriced = ResultsFile(tmp_path / "a.jsonl")
    await EvalRunner(heavy=sim_heavy(app, n=2), strategies=["vote"], ns=[2], results=unpriced).evaluate(items)
    assert [r["cost_usd"] for r in unpriced.rows] == [None, None] and summarize(unpriced.rows)[0].cost_usd is None
    free = ResultsFile(tmp_path / "b.jsonl")
    await EvalRunner(heavy=Heavy(model="sim", n=2), strategies=["vote"], ns=[2], results=free).evaluate(items)
    assert [r["cost_usd"] for r in free.rows] == [0.0, 0.0]


def test_free_is_the_presets_on_this_machine():
    on_this_machine = {name for name, p in PRESETS.items() if p.base_url.startswith("http://127.0.0.1")}
    assert FREE_PRESETS == on_this_machine | {"sim"}
    assert all(pricing.price_for(name, "any-model") == Price(0.0, 0.0, 0.0) for name in FREE_PRESETS)
    assert pricing.price_for("openai", "any-model") is None
