"""Shared fixtures. Tests only ever fake the network edge: httpx.MockTransport or heavy's simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Shipped with the tests (tests/data/README.md: source and license), so no test depends on what lies beside the clone.
GSM8K = REPO / "tests" / "data" / "gsm8k-train-300.jsonl"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_lessons() -> None:
    """Each test starts with no refusals learned from endpoints (heavy.profiles keeps them for the process)."""
    from heavy.profiles import forget

    forget()


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real keys or endpoints."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "XAI_API_KEY", "OPENROUTER_API_KEY", "HEAVY_SIM_DATASET",
                "HEAVY_DEBUG"):
        monkeypatch.delenv(var, raising=False)


def gsm8k_rows() -> list[dict]:
    """The 300 GSM8K rows of tests/data (a missing file fails the test: the data ships with the repo)."""
    return [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]


@pytest.fixture
def gsm8k() -> list[dict]:
    return gsm8k_rows()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty $HEAVY_HOME for `heavy local` tests (no runtime, no models, no servers of the developer's)."""
    h = tmp_path / "heavy-home"
    monkeypatch.setenv("HEAVY_HOME", str(h))
    for var in ("HEAVY_LLAMA_SERVER", "HEAVY_LOCAL_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return h
