"""The optional config file: defaults for the CLI and proxy, per-provider limits, and price overrides.

Looked for at ``$HEAVY_CONFIG``, else ``~/.config/heavy/config.toml``. Everything in it is optional and
validated (unknown keys are errors that name the key)::

    [defaults]                 # any run option (heavy.settings.RunSettings): every flag of ask/eval/serve
    model = ["openai:gpt-4.1-mini"]
    n = 8
    strategy = "heavy"
    max_cost_usd = 0.50
    options = {early_stop = false}   # the options of that strategy: runs of another strategy ignore them

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
ask``, ``heavy eval``, ``heavy serve``, the llm plugin). ``options`` belong to the strategy of their layer
(this file's ``strategy``, else the built-in one): a run of another strategy does not get them.
:func:`write_defaults` rewrites keys of ``[defaults]`` in place (``heavy tune --write-config``). The library
does not read file or environment implicitly (a library should not change behaviour with a file in the user's home);
``Heavy(settings=run_settings())`` does what the shells do.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .models import PRESETS, parse_spec
from .settings import ProviderLimits, RunSettings, env_layer, fields_where, layered, partial_model
from .settings import describe as describe_errors

__all__ = ["Defaults", "ProviderLimits", "PriceEntry", "HeavyConfig", "config_path", "load_config", "describe",
           "run_settings", "write_defaults"]


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
        checked = layered(cfg.layer())  # the values together (min_successes <= n, ...)
        if cfg.defaults.options:  # a typo in a strategy option is found here, not by the first run
            from .strategy import load_strategy

            load_strategy(checked.strategy).parse_options(checked.options)
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
    file, environment = cfg.layer(), env_layer(os.environ if env is None else env)
    settings = RunSettings.build(layered(file, environment), **given)
    # Options are a strategy's: those of the file (or the environment) go with the strategy that layer runs,
    # so `heavy ask -s vote` is not handed the crosscheck options `heavy tune --write-config` wrote.
    owner = None
    if "options" in environment:
        owner = environment.get("strategy", file.get("strategy", RunSettings().strategy))
    elif "options" in file:
        owner = file.get("strategy", RunSettings().strategy)
    if owner is not None and "options" not in given and settings.strategy != owner:
        settings = settings.merged(options={})
    return settings


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


# --- writing [defaults] (heavy tune --write-config) ---------------------------------------------------------

_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")


def _toml(value: Any) -> str:
    """*value* (str, bool, int, float, list, dict of those) as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = [(k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)) for k in value]
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in zip(keys, value.values())) + "}"
    raise ConfigError(f"cannot write {value!r} to the config file")


def _assigned(line: str, keys: set[str]) -> bool:
    m = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", line)
    return bool(m and m.group(1) in keys)


def write_defaults(values: dict[str, Any], *, remove: set[str] = frozenset(), comment: Sequence[str] = (),
                   path: str | Path | None = None) -> Path:
    """Set *values* (run options) in the ``[defaults]`` of the config file heavy reads (``$HEAVY_CONFIG``, else
    ``~/.config/heavy/config.toml``; created if missing), drop the keys in *remove*, and put *comment* lines
    above them; every other line of the file stays as it was. The result is checked as :func:`load_config`
    checks a file before it replaces the old one (a ConfigError, and nothing written, when it would not load)."""
    p = Path(path).expanduser() if path else config_path()
    old = ""
    if p.exists():
        try:
            old = p.read_text(encoding="utf-8")
            tomllib.loads(old)
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{p}: cannot update it ({exc}): fix the file first, or point HEAVY_CONFIG at another "
                              "one") from None
    ours = set(values) | set(remove)
    lines = old.splitlines()
    out: list[str] = []
    section: str | None = None
    depth = 0  # open brackets of a multi-line value being dropped
    insert_at: int | None = None
    for line in lines:
        header = _HEADER.match(line)
        if depth == 0 and (header or _ARRAY_HEADER.match(line)):
            section = header.group(1).replace(" ", "") if header else None
            if section == "defaults.options" and "options" in ours:
                section = "drop"
                continue
            out.append(line)
            if section == "defaults":
                insert_at = len(out)
            continue
        if section == "drop":
            continue
        if section == "defaults" and (depth or _assigned(line, ours) or line.startswith("# heavy tune:")):
            depth = max(0, depth + line.count("[") + line.count("{") - line.count("]") - line.count("}"))
            continue
        out.append(line)
    block = [f"# heavy tune: {c}" for c in comment] + [f"{k} = {_toml(v)}" for k, v in values.items()]
    if insert_at is None:
        out += ([""] if out and out[-1].strip() else []) + ["[defaults]", *block]
    else:
        out[insert_at:insert_at] = block
    text = "\n".join(out) + "\n"
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=p.parent, prefix=f".{p.name}.",
                                         suffix=".tmp", delete=False) as f:
            f.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {p}: {exc.strerror}") from None
    try:
        load_config(f.name)
        os.replace(f.name, p)
    except BaseException:
        os.unlink(f.name)
        raise
    return p
