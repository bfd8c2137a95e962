"""The simulator's OpenAI Responses API (heavy.sim.responses, heavy.sim.responses_wire) and its Azure route.

Raw JSON bodies through the ASGI app in-process: the Response object, streams of typed events, tool calls over
input items and previous_response_id, background mode with polling and cancelling, failures, the store.
"""

from __future__ import annotations

import json

import httpx
import pytest

from heavy.sim.transport import StreamingASGITransport
from heavy.prompts import judge_messages
from heavy.sim import SimulatedLLM
from heavy.types import as_messages

pytestmark = pytest.mark.anyio
QUESTION = "What is 17 * 24 + 3?"
PYTHON = {"type": "function", "name": "python", "description": "Run a Python program.", "strict": False,
          "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client(app: SimulatedLLM | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingASGITransport(app or SimulatedLLM(seed=5)), base_url="http://sim",
                             timeout=30)


def body(model: str = "heavy-simulated@accuracy=1", question: str = QUESTION, **fields) -> dict:
    return {"model": model, "input": question, **fields}


async def create(c: httpx.AsyncClient, status: int = 200, **fields) -> dict:
    r = await c.post("/v1/responses", json=body(**fields))
    assert r.status_code == status, r.text
    return r.json()


def events(text: str) -> list[tuple[str, dict]]:
    """(event name, payload) of each server-sent event, checking the framing: an event line, then its data."""
    assert text.endswith("\n\n") and "[DONE]" not in text
    out = []
    for block in text[:-2].split("\n\n"):
        head, data = block.split("\n")
        assert head.startswith("event: ") and data.startswith("data: "), block
        payload = json.loads(data[len("data: "):])
        assert payload["type"] == head[len("event: "):]
        out.append((payload["type"], payload))
    assert [p["sequence_number"] for _, p in out] == list(range(len(out)))
    return out


def text_of(response: dict) -> str:
    return "".join(part["text"] for item in response["output"] if item["type"] == "message"
                   for part in item["content"])


async def test_a_response_object_as_documented():
    async with client() as c:
        r = await c.post("/v1/responses", json=body(instructions="Be brief.", metadata={"run": "1"}))
        data = r.json()
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert data["id"].startswith("resp_") and data["object"] == "response" and data["status"] == "completed"
    assert data["error"] is None and data["incomplete_details"] is None and data["completed_at"]
    assert data["instructions"] == "Be brief." and data["metadata"] == {"run": "1"} and data["store"] is True
    assert (data["temperature"], data["top_p"], data["tool_choice"], data["background"]) == (1.0, 1.0, "auto", False)
    [message] = data["output"]
    assert message["id"].startswith("msg_") and message["type"] == "message" and message["role"] == "assistant"
    assert message["status"] == "completed" and message["content"][0]["type"] == "output_text"
    assert message["content"][0]["text"].endswith("The answer is 411.")
    usage = data["usage"]
    assert usage["input_tokens"] == len(QUESTION.split()) + 2  # the question and the instructions
    assert usage["output_tokens"] == len(message["content"][0]["text"].split())
    assert usage["input_tokens_details"] == {"cached_tokens": 0} and usage["output_tokens_details"] == {
        "reasoning_tokens": 0}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_input_items_roles_and_parts():
    items = [{"role": "developer", "content": "Answer with a number."},
             {"role": "user", "content": [{"type": "input_text", "text": "What is 2 + 2?"}]},
             {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "4"}]},
             {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]}]
    async with client() as c:
        data = await create(c, input=items)
        bad_role = await c.post("/v1/responses", json=body(input=[{"role": "wizard", "content": "x"}]))
        bad_type = await c.post("/v1/responses", json=body(input=[{"type": "banana"}]))
        empty = await c.post("/v1/responses", json=body(input=[]))
    assert text_of(data).endswith("The answer is 411.")  # the last user message is the question
    assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "input[0].role"
    assert bad_type.status_code == 400 and bad_type.json()["error"]["param"] == "input[0].type"
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "missing_required_parameter"


