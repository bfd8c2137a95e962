"""`heavy serve` against web pages and DNS rebinding, and the operator's allowlist of models.

On a loopback bind without a key, only requests addressed to the bound loopback name and port (Host), from no
page or a loopback page (Origin), with a JSON body (Content-Type) are served: a page the operator visits must
not spend the operator's keys (a form post) nor read answers (after DNS rebinding). In-process tests reach the
app at http://127.0.0.1:8000 (the ASGI scope's server, as uvicorn sets it from the socket); the contract is
checked again against a real `heavy serve` process on 127.0.0.1 whose upstream is the simulated model.

A client names only models the operator allows: the configured ones, and `--allow-model PATTERN`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from heavy import Heavy
from heavy.cli import cli
from heavy.sim.transport import StreamingASGITransport
from heavy.serve import create_app
from heavy.serve.app import ServeSettings
from heavy.sim import SimConfig, SimulatedLLM

from helpers import free_port, running_heavy, stop
from test_serve import MODEL, Recorder, assert_openai_error, user

LOOPBACK = "http://127.0.0.1:8000"
BODY = {"model": "heavy/vote", "messages": user(), "n": 2}


class Served:
    """The proxy in-process as a loopback server would see it, over an in-process simulator."""

    def __init__(self, monkeypatch, settings: ServeSettings | None = None, base: str = LOOPBACK,
                 defaults: dict | None = None) -> None:
        monkeypatch.setenv("OPENAI_BASE_URL", "http://sim.test/v1")
        self.llm = SimulatedLLM(SimConfig(seed=1, accuracy=1.0))
        self.rec = Recorder(self.llm)
        self.app = create_app(defaults or {"model": MODEL}, settings=settings,
                              heavy_factory=functools.partial(Heavy, transport=StreamingASGITransport(self.rec)))
        self.client = httpx.AsyncClient(transport=StreamingASGITransport(self.app), base_url=base, timeout=30)

    async def post(self, body: dict | None = None, **headers: str) -> httpx.Response:
        head = {"content-type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
        return await self.client.post("/v1/chat/completions", content=json.dumps(body or BODY), headers=head)

    async def __aenter__(self) -> "Served":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()
        await self.app.state.heavy.aclose()


# --- cross-site requests and DNS rebinding -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_foreign_origin_or_host_or_a_form_body_is_refused_before_any_upstream_call(monkeypatch):
    async with Served(monkeypatch) as s:
        err = assert_openai_error(await s.post(origin="http://evil.example"), 403, "origin_not_allowed")
        assert "--allow-origin" in err["message"]
        assert_openai_error(await s.post(host="evil.example:8000"), 421, "host_not_allowed")
        assert_openai_error(await s.post(host="evil.example"), 421, "host_not_allowed")
        assert_openai_error(await s.post(host="127.0.0.1:9999"), 421, "host_not_allowed")  # another port
        assert_openai_error(await s.post(host="127.0.0.1.evil.example:8000"), 421, "host_not_allowed")
        assert_openai_error(await s.post(origin="null"), 403, "origin_not_allowed")  # a sandboxed page, a file
        assert_openai_error(await s.post(origin="http://localhost.evil.example"), 403, "origin_not_allowed")
        err = assert_openai_error(await s.post(content_type="text/plain"), 415, "unsupported_media_type")
        assert "application/json" in err["message"]
        # an HTML form (enctype=text/plain) from a page: its body is valid JSON through the ignored metadata
        form = b'{"model":"heavy","messages":[{"role":"user","content":"hi"}],"metadata":{"x":"=y"}}'
        for origin in ({"origin": "http://evil.example"}, {}):
            r = await s.client.post("/v1/chat/completions", content=form,
                                    headers={"content-type": "text/plain", **origin})
            assert r.status_code in (403, 415), r.text
        assert_openai_error(await s.client.post("/v1/chat/completions", content=b"{}"), 415)  # no Content-Type
        assert_openai_error(await s.client.get("/v1/models", headers={"host": "evil.example:8000"}), 421)
        assert_openai_error(await s.client.get("/health", headers={"origin": "http://evil.example"}), 403)
        assert s.llm.stats.chat_requests == 0, "nothing refused reached the upstream"
        # what a local client sends is served: its own Host, a loopback page, JSON with a charset
        for headers in ({}, {"host": "localhost:8000"}, {"origin": "http://localhost:3000"},
                        {"origin": "http://127.0.0.1:8000"}, {"origin": "https://[::1]:5173"},
                        {"content_type": "application/json; charset=utf-8"}):
            r = await s.post(**headers)
            assert r.status_code == 200, (headers, r.text)
        assert (await s.client.get("/health")).status_code == 200


@pytest.mark.anyio
async def test_allow_origin_serves_a_local_web_ui(monkeypatch):
    settings = ServeSettings(allow_origins=["http://ui.example:5173", "https://chat.example/"])
    async with Served(monkeypatch, settings) as s:
        for origin in ("http://ui.example:5173", "https://chat.example", "HTTPS://Chat.Example:443"):
            assert (await s.post(origin=origin)).status_code == 200, origin
        for origin in ("http://ui.example:5174", "http://chat.example", "http://ui.example:5173.evil.example"):
            assert_openai_error(await s.post(origin=origin), 403, "origin_not_allowed")
    for bad in (["ui.example"], ["http://ui.example/path"], ["ftp://ui.example"], ["*"]):
        with pytest.raises(ValueError):
            ServeSettings(allow_origins=bad)


@pytest.mark.anyio
async def test_with_a_key_the_host_is_free_but_a_foreign_origin_is_still_refused(monkeypatch):
    settings = ServeSettings(api_key="k3y-k3y-k3y")
    async with Served(monkeypatch, settings) as s:
        auth = {"authorization": "Bearer k3y-k3y-k3y"}
        r = await s.post(host="heavy.example.org:8000", **auth)  # a name the operator serves it under
        assert r.status_code == 200, r.text
        assert_openai_error(await s.post(origin="http://evil.example", **auth), 403, "origin_not_allowed")


@pytest.mark.anyio
async def test_an_address_that_is_not_loopback_is_not_held_to_loopback_names(monkeypatch):
    async with Served(monkeypatch, base="http://heavy.test") as s:  # the app embedded elsewhere (as test_serve)
        assert (await s.post()).status_code == 200
        assert_openai_error(await s.post(origin="http://evil.example"), 403, "origin_not_allowed")


def _env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "heavy.toml"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("HEAVY_")
           and k != "OPENAI_BASE_URL"}
    env["HEAVY_CONFIG"] = str(config)
    return env


@contextmanager
def bound(command: str, folder: Path, host: str, *args: str) -> Iterator[str]:
    """`heavy COMMAND --host HOST --port P ARGS` (`heavy serve`, `heavy mcp --http`): yields the URL its banner
    prints (…/v1 or …/mcp) once /health answers there; stopped by its PID."""
    folder.mkdir(parents=True, exist_ok=True)
    stderr = folder / "stderr.log"
    with stderr.open("w") as errlog:
        proc = subprocess.Popen([sys.executable, "-m", "heavy.cli", *command.split(), "--host", host, "--port",
                                 str(free_port()), *args], stdout=subprocess.DEVNULL, stderr=errlog, env=_env(folder))
        try:
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"heavy {command} exited: {stderr.read_text()}")
                found = re.search(r" on (http://\S+/(?:v1|mcp)) ", stderr.read_text())
                if found:
                    try:
                        if httpx.get(found.group(1).rsplit("/", 1)[0] + "/health", timeout=0.5).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                time.sleep(0.1)
            else:
                raise RuntimeError(f"heavy {command} did not become healthy: {stderr.read_text()}")
            yield found.group(1)
        finally:
            stop(proc)


def test_the_contract_against_a_real_heavy_serve(tmp_path):
    """`heavy serve` on 127.0.0.1 without a key (the simulated model upstream): curl's forms of the attack."""
    with running_heavy("serve", "-m", "sim", "-n", "2", "--log-level", "warning",
                       "--allow-origin", "http://localhost:5173", env=_env(tmp_path)) as base:
        port = base.rsplit(":", 1)[1]
        body = json.dumps({"model": "heavy/vote", "messages": user()})
        url = f"{base}/v1/chat/completions"
        json_head = {"content-type": "application/json"}
        r = httpx.post(url, content=body, headers={**json_head, "origin": "http://evil.example"})
        assert r.status_code == 403, r.text
        r = httpx.post(url, content=body, headers={**json_head, "host": f"evil.example:{port}"})
        assert r.status_code == 421, r.text
        r = httpx.post(url, content=body, headers={"content-type": "text/plain", "origin": "http://evil.example",
                                                   "host": f"evil.example:{port}"})
        assert r.status_code in (403, 421), r.text
        r = httpx.post(url, content=body, headers={"content-type": "text/plain"})
        assert r.status_code == 415, r.text
        r = httpx.post(url, content=body, headers={**json_head, "origin": "http://localhost:5173"})
        assert r.status_code == 200 and r.json()["heavy"]["answer"], r.text


