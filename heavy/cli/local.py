"""``heavy local``: set up, start, stop and inspect heavy's embedded local model server."""

from __future__ import annotations

import json

import click

from .. import constants as C
from . import run_guarded

BUILD_MINUTES = 12  # measured: 739 s on a 2-core x86-64 VM (llama-cpp-python 0.3.36's llama.cpp)


def _say(message: str) -> None:
    click.echo(f"heavy local: {message}", err=True)


@click.group()
def local() -> None:
    """Run a real small LLM on this machine (CPU only) as heavy's local model server.

    \b
    Set up once (builds llama.cpp's llama-server, ~12 minutes on 2 cores, and downloads
    a sha256-verified model; both cached under $HEAVY_HOME, default ~/.cache/heavy):
        heavy local setup                      # default model qwen2.5-coder-1.5b (1.1 GB)
        heavy local setup --model smollm2-135m # tiny (98 MB), fast, poor answers
    Start the server in the background on 127.0.0.1:8377, then ask through the `local` preset:
        heavy local start
        heavy ask -m local -n 8 "What is 17 * 24 + 3?"
    Stop it (SIGTERM by PID, SIGKILL after a timeout) and inspect:
        heavy local stop
        heavy local status [--json]
        heavy local models

    On another port (`heavy local start --port P`) export
    HEAVY_LOCAL_BASE_URL=http://127.0.0.1:P/v1 so `-m local` reaches it.
    """


@local.command()
@click.option("--model", "model", default=None, metavar="KEY",
              help=f"Model to download (see `heavy local models`). Default: {C.LOCAL_DEFAULT_MODEL}.")
@click.option("--slots", type=int, default=None,
              help=f"Parallel slots `heavy local start` will use by default (default {C.LOCAL_DEFAULT_SLOTS}).")
@click.option("--keep-default", is_flag=True,
              help="Install this model without making it the default of `heavy local start` (CI uses this).")
@click.option("--rebuild", is_flag=True,
              help="Delete this machine's cached llama-server build and build it again (e.g. when it crashes).")
def setup(model: str | None, slots: int | None, keep_default: bool, rebuild: bool) -> None:
    """Download a verified model and build llama-server (idempotent).

    The build runs once per machine and the download once per model; later runs return at once. A
    fresh build must load the model and generate a few tokens (a smoke test) before it is used; if it
    fails, setup retries once with portable CPU flags and says so.
    """

    def go() -> None:
        from .. import local as L

        key = model or L.read_config().get("model") or C.LOCAL_DEFAULT_MODEL
        size = L.get_model(key).size
        todo = []
        if rebuild or L.find_runtime() is None:
            todo.append(f"build llama-server from source (~{BUILD_MINUTES} minutes on 2 cores, once per machine)")
        if not L.model_installed(key):
            todo.append(f"download and verify {key} ({size / 1e6:.0f} MB, once)")
        if todo:
            _say("first-time setup: " + "; ".join(todo) + f". Cache: {L.heavy_home()}")
        report = L.setup(key, slots=slots, progress=_say, make_default=not keep_default, rebuild=rebuild)
        for path in report.get("removed_runtimes", []):
            _say(f"removed the cached build {path}")
        took = [f"{what} {report[k]:.0f} s" for what, k in (("build", "runtime_seconds"), ("download", "model_seconds"))
                if report.get(k)]
        _say(f"ready: {report['model']} at {report['model_path']}" + (f" ({', '.join(took)})" if took else ""))
        _say("next: `heavy local start`, then `heavy ask -m local \"...\"`")

    run_guarded(go)


@local.command()
@click.option("--model", "model", default=None, metavar="KEY",
              help="Model to serve (default: the one `heavy local setup` recorded).")
@click.option("--port", type=int, default=C.LOCAL_PORT, show_default=True, help="Port on 127.0.0.1.")
@click.option("--slots", type=int, default=None,
              help=f"Requests decoded in parallel (llama-server -np; default {C.LOCAL_DEFAULT_SLOTS}).")
