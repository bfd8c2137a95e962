"""`heavy tune`: one pool per question, every configuration that applies replayed on it, a tune half that chooses
and a check half that reports, resumable, and `--write-config` into the config file heavy reads.

Runs end to end on heavy's simulated model (in-process; counted through its stats where the test builds it); the
sandbox that runs programs and grades code is the real one.
"""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET

import httpx
import pytest
from click.testing import CliRunner

from heavy.cli import cli
from heavy.config import load_config, run_settings
from heavy.evaluation import load_items
from heavy.evaluation.tune import PASS_AT_1, Config, TunePlan, Tuner, plan, split_halves, tune
from heavy.evaluation.tune_report import config_values, recommend, summarize
from heavy.settings import RunSettings
from heavy.evaluation.files import Pool, ResultsFile
from heavy.sim import SimConfig, SimulatedLLM
from heavy.sim.codetasks import code_gold

from test_humaneval_format import HE_TASKS

SIM = "sim:heavy-simulated@accuracy=0.6,latency=0.02,latency_sigma=0.5"
ROW_FIELDS = {"strategy", "n", "options", "half", "accuracy", "ci_low", "ci_high", "tokens", "calls", "seconds"}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def env(tmp_path, gsm8k, monkeypatch):
    """Ten GSM8K questions in two categories, the simulator knowing their golds, and a config file with
    content of the user's own."""
    rows = [{**r, "category": "even" if i % 2 == 0 else "odd"} for i, r in enumerate(gsm8k[:10])]
    data = write(tmp_path / "data.jsonl", rows)
    config = tmp_path / "config.toml"
    config.write_text("# my own settings\n[defaults]\nseed = 3\ntemperature = 0.9\n\n"
                      "[providers.openai]\nconcurrency = 4\n")
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(data))
    monkeypatch.setenv("HEAVY_CONFIG", str(config))
    for var in ("HEAVY_N", "HEAVY_STRATEGY", "HEAVY_OPTIONS", "HEAVY_TOOLS", "HEAVY_VERIFY"):
        monkeypatch.delenv(var, raising=False)
    return data, config


def run_tune(data, out, *extra):
    return CliRunner().invoke(cli, ["tune", str(data), "-m", SIM, "--results", str(out),
                                    "--strategies", "vote,heavy,judge", *extra])


def test_contract_tune_prints_the_table_resumes_without_sampling_and_writes_the_config(env, tmp_path):
    data, config = env
    out = tmp_path / "tune"
    r = run_tune(data, out, "--json", "--plot", str(tmp_path / "frontier.svg"))
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert set(report) >= {"rows", "recommendation"}
    rows = report["rows"]
    assert rows and all(ROW_FIELDS <= set(row) for row in rows)
    assert {row["half"] for row in rows} == {"tune", "check"}
    assert {row["strategy"] for row in rows} == {"vote", "heavy", "judge"}
    assert {row["n"] for row in rows} == {1, 2, 4, 8}
    assert all(row["ci_low"] <= row["accuracy"] <= row["ci_high"] for row in rows)
    assert report["halves"]["tune"] == report["halves"]["check"] == 5 and report["halves"]["stratified"]
    # N = 1 is one sample whatever decides it: one row per half, not one per strategy.
    assert [(row["strategy"], row["half"]) for row in rows if row["n"] == 1] == [("vote", "tune"), ("vote", "check")]
    judge8 = next(row for row in rows if (row["strategy"], row["n"], row["half"]) == ("judge", 8, "check"))
    assert judge8["calls"] == 9 and judge8["live_calls"] == 1, "8 pooled samples, 1 live judge call"
    # Chosen on the tune half: the most accurate there (then fewest tokens); reported by its check-half row.
    rec = report["recommendation"]
    tune_rows = [row for row in rows if row["half"] == "tune"]
    best = max(row["accuracy"] for row in tune_rows)
    assert rec["tune"]["accuracy"] == best
    assert rec["tune"]["tokens"] == min(row["tokens"] for row in tune_rows if row["accuracy"] == best)
    check = next(row for row in rows if row["half"] == "check" and (row["label"], row["n"]) == (rec["label"], rec["n"]))
    assert rec["check"]["accuracy"] == check["accuracy"] and rec["check"]["ci_low"] == check["ci_low"]
    assert "tune-half accuracy" in rec["chosen_by"] and "check half" in rec["chosen_by"]
    assert rec["command"].startswith(f"heavy ask -m {SIM} -s {rec['strategy']} -n {rec['n']}")
    svg = (tmp_path / "frontier.svg").read_text()
    assert ET.fromstring(svg).tag.endswith("svg") and "frontier" in svg and "check half" in svg

    pool, results = (out / "pool.jsonl").read_bytes(), (out / "tune-results.jsonl").read_bytes()
    assert len(pool.splitlines()) == 10 and all(len(json.loads(x)["hypotheses"]) == 8 for x in pool.splitlines())
    again = run_tune(data, out)
    assert again.exit_code == 0, again.output
    assert (out / "pool.jsonl").read_bytes() == pool, "resumed from the pool: nothing sampled again"
    assert (out / "tune-results.jsonl").read_bytes() == results, "nothing decided again"
    assert "nothing to sample" in again.stderr and "deciding" not in again.stderr
    text = again.stdout
    assert "check acc (95% CI)" in text and "W/L vs vote@N" in text and "frontier" in text
    assert f"recommended: {rec['label']} N={rec['n']}" in text and "chosen by:" in text and "run it: heavy ask" in text
    assert "skipped" not in text, "--strategies narrowed the run to three that all apply"

    wrote = run_tune(data, out, "--write-config")
    assert wrote.exit_code == 0, wrote.output
    written = config.read_text()
    assert written.startswith("# my own settings\n[defaults]\n"), "the user's lines stay where they were"
    assert "seed = 3" in written and "temperature = 0.9" in written and "[providers.openai]\nconcurrency = 4" in written
    assert f"from {data}" in written and "check-half accuracy" in written
    assert f"{rec['check']['accuracy']:.1%}" in written
    cfg = load_config(config)
    assert (cfg.defaults.strategy, cfg.defaults.n) == (rec["strategy"], rec["n"])
    settings = run_settings(cfg=cfg, env={})
    assert (settings.strategy, settings.n, settings.seed) == (rec["strategy"], rec["n"], 3)
    # The file now names a strategy and N; tune neutralizes both, so the same command still only resumes.
    resumed = run_tune(data, out)
    assert resumed.exit_code == 0 and (out / "tune-results.jsonl").read_bytes() == results


