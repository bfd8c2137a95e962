"""Load: a thousand hypotheses in flight against a real server on 127.0.0.1 all complete, memory stays
bounded, and nothing is left running afterwards (also after runs cut short by a deadline)."""

import asyncio
import resource

import pytest

from heavy import Heavy

from helpers import running_sim

pytestmark = pytest.mark.anyio


def stray_tasks(before):
    return [t for t in asyncio.all_tasks() if t not in before and t is not asyncio.current_task()]


@pytest.fixture(scope="module")
def sim_url():
    with running_sim("--latency", "1.0", "--accuracy", "0.9", "--seed", "1") as base:
        yield f"{base}/v1"


async def test_a_thousand_hypotheses_in_flight(sim_url):
    h = Heavy(model="openai:heavy-simulated", base_url=sim_url, n=8, strategy="vote", concurrency=1000)
    tasks_before = asyncio.all_tasks()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    questions = [f"What is {i} * 3 + 7?" for i in range(125)]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = await asyncio.gather(*(h.ask(q, seed=i) for i, q in enumerate(questions)))
    wall = loop.time() - t0
    await h.aclose()
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"\n1000 hypotheses of 1 s latency: {wall:.2f} s wall, peak RSS grew {grown_mb:.0f} MB")
    assert all(len(r.successes) == 8 for r in results), "every hypothesis completes"
    assert sum(r.answer == str(i * 3 + 7) for i, r in enumerate(results)) >= 120
    assert wall < 30, "1000 one-second calls must overlap (serially they would take 1000 s)"
    assert grown_mb < 300
    await asyncio.sleep(0.05)
    assert stray_tasks(tasks_before) == [], "no task may outlive the runs"


async def test_runs_cut_by_a_deadline_leave_nothing_running(sim_url):
    tasks_before = asyncio.all_tasks()
    h = Heavy(model=["openai:heavy-simulated", "openai:heavy-simulated@latency=30"], base_url=sim_url, n=8,
              strategy="vote", deadline=5, concurrency=1000)
    results = await asyncio.gather(*(h.ask(f"What is {i} + 1?") for i in range(20)))
    await h.aclose()
    assert all(r.deadline_hit and len(r.successes) == 4 for r in results)
    await asyncio.sleep(0.05)
    assert stray_tasks(tasks_before) == []
