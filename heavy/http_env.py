"""Where heavy's HTTP goes and whom it trusts: base URLs checked before anything is sent, the proxy
variables, and the certificate authorities of TLS.

Standard library only (aiohttp is imported where requests are sent, :mod:`heavy.http_aiohttp`), so every
rule here is one small function a test can call with its own environment.

- :func:`check_base_url`: a base URL heavy cannot reach (``http://``, a port past 65535, ``http://[::1``) is a
  :class:`~heavy.errors.ConfigError` naming the fix, raised when the client is built.
- :func:`proxy_for`: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY`` (upper or lower case, the
  lower-case one winning as in curl and urllib), read as curl reads them. Credentials in a proxy URL are
  registered as secrets, so no error can show them.
- :func:`ssl_context`: the CA bundle TLS trusts: ``HEAVY_CA_BUNDLE``, else the config file's ``[http]
  ca_bundle`` (installed by :func:`set_ca_bundle`), else ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else certifi's
  bundle (what httpx and the openai SDK trust). Each replaces the default trust, as curl's ``--cacert`` does.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .errors import ConfigError, register_secret

__all__ = ["Proxy", "check_base_url", "proxy_for", "set_ca_bundle", "ssl_context", "trust_source"]

DEFAULT_PORTS = {"http": 80, "https": 443}
_EXAMPLE = "e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1"


def _split(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an http(s) URL; ValueError saying what is wrong otherwise."""
    parts = urlsplit(url)  # raises ValueError itself on an unclosed IPv6 bracket
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("it is not an http:// or https:// URL" if scheme else "it has no http:// or https://")
    if not parts.hostname:
        raise ValueError("it names no host")
    port = parts.port  # raises ValueError past 65535 or when not a number
    if port == 0:
        raise ValueError("port 0 cannot be connected to")
    return scheme, parts.hostname, port or DEFAULT_PORTS[scheme]


def _without_credentials(url: str) -> str:
    """*url* safe to show: ``user:password@`` dropped (checked by hand: the URL may not even parse)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{tail}"


def check_base_url(url: str) -> str:
    """*url* without its trailing slash, or a :class:`ConfigError` naming the fix if heavy cannot send to it."""
    try:
        _split(url)
        parts = urlsplit(url)
        for secret in (parts.password, unquote(parts.password or "")):  # sent as Basic auth: a credential
            register_secret(secret)
    except ValueError as exc:
        raise ConfigError(f"the base URL {_without_credentials(url)!r} cannot be used: {exc}; give the API's "
                          f"address with its scheme, host and (optional) port, {_EXAMPLE} "
                          "(--base-url, base_url=, or the provider's *_BASE_URL variable)") from None
    return url.rstrip("/")


# --- proxies ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proxy:
    """A forward proxy: its URL without credentials, the credentials apart, and the variable that named it."""

    url: str
    user: str | None
    password: str | None
    variable: str

    @property
    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value of the credentials (Basic), or ``None`` without any."""
        if self.user is None and self.password is None:
            return None
        return "Basic " + base64.b64encode(f"{self.user or ''}:{self.password or ''}".encode()).decode()


def _variable(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """``(variable, value)`` of *name* (lower case first, as curl and urllib prefer it), unset when empty."""
    for var in (name.lower(), name.upper()):
        value = env.get(var, "").strip()
        if value:
            return var, value
    return None


def _parse_proxy(var: str, value: str) -> Proxy:
    url = value if "://" in value else f"http://{value}"  # "proxy:3128", as curl accepts it
    shown = _without_credentials(url)
    try:
        scheme, host, port = _split(url)
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{var}={shown!r} is not a proxy heavy can use: {exc}; set it to the proxy's URL, "
                          "e.g. http://proxy.example:3128, or unset it") from None
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    for secret in (parts.username, parts.password, user, password):
        register_secret(secret)
    netloc = f"[{host}]" if ":" in host else host
    proxy = Proxy(f"{scheme}://{netloc}:{port}", user, password, var)
    if proxy.authorization:
        register_secret(f"{user or ''}:{password or ''}")
        register_secret(proxy.authorization.partition(" ")[2])  # as the Proxy-Authorization header carries it
    return proxy


