"""Small subcommands: ``heavy strategies`` and ``heavy sim``."""

from __future__ import annotations

import click

from .. import constants as C
from . import fail, run_guarded


@click.command()
def strategies() -> None:
    """List the registered strategies: one per line, name first, then a one-line summary."""
    from ..strategy import load_strategy, registered_strategies

    for name, ep in registered_strategies().items():
        try:
            summary = load_strategy(name).summary()
        except Exception as exc:  # a broken third-party plugin must not hide the others
            summary = f"(cannot load {ep.value}: {type(exc).__name__})"
        click.echo(f"{name}\t{summary}")


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=C.SIM_PORT, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--accuracy", type=float, default=None, help="Probability that a sample answers right.")
@click.option("--latency", type=float, default=None, help="Seconds before the first token (median if --latency-sigma).")
@click.option("--latency-sigma", type=float, default=None, help="Lognormal sigma for heavy-tailed latency.")
@click.option("--tokens-per-second", type=float, default=None, help="Generation speed (default: instant).")
@click.option("--fail-rate", type=float, default=None, help="Share of requests answered with an HTTP error.")
@click.option("--fail-status", type=int, default=None, help="HTTP status of those errors (default 500).")
@click.option("--judge-accuracy", type=float, default=None, help="How often a judge picks a right candidate.")
@click.option("--judge-mode", type=click.Choice(["normal", "garbage", "verbose"]), default=None,
              help="'garbage': a judge never gives a verdict; 'verbose': a long analysis precedes it (default normal).")
@click.option("--dataset", type=click.Path(exists=True, dir_okay=False), default=None,
              help="JSONL with question/answer fields whose gold answers the simulator knows.")
@click.option("--seed", type=int, default=None, help="Makes the whole server reproducible.")
@click.option("--model-name", default=None, help="Model id listed by /v1/models (default heavy-simulated).")
@click.option("--batch-seconds", type=float, default=None,
              help="Seconds a batch job takes from creation to its end (default 2).")
@click.option("--batch-expire-rate", type=float, default=None,
              help="Share of a batch job's requests that expire unanswered (default 0).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def sim(port: int, host: str, dataset: str | None, log_level: str, **knobs: float | str | None) -> None:
    """Serve heavy's simulated LLM on HOST:PORT (OpenAI Chat Completions and Responses, Azure's v1 routes, Anthropic
    and Gemini wire formats), holding real model names to their APIs' documented refusals. Not a real model.

    \b
    A request's model name may override these settings, e.g.
    heavy-simulated@accuracy=0.6,latency=0.2"""

    def go() -> None:
        from ..errors import describe_validation
        from ..remote.listener import listen, require_server_deps, serve
        from ..sim import SimConfig, SimulatedLLM, load_dataset

        require_server_deps("heavy sim", ("uvicorn",))  # the simulator is a raw ASGI app: no starlette
        values = {k: v for k, v in knobs.items() if v is not None}
        if dataset:
            values["dataset"] = load_dataset(dataset)
        try:
            config = SimConfig(**values)
        except ValueError as exc:
            fail(f"invalid simulator setting: {describe_validation(exc)}")
        sock = listen(host, port)
        click.echo(f"heavy sim: simulated LLM (not a real model) on http://{host}:{port} — OpenAI-compatible under "
                   "/v1, Anthropic at /v1/messages, Gemini under /v1beta", err=True)
        serve(SimulatedLLM(config), host=host, port=port, log_level=log_level, sock=sock)

    run_guarded(go)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def config(as_json: bool) -> None:
    """Print the effective configuration (config file, defaults, providers with keys masked, prices) and every
    run option with where its value comes from (built-in < config file < HEAVY_<OPTION> environment)."""

    def go() -> None:
        import json

        from ..config import describe, load_config
        from ..settings import ENV_PREFIX

        info = describe(load_config())
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        click.echo(f"config file: {info['config_file']}")
        click.echo("defaults: " + (", ".join(f"{k}={v}" for k, v in info["defaults"].items()) or "built-in"))
        click.echo("providers:")
        width = max(len(name) for name in info["providers"])
        for name, p in info["providers"].items():
            limits = f"  limits {p['limits']}" if "limits" in p else ""
            key = f"{p['key_env']} {p['key']}" if p["key_env"] else "no key needed"
            if p["key_env"] and not p["key_required"]:
                key += " (optional)"
            click.echo(f"  {name:<{width}} {p['base_url']:<56} {key}{limits}")
        if info["prices"]:
            click.echo("price overrides (USD / 1M tokens): " + ", ".join(
                f"{k}: in {v['input']}, out {v['output']}" for k, v in info["prices"].items()))
        if info["environment"]:
            click.echo("environment: " + ", ".join(f"{ENV_PREFIX}{k.upper()}={v}"
                                                    for k, v in info["environment"].items()))
        click.echo("run options (flags and requests override them):")
        for name, option in info["run_options"].items():
            click.echo(f"  {name:<17} {option['value']!s:<24} {option['from']}")

    run_guarded(go)