def test_the_recommendation_keeps_to_the_budget_and_says_when_nothing_fits(env, tmp_path):
    data, config = env
    out = tmp_path / "tune"
    r = run_tune(data, out, "--json", "--max-calls-per-question", "2")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    rec = report["recommendation"]
    assert rec["tune"]["calls"] <= 2 and rec["budget"]["max_calls_per_question"] == 2
    fits = [row for row in report["rows"] if row["half"] == "tune" and row["calls"] <= 2]
    assert rec["tune"]["accuracy"] == max(row["accuracy"] for row in fits)
    before = config.read_text()
    r = run_tune(data, out, "--max-tokens-per-question", "1", "--write-config")
    assert r.exit_code == 1 and "nothing to write" in r.stderr and "budget" in r.stderr and "Traceback" not in r.output
    assert "no recommendation: no configuration fits the budget" in r.stdout
    assert config.read_text() == before


@pytest.mark.parametrize("args,message", [
    (["-n", "4"], "drop -n"),
    (["--verify", "python"], "drop --verify"),
    (["--ns", "1,x"], "--ns takes comma-separated integers"),
    (["--ns", "0,2"], "--ns takes Ns of at least 1"),
    (["--strategies", "nosuch"], "nosuch"),
    (["--limit", "1"], "at least 2 questions"),
])
def test_bad_input_is_one_clear_line(env, tmp_path, args, message):
    data, _ = env
    r = CliRunner().invoke(cli, ["tune", str(data), "-m", SIM, "--results", str(tmp_path / "t"), *args])
    assert r.exit_code == 1 and message in r.stderr and "Traceback" not in r.output, r.output


def test_a_dataset_mixing_code_tasks_and_questions_is_refused(tmp_path, gsm8k):
    data = write(tmp_path / "mixed.jsonl", [gsm8k[0], gsm8k[1], {"question": "Write f.", "tests": "assert f() == 1"}])
    r = CliRunner().invoke(cli, ["tune", str(data), "-m", "sim", "--results", str(tmp_path / "t")])
    assert r.exit_code == 1 and "tune them separately" in r.stderr


def test_results_must_be_a_folder_of_its_own(env, tmp_path):
    data, _ = env
    (tmp_path / "file").write_text("x")
    r = CliRunner().invoke(cli, ["tune", str(data), "-m", SIM, "--results", str(tmp_path / "file")])
    assert r.exit_code == 1 and "Traceback" not in r.output


# --- the library: counted requests, tools, code tasks -----------------------------------------------------