def _bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether ``NO_PROXY``'s *no_proxy* exempts *host*: ``*``; a host or address (``127.0.0.1``, with
    ``:port`` for that port only); a domain and its subdomains (``example.com``, ``.example.com``,
    ``*.example.com``); an address range (``10.0.0.0/8``)."""
    host = host.lower().strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, entry_port = entry, None
        if entry.startswith("["):  # [::1] or [::1]:8080
            name, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] if rest.startswith(":") else None
        elif entry.count(":") == 1:
            name, entry_port = entry.split(":")
        if entry_port is not None and entry_port != str(port):
            continue
        name = name.removeprefix("*").removeprefix(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def proxy_for(url: str, env: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy a request to *url* goes through, as the environment says, or ``None`` for a direct
    connection. A ``http://`` URL is sent to the proxy in absolute form; a ``https://`` one through a
    ``CONNECT`` tunnel. A proxy variable heavy cannot use is a :class:`ConfigError` naming it."""
    env = os.environ if env is None else env
    scheme, host, port = _split(url)
    found = _variable(env, f"{scheme}_proxy") or _variable(env, "all_proxy")
    if found is None:
        return None
    exempt = _variable(env, "no_proxy")
    if exempt is not None and _bypassed(host, port, exempt[1]):
        return None
    return _parse_proxy(*found)


# --- trust: the CA bundle ------------------------------------------------------------------------------

#: The config file's ``[http] ca_bundle``, installed process-wide by :func:`set_ca_bundle`.
_configured_bundle: str | None = None
_contexts: dict[tuple[str, str | None, str | None], ssl.SSLContext] = {}


def set_ca_bundle(path: str | None) -> None:
    """Trust the CA certificates in *path* (a PEM file or a directory of them) for every HTTPS connection
    heavy opens from now on, unless ``HEAVY_CA_BUNDLE`` says otherwise; ``None`` forgets it. The config
    file's ``[http] ca_bundle`` is installed through this (:func:`heavy.config.run_settings`)."""
    global _configured_bundle
    _configured_bundle = os.path.expanduser(path) if path else None


def trust_source(env: Mapping[str, str] | None = None) -> tuple[str, str | None, str | None]:
    """``(where from, CA file, CA directory)`` of the certificates TLS trusts; both ``None``: certifi's."""
    env = os.environ if env is None else env
    bundle = env.get("HEAVY_CA_BUNDLE", "").strip()
    if bundle:
        path = os.path.expanduser(bundle)
        return "HEAVY_CA_BUNDLE", (None if os.path.isdir(path) else path), (path if os.path.isdir(path) else None)
    if _configured_bundle:
        path = _configured_bundle
        return "[http] ca_bundle", (None if os.path.isdir(path) else path), (path if os.path.isdir(path) else None)
    cafile, capath = env.get("SSL_CERT_FILE", "").strip() or None, env.get("SSL_CERT_DIR", "").strip() or None
    if cafile or capath:
        return " and ".join(n for n, v in (("SSL_CERT_FILE", cafile), ("SSL_CERT_DIR", capath)) if v), cafile, capath
    return "certifi", None, None


def ssl_context(env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """The TLS context of heavy's connections, verifying against :func:`trust_source`'s certificates.
    Built once per source per process (loading a bundle costs tens of milliseconds); a bundle that cannot
    be read is a :class:`ConfigError` naming where it came from."""
    where, cafile, capath = trust_source(env)
    key = (where, cafile, capath)
    context = _contexts.get(key)
    if context is not None:
        return context
    try:
        if cafile is None and capath is None:
            import certifi  # a dependency of httpx

            context = ssl.create_default_context(cafile=certifi.where())
        else:
            if cafile is not None and not os.path.isfile(cafile):
                raise FileNotFoundError(f"no such file: {cafile}")
            context = ssl.create_default_context(cafile=cafile, capath=capath)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"the CA bundle from {where} cannot be loaded ({exc}); point it at a PEM file of CA "
                          "certificates (or a directory of them), or unset it") from None
    _contexts[key] = context
    return context
