"""The simulator holds each real model name to its API's documented refusals (heavy.sim.rules).

Every rule is driven here through the ASGI app with a raw JSON body, and its status and error body are asserted
word for word: the expected texts are written out, not taken from the rules module, so a changed wording fails.
Names of no known family stay lenient. Reasoning models report their reasoning where each API does.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from heavy.sim.transport import StreamingASGITransport
from heavy.sim import SimulatedLLM
from heavy.sim.rules import RULES, rules_table
from heavy.sim.rules import anthropic as A
from heavy.sim.rules import compat as X
from heavy.sim.rules import gemini as G
from heavy.sim.rules import openai as O
from helpers import imported_modules

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[1]
CHAT, RESP, MSGS = "/v1/chat/completions", "/v1/responses", "/v1/messages"
USER = [{"role": "user", "content": "What is 17 * 24 + 3?"}]
CONTENTS = [{"role": "user", "parts": [{"text": "What is 17 * 24 + 3?"}]}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client(app: SimulatedLLM | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=StreamingASGITransport(app or SimulatedLLM(seed=3)), base_url="http://sim")


def gem(model: str) -> str:
    return f"/v1beta/models/{model}:generateContent"


def chat(model: str, **fields) -> tuple[str, dict]:
    return CHAT, {"model": model, "messages": USER, **fields}


def resp(model: str, **fields) -> tuple[str, dict]:
    return RESP, {"model": model, "input": "What is 17 * 24 + 3?", **fields}


def msgs(model: str, max_tokens: int = 4096, **fields) -> tuple[str, dict]:
    return MSGS, {"model": model, "max_tokens": max_tokens, "messages": USER, **fields}


def gen(model: str, **config) -> tuple[str, dict]:
    return gem(model), {"contents": CONTENTS, "generationConfig": config}


async def post(c: httpx.AsyncClient, request: tuple[str, dict], **kw) -> httpx.Response:
    path, body = request
    return await c.post(path, json=body, **kw)


def openai_error(message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def anthropic_error(message: str) -> dict:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def gemini_error(message: str) -> dict:
    return {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}


def xai_error(message: str, code: str = "Client specified an invalid argument") -> dict:
    return {"code": code, "error": message}


def thinking(budget: int = 1024) -> dict:
    return {"type": "enabled", "budget_tokens": budget}


UNSUPPORTED = "Unsupported parameter: '{}' is not supported with this model."
ENABLED = ('"thinking.type.enabled" is not supported for this model. Use "thinking.type.adaptive" and '
           '"output_config.effort" to control thinking behavior.')
TEMPERATURE_THINKING = ("`temperature` may only be set to 1 when thinking is enabled or in adaptive mode. Please "
                        "consult our documentation at https://platform.claude.com/docs/en/build-with-claude/"
                        "extended-thinking")
DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"

# (rule, (path, body), status, expected body): each rule's refusal, word for word.
CASES = [
    # OpenAI Chat Completions
    (O.RESPONSES_ONLY, chat("o3-pro"), 404, openai_error(
        "This model is only supported in v1/responses and not in v1/chat/completions.", "model")),
    (O.RESPONSES_ONLY, chat("gpt-5-pro-2025-10-06"), 404, openai_error(
        "This model is only supported in v1/responses and not in v1/chat/completions.", "model")),
    (O.RESPONSES_ONLY, chat("o4-mini-deep-research@latency=0"), 404, openai_error(
        "This model is only supported in v1/responses and not in v1/chat/completions.", "model")),
    (O.RESPONSES_ONLY, chat("gpt-5-codex"), 404, openai_error(
        "This model is only supported in v1/responses and not in v1/chat/completions.", "model")),
    (O.UNRECOGNIZED_EFFORT, chat("gpt-4o-mini", reasoning_effort="low"), 400,
     openai_error("Unrecognized request argument supplied: reasoning_effort")),
    (O.UNRECOGNIZED_EFFORT, chat("gpt-4.1-2025-04-14", reasoning_effort="high"), 400,
     openai_error("Unrecognized request argument supplied: reasoning_effort")),
    (O.UNRECOGNIZED_EFFORT, chat("gpt-5-chat-latest", reasoning_effort="minimal"), 400,
     openai_error("Unrecognized request argument supplied: reasoning_effort")),
    (O.UNKNOWN_CHAT, chat("gpt-5", zzz_unknown=1), 400,
     openai_error("Unknown parameter: 'zzz_unknown'.", "zzz_unknown", "unknown_parameter")),
    (O.UNKNOWN_CHAT, chat("gpt-4o", reasoning={"effort": "low"}), 400,
     openai_error("Unknown parameter: 'reasoning'.", "reasoning", "unknown_parameter")),
    (O.SYSTEM_ROLE, (CHAT, {"model": "o1-mini", "messages": [{"role": "system", "content": "Be brief."}, *USER]}), 400,
     openai_error("Unsupported value: 'messages[0].role' does not support 'system' with this model.",
                  "messages[0].role", "unsupported_value")),
    (O.SYSTEM_ROLE, (CHAT, {"model": "o1-preview", "messages": [*USER, {"role": "developer", "content": "x"}]}), 400,
     openai_error("Unsupported value: 'messages[1].role' does not support 'developer' with this model.",
                  "messages[1].role", "unsupported_value")),
    (O.MAX_TOKENS, chat("gpt-5.1", max_tokens=100), 400, openai_error(
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        "max_tokens", "unsupported_parameter")),
    (O.MAX_TOKENS, chat("o3-mini", max_tokens=100), 400, openai_error(
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        "max_tokens", "unsupported_parameter")),
    (O.TEMPERATURE, chat("gpt-5-mini", temperature=0.7), 400, openai_error(
        "Unsupported value: 'temperature' does not support 0.7 with this model. Only the default (1) value is "
        "supported.", "temperature", "unsupported_value")),
    (O.TEMPERATURE, chat("o4-mini-2025-04-16", temperature=0), 400, openai_error(
        "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is "
        "supported.", "temperature", "unsupported_value")),
    (O.TEMPERATURE, chat("gpt-5.1", reasoning_effort="low", temperature=0.2), 400, openai_error(
        "Unsupported value: 'temperature' does not support 0.2 with this model. Only the default (1) value is "
        "supported.", "temperature", "unsupported_value")),
    (O.TEMPERATURE, chat("gpt-5.5", temperature=0.5), 400, openai_error(
        "Unsupported value: 'temperature' does not support 0.5 with this model. Only the default (1) value is "
        "supported.", "temperature", "unsupported_value")),
    (O.UNSUPPORTED, chat("gpt-5", top_p=0.9), 400,
     openai_error(UNSUPPORTED.format("top_p"), "top_p", "unsupported_parameter")),
    (O.UNSUPPORTED, chat("o3", presence_penalty=0.5), 400,
     openai_error(UNSUPPORTED.format("presence_penalty"), "presence_penalty", "unsupported_parameter")),
    (O.UNSUPPORTED, chat("gpt-5-nano", frequency_penalty=0.1), 400,
     openai_error(UNSUPPORTED.format("frequency_penalty"), "frequency_penalty", "unsupported_parameter")),
    (O.UNSUPPORTED, chat("gpt-5.6-terra", logprobs=True), 400,
     openai_error(UNSUPPORTED.format("logprobs"), "logprobs", "unsupported_parameter")),
    (O.UNSUPPORTED, chat("o1", logit_bias={"50256": -100}), 400,
     openai_error(UNSUPPORTED.format("logit_bias"), "logit_bias", "unsupported_parameter")),
    (O.STOP, chat("o3", stop=["\n\n"]), 400, openai_error(UNSUPPORTED.format("stop"), "stop", "unsupported_parameter")),
    (O.STOP, chat("gpt-5", stop="END", temperature=0.5), 400,  # stop is reported before temperature
     openai_error(UNSUPPORTED.format("stop"), "stop", "unsupported_parameter")),
    (O.STOP, chat("gpt-5.2-chat-latest", stop="END"), 400,
     openai_error(UNSUPPORTED.format("stop"), "stop", "unsupported_parameter")),
    (O.PARALLEL, chat("o4-mini", parallel_tool_calls=False), 400,
     openai_error(UNSUPPORTED.format("parallel_tool_calls"), "parallel_tool_calls", "unsupported_parameter")),
    (O.NO_EFFORT, chat("o1-mini", reasoning_effort="low"), 400,
     openai_error(UNSUPPORTED.format("reasoning_effort"), "reasoning_effort", "unsupported_parameter")),
    (O.EFFORT_VALUE, chat("gpt-5.2-chat-latest", reasoning_effort="high"), 400, openai_error(
        "Unsupported value: 'reasoning_effort' does not support 'high' with this model. Supported values are: "
        "'medium'.", "reasoning_effort", "unsupported_value")),
    (O.EFFORT_VALUE, chat("gpt-5.1", reasoning_effort=None), 400, openai_error(
        "Unsupported value: 'reasoning_effort' does not support null with this model. Supported values are: 'none', "
        "'low', 'medium', and 'high'.", "reasoning_effort", "unsupported_value")),
    (O.EFFORT_VALUE, chat("gpt-5.4-mini", reasoning_effort="minimal"), 400, openai_error(
        "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. Supported values are: "
        "'none', 'low', 'medium', 'high', and 'xhigh'.", "reasoning_effort", "unsupported_value")),
    (O.EFFORT_VALUE, chat("o3", reasoning_effort="minimal"), 400, openai_error(
        "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. Supported values are: "
        "'low', 'medium', and 'high'.", "reasoning_effort", "unsupported_value")),
    (O.EFFORT_VALUE, chat("gpt-5", reasoning_effort="none"), 400, openai_error(
        "Unsupported value: 'reasoning_effort' does not support 'none' with this model. Supported values are: "
        "'minimal', 'low', 'medium', and 'high'.", "reasoning_effort", "unsupported_value")),
    (O.EFFORT_VALUE, chat("gpt-5.6-sol", reasoning_effort="max"), 400, openai_error(
        "Unsupported value: 'reasoning_effort' does not support 'max' with this model. Supported values are: "
        "'none', 'low', 'medium', 'high', and 'xhigh'.", "reasoning_effort", "unsupported_value")),
    (O.N_ABOVE, chat("gpt-5.6-terra", n=64), 400, openai_error(
        "Invalid 'n': integer above maximum value. Expected a value <= 8, but got 64 instead.", "n",
        "integer_above_max_value")),
    (O.TOOLS_REASONING, chat("gpt-5.6-sol", tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]),
     400, openai_error("Function tools with reasoning_effort are not supported for gpt-5.6-sol in /v1/chat/completions."
                       " To use function tools, use /v1/responses or set reasoning_effort to 'none'.")),
    (O.AZURE_NOT_FOUND, ("/openai/v1/embeddings", {"model": "gpt-5", "input": "x"}), 404,
     {"error": {"code": "404", "message": "Resource not found"}}),
    # OpenAI Responses API
    (O.R_UNKNOWN, resp("gpt-5", stop=["x"]), 400,
     openai_error("Unknown parameter: 'stop'.", "stop", "unknown_parameter")),
    (O.R_UNKNOWN, resp("heavy-simulated", reasoning={"effort": "low", "budget": 3}), 400,
     openai_error("Unknown parameter: 'reasoning.budget'.", "reasoning.budget", "unknown_parameter")),
    (O.R_TEMPERATURE, resp("gpt-5", temperature=0.2), 400,
     openai_error(UNSUPPORTED.format("temperature"), "temperature")),
    (O.R_TEMPERATURE, resp("o3", top_p=0.5), 400, openai_error(UNSUPPORTED.format("top_p"), "top_p")),
    (O.R_EFFORT_VALUE, resp("gpt-5.1", reasoning={"effort": "minimal"}), 400, openai_error(
        "Unsupported value: 'minimal' is not supported with the 'gpt-5.1' model. Supported values are: 'none', 'low', "
        "'medium', and 'high'.", "reasoning.effort", "unsupported_value")),
    (O.R_EFFORT_VALUE, resp("gpt-5-pro", reasoning={"effort": "medium"}), 400, openai_error(
        "Unsupported value: 'medium' is not supported with the 'gpt-5-pro' model. Supported values are: 'high'.",
        "reasoning.effort", "unsupported_value")),
    (O.R_NO_REASONING, resp("gpt-4o", reasoning={"effort": "low"}), 400, openai_error(
        "Unsupported parameter: 'reasoning.effort' is not supported with this model.", "reasoning.effort",
        "unsupported_parameter")),
    (O.R_NO_STREAM, resp("o1-pro", stream=True), 400, openai_error(
        "Unsupported value: 'stream' does not support true with this model. Only the default (false) value is "
        "supported.", "stream", "unsupported_value")),
    (O.R_NO_STREAM, resp("gpt-5.5-pro-2026-04-23", stream=True), 400, openai_error(
        "Unsupported value: 'stream' does not support true with this model. Only the default (false) value is "
        "supported.", "stream", "unsupported_value")),
    # xAI
    (X.XAI_EFFORT, chat("grok-4", reasoning_effort="low"), 400,
     xai_error("Model grok-4 does not support parameter reasoningEffort.")),
    (X.XAI_EFFORT, chat("grok-4-latest", reasoning_effort="high"), 400,
     xai_error("Model grok-4-latest does not support parameter reasoningEffort.")),
    (X.XAI_EFFORT, chat("grok-4-1-fast-non-reasoning", reasoning_effort="low"), 400,
     xai_error("Model grok-4-1-fast-non-reasoning does not support parameter reasoningEffort.")),
    (X.XAI_EFFORT, chat("grok-code-fast-1", reasoning_effort="low"), 400,
     xai_error("Model grok-code-fast-1 does not support parameter reasoningEffort.")),
    (X.XAI_ARGUMENT, chat("grok-3-mini", presence_penalty=0.5), 400,
     xai_error("Argument not supported on this model: presencePenalty")),
    (X.XAI_ARGUMENT, chat("grok-4-0709", stop=["x"]), 400, xai_error("Argument not supported on this model: stop")),
    (X.XAI_ARGUMENT, chat("grok-4-fast-reasoning", frequency_penalty=0.1), 400,
     xai_error("Argument not supported on this model: frequencyPenalty")),
    (X.XAI_NEW_STOP, chat("grok-4.6", stop="x"), 400,
     xai_error("Model grok-4.6 does not support parameter stop.", "invalid-argument")),
    (X.XAI_NEW_PARAM, chat("grok-4.3", presence_penalty=0.5), 400,
     xai_error("Model grok-4.3 does not support parameter presencePenalty.", "invalid-argument")),
    (X.XAI_NEW_PARAM, chat("grok-build-0.1", reasoning_effort="low"), 400,
     xai_error("Model grok-build-0.1 does not support parameter reasoningEffort.", "invalid-argument")),
    (X.XAI_EFFORT_VALUE, chat("grok-3-mini", reasoning_effort="medium"), 400,
     xai_error("This model does not support 'reasoning_effort' value 'medium'")),
    # DeepSeek
    (X.DS_LOGPROBS, chat("deepseek-reasoner", logprobs=True), 400, {"error": {
        "message": "deepseek-reasoner does not support the parameter `logprobs`", "type": "invalid_request_error",
        "param": None, "code": "invalid_request_error"}}),
    (X.DS_JSON, chat("deepseek-reasoner", response_format={"type": "json_object"}), 400, {"error": {
        "message": "deepseek-reasoner does not support Json Output.", "type": "invalid_request_error", "param": None,
        "code": "invalid_request_error"}}),
    # Anthropic
    (A.THINKING_SHAPE, msgs("claude-sonnet-4-5", thinking={"type": "enabled"}), 400,
     anthropic_error("thinking.enabled.budget_tokens: Field required")),
    (A.NO_THINKING, msgs("claude-3-5-sonnet-20241022", thinking=thinking()), 400,
     anthropic_error("'claude-3-5-sonnet-20241022' does not support thinking.")),
    (A.ENABLED_REFUSED, msgs("claude-opus-4-7", thinking=thinking()), 400, anthropic_error(ENABLED)),
    (A.ENABLED_REFUSED, msgs("claude-sonnet-5", thinking=thinking()), 400, anthropic_error(ENABLED)),
    (A.DISABLED_REFUSED, msgs("claude-fable-5", thinking={"type": "disabled"}), 400,
     anthropic_error('"thinking.type.disabled" is not supported for this model.')),
    (A.ADAPTIVE_REFUSED, msgs("claude-sonnet-4-5-20250929", thinking={"type": "adaptive"}), 400,
     anthropic_error("adaptive thinking is not supported on this model")),
    (A.BUDGET_MIN, msgs("claude-haiku-4-5", thinking=thinking(512)), 400,
     anthropic_error("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")),
    (A.BUDGET_MAX, msgs("claude-sonnet-4", 2048, thinking=thinking(2048)), 400, anthropic_error(
        f"`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at {DOCS}"
        "#max-tokens-and-context-window-size")),
    (A.MAX_TOKENS_CAP, msgs("claude-opus-4-5-20251101", 128001), 400, anthropic_error(
        "max_tokens: 128001 > 64000, which is the maximum allowed number of output tokens for "
        "claude-opus-4-5-20251101")),
    (A.MAX_TOKENS_CAP, msgs("claude-3-opus-20240229", 8192), 400, anthropic_error(
        "max_tokens: 8192 > 4096, which is the maximum allowed number of output tokens for claude-3-opus-20240229")),
    (A.TEMPERATURE_THINKING, msgs("claude-3-7-sonnet-20250219", thinking=thinking(), temperature=0.5), 400,
     anthropic_error(TEMPERATURE_THINKING)),
    (A.TEMPERATURE_THINKING, msgs("claude-opus-4-6", thinking={"type": "adaptive"}, temperature=0.0), 400,
     anthropic_error(TEMPERATURE_THINKING)),
    (A.TOP_K_THINKING, msgs("claude-opus-4-1", thinking=thinking(), top_k=40), 400, anthropic_error(
        f"`top_k` must be unset when thinking is enabled. Please consult our documentation at {DOCS}"
        "#important-considerations-when-using-extended-thinking")),
    (A.TOP_P_THINKING, msgs("claude-sonnet-4", thinking=thinking(), top_p=0.9), 400, anthropic_error(
        f"`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. Please consult our "
        f"documentation at {DOCS}#important-considerations-when-using-extended-thinking")),
    (A.FORCED_TOOL, msgs("claude-sonnet-4-5", thinking=thinking(), tools=[{"name": "f", "input_schema": {}}],
                         tool_choice={"type": "any"}), 400,
     anthropic_error("Thinking may not be enabled when tool_choice forces tool use.")),
    (A.FORCED_TOOL_ALWAYS, msgs("claude-fable-5", tools=[{"name": "f", "input_schema": {}}],
                                tool_choice={"type": "tool", "name": "f"}), 400,
     anthropic_error("Thinking may not be enabled when tool_choice forces tool use.")),
    (A.BOTH, msgs("claude-sonnet-4-5", temperature=0.5, top_p=0.9), 400,
     anthropic_error("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")),
    (A.BOTH, msgs("claude-haiku-4-5-20251001", temperature=1.0, top_p=1.0), 400,
     anthropic_error("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")),
    (A.DEPRECATED, msgs("claude-opus-4-7", temperature=0.0), 400,
     anthropic_error("`temperature` is deprecated for this model.")),
    (A.DEPRECATED_OTHER, msgs("claude-opus-4-8", top_k=5), 400,
     anthropic_error("`top_k` is deprecated for this model.")),
    (A.NO_EFFORT, msgs("claude-sonnet-4-5", output_config={"effort": "high"}), 400,
     anthropic_error("This model does not support the effort parameter.")),
    (A.EFFORT_LEVEL, msgs("claude-opus-4-6", output_config={"effort": "xhigh"}), 400,
     anthropic_error("This model does not support effort level 'xhigh'. Supported levels: high, low, max, medium.")),
    # Gemini
    (G.UNKNOWN_TOP, (gem("gemini-2.5-flash"), {"contents": CONTENTS, "google": {}}), 400, {"error": {
        "code": 400, "message": "Invalid JSON payload received. Unknown name \"google\": Cannot find field.",
        "status": "INVALID_ARGUMENT", "details": [{
            "@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{
                "description": "Invalid JSON payload received. Unknown name \"google\": Cannot find field."}]}]}}),
    (G.UNKNOWN_NESTED, gen("gemini-test", thinkingConfig={"thinking_effort": 3}), 400, {"error": {
        "code": 400, "message": "Invalid JSON payload received. Unknown name \"thinking_effort\" at "
        "'generation_config.thinking_config': Cannot find field.", "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{
                "field": "generation_config.thinking_config", "description": "Invalid JSON payload received. Unknown "
                "name \"thinking_effort\" at 'generation_config.thinking_config': Cannot find field."}]}]}}),
    (G.LEVEL_ENUM, gen("gemini-3-flash-preview", thinkingConfig={"thinkingLevel": "turbo"}), 400, gemini_error(
        "Invalid value at 'generation_config.thinking_config.thinking_level' "
        "(type.googleapis.com/google.ai.generativelanguage.v1beta.ThinkingConfig.ThinkingLevel), \"turbo\"")),
    (G.BOTH, gen("gemini-3-flash-preview", thinkingConfig={"thinkingLevel": "low", "thinkingBudget": 1024}), 400,
     gemini_error("You can only set only one of thinking budget and thinking level.")),
    (G.NO_THINKING_CONFIG, gen("gemini-2.0-flash", thinkingConfig={"thinkingBudget": 1024}), 400,
     gemini_error("thinking_config is not supported.")),
    (G.LEVEL_25, gen("gemini-2.5-flash", thinkingConfig={"thinkingLevel": "low"}), 400,
     gemini_error("Thinking level is not supported for this model.")),
    (G.LEVEL_MINIMAL, gen("gemini-3.1-pro-preview", thinkingConfig={"thinkingLevel": "minimal"}), 400,
     gemini_error("Thinking level MINIMAL is not supported for this model. Please retry with other thinking level.")),
    (G.LEVEL_OTHER, gen("gemini-3-pro-preview", thinkingConfig={"thinkingLevel": "MEDIUM"}), 400,
     gemini_error("Thinking level MEDIUM is not supported for this model. Please retry with other thinking level.")),
    (G.BUDGET_ZERO, gen("gemini-2.5-pro", thinkingConfig={"thinkingBudget": 0}), 400,
     gemini_error("Budget 0 is invalid. This model only works in thinking mode.")),
    (G.BUDGET_ZERO, gen("gemini-3-pro-preview", thinkingConfig={"thinkingBudget": 0}), 400,
     gemini_error("Budget 0 is invalid. This model only works in thinking mode.")),
    (G.BUDGET_RANGE, gen("gemini-2.5-pro", thinkingConfig={"thinkingBudget": 52428}), 400,
     gemini_error("The thinking budget (52428) is invalid.")),
    (G.BUDGET_RANGE, gen("gemini-2.5-pro", thinkingConfig={"thinkingBudget": 100}), 400,
     gemini_error("The thinking budget (100) is invalid.")),
    (G.BUDGET_RANGE, gen("gemini-2.5-flash-lite", thinkingConfig={"thinkingBudget": 256}), 400,
     gemini_error("The thinking budget (256) is invalid.")),
    (G.BUDGET_RANGE, gen("gemini-2.5-flash", thinkingConfig={"thinkingBudget": 24577}), 400,
     gemini_error("The thinking budget (24577) is invalid.")),
    (G.BUDGET_RANGE, gen("gemini-2.5-flash", thinkingConfig={"thinkingBudget": -2}), 400,
     gemini_error("The thinking budget (-2) is invalid.")),
    (G.CANDIDATES, gen("gemini-3-flash-preview", candidateCount=2), 400,
     gemini_error("Multiple candidates is not enabled for this model")),
]

#: Rules that need several requests (create, then cancel or continue): tests/test_sim_responses.py tests them.
FLOWS = {O.NOT_BACKGROUND, O.NOT_FOUND, O.NO_PREVIOUS}


def test_every_rule_has_a_case():
    covered = {case[0] for case in CASES} | FLOWS
    assert [r for r in RULES if r not in covered] == []


@pytest.mark.parametrize("rule,request_,status,expected", CASES,
                         ids=[f"{i}-{c[0].api}-{c[1][1].get('model', c[1][0])}" for i, c in enumerate(CASES)])
async def test_rule(rule, request_, status, expected):
    path, body = request_
    async with client() as c:
        r = await c.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    got = r.json()
    if "request_id" in got:  # Anthropic's envelope carries the request's id, as its header does
        assert got.pop("request_id") == r.headers["request-id"]
    assert got == expected


async def test_the_same_body_streamed_is_refused_as_plain_json():
    """Validation comes before the stream starts: a refused stream is a JSON 400, on every wire."""
    async with client() as c:
        r = await c.post(CHAT, json={**chat("gpt-5", temperature=0.7)[1], "stream": True})
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/json")
        r = await c.post(MSGS, json={**msgs("claude-opus-4-7", temperature=0.2)[1], "stream": True})
        assert r.status_code == 400 and r.json()["error"]["message"] == "`temperature` is deprecated for this model."
        r = await c.post(gem("gemini-2.5-pro").replace("generate", "streamGenerate") + "?alt=sse",
                         json=gen("gemini-2.5-pro", thinkingConfig={"thinkingBudget": 0})[1])
        assert r.status_code == 400 and r.json() == gemini_error("Budget 0 is invalid. This model only works in "
                                                                 "thinking mode.")


# --- what is accepted -------------------------------------------------------------------------------------


LENIENT = [
    chat("heavy-simulated", temperature=0.7, top_p=0.5, stop=["x"], max_tokens=300, reasoning_effort="turbo",
         presence_penalty=1, logit_bias={}, frobnicate=True, parallel_tool_calls=False),
    chat("local", temperature=0.2, reasoning_effort="high"),
    chat("my-finetune@accuracy=1", temperature=0.2, reasoning_effort="none"),
    chat("grok-unknown-9", reasoning_effort="low", stop="x"),
    msgs("claude-test", thinking={"type": "enabled", "budget_tokens": 10}, temperature=0.3, top_k=3, top_p=0.1),
    msgs("heavy-simulated", 10, thinking={"type": "adaptive"}, temperature=0.5, tool_choice={"type": "any"}),
    gen("gemini-test", thinkingConfig={"thinkingBudget": 0, "thinkingLevel": "low"}, candidateCount=3),
    gen("heavy-simulated", thinkingConfig={"thinkingBudget": 99999}),
    resp("heavy-simulated", temperature=0.5, top_p=0.5, reasoning={"effort": "turbo", "summary": "auto"}),
]


@pytest.mark.parametrize("request_", LENIENT, ids=[f"{b[1].get('model', b[0])}" for b in LENIENT])
async def test_names_of_no_family_stay_lenient(request_):
    async with client() as c:
        r = await post(c, request_)
    assert r.status_code == 200, r.text


ACCEPTED = [
    chat("gpt-5", temperature=1, max_completion_tokens=500),  # the default temperature is accepted
    chat("gpt-5.1", temperature=0.7, top_p=0.9, presence_penalty=0.1),  # gpt-5.1 does not reason by default
    chat("gpt-5.1", reasoning_effort="none", temperature=0.7, logprobs=True, top_logprobs=2, frequency_penalty=0.2),
    chat("gpt-5.6-luna", reasoning_effort="none", temperature=0.3,
         tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    chat("gpt-5.4-nano", reasoning_effort="xhigh"),
    chat("gpt-4o", temperature=0.7, top_p=0.9, stop=["x"], max_tokens=300, logprobs=True, parallel_tool_calls=True),
    chat("gpt-4.1-mini", n=4, seed=3, presence_penalty=0.3),
    chat("o1", stop=["x"], reasoning_effort="high"),
    chat("o3-mini", stop="x"),
    chat("deepseek-reasoner", temperature=0.3, top_p=0.2, presence_penalty=1.0),  # silently ignored, as documented
    chat("deepseek-chat", logprobs=True, temperature=0.3),
    chat("grok-3-mini", reasoning_effort="high"),
    chat("grok-3", presence_penalty=0.5, stop=["x"]),
    chat("grok-4-fast-non-reasoning", presence_penalty=0.5, stop=["x"]),
    chat("grok-4.20-0309-non-reasoning", stop=["x"]),
    chat("grok-4.3", reasoning_effort="none"),
    msgs("claude-sonnet-4-20250514", temperature=0.5, top_p=0.9),  # Claude 4 took both
    msgs("claude-sonnet-4-5", thinking=thinking(2048), top_p=0.95),
    msgs("claude-sonnet-4", thinking=thinking(2048), top_p=0.99, temperature=1),
    msgs("claude-opus-4-6", thinking={"type": "adaptive"}, output_config={"effort": "max"}),
    msgs("claude-opus-4-7", 128000, thinking={"type": "adaptive", "display": "omitted"},
         output_config={"effort": "xhigh"}, temperature=1),
    msgs("claude-opus-4-5", output_config={"effort": "low"}, tools=[{"name": "f", "input_schema": {}}],
         tool_choice={"type": "any"}),
    gen("gemini-2.5-pro", thinkingConfig={"thinkingBudget": -1, "includeThoughts": True}),
    gen("gemini-2.5-pro-preview-06-05", thinkingConfig={"thinkingBudget": 128}),
    gen("gemini-2.5-flash", thinkingConfig={"thinkingBudget": 0}, candidateCount=2),
    gen("gemini-2.5-flash-lite", thinkingConfig={"thinkingBudget": 512}),
    gen("gemini-3-pro-preview", thinkingConfig={"thinkingLevel": "low"}),
    gen("gemini-3-flash-preview", thinkingConfig={"thinkingLevel": "MINIMAL"}, candidateCount=1),
    gen("gemini-2.0-flash", temperature=0.3),
    resp("gpt-5.1", temperature=0.4, top_p=0.9),
    resp("gpt-5-pro", reasoning={"effort": "high"}),
    resp("gpt-4o", reasoning={"summary": "auto"}, temperature=0.2),  # a summary alone is accepted
    resp("o3-pro", reasoning={"effort": "low"}),
]


@pytest.mark.parametrize("request_", ACCEPTED, ids=[f"{i}-{b[1].get('model', b[0])}" for i, b in enumerate(ACCEPTED)])
async def test_what_each_model_accepts(request_):
    async with client() as c:
        r = await c.post(request_[0], json=request_[1])
    assert r.status_code == 200, r.text


async def test_validation_speaks_openais_words_for_every_name():
    async with client() as c:
        r = await c.post(CHAT, json=chat("heavy-simulated", n=130)[1])
        assert r.json() == openai_error("Invalid 'n': integer above maximum value. Expected a value <= 128, but got "
                                        "130 instead.", "n", "integer_above_max_value")
        r = await c.post(CHAT, json=chat("heavy-simulated", n=0)[1])
        assert r.json() == openai_error("Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 "
                                        "instead.", "n", "integer_below_min_value")
        r = await c.post(CHAT, json=chat("heavy-simulated", n="2")[1])
        assert r.json() == openai_error("Invalid type for 'n': expected an integer, but got a string instead.", "n",
                                        "invalid_type")
        r = await c.post(RESP, json=resp("heavy-simulated", temperature=-1)[1])
        assert r.json() == openai_error("Invalid 'temperature': decimal below minimum value. Expected a value >= 0, "
                                        "but got -1 instead.", "temperature", "decimal_below_min_value")
        r = await c.post(CHAT, json={"model": "gpt-5", "messages": [{"role": "wizard", "content": "x"}]})
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].role"


# --- how reasoning models answer ----------------------------------------------------------------------------


def _usage_parts(usage: dict) -> tuple[int, int]:
    return usage["completion_tokens"], usage["completion_tokens_details"]["reasoning_tokens"]


async def test_openai_reasoning_models_count_hidden_reasoning_tokens():
    async with client() as c:
        thinking_ = (await c.post(CHAT, json=chat("gpt-5")[1])).json()
        plain = (await c.post(CHAT, json=chat("gpt-4.1")[1])).json()
        off = (await c.post(CHAT, json=chat("gpt-5.1")[1])).json()  # effort none by default
        high = (await c.post(CHAT, json=chat("o3", reasoning_effort="high")[1])).json()
    completion, reasoning = _usage_parts(thinking_["usage"])
    visible = len(thinking_["choices"][0]["message"]["content"].split())
    assert reasoning > 0 and completion == visible + reasoning
    assert "reasoning_content" not in thinking_["choices"][0]["message"]  # OpenAI never shows it on chat
    assert _usage_parts(plain["usage"])[1] == 0 and _usage_parts(off["usage"])[1] == 0
    assert _usage_parts(high["usage"])[1] > reasoning  # a higher effort thinks longer


async def test_reasoning_counts_against_the_token_limit():
    async with client() as c:
        r = (await c.post(CHAT, json=chat("gpt-5-mini", max_completion_tokens=5)[1])).json()
        assert r["choices"][0]["finish_reason"] == "length" and r["choices"][0]["message"]["content"] == ""
        assert _usage_parts(r["usage"]) == (5, 5)
        r = (await c.post(CHAT, json=chat("gpt-5-mini", max_completion_tokens=40)[1])).json()
        completion, reasoning = _usage_parts(r["usage"])
        assert completion == 40 and 0 < reasoning < 40 and r["choices"][0]["finish_reason"] == "length"


async def test_deepseek_and_grok_3_mini_show_their_reasoning():
    async with client() as c:
        ds = (await c.post(CHAT, json=chat("deepseek-reasoner")[1])).json()["choices"][0]["message"]
        mini = (await c.post(CHAT, json=chat("grok-3-mini", reasoning_effort="high")[1])).json()
        grok4 = (await c.post(CHAT, json=chat("grok-4")[1])).json()
        streamed = await c.post(CHAT, json=chat("deepseek-reasoner", stream=True)[1])
    assert "Simulated reasoning" in ds["reasoning_content"] and "Simulated" not in ds["content"]
    assert not any(ch.isdigit() for ch in ds["reasoning_content"])  # the answer is only ever in the content
    assert "reasoning_content" in mini["choices"][0]["message"] and _usage_parts(mini["usage"])[1] > 0
    assert "reasoning_content" not in grok4["choices"][0]["message"] and _usage_parts(grok4["usage"])[1] > 0
    chunks = [json.loads(line[6:]) for line in streamed.text.split("\n\n") if line.startswith("data: {")]
    deltas = [ch["choices"][0]["delta"] for ch in chunks if ch["choices"]]
    first_reasoning = next(i for i, d in enumerate(deltas) if d.get("reasoning_content"))
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert first_reasoning < first_content
    assert "".join(d.get("reasoning_content", "") for d in deltas) == ds["reasoning_content"]


async def test_claude_thinking_blocks_only_when_thinking():
    async with client() as c:
        on = (await c.post(MSGS, json=msgs("claude-sonnet-4-5", thinking=thinking())[1])).json()
        off = (await c.post(MSGS, json=msgs("claude-sonnet-4-5")[1])).json()
        omitted = (await c.post(MSGS, json=msgs("claude-opus-4-7", thinking={"type": "adaptive",
                                                                              "display": "omitted"})[1])).json()
        streamed = await c.post(MSGS, json=msgs("claude-sonnet-4-5", thinking=thinking(), stream=True)[1])
    assert [b["type"] for b in on["content"]] == ["thinking", "text"] and on["content"][0]["signature"]
    assert "Simulated reasoning" in on["content"][0]["thinking"]
    assert [b["type"] for b in off["content"]] == ["text"]
    assert omitted["content"][0]["thinking"] == "" and omitted["content"][0]["signature"]
    # thinking is counted inside output_tokens (a word is one of the simulator's tokens)
    words = len(on["content"][0]["thinking"].split()) + len(on["content"][1]["text"].split())
    assert on["usage"]["output_tokens"] == words
    events = [(b.split("\n")[0][7:], json.loads(b.split("\n")[1][6:])) for b in streamed.text.strip().split("\n\n")]
    kinds = [(name, data.get("index"), (data.get("delta") or data.get("content_block") or {}).get("type"))
             for name, data in events]
    assert kinds[:5] == [("message_start", None, None), ("content_block_start", 0, "thinking"),
                         ("content_block_delta", 0, "thinking_delta"), ("content_block_delta", 0, "signature_delta"),
                         ("content_block_stop", 0, None)]
    assert ("content_block_start", 1, "text") in kinds and ("content_block_delta", 1, "text_delta") in kinds


async def test_gemini_thoughts_are_counted_and_shown_only_when_asked():
    async with client() as c:
        pro = (await post(c, gen("gemini-2.5-pro"))).json()
        shown = (await post(c, gen("gemini-2.5-pro", thinkingConfig={"includeThoughts": True}))).json()
        flash_off = (await post(c, gen("gemini-2.5-flash", thinkingConfig={"thinkingBudget": 0}))).json()
        lite = (await post(c, gen("gemini-2.5-flash-lite"))).json()
        lite_on = (await post(c, gen("gemini-2.5-flash-lite", thinkingConfig={"thinkingBudget": 512}))).json()
        three = (await post(c, gen("gemini-3-flash-preview", thinkingConfig={"thinkingLevel": "high"}))).json()
    usage = pro["usageMetadata"]
    assert usage["thoughtsTokenCount"] > 0 and all("thought" not in p for p in pro["candidates"][0]["content"]["parts"])
    assert usage["candidatesTokenCount"] == len(pro["candidates"][0]["content"]["parts"][0]["text"].split())
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + \
        usage["thoughtsTokenCount"]
    parts = shown["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and "Simulated reasoning" in parts[0]["text"] and "thought" not in parts[1]
    assert "thoughtsTokenCount" not in flash_off["usageMetadata"] and "thoughtsTokenCount" not in lite["usageMetadata"]
    assert lite_on["usageMetadata"]["thoughtsTokenCount"] > 0 and three["usageMetadata"]["thoughtsTokenCount"] > 0


async def test_answers_differ_without_a_temperature():
    """N hypotheses sampled at the API's default temperature (none sent) must not all be the same answer."""
    app = SimulatedLLM(seed=11, accuracy=0.5)
    async with client(app) as c:
        texts = {(await c.post(CHAT, json=chat("gpt-5")[1])).json()["choices"][0]["message"]["content"]
                 for _ in range(8)}
        seeded = {(await c.post(CHAT, json=chat("o4-mini", seed=s)[1])).json()["choices"][0]["message"]["content"]
                  for s in range(8)}
        claude = {(await c.post(MSGS, json=msgs("claude-opus-4-7")[1])).json()["content"][0]["text"] for _ in range(6)}
        responses = {(await c.post(RESP, json=resp("gpt-5-pro")[1])).json()["output"][1]["content"][0]["text"]
                     for _ in range(6)}
    assert len(texts) > 1 and len(seeded) > 1 and len(claude) > 1 and len(responses) > 1
    assert len({t.rsplit("The answer is", 1)[1] for t in texts}) > 1  # the final answers themselves vary