@click.option("--ctx", type=int, default=None,
              help=f"Context tokens per slot (default {C.LOCAL_CTX_PER_SLOT}); the server gets slots x ctx.")
@click.option("--timeout", type=float, default=C.LOCAL_START_TIMEOUT, show_default=True,
              help="Seconds to wait for the server to become healthy.")
def start(model: str | None, port: int, slots: int | None, ctx: int | None, timeout: float) -> None:
    """Start the server in the background; print its URL.

    Waits until /health is ok, then prints the base URL on stdout (progress on stderr).
    """

    def go() -> None:
        from .. import local as L

        try:
            server = L.start(model, port=port, slots=slots, ctx=ctx, timeout=timeout)
        except L.ServerStartError as exc:
            for line in exc.log_tail:
                click.echo(f"  | {line}", err=True)
            raise
        verb = "already running" if server.already_running else "started"
        _say(f"{verb}: {server.model} on {server.base_url} (pid {server.pid}, {server.slots} slots x "
             f"{server.ctx_per_slot} ctx; log {server.log})")
        if not server.is_default_endpoint:
            _say(f"non-default port: export HEAVY_LOCAL_BASE_URL={server.base_url} so `-m local` reaches it")
        flag = "" if server.is_default_endpoint else f" --port {server.port}"
        _say(f"stop it with `heavy local stop{flag}`")
        click.echo(server.base_url)

    run_guarded(go)


@local.command()
@click.option("--port", type=int, default=None, help="Stop only the server on this port (default: all of heavy's).")
@click.option("--timeout", type=float, default=C.LOCAL_STOP_TIMEOUT, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
def stop(port: int | None, timeout: float) -> None:
    """Stop the server(s) by PID (SIGTERM, then SIGKILL).

    Also removes stale PID files.
    """

    def go() -> None:
        from .. import local as L

        results = L.stop(port, timeout=timeout)
        if not any(r["result"] in ("stopped", "killed") for r in results):
            _say("no heavy local server is running" + (f" on port {port}" if port is not None else ""))
        for r in results:
            if r["result"] == "stale":
                _say(f"removed a stale PID file (port {r['port']}, pid {r['pid']} was not running)")
            else:
                how = "" if r["result"] == "stopped" else " with SIGKILL after the timeout"
                _say(f"stopped {r['model']} on port {r['port']} (pid {r['pid']}){how}")

    run_guarded(go)


@local.command()
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
def status(as_json: bool) -> None:
    """Show the server (model, port, slots, pid) and setup.

    Also where the runtime, models, logs and PID files are.
    """

    def go() -> None:
        from .. import local as L

        info = L.status()
        if as_json:
            click.echo(json.dumps(info))
            return
        if not info["servers"]:
            click.echo("server: not running (start it with `heavy local start`)")
        for s in info["servers"]:
            click.echo(f"server: running {s['model']} on {s['base_url']} (pid {s['pid']}, {s['slots']} slots x "
                       f"{s['ctx_per_slot']} ctx, health {s['health']}); log {s['log']}")
        rt = info["runtime"]
        click.echo(f"runtime: {'built' if rt['built'] else 'not built (run `heavy local setup`)'}: {rt['path']}")
        for m in info["models"]:
            state = "installed" if m["installed"] else "not downloaded"
            click.echo(f"model: {m['key']} ({m['params']}, {m['size'] / 1e6:.0f} MB) {state}: {m['path']}")
        click.echo(f"defaults: model {info['default_model']}, {info['default_slots']} slots; home {info['home']}")

    run_guarded(go)


@local.command()
def models() -> None:
    """List installable models, one per line, key first.

    Columns: key, parameters, size, installed or -, summary.
    """

    def go() -> None:
        from .. import local as L

        for key, m in L.MODELS.items():
            mark = "installed" if L.model_installed(key) else "-"
            click.echo(f"{key}\t{m.params}\t{m.size / 1e6:.0f} MB\t{mark}\t{m.summary}")

    run_guarded(go)
