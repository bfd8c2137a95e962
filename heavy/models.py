"""Model specs (``provider:model``) and the provider presets they resolve through.

A spec names a preset and a model id: ``openai:gpt-4.1``, ``ollama:qwen2.5:7b`` (everything after the
first colon is the model id), ``sim`` (heavy's in-process simulated model). A bare model id is
accepted together with an explicit ``base_url`` (any OpenAI-compatible server).

Each preset says where the API lives and which environment variables configure it. The base URL comes
from, in order: the explicit ``base_url`` argument, the preset's ``*_BASE_URL`` variable, the preset's
default. A key is required only when talking to the preset's public endpoint.

Where a key goes (one rule): a key given explicitly (``api_key=``) is sent wherever the spec points. A key
read from the environment (``OPENAI_API_KEY`` & co.) is sent only to its own preset's endpoint: the
preset's default origin (``https://api.openai.com``) or the origin of the preset's own ``*_BASE_URL``
variable. An explicit ``base_url`` on any other origin gets no environment key, whatever the spec names
(``mymodel``, ``openai:gpt-x`` and ``anthropic:claude-x`` alike), so a key exported for one provider
never reaches a server the user merely wanted to try. When such a server answers 401/403, the error says
which key was held back and how to send it (see :meth:`ModelSpec.withheld_key_hint`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import MissingKeyError, ModelSpecError, register_secret

__all__ = ["Preset", "PRESETS", "ModelSpec", "parse_spec", "check_base_url"]


@dataclass(frozen=True)
class Preset:
    """Where a provider's API lives and how it is configured: its default base URL (``""``: none, the user's
    own endpoint, from ``base_url_env`` or ``--base-url``), the variables of its key and URL, its wire format,
    how the key is sent (``auth``: ``bearer`` as ``Authorization: Bearer``, or the header that carries it:
    ``api-key``, ``x-api-key``, ``x-goog-api-key``) and the path appended to a bare endpoint (``url_path``).
    What its models accept is their profile's (:mod:`heavy.profiles`)."""

    name: str
    base_url: str
    key_env: str | None
    base_url_env: str | None
    key_required: bool = True
    #: Further variables the key is read from when ``key_env`` is unset (errors name ``key_env``).
    key_env_fallbacks: tuple[str, ...] = ()
    wire: str = "openai"
    default_model: str | None = None
    note: str = ""
    auth: str = "bearer"
    url_path: str = ""
    #: An example of the endpoint, for the error that asks for one (presets without a default base URL).
    url_example: str = ""