# --- Azure's routes and where keys went ---------------------------------------------------------------------


async def test_azure_v1_routes_apply_the_rules_by_deployment_name():
    app = SimulatedLLM(seed=2)
    async with client(app) as c:
        ok = await c.post("/openai/v1/chat/completions?api-version=preview", json=chat("gpt-4.1")[1],
                          headers={"api-key": "azure-secret-1"})
        refused = await c.post("/openai/v1/chat/completions", json=chat("gpt-5", temperature=0.3)[1],
                               headers={"authorization": "Bearer azure-secret-2"})
        answered = await c.post("/openai/v1/responses", json=resp("o4-mini")[1], headers={"api-key": "azure-secret-3"})
        models = await c.get("/openai/v1/models", headers={"api-key": "azure-secret-4"})
        missing = await c.post("/openai/deployments/gpt-5/chat/completions", json=chat("gpt-5")[1])
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_value"
    assert answered.status_code == 200 and answered.json()["output"][0]["type"] == "reasoning"
    assert models.status_code == 200
    assert missing.status_code == 404 and missing.json() == {"error": {"code": "404", "message": "Resource not found"}}
    assert app.stats.azure_requests == 5 and app.stats.by_wire["responses"] == 1
    assert app.stats.auth_headers == {"api-key": 3, "authorization": 1}


