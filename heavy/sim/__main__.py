"""``python -m heavy.sim``: serve the simulated LLM over HTTP (needs ``heavy[serve]``)."""

from __future__ import annotations

import argparse
import sys

from ..constants import SIM_PORT
from ..errors import HeavyError
from .config import SimConfig, load_dataset
from .server import serve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m heavy.sim",
        description="Serve heavy's simulated LLM (not a real model) in three wire formats: OpenAI at /v1, "
        "Anthropic at /v1/messages, Gemini at /v1beta/models/MODEL:generateContent. Per request, "
        "the model name may override settings: 'simulated@accuracy=0.6,latency=0.2'.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=SIM_PORT, help="port (default: %(default)s)")
    p.add_argument("--accuracy", type=float, help="probability a sample answers right (default 0.7)")
    p.add_argument("--latency", type=float, help="seconds before the first token (median if --latency-sigma)")
    p.add_argument("--latency-sigma", type=float, help="lognormal sigma of the latency (heavy tails)")
    p.add_argument("--tokens-per-second", type=float, help="generation speed (default: instant)")
    p.add_argument("--fail-rate", type=float, help="probability a request fails")
    p.add_argument("--fail-status", type=int, help="HTTP status of injected failures (default 500)")
    p.add_argument("--judge-accuracy", type=float, help="probability a judge picks the gold answer")
    p.add_argument("--judge-mode", choices=["normal", "garbage"], help="'garbage': judge never gives a verdict")
    p.add_argument("--seed", type=int, help="make the server reproducible")
    p.add_argument("--model-name", help="model id listed by /v1/models (default heavy-simulated)")
    p.add_argument("--dataset", help="JSONL file of {question, answer} records the model 'knows'")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default: %(default)s)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the config, serve until interrupted; returns the exit status."""
    args = _parser().parse_args(argv)
    fields = {k: v for k, v in vars(args).items() if v is not None and k not in ("host", "port", "dataset", "log_level")}
    try:
        if args.dataset:
            fields["dataset"] = load_dataset(args.dataset)
        config = SimConfig(**fields)
    except (HeavyError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"heavy simulated LLM (NOT a real model) on http://{args.host}:{args.port}/v1 "
        f"model={config.model_name} accuracy={config.accuracy} dataset={len(config.dataset)} questions",
        file=sys.stderr,
        flush=True,
    )
    try:
        serve(config, host=args.host, port=args.port, log_level=args.log_level)
    except HeavyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
