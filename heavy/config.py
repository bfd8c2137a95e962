"""The optional config file: defaults for the CLI and proxy, per-provider limits, and price overrides.

Looked for at ``$HEAVY_CONFIG``, else ``~/.config/heavy/config.toml``. Everything in it is optional and
validated (unknown keys are errors that name the key)::

    [defaults]                 # any run option (heavy.settings.RunSettings): every flag of ask/eval/serve
    model = ["openai:gpt-4.1-mini"]
    n = 8
    strategy = "heavy"
    max_cost_usd = 0.50

    [providers.openai]         # per preset: in-flight calls and rate limits
    concurrency = 32
    rpm = 500
    tpm = 200000

    [prices."my-finetune"]     # USD per 1M tokens, for models the built-in table does not know
    input = 0.3
    output = 1.2

    [http]                     # how heavy reaches the APIs
    ca_bundle = "~/corp-ca.pem"  # trust these CAs (a PEM file or a directory) instead of the default ones;
                                 # HEAVY_CA_BUNDLE overrides it. Proxies: HTTPS_PROXY, NO_PROXY, ... (README)

Run options are layered built-in defaults < this file < the environment (``HEAVY_N=3``, see
:func:`heavy.settings.env_layer`) < the caller: :func:`run_settings` stacks them for every shell (``heavy
ask``, ``heavy eval``, ``heavy serve``, the llm plugin). The library does not read file or environment
implicitly (a library should not change behaviour with a file in the user's home);
``Heavy(settings=run_settings())`` does what the shells do.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .models import PRESETS, parse_spec
from .settings import ProviderLimits, RunSettings, env_layer, fields_where, layered, partial_model
from .settings import describe as describe_errors

__all__ = ["Defaults", "ProviderLimits", "PriceEntry", "HeavyConfig", "config_path", "load_config", "describe",
           "run_settings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


#: ``[defaults]``: every run option the config file may set, each optional (generated from RunSettings).
Defaults = partial_model("Defaults", fields_where(config=True), doc="The config file's [defaults] section.")


class PriceEntry(_Strict):
    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class HTTPSection(_Strict):
    """The config file's ``[http]`` table: how heavy reaches the model APIs."""

    ca_bundle: str | None = None
    """CA certificates TLS trusts (a PEM file or a directory of them) instead of the default ones, for a
    private or corporate certificate authority; relative to the config file; ``HEAVY_CA_BUNDLE`` overrides it."""