@pytest.mark.parametrize("host, shown", [("::1", "[::1]"), ("0:0:0:0:0:0:0:1", "[::1]"), ("127.0.0.2", "127.0.0.2")])
def test_every_loopback_form_of_heavy_serve_is_guarded(tmp_path, host, shown):
    with bound("serve", tmp_path, host, "-m", "sim", "-n", "2", "--log-level", "warning") as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        assert url == f"http://{shown}:{port}/v1", url  # the banner's URL is one a client can use
        body = json.dumps({"model": "heavy/vote", "messages": user()})
        json_head = {"content-type": "application/json"}
        post = functools.partial(httpx.post, f"{url}/chat/completions", content=body, timeout=30)
        assert post(headers=json_head).status_code == 200
        assert post(headers={**json_head, "host": f"evil.example:{port}"}).status_code == 421
        assert post(headers={**json_head, "origin": "http://evil.example"}).status_code == 403
        assert post(headers={"content-type": "text/plain"}).status_code == 415


@pytest.mark.parametrize("args, needle", [(["--allow-origin", "ui.example"], "scheme://host"),
                                          (["--allow-origin", "http://ui.example/app"], "no path"),
                                          (["--allow-model", " "], "--allow-model")])
def test_bad_allowlists_are_one_line(tmp_path, monkeypatch, args, needle):
    monkeypatch.setenv("HEAVY_CONFIG", str(tmp_path / "none.toml"))
    r = CliRunner().invoke(cli, ["serve", "--port", str(free_port()), *args])
    assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1


