"""Smoke test of bench/code_quality.py on the simulated model (the real run is on the local model)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("code_quality", REPO / "bench" / "code_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_code_quality_runs_and_resumes_on_the_simulator(tmp_path, monkeypatch, capsys):
    # Two tasks, one every selection gets right and one some get wrong (vote and visible tests fail leap-year):
    # every path of the script, at two thirds of the sandbox runs of three.
    tasks = [json.loads(line) for line in (REPO / "bench" / "code_tasks.jsonl").read_text().splitlines()[1:3]]
    math = [{"question": "What is 12 * 7 + 5?", "answer": "89"}, {"question": "What is 31 * 3 - 4?", "answer": "89"}]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    (tmp_path / "math.jsonl").write_text("".join(json.dumps(q) + "\n" for q in math))
    (tmp_path / "sim.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tasks + math))
    monkeypatch.setenv("HEAVY_SIM_DATASET", str(tmp_path / "sim.jsonl"))
    bench = load_bench()
    argv = ["--model", "sim:heavy-simulated@accuracy=0.5", "--n", "3", "--tasks", str(tmp_path / "tasks.jsonl"),
            "--gsm8k", str(tmp_path / "math.jsonl"), "--out", str(tmp_path / "out")]
    summary = bench.main(argv)
    code, math_summary = summary["code"], summary["gsm8k"]
    assert code["tasks"] == 2 and 0 <= code["pass@1"] <= code["pass@3"] <= 1
    assert {"vote", "execute-given", "execute-visible", "execute-visible-noprobes", "execute-codet"} <= set(code)
    assert code["execute-given"] >= code["vote"]  # given tests never choose worse than the vote here
    # Selection with the visible tests is graded by the hidden ones; it never sees them.
    chosen = [json.loads(line) for line in (tmp_path / "out" / "code-selection-3.jsonl").read_text().splitlines()]
    visible = [r for r in chosen if r["method"] == "execute-visible"]
    assert len(visible) == 2 and all(r["path"] == ["sample", "given tests", "execute"] for r in visible)
    assert all(r["probes"] > 0 for r in visible) and code["execute-visible"] <= code["pass@3"]
    rotation = code["rotation"]
    splits = sum(t["tests"].count("assert ") for t in tasks)
    assert {m: rotation[m]["splits"] for m in rotation} == {m: splits for m in bench.ROTATION}
    assert rotation["pass@1"]["score"] <= rotation["pass@N"]["score"]
    assert all(0 <= r["score"] <= rotation["pass@N"]["score"] for r in rotation.values())
    assert math_summary["python-tool"]["accuracy"] == 1.0 and math_summary["python-tool"]["tool_runs_per_question"] == 1
    report = (tmp_path / "out" / "code_quality.md").read_text()
    assert "execute, given tests = grading tests (not hidden), over 3" in report and "python-tool" in report
    assert "execute, visible tests + probes, over 3" in report and "Rotation (2 tasks" in report
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == ["code-pool-3.jsonl", "code-rotation-3.jsonl", "code-samples-3.jsonl", "code-selection-3.jsonl",
                     "code_quality.md", "gsm8k-tools.jsonl"]
    sizes = {f: (tmp_path / "out" / f).read_text().count("\n") for f in files if f.endswith(".jsonl")}
    assert bench.main(argv) == summary  # a second run finds everything done and adds nothing
    assert sizes == {f: (tmp_path / "out" / f).read_text().count("\n") for f in sizes}