async def test_stats_record_which_credential_header_each_request_carried():
    app = SimulatedLLM()
    async with client(app) as c:
        await c.post(CHAT, json=chat("gpt-4.1")[1], headers={"authorization": "Bearer sk-secret-value"})
        await c.post(MSGS, json=msgs("claude-sonnet-4-5")[1], headers={"x-api-key": "sk-ant-secret-value"})
        await post(c, gen("gemini-2.5-flash"), headers={"x-goog-api-key": "g-secret-value"})
        await c.post(CHAT, json=chat("heavy-simulated")[1])
    assert app.stats.auth_headers == {"authorization": 1, "x-api-key": 1, "x-goog-api-key": 1}
    assert "secret" not in repr(app.stats)


def test_docs_table_is_current():
    """docs/simulator.md carries the table the rules render (regenerate it with heavy.sim.rules.rules_table())."""
    assert rules_table() in (REPO / "docs" / "simulator.md").read_text(encoding="utf-8")


def test_the_rules_know_nothing_of_heavys_profiles():
    """The simulator judges heavy's model profiles, so it shares none of their code: no module of heavy/sim imports
    the profiles or the model presets, and only the provider bridge (client.py) imports a provider. The rules
    import nothing of heavy outside the simulator."""
    for path in sorted((REPO / "heavy" / "sim").rglob("*.py")):
        package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
        modules = imported_modules(path, package)
        assert not any(m.startswith(("heavy.profiles", "heavy.models")) for m in modules), path
        if path.name != "client.py":
            assert not any(m.startswith("heavy.providers") for m in modules), path
        if "rules" in path.parts:
            assert all(m.startswith("heavy.sim") or not m.startswith("heavy") for m in modules), (path, modules)
