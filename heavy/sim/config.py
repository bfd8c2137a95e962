"""Configuration of the simulated LLM: :class:`SimConfig`, datasets and per-request overrides.

One simulator process can play several "models" at once: the request's ``model`` field may carry
overrides after an ``@``, e.g. ``simulated@accuracy=0.6,latency=0.2``. That lets a single run mix a
strong and a weak sampler, or a slow judge, without starting several servers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError

__all__ = ["SimConfig", "load_dataset", "OverrideError", "parse_model_overrides", "apply_overrides", "OVERRIDABLE"]


class SimConfig(BaseModel):
    """How the simulated model behaves. Every field can also be overridden per request through the
    model name (see :func:`parse_model_overrides`), except ``dataset``.

    Frozen, because the server derives caches (the dataset index, override configs) from it: build a
    new :class:`~heavy.sim.server.SimulatedLLM` to change the defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    accuracy: float = Field(0.7, ge=0.0, le=1.0, description="probability that a sample answers right")
    latency: float = Field(0.0, ge=0.0, description="seconds before the first token (median if latency_sigma > 0)")
    latency_sigma: float = Field(0.0, ge=0.0, description="lognormal sigma of the latency: heavy tails")
    tokens_per_second: float | None = Field(None, gt=0.0, description="generation speed; None = instant")
    prefill_tokens_per_second: float | None = Field(
        None, gt=0.0, description="prompt processing speed: the prompt tokens not read from the cache delay the "
        "first token by tokens / this; None = instant")
    prompt_cache: bool = Field(True, description="cache prompt prefixes as each API documents it (heavy.sim.cache)")
    fail_rate: float = Field(0.0, ge=0.0, le=1.0, description="probability that a request fails")
    fail_status: int = Field(500, ge=400, le=599, description="HTTP status of injected failures")
    fail_in_stream: bool = Field(False, description="streamed requests that fail do so inside a 200 stream, "
                                 "after the first piece (OpenAI error chunk, Anthropic `event: error`, Gemini error chunk)")
    gemini_block: str | None = Field(None, pattern=r"^(finish:)?[A-Z_]+$", description="Gemini wire only: "
                                     "'SAFETY' blocks the prompt (promptFeedback.blockReason), 'finish:SAFETY' "
                                     "stops the candidate with that finishReason")
    dataset: dict[str, str] = Field(default_factory=dict, description="question -> gold answer")
    judge_accuracy: float = Field(1.0, ge=0.0, le=1.0, description="probability a judge picks the gold answer")
    judge_mode: Literal["normal", "garbage", "verbose"] = Field(
        "normal", description="'garbage': judge gives no verdict; 'verbose': a long analysis comes first (so a "
                              "small max_tokens cuts the verdict off, as with small real models)")
    seed: int | None = Field(None, description="makes the whole server reproducible")
    model_name: str = Field("heavy-simulated", min_length=1, description="id listed by /v1/models")
    batch_seconds: float = Field(2.0, ge=0.0, description="seconds a batch job takes from creation to its end "
                                 "(10 % validating, 80 % in progress, 10 % finalizing)")
    batch_expire_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of a batch job's requests that run "
                                     "out of time (expired: never answered, never billed)")


#: Fields a request may override through its model name. The dataset is excluded: it can be large and
#: a model name is no place to ship one.
OVERRIDABLE = tuple(name for name in SimConfig.model_fields if name != "dataset")

# Spellings of "no value" accepted for the optional fields (`tokens_per_second=none` = instant).
_NONE_WORDS = {"none", "null", ""}
_OPTIONAL = {"tokens_per_second", "prefill_tokens_per_second", "seed", "gemini_block"}


class OverrideError(ConfigError):
    """A model-name override is malformed, unknown or out of range (the server answers 400)."""


def parse_model_overrides(model: str) -> tuple[str, dict[str, str]]:
    """Split ``"base@key=value,key=value"`` into ``("base", {key: value})``.

    Keys may use ``-`` for ``_`` (``latency-sigma``). Raises :class:`OverrideError` on an item without
    ``=`` or an unknown key, listing the keys that are allowed.
    """
    base, sep, rest = model.partition("@")
    if not sep:
        return model, {}
    overrides: dict[str, str] = {}
    for item in rest.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq:
            raise OverrideError(f"model override {item!r} is not of the form key=value")
        if key not in OVERRIDABLE:
            if key == "dataset":
                raise OverrideError("the dataset cannot be overridden per request; start the simulator with it")
            raise OverrideError(f"unknown model override {key!r}; allowed: {', '.join(OVERRIDABLE)}")
        overrides[key] = value.strip()
    return base, overrides


def apply_overrides(config: SimConfig, overrides: dict[str, str]) -> SimConfig:
    """``config`` with the string *overrides* applied and validated like the constructor's arguments."""
    if not overrides:
        return config
    data = config.model_dump(exclude={"dataset"})
    for key, value in overrides.items():
        data[key] = None if key in _OPTIONAL and value.lower() in _NONE_WORDS else value
    try:
        updated = SimConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise OverrideError(f"bad model override {where}={data.get(where)!r}: {err['msg']}") from None
    # model_copy skips validation, which is what we want for the (already validated, shared) dataset.
    return updated.model_copy(update={"dataset": config.dataset})


def load_dataset(path: str | Path) -> dict[str, str]:
    """Read a JSONL file of ``{"question": ..., "answer": ...}`` objects into ``{question: answer}``.

    A code task has ``solution`` (and ``tests``) instead of ``answer`` (see :mod:`heavy.sim.codetasks`).
    A GSM8K-style answer (a worked solution ending ``#### 42``) is reduced to what follows ``####``,
    so the raw GSM8K files work as well as pre-extracted ones. Numbers are accepted as answers.
    Raises :class:`~heavy.errors.ConfigError` naming the line of the first malformed record.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read dataset {path}: {exc.strerror or exc}") from None
    dataset: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if isinstance(record, dict) and "answer" not in record and isinstance(record.get("solution"), str):
            from .codetasks import code_gold  # a code task: the reference solution (and tests) is the gold

            record = {**record, "answer": code_gold(record["solution"], str(record.get("tests") or ""))}
        if not isinstance(record, dict) or "question" not in record or "answer" not in record:
            raise ConfigError(f"{path}:{number}: each line needs the fields 'question' and 'answer' "
                              "(or 'solution' for a code task)")
        question, answer = record["question"], record["answer"]
        if not isinstance(question, str) or not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
            raise ConfigError(f"{path}:{number}: 'question' must be text and 'answer' text or a number")
        answer = str(answer)
        if "####" in answer and not answer.startswith("heavy-code-task:"):
            answer = answer.rsplit("####", 1)[1]
        dataset[question] = answer.strip()
    return dataset
