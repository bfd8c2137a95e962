"""Helpers for tests that need a real `heavy sim` server process on 127.0.0.1 (stopped by PID)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_heavy(command: str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `heavy COMMAND --port P ARGS…`, wait for /health, yield its root URL, stop it by PID."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "heavy.cli", command, "--port", str(port), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            if proc.poll() is not None:
                raise RuntimeError(f"heavy {command} exited: {proc.stderr.read().decode()}")
            try:
                if httpx.get(f"{base}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"heavy {command} did not become healthy")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_sim(*args: str) -> Iterator[str]:
    """`heavy sim` on a free port of 127.0.0.1 (see :func:`running_heavy`)."""
    with running_heavy("sim", *args) as base:
        yield base