_COMPATIBLE = "OpenAI-compatible API"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("openai", "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL",
               note="OpenAI (Chat Completions; the models served only by the Responses API go there)"),
        Preset("openai-responses", "https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL", wire="responses",
               note="OpenAI's Responses API for every model (POST {base}/responses)"),
        Preset("azure", "", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", auth="api-key", url_path="/openai/v1",
               url_example="https://RESOURCE.openai.azure.com",
               note="Azure OpenAI v1 API: azure:DEPLOYMENT; {endpoint}/openai/v1, key in the api-key header"),
        Preset("anthropic", "https://api.anthropic.com", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", wire="anthropic",
               auth="x-api-key", note="Anthropic (Claude); base URL is the API root: {root}/v1/messages"),
        Preset("gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY", "GEMINI_BASE_URL",
               key_env_fallbacks=("GOOGLE_API_KEY",), wire="gemini", auth="x-goog-api-key",
               note="Google Gemini; base URL is the API root: {root}/v1beta/models/…"),
        Preset("xai", "https://api.x.ai/v1", "XAI_API_KEY", "XAI_BASE_URL", note="xAI (Grok)"),
        Preset("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL",
               note="OpenRouter"),
        Preset("together", "https://api.together.xyz/v1", "TOGETHER_API_KEY", "TOGETHER_BASE_URL", note="Together AI"),
        Preset("groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "GROQ_BASE_URL", note="Groq"),
        Preset("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL", note="DeepSeek"),
        Preset("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "MISTRAL_BASE_URL", note="Mistral"),
        Preset("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY", "FIREWORKS_BASE_URL",
               note=f"Fireworks AI ({_COMPATIBLE}; models as accounts/fireworks/models/NAME)"),
        Preset("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", "CEREBRAS_BASE_URL",
               note=f"Cerebras ({_COMPATIBLE})"),
        Preset("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA_API_KEY", "DEEPINFRA_BASE_URL",
               note=f"DeepInfra ({_COMPATIBLE})"),
        Preset("moonshot", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY", "MOONSHOT_BASE_URL",
               note=f"Moonshot AI, Kimi ({_COMPATIBLE}; in China: MOONSHOT_BASE_URL=https://api.moonshot.cn/v1)"),
        Preset("nebius", "https://api.tokenfactory.nebius.com/v1", "NEBIUS_API_KEY", "NEBIUS_BASE_URL",
               note=f"Nebius Token Factory ({_COMPATIBLE})"),
        Preset("sambanova", "https://api.sambanova.ai/v1", "SAMBANOVA_API_KEY", "SAMBANOVA_BASE_URL",
               note=f"SambaNova Cloud ({_COMPATIBLE})"),
        Preset("zai", "https://api.z.ai/api/paas/v4", "ZAI_API_KEY", "ZAI_BASE_URL",
               note=f"Z.ai, GLM ({_COMPATIBLE}; Coding Plan keys: ZAI_BASE_URL=https://api.z.ai/api/coding/paas/v4)"),
        Preset("dashscope", "https://dashscope-intl.aliyuncs.com/compatible-mode/v1", "DASHSCOPE_API_KEY",
               "DASHSCOPE_BASE_URL", note=f"Alibaba Cloud Model Studio, Qwen ({_COMPATIBLE}; keys are per region: "
               "DASHSCOPE_BASE_URL for Beijing, US or Hong Kong)"),
        Preset("huggingface", "https://router.huggingface.co/v1", "HF_TOKEN", "HF_BASE_URL",
               note=f"Hugging Face Inference Providers router ({_COMPATIBLE}; MODEL:PROVIDER pins a provider)"),
        Preset("ollama", "http://127.0.0.1:11434/v1", "OLLAMA_API_KEY", "OLLAMA_BASE_URL", key_required=False,
               note="Ollama on this machine"),
        Preset("vllm", "http://127.0.0.1:8000/v1", "VLLM_API_KEY", "VLLM_BASE_URL", key_required=False,
               note="vLLM server on this machine"),
        Preset("llamacpp", "http://127.0.0.1:8080/v1", "LLAMACPP_API_KEY", "LLAMACPP_BASE_URL",
               key_required=False, note="llama.cpp llama-server on this machine"),
        Preset("lmstudio", "http://127.0.0.1:1234/v1", "LMSTUDIO_API_KEY", "LMSTUDIO_BASE_URL",
               key_required=False, note="LM Studio on this machine"),
        Preset("local", "http://127.0.0.1:8377/v1", None, "HEAVY_LOCAL_BASE_URL", key_required=False,
               default_model="local", note="heavy's own local model server (`heavy local`)"),
        Preset("sim", "http://heavy-sim.invalid/v1", None, None, key_required=False, wire="sim",
               default_model="heavy-simulated", note="heavy's simulated LLM, in-process (not a real model)"),
    ]
}


@dataclass(frozen=True)
class ModelSpec:
    """A resolved spec: which preset, which model id, where, and with which key (never printed)."""

    spec: str
    preset: Preset
    model: str
    base_url: str
    api_key: str | None
    #: The environment variable whose key exists but was not sent, because ``base_url`` is not its
    #: preset's endpoint (see the module docstring); ``None`` when nothing was held back.
    withheld_key_env: str | None = None

    def __repr__(self) -> str:  # the key must never show up in a repr, log or traceback
        return f"ModelSpec(spec={self.spec!r}, base_url={self.base_url!r}, key={'set' if self.api_key else 'none'})"

    @property
    def label(self) -> str:
        return f"{self.preset.name}:{self.model}"

    def withheld_key_hint(self) -> str | None:
        """The one-line explanation for a 401/403 from an endpoint an environment key was kept from."""
        var = self.withheld_key_env
        if not var:
            return None
        p = self.preset
        own = " or ".join(x for x in (_origin_text(p.base_url) if p.base_url else "",
                                      f"the URL in {p.base_url_env}" if p.base_url_env else "") if x)
        how = (f"set {p.base_url_env}={self.base_url} and use -m {p.name}:{self.model} without --base-url "
               "(from Python: pass api_key=...)" if p.base_url_env else "pass api_key=...")
        return (f"no API key was sent to {self.base_url}: the key in {var} goes only to {own}, never to another "
                f"--base-url / base_url=; to send it here, {how}")


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of *url* with the scheme's default port filled in; ``None`` if unparsable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower().rstrip("."), port


