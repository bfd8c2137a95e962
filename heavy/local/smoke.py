"""The smoke test a fresh llama-server build must pass before it is recorded as good.

A binary can build, print its version and still crash on this CPU: ggml's AMX kernels did, with
SIGSEGV at the first decode (see :mod:`heavy.local.runtime`). So the test does what ``heavy local
start`` and the first question will do: start the server on a free loopback port with a real model,
wait for ``/health``, and generate a few tokens through ``/completion``. Anything else (the process
dies, a signal, no tokens, no health within the time limit) raises :class:`SetupError` naming the log.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import constants as C
from .errors import SetupError
from .server import exit_description, free_port, health

__all__ = ["smoke_test"]


def smoke_test(binary: Path, model: Path, log: Path, *, timeout: float = C.LOCAL_SMOKE_TIMEOUT,
               tokens: int = C.LOCAL_SMOKE_TOKENS) -> str:
    """Serve *model* with *binary* on a free port and generate *tokens* tokens; return the text.

    The server runs only for the test and is stopped by its pid; its output goes to *log*.
    """
    port = free_port()
    cmd = [str(binary), "--model", str(model), "--host", C.LOCAL_HOST, "--port", str(port),
           "--parallel", "1", "--ctx-size", "512"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as logf:
        logf.write(f"$ {' '.join(cmd)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    try:
        return _exercise(proc, port, log, time.monotonic() + timeout, tokens)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=C.LOCAL_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _fail(why: str, log: Path) -> SetupError:
    return SetupError(f"the new llama-server failed its smoke test: {why}; see {log}", log=log)


def _exercise(proc: subprocess.Popen, port: int, log: Path, deadline: float, tokens: int) -> str:
    while health(port, C.LOCAL_HOST, timeout=1.0) != "ok":
        if proc.poll() is not None:
            raise _fail(f"it {exit_description(proc.returncode)} while loading the model", log)
        if time.monotonic() > deadline:
            raise _fail("it did not become healthy in time", log)
        time.sleep(0.2)
    body = json.dumps({"prompt": "1 + 1 =", "n_predict": tokens, "temperature": 0, "cache_prompt": False})
    request = urllib.request.Request(f"http://{C.LOCAL_HOST}:{port}/completion", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=max(1.0, deadline - time.monotonic())) as resp:
            reply = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        time.sleep(0.5)  # a crash closes the socket before the process is reaped
        if proc.poll() is not None:
            raise _fail(f"it {exit_description(proc.returncode)} generating its first tokens", log) from None
        raise _fail(f"generating failed ({exc})", log) from None
    text = reply.get("content") if isinstance(reply, dict) else None
    if not isinstance(text, str) or not int(reply.get("tokens_predicted") or len(text) > 0):
        raise _fail(f"it generated nothing (reply {str(reply)[:200]})", log)
    return text
