"""Model profiles: what each model accepts (heavy/profiles.py), and how a request is fitted to it."""

from __future__ import annotations

import pytest

from heavy.profiles import EFFORTS, Profiles, nearest_effort, profile
from heavy.providers.base import CompletionRequest
from heavy.types import Message, SamplingParams


def shaped(preset: str, model: str, *, n: int = 1, **params):
    request = CompletionRequest(model=model, messages=[Message(role="user", content="2+2?")],
                                params=SamplingParams(**params), n=n)
    out, drops = profile(preset, model).shape(request)
    return out, {d.field: d for d in drops}


@pytest.mark.parametrize("model", ["gpt-5-mini", "gpt-5", "gpt-5-nano-2025-08-07", "o3", "o4-mini", "o1"])
def test_openai_reasoning_models_sample_at_temperature_one_and_refuse_sampling_fields(model):
    out, drops = shaped("openai", model, temperature=0.7, top_p=0.9, logprobs=True, top_logprobs=3, max_tokens=500)
    p = out.params
    assert p.temperature is None and p.top_p is None and not p.logprobs and p.top_logprobs is None
    assert "only temperature 1 is accepted" in drops["temperature"].why and drops["temperature"].sent is None
    assert set(drops) == {"temperature", "top_p", "logprobs"}
    assert p.max_tokens == 500 and profile("openai", model).max_tokens_field == "max_completion_tokens"
    out, drops = shaped("openai", model, temperature=1.0)
    assert out.params.temperature == 1.0 and not drops, "the default temperature itself is accepted"


def test_stop_is_refused_where_openai_documents_it():
    assert "stop" in shaped("openai", "o3", stop="\n")[1] and "stop" in shaped("openai", "gpt-5", stop="\n")[1]
    assert "stop" not in shaped("openai", "gpt-4.1", stop="\n")[1]


def test_efforts_are_fitted_to_what_each_model_takes():
    assert shaped("openai", "gpt-5-mini", reasoning_effort="minimal")[0].params.reasoning_effort == "minimal"
    out, drops = shaped("openai", "o3", reasoning_effort="minimal")
    assert out.params.reasoning_effort == "low" and drops["reasoning_effort"].sent == "low"
    out, drops = shaped("openai", "gpt-5-pro", reasoning_effort="medium")
    assert out.params.reasoning_effort == "high" and "accepted by gpt-5-pro (OpenAI Responses API only): high" in drops["reasoning_effort"].why
    out, drops = shaped("openai", "gpt-4.1", reasoning_effort="high")
    assert out.params.reasoning_effort is None and "no reasoning control" in drops["reasoning_effort"].why
    out, drops = shaped("openai", "gpt-5-mini", thinking_budget=5000)  # a budget becomes the effort covering it
    assert out.params.reasoning_effort == "medium" and out.params.thinking_budget is None and not drops
    assert nearest_effort("xhigh", ("low", "high")) == "high" and nearest_effort("none", ("low", "high")) == "low"
    assert list(EFFORTS) == ["none", "minimal", "low", "medium", "high", "xhigh", "max"]


def test_gpt_5_1_and_later_take_sampling_fields_only_while_not_reasoning():
    out, drops = shaped("openai", "gpt-5.1", temperature=0.7)
    assert out.params.temperature == 0.7 and not drops
    out, drops = shaped("openai", "gpt-5.1", temperature=0.7, reasoning_effort="high")
    assert out.params.temperature is None and "while reasoning" in drops["temperature"].why
    out, _ = shaped("openai", "gpt-5.1", reasoning_effort="minimal")
    assert out.params.reasoning_effort == "low", "5.1 has none/low/medium/high, no minimal"


def test_responses_only_models_and_their_wire():
    for model in ("gpt-5-pro", "o3-pro", "o1-pro", "gpt-5-codex", "gpt-5.1-codex-max"):
        p = profile("openai", model)
        assert p.wire == "responses" and p.max_tokens_field == "max_output_tokens" and p.max_choices == 1
        assert {"temperature", "seed", "stop", "n"} <= p.refuses
    assert not profile("openai", "o1-pro").streams and profile("openai", "gpt-5-pro").streams
    assert profile("azure", "gpt-5-pro").wire == "responses"
    assert profile("openai-responses", "gpt-4.1").wire == "responses"
    # Another vendor's OpenAI-compatible server has no Responses API: the model stays on its wire.
    assert profile("openrouter", "openai/gpt-5-pro").wire == "openai"


def test_grok_4_takes_no_effort_and_no_stop():
    out, drops = shaped("xai", "grok-4", reasoning_effort="high", stop=["\n"], temperature=0.7)
    assert out.params.reasoning_effort is None and out.params.stop is None and out.params.temperature == 0.7
    assert "(it always reasons)" in drops["reasoning_effort"].why and "stop" in drops
    out, drops = shaped("xai", "grok-3-mini", reasoning_effort="medium")
    assert out.params.reasoning_effort == "high" and drops["reasoning_effort"].sent == "high"
    assert "reasoning_effort" not in shaped("xai", "grok-4.3", reasoning_effort="low")[1]