def sim_settings(**values):
    """The simulator as an OpenAI endpoint, one request per sample (so its request count is the samples')."""
    return RunSettings.build(model="openai:heavy-simulated", base_url="http://sim.test/v1", seed=1,
                             fanout="parallel", **values)


@pytest.mark.anyio
async def test_the_simulator_is_asked_for_each_sample_once_and_later_only_for_judge_calls(tmp_path, gsm8k):
    rows = gsm8k[:6]
    app = SimulatedLLM(SimConfig(accuracy=0.6, seed=4, dataset={r["question"]: r["answer"] for r in rows}))
    items = load_items(write(tmp_path / "d.jsonl", rows))
    transport = httpx.ASGITransport(app=app)
    settings = sim_settings()
    report = await tune(settings, items, tmp_path / "t", ns=[1, 2, 4], strategies=["vote"], transport=transport)
    assert app.stats.chat_requests == 6 * 4, "4 chains per question, nothing else: vote makes no call"
    the_plan, decisions = report.plan, report.decisions
    assert {(c.label, c.n) for c in the_plan.configs} == {("vote", 1), ("vote", 2), ("vote", 4),
                                                         ("vote early_stop=true", 2), ("vote early_stop=true", 4)}
    assert len(decisions) == 6 * 5
    await tune(settings, items, tmp_path / "t", ns=[1, 2, 4], strategies=["vote"], transport=transport)
    assert app.stats.chat_requests == 24, "resumed: no sample and no decision made again"
    report = await tune(settings, items, tmp_path / "t", ns=[1, 2, 4], strategies=["vote", "judge"],
                        transport=transport)
    judged = [d for d in report.decisions if d["strategy"] == "judge"]
    assert len(judged) == 6 * 2 and app.stats.chat_requests - 24 == sum(d["live_calls"] for d in judged) > 0
    assert all(d["calls"] == d["n"] + d["live_calls"] for d in judged)


@pytest.mark.anyio
async def test_with_the_python_tool_programs_verify_and_crosscheck_options_are_compared(tmp_path, gsm8k):
    rows = gsm8k[:6]
    app = SimulatedLLM(SimConfig(accuracy=0.5, seed=2, latency=0.01, latency_sigma=0.5,
                                 dataset={r["question"]: r["answer"] for r in rows}))
    items = load_items(write(tmp_path / "d.jsonl", rows))
    report = await tune(sim_settings(tools=["python"]), items, tmp_path / "t", ns=[1, 2, 4],
                        strategies=["vote", "crosscheck"], transport=httpx.ASGITransport(app=app))
    the_plan, decisions = report.plan, report.decisions
    pooled = [json.loads(x) for x in (tmp_path / "t" / "pool.jsonl").read_text().splitlines()]
    assert all(sum(h.get("route") == "program" for h in row["hypotheses"]) == 4 for row in pooled)
    labels = {c.label for c in the_plan.configs}
    assert {"crosscheck", "crosscheck early_stop=false", "crosscheck programs=0.5", "vote +verify",
            "crosscheck +verify", "crosscheck verify=unsettled +verify",
            "crosscheck early_stop=false program_override=0.75 programs=0.5"} <= labels
    by = {(d["config"], d["n"], d["id"]): d for d in decisions}
    assert all(d["error"] is None for d in decisions), [d["error"] for d in decisions if d["error"]]
    for item in items:
        verified = by[("vote +verify", 4, item.id)]
        assert verified["live_calls"] >= 1 and verified["calls"] == 4 + verified["live_calls"], "a check per chain"
        # Verify where it matters: a question the first chain and program settle costs no check at all.
        lazy = by[("crosscheck verify=unsettled +verify", 4, item.id)]
        eager = by[("crosscheck +verify", 4, item.id)]
        assert lazy["live_calls"] <= eager["live_calls"]
        if lazy["calls"] == 2:
            assert lazy["live_calls"] == 0
    assert sum(d["live_calls"] for d in decisions if d["config"] == "crosscheck verify=unsettled +verify") < \
        sum(d["live_calls"] for d in decisions if d["config"] == "crosscheck +verify")
    # Each chain's check is one call, shared by every configuration deciding on that chain (each still pays it).
    checks_made = app.stats.chat_requests - 6 * 8  # the pool: 4 chains + 4 programs a question
    assert 0 < checks_made <= 6 * 4 < sum(d["live_calls"] for d in decisions if d["verify"])
    assert report.rows == summarize(the_plan, report.halves, decisions)
    assert {row["label"] for row in report.rows} == labels
    # Measured with the python tool exactly where heavy ask needs it: programs, checks; plain vote is plain.
    assert all(row["tools"] == (row["strategy"] == "crosscheck" or row["verify"]) for row in report.rows)


