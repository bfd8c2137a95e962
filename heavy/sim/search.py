"""A simulated web-search server for offline tests of the ``web_search`` tool: no network, no key.

:class:`SimulatedSearch` is a raw ASGI app answering in the two shapes heavy's adapters speak:

* SearXNG: ``GET /search?q=...&format=json`` → ``{"query", "number_of_results", "results": [{"url",
  "title", "content", "engine", "score"}], "answers", "suggestions", "infoboxes", "unresponsive_engines"}``;
  another ``format`` is refused with 403, as an instance without the JSON format enabled does.
* Brave Search API: ``GET /res/v1/web/search?q=...&count=N`` with ``X-Subscription-Token`` →
  ``{"type": "search", "query": {"original", ...}, "web": {"type": "search", "results": [{"title", "url",
  "description"}]}}``; a missing or wrong token gets 401 with Brave's ``ErrorResponse`` shape.

Results come from ``corpus`` (a query substring → results) or are made up from the query. Every request
is recorded in :attr:`SimulatedSearch.requests` so tests can check what was sent.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from .asgi import send_json

__all__ = ["SimulatedSearch"]


class SimulatedSearch:
    def __init__(self, corpus: dict[str, list[dict[str, str]]] | None = None, *, brave_key: str = "test-brave-key",
                 results: int = 3) -> None:
        self.corpus = {k.lower(): v for k, v in (corpus or {}).items()}
        self.brave_key = brave_key
        self.results = results
        self.requests: list[dict[str, Any]] = []

    def hits(self, query: str) -> list[dict[str, str]]:
        q = query.lower()
        for key, rows in self.corpus.items():
            if key in q:
                return rows
        slug = re.sub(r"[^a-z0-9]+", "-", q).strip("-")[:40] or "query"
        return [{"title": f"{query.strip()} (result {i})", "url": f"https://example.org/{slug}/{i}",
                 "snippet": f"A page about {query.strip()}."} for i in range(1, self.results + 1)]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        params = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.requests.append({"path": scope["path"], "params": params, "headers": headers})
        rid = f"search-{len(self.requests)}"
        if scope["method"] != "GET":
            await send_json(send, 405, {"error": "method not allowed"}, rid)
        elif scope["path"] == "/search":
            await self._searxng(send, params, rid)
        elif scope["path"] == "/res/v1/web/search":
            await self._brave(send, params, headers, rid)
        else:
            await send_json(send, 404, {"error": "not found"}, rid)

    async def _searxng(self, send: Any, params: dict[str, str], rid: str) -> None:
        if params.get("format") != "json":
            await send_json(send, 403, {"error": "format not allowed"}, rid)
            return
        q = params.get("q", "")
        rows = [{"url": h["url"], "title": h["title"], "content": h["snippet"], "engine": "simulated",
                 "score": 1.0 / i} for i, h in enumerate(self.hits(q), 1)]
        await send_json(send, 200, {"query": q, "number_of_results": len(rows), "results": rows, "answers": [],
                                    "corrections": [], "infoboxes": [], "suggestions": [],
                                    "unresponsive_engines": []}, rid)

    async def _brave(self, send: Any, params: dict[str, str], headers: dict[str, str], rid: str) -> None:
        if headers.get("x-subscription-token") != self.brave_key:
            await send_json(send, 401, {"type": "ErrorResponse", "error": {
                "id": rid, "status": 401, "code": "SUBSCRIPTION_TOKEN_INVALID",
                "detail": "The provided subscription token is invalid."}}, rid)
            return
        q = params.get("q", "")
        count = max(1, min(20, int(params.get("count", "20") or 20)))
        rows = [{"type": "search_result", "title": h["title"], "url": h["url"], "description": h["snippet"]}
                for h in self.hits(q)[:count]]
        await send_json(send, 200, {"type": "search", "query": {"original": q, "more_results_available": False},
                                    "web": {"type": "search", "results": rows}}, rid)