def test_claude_thinking_rules():
    out, drops = shaped("anthropic", "claude-sonnet-4-5", temperature=0.7, thinking_budget=2048)
    assert out.params.temperature is None and out.params.thinking_budget == 2048
    assert "while reasoning" in drops["temperature"].why
    out, drops = shaped("anthropic", "claude-sonnet-4-5", temperature=0.7, top_p=0.9)
    assert out.params.temperature == 0.7 and out.params.top_p is None and "together" in drops["top_p"].why
    out, _ = shaped("anthropic", "claude-sonnet-4", temperature=0.7, top_p=0.9)
    assert out.params.top_p == 0.9, "Claude 4 takes both"
    out, drops = shaped("anthropic", "claude-haiku-4-5", thinking_budget=500)
    assert out.params.thinking_budget == 1024 and drops["thinking_budget"].sent == 1024
    out, drops = shaped("anthropic", "claude-3-5-haiku-latest", reasoning_effort="high")
    assert out.params.reasoning_effort is None and "reasoning_effort" in drops
    p = profile("anthropic", "claude-opus-4-7")
    assert p.thinking.control == "adaptive" and {"temperature", "top_p"} <= p.refuses
    out, drops = shaped("anthropic", "claude-opus-4-7", thinking_budget=3000, temperature=0.5)
    assert out.params.reasoning_effort == "medium" and out.params.temperature is None
    out, drops = shaped("anthropic", "claude-sonnet-4-5", max_tokens=100_000)
    assert out.params.max_tokens == 64000 and drops["max_tokens"].sent == 64000


def test_gemini_thinking_budgets_and_levels():
    out, drops = shaped("gemini", "gemini-2.5-pro", thinking_budget=0)
    assert out.params.thinking_budget == 128 and "cannot be turned off" in drops["thinking_budget"].why
    out, drops = shaped("gemini", "gemini-2.5-pro", thinking_budget=50000)
    assert out.params.thinking_budget == 32768
    assert shaped("gemini", "gemini-2.5-flash", thinking_budget=0)[0].params.thinking_budget == 0
    assert shaped("gemini", "gemini-2.5-flash-lite", thinking_budget=100)[0].params.thinking_budget == 512
    out, drops = shaped("gemini", "gemini-3-pro-preview", reasoning_effort="medium")
    assert out.params.reasoning_effort == "high" and profile("gemini", "gemini-3-pro-preview").thinking.control == "level"
    assert shaped("gemini", "gemini-3-flash-preview", reasoning_effort="none")[0].params.reasoning_effort == "minimal"
    assert "reasoning_effort" in shaped("gemini", "gemini-2.0-flash", reasoning_effort="low")[1]


def test_deepseek_reasoner_ignores_sampling_and_refuses_logprobs():
    out, drops = shaped("deepseek", "deepseek-reasoner", temperature=0.7, logprobs=True)
    assert out.params.temperature is None and "ignored by deepseek-reasoner" in drops["temperature"].why
    assert not out.params.logprobs and "logprobs" in drops
    assert not shaped("deepseek", "deepseek-chat", temperature=0.7)[1]


def test_models_no_family_names_get_everything_sent():
    for preset, model in (("openai", "gpt-7-experimental"), ("vllm", "qwen"), ("local", "local"),
                          ("sim", "heavy-simulated"), ("together", "openai/gpt-oss-120b")):
        out, drops = shaped(preset, model, temperature=0.7, top_p=0.9, stop="x", seed=3, reasoning_effort="high")
        assert not drops and out.params.temperature == 0.7 and out.params.reasoning_effort == "high", (preset, model)


def test_the_tables_that_were_spread_out_live_in_the_profiles():
    own, elsewhere = Profiles("openai", "https://api.openai.com/v1"), Profiles("openai", "http://127.0.0.1:9/v1")
    assert (own("gpt-4.1").max_choices, own("gpt-4.1").auto_n, own("gpt-4.1").cache_key_field) == \
        (128, True, "prompt_cache_key")
    assert (elsewhere("gpt-4.1").max_choices, elsewhere("gpt-4.1").cache_key_field) == (1, None)
    assert profile("anthropic", "claude-sonnet-4-5").batch_discount == 0.5 and profile("gemini", "x").batch_discount is None
    assert profile("anthropic", "claude-haiku-4-5").cache.min_tokens == 4096
    assert profile("local", "local").stagger_free and not profile("local", "local").paid
    assert profile("llamacpp", "any").max_choices == 0 and profile("vllm", "m").auto_n
    assert "n" in profile("groq", "llama-3.3").refuses and "logprobs" in profile("groq", "llama-3.3").refuses
    assert profile("mine", "x").paid, "a preset heavy does not know is not assumed free"


def test_the_docs_table_is_the_code():
    from pathlib import Path

    from heavy.profiles import profiles_table

    doc = (Path(__file__).resolve().parents[1] / "docs" / "profiles.md").read_text()
    assert profiles_table() in doc, "regenerate: python -c 'from heavy.profiles import profiles_table; " \
                                    "print(profiles_table())'"