@pytest.mark.anyio
async def test_code_tasks_in_humaneval_format_are_tuned_by_their_hidden_tests(tmp_path):
    rows = [{"id": name, "question": f"Complete this function:\n\n{prompt}", "entry_point": name,
             "solution": solution, "tests": tests} for name, prompt, solution, tests in HE_TASKS]
    data = write(tmp_path / "he.jsonl", rows)
    app = SimulatedLLM(SimConfig(accuracy=0.5, seed=5,
                                 dataset={r["question"]: code_gold(r["solution"], r["tests"]) for r in rows}))
    sent: list[str] = []

    async def spy(request: httpx.Request) -> httpx.Response:
        sent.append(request.content.decode())
        return await httpx.ASGITransport(app=app).handle_async_request(request)

    items = load_items(data)
    report = await tune(sim_settings(tools=["python"]), items, tmp_path / "t", ns=[1, 2],
                        transport=httpx.MockTransport(spy))
    the_plan, decisions = report.plan, report.decisions
    assert {(c.label, c.n) for c in the_plan.configs} == {
        (PASS_AT_1, 1), ("vote", 1), ("vote", 2), ("execute", 2), ("execute probes=0", 2)}
    assert "code tasks are compared on pass@1, vote and execute" in the_plan.skipped["judge"]
    assert len(sent) == 4 * 2, "the samples only: execute selects by the examples in the question"
    for _, _, _, tests in HE_TASKS:  # the grading asserts never reach the model
        for line in tests.strip().splitlines()[1:]:
            assert all(line.strip() not in body for body in sent)
    assert all(d["graded"] == "program" and d["error"] is None for d in decisions)
    pooled = {json.loads(x)["id"]: json.loads(x) for x in (tmp_path / "t" / "pool.jsonl").read_text().splitlines()}
    right = {name: solution for name, _, solution, _ in HE_TASKS}
    for d in decisions:
        chains = pooled[d["id"]]["hypotheses"]
        if d["strategy"] == PASS_AT_1:  # the share of the samples that are the reference solution (a mutant fails)
            expected = [right[d["id"]].strip() in h["text"] for h in chains]
            assert d["sample_passes"] == expected and d["pass_rate"] == sum(expected) / 2
        elif d["strategy"] == "vote" and d["n"] == 1:
            assert d["correct"] == (right[d["id"]].strip() in chains[0]["text"])
    assert {row["strategy"] for row in report.rows} == {PASS_AT_1, "vote", "execute"}
    rec = report.recommendation
    assert rec is not None and rec == {**recommend(report.rows)[0], "command": rec["command"]}
    assert rec is not None and rec["strategy"] != PASS_AT_1 and not rec["tools"], "code runs without the tool"


@pytest.mark.anyio
async def test_a_strategy_that_samples_beyond_the_pool_is_dropped_after_its_first_question(tmp_path, gsm8k):
    """What tune does with a plugin strategy that generates (a debate here, which the plan skips by name)."""
    rows = gsm8k[:4]
    app = SimulatedLLM(SimConfig(accuracy=0.6, seed=1, dataset={r["question"]: r["answer"] for r in rows}))
    items = load_items(write(tmp_path / "d.jsonl", rows))
    tuner = Tuner(sim_settings(), items, [2], concurrency=1, transport=httpx.ASGITransport(app=app))
    pool, results = Pool(tmp_path / "pool.jsonl", lock=True), ResultsFile(tmp_path / "r.jsonl", lock=True)
    pools = await tuner.sample(pool)
    the_plan = TunePlan([Config.of("debate", 2, {"stop_on_consensus": False})], {})
    await tuner.decide(pools, results, the_plan)
    assert len(results.rows) == 1 and results.rows[0]["beyond_pool"] and "beyond the pool" in results.rows[0]["error"]
    assert "beyond the pool" in the_plan.skipped["debate"]
    requests = app.stats.chat_requests
    again = TunePlan([Config.of("debate", 2, {"stop_on_consensus": False})], {})
    await tuner.decide(pools, results, again)  # a later run reads why from the results and skips it at once
    assert len(results.rows) == 1 and app.stats.chat_requests == requests
    assert "beyond the pool" in again.skipped["debate"]
    pool.close()
    results.close()
    await tuner.aclose()


# --- planning, the halves, the config's values -----------------------------------------------------------------


