"""How heavy reaches an API: the proxy variables (a logging forward proxy on 127.0.0.1 sees what goes through
it), the CA bundle TLS trusts (a server with a certificate from a private CA, made by trustme), and base URLs
that cannot be used, refused before anything is sent. The rules of NO_PROXY and friends are checked on
their own too (heavy.http_env.proxy_for with a given environment)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from urllib.parse import urlsplit

import pytest

from heavy.config import run_settings
from heavy.errors import ConfigError, ProviderConnectionError, redact
from heavy.http import HTTPClient
from heavy.http_env import proxy_for, set_ca_bundle
from test_http import Server, answering, read_request, reply

pytestmark = pytest.mark.anyio

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
TRUST_VARS = ("HEAVY_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "HEAVY_CONFIG")


@pytest.fixture(autouse=True)
def clean_network_env(monkeypatch):
    """No proxy or trust setting from the machine leaks into a test; nothing a test installs leaks out."""
    for name in PROXY_VARS + TRUST_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    yield
    set_ca_bundle(None)


async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def forward_proxy(reader, writer, server):
    """A logging HTTP forward proxy: absolute-form requests are forwarded, CONNECT is tunnelled; every request
    it gets is in ``server.requests``. ``server.refuse`` (a status line) answers CONNECT with it instead."""
    while (req := await read_request(reader)) is not None:
        server.requests.append(req)
        line, headers, body = req
        method, target, _ = line.decode().split()
        if method == "CONNECT":
            if getattr(server, "refuse", None):
                writer.write(f"HTTP/1.1 {server.refuse}\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
                continue
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(relay(reader, up_writer), relay(up_reader, writer))
            return
        url = urlsplit(target)  # absolute form: http://host:port/path?query
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
        kept = [f"{k}: {v}" for k, v in headers.items() if not k.startswith("proxy-")]
        up_writer.write((f"{method} {url.path}{'?' + url.query if url.query else ''} HTTP/1.1\r\n"
                         + "".join(f"{h}\r\n" for h in kept) + "\r\n").encode() + body)
        head = await up_reader.readuntil(b"\r\n\r\n")
        length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
        writer.write(head + await up_reader.readexactly(length))
        await writer.drain()
        up_writer.close()


async def test_http_proxy_gets_the_requests_and_no_proxy_127_0_0_1_takes_them_off_it(monkeypatch):
    async with Server(answering(lambda req: reply('{"ok": true}'))) as api, Server(forward_proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://heavy:pr0xy-s3cret@127.0.0.1:{proxy.port}")
        http = HTTPClient(api.url + "/v1")
        assert (await http.post_json("chat/completions", {"q": 1})).json() == {"ok": True}
        assert (await http.get_json("models", {"n": 2})).json() == {"ok": True}
        await http.aclose()
        lines = [r[0].decode() for r in proxy.requests]
        assert lines == [f"POST {api.url}/v1/chat/completions HTTP/1.1", f"GET {api.url}/v1/models?n=2 HTTP/1.1"]
        assert proxy.requests[0][1]["proxy-authorization"] == "Basic " + base64.b64encode(b"heavy:pr0xy-s3cret").decode()
        assert [r[0] for r in api.requests] == [b"POST /v1/chat/completions HTTP/1.1", b"GET /v1/models?n=2 HTTP/1.1"]

        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        direct = HTTPClient(api.url + "/v1")
        assert (await direct.post_json("chat/completions", {})).json() == {"ok": True}
        await direct.aclose()
    assert len(proxy.requests) == 2 and len(api.requests) == 3, "the last request went straight to the API"


async def test_lower_case_and_all_proxy_are_honoured(monkeypatch):
    async with Server(answering(lambda req: reply("ok"))) as api, Server(forward_proxy) as proxy:
        for name in ("http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, f"127.0.0.1:{proxy.port}")  # no scheme: http://, as curl reads it
            http = HTTPClient(api.url)
            assert (await http.post_json("x", {})).text == "ok"
            await http.aclose()
            monkeypatch.delenv(name)
    assert len(proxy.requests) == 3 and len(api.requests) == 3


async def test_an_unreachable_or_refusing_proxy_is_a_connection_error_without_its_password(monkeypatch):
    async with Server(answering(lambda req: reply("ok"))) as closed:
        gone = closed.port
    monkeypatch.setenv("HTTPS_PROXY", f"http://heavy:pr0xy-s3cret@127.0.0.1:{gone}")
    http = HTTPClient("https://api.example.test/v1")
    with pytest.raises(ProviderConnectionError, match="ProxyError") as unreachable:
        await http.post_json("x", {})
    await http.aclose()
    async with Server(forward_proxy) as proxy:
        proxy.refuse = "407 Proxy Authentication Required"
        monkeypatch.setenv("HTTPS_PROXY", f"http://heavy:pr0xy-s3cret@127.0.0.1:{proxy.port}")
        http = HTTPClient("https://api.example.test/v1")
        with pytest.raises(ProviderConnectionError, match="407") as refused:
            await http.post_json("x", {})
        await http.aclose()
    assert proxy.requests[0][0] == b"CONNECT api.example.test:443 HTTP/1.1", "https goes through a tunnel"
    assert unreachable.value.retryable and not refused.value.retryable, "a 407 will not pass on a second try"
    for err in (unreachable.value, refused.value):
        assert "pr0xy-s3cret" not in str(err) and "pr0xy-s3cret" not in repr(err.args)
    assert redact("the proxy said pr0xy-s3cret") == "the proxy said ***", "the password is a registered secret"


@pytest.mark.parametrize("value", ["socks5://heavy:pr0xy-s3cret@127.0.0.1:1080", "http://heavy:pr0xy-s3cret@[::1"])
def test_a_proxy_variable_heavy_cannot_use_is_a_config_error_naming_it(monkeypatch, value):
    monkeypatch.setenv("HTTPS_PROXY", value)
    with pytest.raises(ConfigError, match="HTTPS_PROXY") as exc:
        HTTPClient("https://api.example.test/v1")
    assert "pr0xy-s3cret" not in str(exc.value) and "unset it" in str(exc.value)


@pytest.mark.parametrize("no_proxy, url, proxied", [
    ("*", "https://api.openai.com/v1", False),
    ("127.0.0.1", "http://127.0.0.1:8080/v1", False),
    ("127.0.0.1", "http://127.0.0.2:8080/v1", True),
    ("localhost", "http://localhost:8080", False),
    ("openai.com", "https://api.openai.com/v1", False),
    (".openai.com", "https://api.openai.com/v1", False),
    ("*.openai.com", "https://api.openai.com/v1", False),
    ("openai.com", "https://notopenai.com/v1", True),
    ("api.openai.com:443", "https://api.openai.com/v1", False),
    ("api.openai.com:8443", "https://api.openai.com/v1", True),
    ("10.0.0.0/8", "http://10.1.2.3:8000", False),
    ("10.0.0.0/8", "http://11.1.2.3:8000", True),
    ("[::1]", "http://[::1]:8000", False),
    ("example.com, 127.0.0.1 localhost", "http://localhost:8000", False),
    ("", "https://api.openai.com/v1", True),
])
def test_no_proxy_rules(no_proxy, url, proxied):
    env = {"HTTPS_PROXY": "http://proxy.test:3128", "HTTP_PROXY": "http://proxy.test:3128", "NO_PROXY": no_proxy}
    assert (proxy_for(url, env) is not None) == proxied


def test_which_variable_names_the_proxy():
    assert proxy_for("http://a.test", {}) is None
    assert proxy_for("https://a.test", {"HTTP_PROXY": "http://p.test:1"}) is None, "http_proxy is for http only"
    both = {"HTTPS_PROXY": "http://upper.test:1", "https_proxy": "http://lower.test:2"}
    assert proxy_for("https://a.test", both).url == "http://lower.test:2", "lower case wins, as in curl"
    assert proxy_for("https://a.test", {"ALL_PROXY": "http://all.test:3"}).variable == "ALL_PROXY"
    assert proxy_for("https://a.test", {"no_proxy": "a.test", "ALL_PROXY": "http://all.test:3"}) is None


# --- trust: a server whose certificate comes from a private CA ----------------------------------------------

@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_side)
    d = tmp_path_factory.mktemp("ca")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return server_side, d / "ca.pem"


async def post_over_tls(server_side: ssl.SSLContext) -> str:
    async with Server(answering(lambda req: reply('{"secure": true}')), ssl_context=server_side) as server:
        http = HTTPClient(server.url + "/v1")
        try:
            return (await http.post_json("x", {})).text
        finally:
            await http.aclose()


async def test_a_private_ca_is_refused_by_default_and_trusted_through_ssl_cert_file(private_ca, monkeypatch):
    server_side, ca = private_ca
    with pytest.raises(ProviderConnectionError, match="CERTIFICATE_VERIFY_FAILED") as refused:
        await post_over_tls(server_side)
    assert "HEAVY_CA_BUNDLE" in str(refused.value) and not refused.value.retryable, "the error names the fix"
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert await post_over_tls(server_side) == '{"secure": true}'


async def test_a_private_ca_is_trusted_through_the_config_file_and_heavy_ca_bundle(private_ca, tmp_path, monkeypatch):
    server_side, ca = private_ca
    (tmp_path / "ca.pem").write_bytes(ca.read_bytes())
    config = tmp_path / "config.toml"
    config.write_text('[http]\nca_bundle = "ca.pem"\n')  # relative to the config file
    monkeypatch.setenv("HEAVY_CONFIG", str(config))
    run_settings()  # what every shell does first: installs [prices] and [http]
    assert await post_over_tls(server_side) == '{"secure": true}'
    set_ca_bundle(None)
    with pytest.raises(ProviderConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await post_over_tls(server_side)
    monkeypatch.setenv("HEAVY_CA_BUNDLE", str(ca))
    assert await post_over_tls(server_side) == '{"secure": true}'


async def test_https_through_a_proxy_tunnel_trusts_the_same_bundle(private_ca, monkeypatch):
    server_side, ca = private_ca
    monkeypatch.setenv("HEAVY_CA_BUNDLE", str(ca))
    async with Server(forward_proxy) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        assert await post_over_tls(server_side) == '{"secure": true}'
    assert proxy.requests[0][0].startswith(b"CONNECT 127.0.0.1:")


def test_a_ca_bundle_that_is_missing_is_a_config_error_before_anything_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAVY_CA_BUNDLE", str(tmp_path / "nowhere.pem"))
    with pytest.raises(ConfigError, match="HEAVY_CA_BUNDLE"):
        HTTPClient("https://api.example.test/v1")
    monkeypatch.delenv("HEAVY_CA_BUNDLE")
    config = tmp_path / "config.toml"
    config.write_text('[http]\nca_bundle = "nowhere.pem"\n')
    monkeypatch.setenv("HEAVY_CONFIG", str(config))
    with pytest.raises(ConfigError, match=r"\[http\] ca_bundle"):
        run_settings()


# --- base URLs heavy cannot use --------------------------------------------------------------------------

@pytest.mark.parametrize("url, why", [
    ("http://", "names no host"),
    ("http://127.0.0.1:99999", "out of range"),
    ("http://[::1", "IPv6"),
    ("127.0.0.1:8080/v1", "http"),
    ("ftp://files.test/v1", "not an http:// or https:// URL"),
    ("https://user:base-url-s3cret@:443/v1", "names no host"),
])
def test_a_bad_base_url_is_one_config_error_naming_the_fix(url, why):
    with pytest.raises(ConfigError, match=why) as exc:
        HTTPClient(url, provider="openai")
    assert "--base-url" in str(exc.value) and "base-url-s3cret" not in str(exc.value)


async def test_a_bad_base_url_fails_the_run_once_before_any_hypothesis(monkeypatch):
    from heavy import Heavy

    # One ConfigError, raised building Heavy (the model spec) or its HTTP client, never one per hypothesis.
    with pytest.raises(ConfigError, match=r"(?i)base.url.*99999"):
        h = Heavy(model="openai:gpt-4.1-mini", base_url="http://127.0.0.1:99999/v1", api_key="sk-unused-1234", n=4)
        try:
            await h.ask("What is 1 + 1?")
        finally:
            await h.aclose()


async def test_credentials_in_a_base_url_are_sent_as_basic_auth_and_never_shown():
    async with Server(answering(lambda req: reply(req[1].get("authorization", "none")))) as api:
        http = HTTPClient(f"http://heavy:base-url-pa55@127.0.0.1:{api.port}/v1")
        assert (await http.post_json("x", {})).text == "Basic " + base64.b64encode(b"heavy:base-url-pa55").decode()
        await http.aclose()
        with pytest.raises(ConfigError, match="drop the credentials") as twice:
            HTTPClient(f"http://heavy:base-url-pa55@127.0.0.1:{api.port}/v1", headers={"authorization": "Bearer sk-x"})
    assert "base-url-pa55" not in str(twice.value) and redact("base-url-pa55") == "***"
