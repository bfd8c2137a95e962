"""The simulator as a provider: how the ``sim`` preset (``Heavy()``'s default model) reaches it.

The provider is an ordinary :class:`~heavy.providers.openai.OpenAIProvider` whose transport serves
requests from an in-process :class:`~heavy.sim.server.SimulatedLLM`, so a run on ``sim`` goes through
exactly the client code a run on a real OpenAI-compatible server does. The providers and the session know
nothing of the simulator: :class:`Simulated` registers the ``sim`` wire in the ``heavy.providers`` entry-point
group, as a plugin's wire would.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .config import SimConfig, load_dataset
from .server import SimulatedLLM

from ..providers.base import Provider

if TYPE_CHECKING:
    from ..providers.openai import OpenAIProvider

__all__ = ["provider", "Simulated", "DATASET_ENV"]

#: A JSONL file of ``{question, answer}`` records whose gold answers the ``sim`` preset knows.
DATASET_ENV = "HEAVY_SIM_DATASET"

_BASE_URL = "http://heavy-sim.invalid/v1"  # never resolved: the transport answers every request in-process


def provider(config: SimConfig | None = None, *, base_url: str = _BASE_URL, name: str = "sim",
             profiles: Any = None) -> OpenAIProvider:
    """A provider answered by a new in-process simulator with *config* (default: the built-in settings,
    knowing the gold answers of the dataset in ``HEAVY_SIM_DATASET`` if that is set).

    Raises :class:`~heavy.errors.ConfigError` when that dataset cannot be read.
    """
    # The client stack (httpx) is imported here, not at the top: serving the simulator needs none of it.
    from .transport import StreamingASGITransport
    from ..providers.openai import OpenAIProvider

    if config is None:
        path = os.environ.get(DATASET_ENV)
        config = SimConfig(dataset=load_dataset(path) if path else {})
    # It plays OpenAI: several choices per request (the wire's own ceiling) and prompt_cache_key.
    return OpenAIProvider(base_url, name=name, transport=StreamingASGITransport(SimulatedLLM(config)),
                          max_choices=128, cache_key_field="prompt_cache_key", profiles=profiles)


class Simulated(Provider):
    """The ``sim`` wire (entry point ``heavy.providers: sim``): :meth:`from_spec` builds :func:`provider`."""

    async def complete(self, request: Any) -> Any:  # never instantiated: from_spec returns the real provider
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: Any, profiles: Any, *, transport: Any = None, background: bool = False) -> Provider:
        return provider(base_url=spec.base_url, name=spec.preset.name, profiles=profiles)
