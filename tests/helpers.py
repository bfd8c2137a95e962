"""Helpers for tests that need a real `heavy sim` server process on 127.0.0.1 (stopped by PID)."""

from __future__ import annotations

import ast
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_heavy(command: str, *args: str, env: dict[str, str] | None = None,
                  stderr: Path | None = None) -> Iterator[str]:
    """Start `heavy COMMAND --port P ARGS…`, wait for /health, yield its root URL, stop it by PID. With *stderr*,
    the process writes its stderr to that file (a test reads its log there)."""
    port = free_port()
    errlog = stderr.open("w") if stderr else subprocess.PIPE
    proc = subprocess.Popen([sys.executable, "-m", "heavy.cli", command, "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=errlog, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            if proc.poll() is not None:
                raise RuntimeError(f"heavy {command} exited: "
                                   f"{stderr.read_text() if stderr else proc.stderr.read().decode()}")
            try:
                if httpx.get(f"{base}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"heavy {command} did not become healthy")
        yield base
    finally:
        stop(proc)
        if stderr:
            errlog.close()


def stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started, by its PID: terminate, and kill it if it does not end within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, what: str, tries: int = 200) -> subprocess.Popen:
    """*proc* once *url* answers 200 (polled every 50 ms); it is killed and SystemExit raised if it never does."""
    for _ in range(tries):
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{what} did not start")


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """*handler* served on a free port of 127.0.0.1 in a thread; yields the ``/v1`` base URL, then stops it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def running_sim(*args: str) -> Iterator[str]:
    """`heavy sim` on a free port of 127.0.0.1 (see :func:`running_heavy`)."""
    with running_heavy("sim", *args) as base:
        yield base


def arithmetic_questions(k: int, seed: int = 0) -> list[tuple[str, str]]:
    """*k* reproducible "What is a * b + c?" questions with their answers (the simulator solves them)."""
    rng = random.Random(seed)
    out = []
    for _ in range(k):
        a, b, c = rng.randint(11, 99), rng.randint(2, 19), rng.randint(1, 50)
        out.append((f"What is {a} * {b} + {c}?", str(a * b + c)))
    return out


def sim_heavy(config=None, model="openai:heavy-simulated", base_url="http://sim.test/v1", **kw):
    """A Heavy wired to an in-process simulator app (the network edge is the ASGI transport)."""
    import httpx

    from heavy import Heavy
    from heavy.sim import SimConfig, SimulatedLLM

    app = SimulatedLLM(config or SimConfig())
    return Heavy(model=model, base_url=base_url, transport=httpx.ASGITransport(app=app), **kw), app


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module the source file *path* (a module of *package*) imports, relative imports made absolute;
    ``from x import y`` also counts ``x.y`` (``from .. import sim`` imports heavy.sim)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            found |= {module, *(f"{module}.{a.name}" for a in node.names)}
    return found