async def test_reasoning_items_summaries_and_encrypted_content():
    async with client() as c:
        plain = await create(c, model="gpt-5")
        summary = await create(c, model="o3", reasoning={"effort": "high", "summary": "detailed"},
                               include=["reasoning.encrypted_content"])
        off = await create(c, model="gpt-5.1")  # effort none by default: no reasoning
        none = await create(c, model="gpt-5.2", reasoning={"effort": "none"}, temperature=0.3)
        bad_include = await c.post("/v1/responses", json=body(include=["reasoning.everything"]))
    reasoning, message = plain["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_") and reasoning["summary"] == []
    assert "encrypted_content" not in reasoning and message["type"] == "message"
    assert plain["reasoning"] == {"effort": "medium", "summary": None}
    reasoning_tokens = plain["usage"]["output_tokens_details"]["reasoning_tokens"]
    assert reasoning_tokens > 0 and plain["usage"]["output_tokens"] == reasoning_tokens + len(text_of(plain).split())
    item = summary["output"][0]
    assert item["summary"][0]["type"] == "summary_text" and "Simulated reasoning" in item["summary"][0]["text"]
    assert item["encrypted_content"]
    assert summary["usage"]["output_tokens_details"]["reasoning_tokens"] > reasoning_tokens
    assert [i["type"] for i in off["output"]] == ["message"] and [i["type"] for i in none["output"]] == ["message"]
    assert none["temperature"] == 0.3
    assert bad_include.status_code == 400 and bad_include.json()["error"]["param"] == "include[0]"


async def test_max_output_tokens_makes_it_incomplete():
    async with client() as c:
        cut = await create(c, max_output_tokens=5)
        thought_out = await create(c, model="gpt-5-mini", max_output_tokens=4)
    assert cut["status"] == "incomplete" and cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert "completed_at" not in cut and cut["output"][0]["status"] == "incomplete"
    assert cut["usage"]["output_tokens"] == 5 and len(text_of(cut).split()) == 5
    # a reasoning model that spent every token thinking returns only its reasoning item
    assert thought_out["status"] == "incomplete" and [i["type"] for i in thought_out["output"]] == ["reasoning"]
    assert thought_out["usage"]["output_tokens_details"]["reasoning_tokens"] == 4


async def test_streams_typed_events():
    async with client() as c:
        whole = await create(c, model="gpt-5@accuracy=1", reasoning={"summary": "auto"}, store=False)
        r = await c.post("/v1/responses", json=body("gpt-5@accuracy=1", stream=True, reasoning={"summary": "auto"}))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    got = events(r.text)
    names = [name for name, _ in got]
    assert names[:9] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                         "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
                         "response.reasoning_summary_part.done", "response.output_item.done"]
    assert names[9:11] == ["response.output_item.added", "response.content_part.added"]
    assert names[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert set(names[11:-4]) == {"response.output_text.delta"}
    created, final = got[0][1]["response"], got[-1][1]["response"]
    assert created["status"] == "in_progress" and created["usage"] is None and created["output"] == []
    deltas = "".join(p["delta"] for name, p in got if name == "response.output_text.delta")
    done = next(p for name, p in got if name == "response.output_text.done")
    assert deltas == done["text"] == text_of(final) and deltas.endswith("The answer is 411.")
    summary = "".join(p["delta"] for name, p in got if name == "response.reasoning_summary_text.delta")
    assert summary == final["output"][0]["summary"][0]["text"]
    assert all(p["output_index"] == 1 and p["item_id"] == final["output"][1]["id"]
               for name, p in got if name == "response.output_text.delta")
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] > 0 and final["id"] == created["id"]
    assert whole["output"][0]["summary"][0]["text"] == summary  # the same shapes streamed or not


