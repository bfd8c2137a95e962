"""A simulated LLM for tests, demos and benchmarks of heavy's strategies, speaking OpenAI's Chat Completions
and Responses APIs (``/v1/chat/completions``, ``/v1/responses``; also under Azure's ``/openai/v1``), Anthropic's
Messages API (``/v1/messages``) and Gemini's (``/v1beta/models/MODEL:generateContent``).

It is not a model: it knows the gold answers of arithmetic questions and of a dataset you give it,
answers right with a configurable probability, follows heavy's judge/synthesize prompts, and can be
slow, heavy-tailed, rate-limited or flaky on demand. Use it in-process (:func:`provider`, the ``sim``
model; or any httpx client over :class:`heavy.sim.transport.StreamingASGITransport`) or over HTTP
(``heavy sim --port 8399``). See :mod:`heavy.sim.server`.

It is at least as strict as the APIs it imitates: a request to a real model name (``gpt-5``, ``o3``,
``grok-4``, ``deepseek-reasoner``, ``claude-sonnet-4-5``, ``gemini-2.5-pro``, …) is refused as that API documents,
with its status and error body (:mod:`heavy.sim.rules`; the table in ``docs/simulator.md``), and a reasoning model
reports its reasoning where its API does. Names of no known family (``heavy-simulated``) are served leniently.
"""

from .client import DATASET_ENV, provider
from .config import SimConfig, load_dataset
from .server import SimStats, SimulatedLLM, serve

__all__ = ["SimulatedLLM", "SimConfig", "SimStats", "load_dataset", "serve", "provider", "DATASET_ENV"]
