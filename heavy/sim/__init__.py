"""A simulated LLM for tests, demos and benchmarks of heavy's strategies, speaking the OpenAI,
Anthropic and Gemini wire formats (``/v1/chat/completions``, ``/v1/messages``,
``/v1beta/models/MODEL:generateContent``).

It is not a model: it knows the gold answers of arithmetic questions and of a dataset you give it,
answers right with a configurable probability, follows heavy's judge/synthesize prompts, and can be
slow, heavy-tailed, rate-limited or flaky on demand. Use it in-process (:func:`provider`, the ``sim``
model; or any httpx client over :class:`heavy.http.StreamingASGITransport`) or over HTTP
(``heavy sim --port 8399``). See :mod:`heavy.sim.server`.
"""

from .client import DATASET_ENV, provider
from .config import SimConfig, load_dataset
from .server import SimStats, SimulatedLLM, serve

__all__ = ["SimulatedLLM", "SimConfig", "SimStats", "load_dataset", "serve", "provider", "DATASET_ENV"]