async def test_a_stream_cut_by_max_output_tokens_ends_incomplete():
    async with client() as c:
        r = await c.post("/v1/responses", json=body(stream=True, max_output_tokens=3))
    got = events(r.text)
    assert got[-1][0] == "response.incomplete"
    assert got[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_a_refused_stream_is_plain_json():
    async with client() as c:
        r = await c.post("/v1/responses", json=body("gpt-5", stream=True, temperature=0.7))
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["message"] == "Unsupported parameter: 'temperature' is not supported with this model."


async def test_injected_failures():
    async with client() as c:
        r = await c.post("/v1/responses", json=body("heavy-simulated@fail_rate=1,fail_status=503"))
        assert r.status_code == 503 and r.json()["error"]["type"] == "server_error"
        r = await c.post("/v1/responses", json=body("heavy-simulated@fail_rate=1,fail_status=429"))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        r = await c.post("/v1/responses", json=body("heavy-simulated@fail_rate=1,fail_in_stream=true", stream=True))
    got = events(r.text)
    assert [name for name, _ in got][-2:] == ["error", "response.failed"]
    error = got[-2][1]["error"]
    assert error["type"] == "server_error" and error["code"] == "simulated_failure" and "simulated failure" in \
        error["message"]
    failed = got[-1][1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "simulated_failure", "message": error["message"]}
    assert "response.output_text.delta" in [name for name, _ in got]  # it broke off after the first piece


async def test_tool_calls_over_input_items():
    async with client() as c:
        first = await create(c, tools=[PYTHON], store=False)
        [call] = first["output"]
        assert call["type"] == "function_call" and call["id"].startswith("fc_") and call["call_id"].startswith("call_")
        assert call["name"] == "python" and json.loads(call["arguments"]) == {"code": "print(17 * 24 + 3)"}
        assert call["status"] == "completed" and first["status"] == "completed"
        history = [{"role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
                   {"type": "function_call", "call_id": call["call_id"], "name": "python",
                    "arguments": call["arguments"]},
                   {"type": "function_call_output", "call_id": call["call_id"], "output": "411\n"}]
        second = await create(c, input=history, tools=[PYTHON])
        orphan = await c.post("/v1/responses", json=body(input=[*history[:1], {
            "type": "function_call_output", "call_id": "call_nobody", "output": "1"}], tools=[PYTHON]))
        nested = await c.post("/v1/responses", json=body(tools=[{"type": "function", "function": {"name": "python"}}]))
        none = await create(c, tools=[PYTHON], tool_choice="none")
        web = await create(c, tools=[{"type": "web_search"}])
    assert text_of(second).endswith("The answer is 411.") and second["output"][0]["type"] == "message"
    assert orphan.status_code == 400 and orphan.json()["error"] == {
        "message": "No tool call found for function call output with call_id call_nobody.",
        "type": "invalid_request_error", "param": "input", "code": None}
    assert nested.status_code == 400 and nested.json()["error"]["message"] == \
        "Missing required parameter: 'tools[0].name'."
    assert [i["type"] for i in none["output"]] == ["message"]
    assert [i["type"] for i in web["output"]] == ["message"]  # built-in tools are accepted and never used


async def test_a_streamed_tool_call():
    async with client() as c:
        r = await c.post("/v1/responses", json=body("gpt-5", tools=[PYTHON], stream=True))
    got = events(r.text)
    names = [name for name, _ in got]
    assert names == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.output_item.done", "response.output_item.added",
                     "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                     "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    added, done = got[4][1]["item"], got[8][1]["item"]
    assert added["status"] == "in_progress" and added["arguments"] == "" and done["status"] == "completed"
    assert got[5][1]["delta"] + got[6][1]["delta"] == got[7][1]["arguments"] == done["arguments"]
    assert got[7][1]["name"] == "python" and got[7][1]["output_index"] == 1


async def test_previous_response_id_continues_a_stored_conversation():
    async with client() as c:
        first = await create(c, tools=[PYTHON])
        call = first["output"][0]
        second = await create(c, previous_response_id=first["id"], tools=[PYTHON], input=[
            {"type": "function_call_output", "call_id": call["call_id"], "output": "411"}])
        unstored = await create(c, store=False)
        r = await c.post("/v1/responses", json=body(previous_response_id=unstored["id"]))
    assert text_of(second).endswith("The answer is 411.") and second["previous_response_id"] == first["id"]
    assert r.status_code == 400 and r.json()["error"] == {
        "message": f"Previous response with id '{unstored['id']}' not found.", "type": "invalid_request_error",
        "param": "previous_response_id", "code": "previous_response_not_found"}


async def test_the_store_retrieve_and_delete():
    async with client() as c:
        kept = await create(c)
        unkept = await create(c, store=False)
        got = (await c.get(f"/v1/responses/{kept['id']}")).json()
        missing = await c.get(f"/v1/responses/{unkept['id']}")
        deleted = await c.delete(f"/v1/responses/{kept['id']}")
        gone = await c.get(f"/v1/responses/{kept['id']}")
        wrong_method = await c.put(f"/v1/responses/{kept['id']}")
    assert got == kept
    assert missing.status_code == 404 and missing.json()["error"] == {
        "message": f"Response with id '{unkept['id']}' not found.", "type": "invalid_request_error",
        "param": "response_id", "code": None}
    assert deleted.json() == {"id": kept["id"], "object": "response", "deleted": True} and gone.status_code == 404
    assert wrong_method.status_code == 405


async def test_background_mode_polls_queued_in_progress_completed():
    app = SimulatedLLM(seed=5)
    async with client(app) as c:
        queued = await create(c, model="gpt-5-pro@accuracy=1", background=True, reasoning={"effort": "high"})
        first = (await c.get(f"/v1/responses/{queued['id']}")).json()
        second = (await c.get(f"/v1/responses/{queued['id']}")).json()
        again = (await c.post(f"/v1/responses/{queued['id']}/cancel")).json()
    assert queued["status"] == "queued" and queued["background"] is True and queued["output"] == []
    assert queued["usage"] is None and "completed_at" not in queued
    assert first["status"] == "in_progress" and first["output"] == []
    assert second["status"] == "completed" and text_of(second).endswith("The answer is 411.")
    assert second["output"][0]["type"] == "reasoning" and second["usage"]["output_tokens_details"]["reasoning_tokens"]
    assert again == second  # cancelling a finished response returns it unchanged
    assert app.stats.by_wire["responses"] == 1 and app.stats.chat_requests == 1


async def test_a_slow_background_response_stays_in_progress_until_due_and_can_be_cancelled():
    async with client() as c:
        queued = await create(c, model="o3-pro@latency=30", background=True)
        polls = [(await c.get(f"/v1/responses/{queued['id']}")).json()["status"] for _ in range(3)]
        cancelled = await c.post(f"/v1/responses/{queued['id']}/cancel")
        twice = await c.post(f"/v1/responses/{queued['id']}/cancel")
        after = (await c.get(f"/v1/responses/{queued['id']}")).json()
        foreground = await create(c)
        refused = await c.post(f"/v1/responses/{foreground['id']}/cancel")
        unknown = await c.post("/v1/responses/resp_nobody/cancel")
    assert polls == ["in_progress"] * 3
    assert cancelled.json()["status"] == "cancelled" and twice.json() == cancelled.json() == after
    assert refused.status_code == 400 and refused.json()["error"] == {
        "message": "Only responses created with the 'background' parameter set to true can be cancelled.",
        "type": "invalid_request_error", "param": "response_id", "code": None}
    assert unknown.status_code == 404


async def test_background_failures_and_rate_limits():
    async with client() as c:
        queued = await create(c, model="heavy-simulated@fail_rate=1", background=True)
        statuses = [(await c.get(f"/v1/responses/{queued['id']}")).json() for _ in range(2)]
        limited = await c.post("/v1/responses", json=body("heavy-simulated@fail_rate=1,fail_status=429",
                                                          background=True))
    assert queued["status"] == "queued" and statuses[0]["status"] == "in_progress"
    assert statuses[1]["status"] == "failed" and statuses[1]["error"]["code"] == "simulated_failure"
    assert limited.status_code == 429  # refused at the door, never queued


async def test_background_stream_begins_queued():
    async with client() as c:
        r = await c.post("/v1/responses", json=body(background=True, stream=True))
        got = events(r.text)
        stored = (await c.get(f"/v1/responses/{got[0][1]['response']['id']}")).json()
    assert [name for name, _ in got][:3] == ["response.created", "response.queued", "response.in_progress"]
    assert got[0][1]["response"]["status"] == "queued" and got[-1][0] == "response.completed"
    assert stored["status"] == "completed" and stored == got[-1][1]["response"]


async def test_the_same_model_answers_judge_prompts_and_caches_prompts():
    app = SimulatedLLM(seed=5)
    prompt = [{"role": m.role, "content": m.content} for m in judge_messages(as_messages(QUESTION), [
        ("A", "It is 411.\n\nThe answer is 411."), ("B", "It is 400.\n\nThe answer is 400.")])]
    long = " ".join(f"word{i}" for i in range(1300)) + " " + QUESTION
    async with client(app) as c:
        chat = (await c.post("/v1/chat/completions", json={"model": "gpt-4.1", "messages": prompt})).json()
        responses = await create(c, model="gpt-4.1", input=prompt)
        cold = await create(c, model="gpt-4.1", question=long, prompt_cache_key="k1")
        warm = await create(c, model="gpt-4.1", question=long, prompt_cache_key="k1")
    assert text_of(responses) == chat["choices"][0]["message"]["content"] and "VERDICT: A" in text_of(responses)
    assert app.stats.judge_requests == 2
    assert cold["usage"]["input_tokens_details"]["cached_tokens"] == 0
    cached = warm["usage"]["input_tokens_details"]["cached_tokens"]
    assert cached >= 1024 and (cached - 1024) % 128 == 0 and app.stats.cache_keys["k1"] == 2
    assert app.stats.by_wire == {"openai": 1, "responses": 3}


async def test_azure_v1_responses_route():
    app = SimulatedLLM(seed=5)
    async with client(app) as c:
        r = await c.post("/openai/v1/responses?api-version=preview", json=body("my-gpt5-deployment"),
                         headers={"api-key": "azure-key"})
        got = await c.get(f"/openai/v1/responses/{r.json()['id']}", headers={"api-key": "azure-key"})
        refused = await c.post("/openai/v1/responses", json=body("gpt-5", temperature=0.5))
    assert r.status_code == 200 and text_of(r.json()).endswith("The answer is 411.") and got.json() == r.json()
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "temperature"
    assert app.stats.azure_requests == 3 and app.stats.auth_headers == {"api-key": 2}