# --- the models a client may name --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_client_names_only_models_the_operator_allows(monkeypatch):
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:9/v1")  # a local port nothing should reach
    async with Served(monkeypatch, ServeSettings(), base="http://heavy.test",
                      defaults={"model": MODEL, "aggregator_model": f"{MODEL}@judge_accuracy=1"}) as s:
        refused = [
            ({**BODY, "model": "heavy/vote/ollama:x"}, "model"),
            ({**BODY, "model": "heavy/vote/openai:gpt-4.1"}, "model"),
            ({**BODY, "heavy": {"models": [MODEL, "openai:o1-pro"]}}, "heavy.models"),
            ({**BODY, "model": "heavy/judge", "heavy": {"aggregator": "openai:gpt-4.1"}}, "heavy.aggregator"),
            ({**BODY, "model": "heavy/moa", "heavy": {"options": {"layer_models": [[MODEL], ["ollama:x"]]}}},
             "heavy.options.layer_models"),
        ]
        for body, param in refused:
            err = assert_openai_error(await s.post(body), 403, "model_not_allowed")
            assert err["param"] == param and "heavy serve --allow-model" in err["message"], err
            assert err["type"] == "permission_error"
        err = assert_openai_error(await s.client.get("/v1/models/heavy/vote/ollama:x"), 403, "model_not_allowed")
        assert s.llm.stats.chat_requests == 0
        # the configured models (sampling and aggregator) are always allowed
        for body in ({**BODY, "model": f"heavy/vote/{MODEL}"},
                     {**BODY, "model": "heavy/judge", "heavy": {"aggregator": f"{MODEL}@judge_accuracy=1"}},
                     {**BODY, "model": "heavy/moa", "heavy": {"options": {"layers": 2, "layer_models": [[MODEL]]}}}):
            r = await s.post(body)
            assert r.status_code == 200, r.text

    settings = ServeSettings(allow_models=["openai:heavy-*", "sim"])
    async with Served(monkeypatch, settings, base="http://heavy.test") as s:
        r = await s.post({**BODY, "model": f"heavy/vote/{MODEL}@accuracy=1"})
        assert r.status_code == 200, r.text
        r = await s.post({**BODY, "heavy": {"models": ["sim"], "aggregator": f"{MODEL}@judge_accuracy=1"}})
        assert r.status_code == 200, r.text
        assert_openai_error(await s.post({**BODY, "model": "heavy/vote/openai:gpt-4.1"}), 403, "model_not_allowed")
    async with Served(monkeypatch, ServeSettings(allow_models=["*"]), base="http://heavy.test") as s:
        err = assert_openai_error(await s.post({**BODY, "model": "heavy/vote/xai:grok-4"}), 400)
        assert err["code"] == "upstream_not_configured"  # allowed, so the server's own setup is what fails


def test_allow_model_on_the_command_line(tmp_path):
    env, body = _env(tmp_path), {**BODY, "model": "heavy/vote/sim:heavy-simulated@accuracy=1"}
    with running_heavy("serve", "-m", "sim", "-n", "2", "--log-level", "warning", env=env) as base:
        r = httpx.post(f"{base}/v1/chat/completions", json=body)
        assert r.status_code == 403 and "--allow-model" in r.json()["error"]["message"], r.text
    with running_heavy("serve", "-m", "sim", "-n", "2", "--log-level", "warning", "--allow-model", "sim:*",
                       env=env) as base:
        r = httpx.post(f"{base}/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.json()["heavy"]["answer"] == "411", r.text
