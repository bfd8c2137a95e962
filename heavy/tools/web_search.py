"""The ``web_search`` tool: one interface, two adapters, configured by arguments or the environment.

* **SearXNG** (self-hosted metasearch): ``GET {base}/search?q=...&format=json`` → ``results[]`` with
  ``title``, ``url``, ``content``. The instance must allow the JSON format (``search.formats`` in its
  ``settings.yml`` includes ``json``; otherwise it answers 403). Base URL: ``HEAVY_SEARXNG_URL``.
* **Brave Search API** (hosted): ``GET https://api.search.brave.com/res/v1/web/search?q=...&count=N``
  with the key in the ``X-Subscription-Token`` header → ``web.results[]`` with ``title``, ``url``,
  ``description``. Key: ``BRAVE_SEARCH_API_KEY`` (another variable with ``api_key_env``); base URL
  override: ``HEAVY_BRAVE_BASE_URL``.

Which one: ``backend=`` (or ``HEAVY_WEB_SEARCH=searxng|brave``), else SearXNG when its URL is set, else
Brave when its key is set, else a :class:`~heavy.errors.ConfigError` naming both ways to configure it.
Search failures (HTTP errors, bad JSON) come back to the model as a failed tool result, never raised.
HTTP goes through :mod:`heavy.http` like every provider call (keys never appear in errors).
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, HeavyError
from ..http import HTTPClient, decode_json
from . import Tool, ToolResult

__all__ = ["WebSearchTool", "WebSearchArgs", "SearchHit", "SearchBackend", "SearXNG", "BraveSearch",
           "SEARXNG_URL_ENV", "BRAVE_KEY_ENV", "BRAVE_BASE_URL_ENV", "BACKEND_ENV", "BRAVE_DEFAULT_URL"]

SEARXNG_URL_ENV = "HEAVY_SEARXNG_URL"
BRAVE_KEY_ENV = "BRAVE_SEARCH_API_KEY"
BRAVE_BASE_URL_ENV = "HEAVY_BRAVE_BASE_URL"
BACKEND_ENV = "HEAVY_WEB_SEARCH"
BRAVE_DEFAULT_URL = "https://api.search.brave.com/res/v1"
NOT_CONFIGURED = (f"web_search is not configured: set {SEARXNG_URL_ENV}=http://HOST:PORT (a SearXNG instance "
                  f"with the JSON format enabled) or {BRAVE_KEY_ENV}=... (a Brave Search API key)")


class SearchHit(BaseModel):
    title: str
    url: str
    snippet: str = ""


class SearchBackend(ABC):
    name = "search"

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, transport: Any = None) -> None:
        self._http = HTTPClient(base_url, headers=headers, transport=transport, provider=self.name)

    @abstractmethod
    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        """Hits for *query*, best first (raises heavy's ProviderError on HTTP failures)."""

    async def aclose(self) -> None:
        await self._http.aclose()


class SearXNG(SearchBackend):
    name = "searxng"

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        resp = await self._http.get_json("search", {"q": query, "format": "json"})
        data = decode_json(resp.text, provider=self.name, model=None)
        rows = data.get("results") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise ValueError("the SearXNG answer has no 'results' list (is format=json enabled?)")
        return [SearchHit(title=str(r.get("title") or ""), url=str(r.get("url") or ""),
                          snippet=str(r.get("content") or "")) for r in rows if isinstance(r, dict)][:max_results]


class BraveSearch(SearchBackend):
    name = "brave"

    def __init__(self, base_url: str, api_key: str, **kwargs: Any) -> None:
        super().__init__(base_url, headers={"x-subscription-token": api_key}, **kwargs)

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        resp = await self._http.get_json("web/search", {"q": query, "count": max_results})
        data = decode_json(resp.text, provider=self.name, model=None)
        web = data.get("web") if isinstance(data, dict) else None
        rows = web.get("results") if isinstance(web, dict) else []
        return [SearchHit(title=str(r.get("title") or ""), url=str(r.get("url") or ""),
                          snippet=str(r.get("description") or "")) for r in rows or [] if isinstance(r, dict)
                ][:max_results]


class WebSearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=400, description="What to search the web for.")
    max_results: int = Field(5, ge=1, le=10, description="How many results to return (1-10).")


class WebSearchTool(Tool):
    name = "web_search"
    description = "Search the web. Returns the top results: title, URL and a snippet of each."
    Args = WebSearchArgs

    def __init__(self, backend: Literal["searxng", "brave"] | None = None, *, base_url: str | None = None,
                 api_key_env: str = BRAVE_KEY_ENV, transport: Any = None) -> None:
        chosen = backend or os.environ.get(BACKEND_ENV, "").strip().lower() or None
        if chosen is None:
            if base_url or os.environ.get(SEARXNG_URL_ENV):
                chosen = "searxng"
            elif os.environ.get(api_key_env):
                chosen = "brave"
            else:
                raise ConfigError(NOT_CONFIGURED)
        if chosen == "searxng":
            url = base_url or os.environ.get(SEARXNG_URL_ENV)
            if not url:
                raise ConfigError(f"web_search (searxng): no base URL; set {SEARXNG_URL_ENV}=http://HOST:PORT")
            self._make: Any = lambda: SearXNG(url, transport=transport)
        elif chosen == "brave":
            key = os.environ.get(api_key_env)
            if not key:
                raise ConfigError(f"web_search (brave): no API key; set {api_key_env}")
            url = base_url or os.environ.get(BRAVE_BASE_URL_ENV) or BRAVE_DEFAULT_URL
            self._make = lambda: BraveSearch(url, key, transport=transport)
        else:
            raise ConfigError(f"web_search: unknown backend {chosen!r}; choose searxng or brave")
        self.backend_name = chosen
        self._backends: dict[Any, SearchBackend] = {}  # one HTTP client per event loop, like providers

    def _backend(self) -> SearchBackend:
        loop = asyncio.get_running_loop()
        if loop not in self._backends:
            self._backends = {k: v for k, v in self._backends.items() if not k.is_closed()}
            self._backends[loop] = self._make()
        return self._backends[loop]

    async def call(self, args: WebSearchArgs) -> ToolResult:
        name = self.backend_name
        try:
            hits = await self._backend().search(args.query, args.max_results)
        except (HeavyError, ValueError) as exc:
            return ToolResult(content=f"search failed ({name}): {exc}", ok=False, data={"backend": name})
        if not hits:
            return ToolResult(content=f"no results for {args.query!r}", data={"backend": name, "hits": 0})
        lines = [f"{i}. {h.title}\n   {h.url}\n   {h.snippet}".rstrip() for i, h in enumerate(hits, 1)]
        return ToolResult(content="\n".join(lines), data={"backend": name, "hits": len(hits),
                                                          "urls": [h.url for h in hits]})

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        backend = self._backends.pop(loop, None)
        if backend is not None:
            await backend.aclose()