class HeavyConfig(_Strict):
    defaults: Defaults = Field(default_factory=Defaults)
    providers: dict[str, ProviderLimits] = Field(default_factory=dict)
    prices: dict[str, PriceEntry] = Field(default_factory=dict)
    http: HTTPSection = Field(default_factory=HTTPSection)
    path: str | None = Field(default=None, exclude=True)

    def layer(self) -> dict[str, Any]:
        """The run options this file sets: ``[defaults]``, and ``[providers]`` as ``limits``."""
        out = self.defaults.model_dump(exclude_none=True, include=self.defaults.model_fields_set)
        if self.providers:
            out["limits"] = dict(self.providers)
        return out

    def heavy_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`heavy.Heavy` from ``[defaults]`` and ``[providers]``."""
        out = self.layer()
        if self.providers:
            out["limits"] = {name: lim.model_dump(exclude_none=True) for name, lim in self.providers.items()}
        return out

    def apply_prices(self) -> None:
        """Install ``[prices]`` into the price table."""
        from .pricing import set_price

        for prefix, p in self.prices.items():
            set_price(prefix, p.input, p.output, p.cached_input, p.cache_write)

    def apply_http(self) -> None:
        """Install ``[http] ca_bundle`` as the CA bundle of every HTTPS connection heavy opens (process-wide)."""
        if self.http.ca_bundle:
            from .http_env import set_ca_bundle

            set_ca_bundle(self.http.ca_bundle)


def config_path() -> Path:
    env = os.environ.get("HEAVY_CONFIG")
    return Path(env).expanduser() if env else Path("~/.config/heavy/config.toml").expanduser()


def load_config(path: str | Path | None = None) -> HeavyConfig:
    """Read and validate the config file; a missing file is an empty config, a bad one a ConfigError."""
    p = Path(path).expanduser() if path else config_path()
    if not p.is_file():
        if path or os.environ.get("HEAVY_CONFIG"):
            raise ConfigError(f"config file {str(p)!r} not found (set HEAVY_CONFIG to an existing file or unset it)")
        return HeavyConfig()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    try:
        cfg = HeavyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{p}: {describe_errors(exc)}") from None
    if cfg.http.ca_bundle:  # relative to the file; checked now, not at the first HTTPS connection
        bundle = (p.parent / Path(cfg.http.ca_bundle).expanduser()).resolve()
        if not bundle.exists():
            raise ConfigError(f"{p}: [http] ca_bundle: {str(bundle)!r} does not exist; point it at a PEM file of CA "
                              "certificates (or a directory of them), or remove the key")
        cfg.http.ca_bundle = str(bundle)
    unknown = set(cfg.providers) - set(PRESETS)
    if unknown:
        raise ConfigError(f"{p}: [providers.{sorted(unknown)[0]}] is not a known provider ({', '.join(PRESETS)})")
    try:
        layered(cfg.layer())  # the values together (min_successes <= n, ...)
    except ConfigError as exc:
        raise ConfigError(f"{p}: [defaults]: {exc}") from None
    cfg.path = str(p)
    return cfg


def run_settings(caller: dict[str, Any] | None = None, *, cfg: HeavyConfig | None = None,
                 env: dict[str, str] | None = None) -> RunSettings:
    """The run options a shell runs with: built-in defaults < config file < environment < *caller*.

    *caller* holds what the user gave (flags, a request, ``llm -o``): a ``None`` there means "not given".
    Loads the config file unless *cfg* is given, and installs its ``[prices]`` (a dollar cap needs them) and
    its ``[http] ca_bundle``.
    Strategy options in *caller* go to ``options`` as in :meth:`RunSettings.build`.
    """
    cfg = load_config() if cfg is None else cfg
    cfg.apply_prices()
    cfg.apply_http()
    given = {k: v for k, v in (caller or {}).items() if v is not None and v != () and v != []}
    base = layered(cfg.layer(), env_layer(os.environ if env is None else env))
    return RunSettings.build(base, **given)


def _mask(value: str | None) -> str:
    if not value:
        return "not set"
    return f"set (…{value[-4:]}, {len(value)} characters)" if len(value) >= 12 else "set"


def describe(cfg: HeavyConfig, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration as a plain dict, with every key masked."""
    env = dict(os.environ if env is None else env)
    providers = {}
    for name, preset in PRESETS.items():
        key_env = preset.key_env
        key = next((env[v] for v in ((key_env,) if key_env else ()) + preset.key_env_fallbacks if env.get(v)), None)
        spec_ok = True
        try:
            resolved = parse_spec(f"{name}:x", env=env)
            base = resolved.base_url
        except ConfigError:
            base, spec_ok = (env.get(preset.base_url_env) if preset.base_url_env else None) or preset.base_url, False
            if not base and preset.base_url_env:  # no default endpoint (azure): say where it comes from
                base = f"({preset.base_url_env} not set)"
        providers[name] = {
            "base_url": base, "key_env": key_env, "key": _mask(key), "key_required": preset.key_required,
            "ready": spec_ok, **({"limits": cfg.providers[name].model_dump(exclude_none=True)}
                                 if name in cfg.providers else {}),
        }
    from_env = env_layer(env)
    effective = layered(cfg.layer(), from_env)
    return {
        "config_file": cfg.path or f"{config_path()} (absent)",
        "defaults": cfg.defaults.model_dump(exclude_none=True),
        "environment": from_env,
        "run_options": {name: {"value": _plain(getattr(effective, name)),
                               "from": "environment" if name in from_env else
                               "config file" if name in cfg.layer() else "built-in"}
                        for name in fields_where(config=True) + ["limits"]},
        "providers": providers,
        "prices": {k: v.model_dump(exclude_none=True) for k, v in cfg.prices.items()},
        "http": cfg.http.model_dump(exclude_none=True),
    }


def _plain(value: Any) -> Any:
    """A run option's value as JSON-ready data."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if isinstance(v, (str, int, float, bool)) else str(v) for v in value]
    return value