def test_what_applies():
    names = ["vote", "judge", "crosscheck", "execute", "debate", "moa", "confidence", "heavy"]
    runs_code = {"crosscheck", "execute"}.__contains__
    plain = plan(names, ns=[1, 2, 8], python=False, code=False, logprobs=False, runs_code=runs_code)
    assert {c.strategy for c in plain.configs} == {"vote", "judge", "heavy"}
    assert set(plain.skipped) == {"crosscheck", "execute", "debate", "moa", "confidence"}
    assert "--tools python" in plain.skipped["crosscheck"] and "pool cannot replay" in plain.skipped["debate"]
    assert not any(c.verify or c.tools for c in plain.configs)
    assert [c.label for c in plain.configs if c.n == 1] == ["vote"]
    tools = plan(names, ns=[1, 2, 8], python=True, code=False, logprobs=True, runs_code=runs_code,
                 uses_programs=lambda name, options: name == "heavy" and options.get("programs", 0.25) > 0)
    assert {"crosscheck", "confidence"} <= {c.strategy for c in tools.configs} and "execute" in tools.skipped
    assert {c.label for c in tools.configs if c.n == 1} == {"vote", "crosscheck early_stop=false programs=1",
                                                           "vote +verify"}
    measured = {(c.label, c.n): c.tools for c in tools.configs}
    assert measured[("heavy", 8)] and not measured[("heavy programs=0", 8)], "heavy samples programs only with the tool"
    assert measured[("crosscheck", 8)] and measured[("vote +verify", 8)]
    assert measured[("crosscheck early_stop=false programs=1", 1)]
    assert not measured[("vote", 8)] and not measured[("judge", 8)] and not measured[("vote", 1)]
    code = plan(names, ns=[1, 4], python=True, code=True, logprobs=False, runs_code=runs_code)
    assert {(c.label, c.n) for c in code.configs} == {(PASS_AT_1, 1), ("vote", 1), ("vote", 4), ("execute", 4),
                                                      ("execute probes=0", 4)}


def test_the_halves_are_fixed_by_the_seed_and_stratified_by_category(tmp_path):
    items = load_items(write(tmp_path / "d.jsonl", [{"id": f"q{i}", "question": f"q{i}?", "answer": "1"}
                                                    for i in range(21)]))
    categories = {f"q{i}": "abc"[i % 3] for i in range(21)}
    halves = split_halves(items, categories, seed=0)
    assert halves == split_halves(items, categories, seed=0) != split_halves(items, categories, seed=1)
    for cat in "abc":
        in_cat = [halves[i] for i, c in categories.items() if c == cat]
        assert abs(in_cat.count("tune") - in_cat.count("check")) == 1, "each category cut in two"
    assert abs(list(halves.values()).count("tune") - list(halves.values()).count("check")) == 1


def test_config_values_set_what_was_measured_and_remove_the_rest():
    rec = {"strategy": "crosscheck", "n": 8, "options": {"early_stop": False}, "verify": False, "tools": True}
    assert config_values(rec) == ({"strategy": "crosscheck", "n": 8, "options": {"early_stop": False},
                                   "tools": ["python"]}, {"verify"})
    assert config_values({**rec, "options": {}, "tools": False, "verify": False})[1] == {"options", "tools", "verify"}


def test_each_program_runs_once_per_tune_run():
    from heavy.evaluation.tune import _OnceEach

    class Counting:
        runs = 0

        async def run(self, code):
            Counting.runs += 1
            await asyncio.sleep(0)
            return code.upper()

    async def go():
        once = _OnceEach(Counting())
        return await asyncio.gather(once.run("a"), once.run("a"), once.run("b"))

    assert asyncio.run(go()) == ["A", "A", "B"] and Counting.runs == 2


def test_a_hypothesis_token_limit_is_the_run_s_not_the_budget(env, tmp_path):
    """`--max-tokens` limits each hypothesis (and each live call), as in `heavy eval`; the budget is only
    `--max-tokens-per-question`."""
    data, _ = env
    out = tmp_path / "tune"
    r = run_tune(data, out, "--json", "--max-tokens", "6", "--ns", "1,2")
    assert r.exit_code == 0, r.output
    rec = json.loads(r.stdout)["recommendation"]
    assert rec is not None and rec["budget"]["max_tokens_per_question"] is None
    pooled = [h for x in (out / "pool.jsonl").read_text().splitlines() for h in json.loads(x)["hypotheses"]]
    assert pooled and all(h["usage"]["completion_tokens"] <= 6 for h in pooled)
    both = run_tune(data, out, "--json", "--max-tokens", "6", "--ns", "1,2", "--max-tokens-per-question", "5000")
    assert both.exit_code == 0, both.output
    assert json.loads(both.stdout)["recommendation"]["budget"]["max_tokens_per_question"] == 5000