def _origin_text(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _key_may_go(url: str, preset: Preset, preset_url: str | None) -> bool:
    """Whether an environment key of *preset* may be sent to *url* (same origin as one of its own URLs)."""
    target = _origin(url)
    return target is not None and any(target == _origin(own) for own in (preset.base_url, preset_url) if own)


def check_base_url(url: str, *, where: str | None = "--base-url") -> str:
    """*url* without a trailing slash if it is a usable http(s) URL; a ConfigError naming the fix otherwise."""
    text = url.strip()
    example = "(e.g. http://127.0.0.1:8080/v1)"
    src = f"{where} " if where else ""
    if not text.lower().startswith(("http://", "https://")):
        raise ModelSpecError(f"{src}{url!r} must start with http:// or https:// {example}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (parsing the port is the check: 99999 or a non-number raises)
    except ValueError as exc:
        raise ModelSpecError(f"{src}{url!r} is not a usable URL ({exc}) {example}") from None
    if not parts.hostname:
        raise ModelSpecError(f"{src}{url!r} names no host {example}")
    if any(c.isspace() for c in text):
        raise ModelSpecError(f"{src}{url!r} contains spaces {example}")
    return text.rstrip("/")


def parse_spec(spec: str, *, base_url: str | None = None, api_key: str | None = None,
               env: dict[str, str] | None = None) -> ModelSpec:
    """Resolve *spec* against the presets and the environment; raise a ConfigError naming the fix."""
    env = os.environ if env is None else env
    raw = (spec or "").strip()
    if not raw:
        raise ModelSpecError("empty model spec; use provider:model, e.g. openai:gpt-4.1 or sim")
    name, sep, model = raw.partition(":")
    if not sep:
        if name in PRESETS and PRESETS[name].default_model:
            model = PRESETS[name].default_model or ""
        elif base_url:
            name, model = "openai", raw  # a bare model id on an explicit OpenAI-compatible endpoint
        else:
            raise ModelSpecError(
                f"model spec {raw!r} has no provider; use provider:model (e.g. openai:{raw}) "
                f"or pass --base-url. Providers: {', '.join(PRESETS)}"
            )
    preset = PRESETS.get(name)
    if preset is None:
        raise ModelSpecError(f"unknown provider {name!r} in {raw!r}; known: {', '.join(PRESETS)}")
    if not model:
        if not preset.default_model:
            raise ModelSpecError(f"model spec {raw!r} names no model; use {name}:MODEL")
        model = preset.default_model
    preset_url = (env.get(preset.base_url_env) or None) if preset.base_url_env else None
    explicit_base = base_url or preset_url
    if not (explicit_base or preset.base_url):
        raise ModelSpecError(f"{name}: needs its endpoint: set {preset.base_url_env}={preset.url_example} "
                             "(or pass --base-url)")
    url = check_base_url(explicit_base or preset.base_url, where="--base-url" if base_url else preset.base_url_env)
    if preset.url_path and not urlsplit(url).path.strip("/"):
        url += preset.url_path  # a bare endpoint (https://RESOURCE.openai.azure.com) gets the API's path
    key_vars = ((preset.key_env,) if preset.key_env else ()) + preset.key_env_fallbacks
    env_var = next((v for v in key_vars if env.get(v)), None)
    withheld = None
    if api_key:
        key = api_key
    elif env_var and _key_may_go(url, preset, preset_url):
        key = env[env_var]
    else:
        key, withheld = None, env_var
    if preset.key_required and not key and (not explicit_base or (not preset.base_url and not base_url)):
        raise MissingKeyError(preset.name, preset.key_env or "an API key")
    register_secret(key)
    if withheld:
        register_secret(env[withheld])  # held back, but still a secret that upstream text must not reveal
    return ModelSpec(spec=raw, preset=preset, model=model, base_url=url, api_key=key, withheld_key_env=withheld)
