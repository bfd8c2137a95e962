"""Running llama-server in the background: start, stop, status, and a context manager for tests.

A started server is detached (its own session, output to ``logs/server-<port>.log``) and recorded in
a PID file, ``run/server-<port>.json``, holding its pid and settings. Everything else finds servers
through these files: ``stop`` signals the recorded pid (SIGTERM, then SIGKILL after a timeout) and
``status`` reports them. A PID file whose process is gone, or whose pid now belongs to another program,
is stale and is removed; heavy never signals a process it did not start.

The server binds 127.0.0.1 only and serves the model under the alias ``local``, so the ``local``
preset (``-m local``) reaches it at its default port without any setting.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import constants as C
from ..errors import ConfigError
from .catalog import get_model
from .errors import NotSetUp, PortInUse, ServerConflict, ServerStartError
from .home import Layout, file_lock, read_json, write_json_atomic
from .runtime import find_runtime
from .weights import model_installed, model_path

__all__ = ["LocalServer", "start", "stop", "servers", "serving", "port_free", "free_port", "health", "log_tail",
           "pid_alive", "exit_description"]

log = logging.getLogger("heavy.local")

# Servers started by this process: pid -> Popen, so stopping one also reaps it (no zombie).
_children: dict[int, subprocess.Popen] = {}


@dataclass
class LocalServer:
    """A llama-server heavy started, as recorded in its PID file."""

    pid: int
    port: int
    model: str
    model_path: str
    slots: int
    ctx_per_slot: int
    binary: str
    log: str
    pid_file: str
    host: str = C.LOCAL_HOST
    alias: str = C.LOCAL_MODEL_ALIAS
    started_at: float = 0.0
    already_running: bool = field(default=False, compare=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def is_default_endpoint(self) -> bool:
        """True when the `local` preset reaches this server without HEAVY_LOCAL_BASE_URL."""
        return self.host == C.LOCAL_HOST and self.port == C.LOCAL_PORT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("already_running")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalServer:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "already_running"}
        return cls(**known)


# --- processes and ports ----------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True when process *pid* exists and is not a zombie."""
    if pid <= 0:
        return False
    proc = _children.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server(pid: int, binary: str) -> bool:
    """True when *pid* is alive and runs *binary* (guards against a pid reused by another program)."""
    if not pid_alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # gone meanwhile, or no procfs (macOS): then trust the PID file
        return not Path("/proc").is_dir()
    return os.fsencode(binary) in args


def port_free(port: int, host: str = C.LOCAL_HOST) -> bool:
    """True when nothing listens on *host*:*port* (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = C.LOCAL_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def health(port: int, host: str = C.LOCAL_HOST, timeout: float = 2.0) -> str:
    """``ok``, ``loading`` (503 while the model loads), or ``down``."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=timeout) as resp:
            return "ok" if resp.status == 200 else "down"
    except urllib.error.HTTPError as exc:
        return "loading" if exc.code == 503 else "down"
    except (OSError, ValueError):
        return "down"


def log_tail(path: str | Path, lines: int = C.LOCAL_LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64_000))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


# --- PID files ----------------------------------------------------------------------------------------


def _load(pid_file: Path) -> LocalServer | None:
    data = read_json(pid_file)
    if not data:
        return None
    try:
        return LocalServer.from_dict(data)
    except TypeError:
        return None


def servers(home: str | os.PathLike[str] | None = None, *, clean: bool = True) -> list[LocalServer]:
    """The servers heavy started that are still running; stale PID files are removed when *clean*."""
    layout = Layout(home)
    out = []
    for pid_file in sorted(layout.run_dir.glob("server-*.json")) if layout.run_dir.is_dir() else []:
        server = _load(pid_file)
        if server is not None and _is_our_server(server.pid, server.binary):
            out.append(server)
        elif clean:
            log.info("removing stale PID file %s", pid_file)
            pid_file.unlink(missing_ok=True)
    return out


# --- start / stop -----------------------------------------------------------------------------------


def start(
    model: str | None = None,
    *,
    port: int | None = None,
    slots: int | None = None,
    ctx: int | None = None,
    home: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    extra_args: tuple[str, ...] = (),
    catalog: dict | None = None,
) -> LocalServer:
    """Start llama-server for *model* on 127.0.0.1:*port* in the background and wait until it is healthy.

    Idempotent: when heavy's server with the same model already runs on that port it is returned
    (``already_running=True``). *slots* parallel sequences share ``slots * ctx`` context tokens.
    """
    from .install import read_config

    layout = Layout(home)
    config = read_config(home)
    key = model or config.get("model") or C.LOCAL_DEFAULT_MODEL
    get_model(key, catalog)  # unknown key -> one clear error
    port = C.LOCAL_PORT if port is None else port
    if slots is not None and slots < 1:
        raise ConfigError(f"--slots must be at least 1, not {slots}")
    if ctx is not None and ctx < 256:
        raise ConfigError(f"--ctx must be at least 256 tokens per slot, not {ctx}")

    with file_lock(layout.lock("server-start")):  # concurrent starts: the second finds the first running
        return _start_locked(layout, config, key, port, slots, ctx, home, timeout, extra_args, catalog)


def _start_locked(layout: Layout, config: dict[str, Any], key: str, port: int, slots: int | None, ctx: int | None,
                  home: str | os.PathLike[str] | None, timeout: float | None, extra_args: tuple[str, ...],
                  catalog: dict | None) -> LocalServer:
    pid_file = layout.pid_file(port)
    running = _load(pid_file)
    if running is not None and _is_our_server(running.pid, running.binary):
        same = running.model == key and slots in (None, running.slots) and ctx in (None, running.ctx_per_slot)
        if same:
            running.already_running = True
            return running
        raise ServerConflict(
            f"port {port} already serves {running.model} (slots {running.slots}, ctx {running.ctx_per_slot}, "
            f"pid {running.pid}); run `heavy local stop --port {port}` first, or use another --port"
        )
    pid_file.unlink(missing_ok=True)  # stale

    binary = find_runtime(home)
    if binary is None:
        raise NotSetUp("llama-server is not built yet; run `heavy local setup` (builds it once: ~12 min on 2 cores)")
    if not model_installed(key, home, catalog=catalog):
        raise NotSetUp(f"model {key} is not downloaded yet; run `heavy local setup --model {key}`")
    if not port_free(port):
        raise PortInUse(
            f"port {port} on {C.LOCAL_HOST} is already in use by another program; pick another with --port "
            f"(then export HEAVY_LOCAL_BASE_URL=http://{C.LOCAL_HOST}:PORT/v1)"
        )

    slots = slots or int(config.get("slots") or C.LOCAL_DEFAULT_SLOTS)
    ctx = ctx or C.LOCAL_CTX_PER_SLOT
    path = model_path(key, home, catalog=catalog)
    log_path = layout.server_log(port)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), "--model", str(path), "--alias", C.LOCAL_MODEL_ALIAS, "--host", C.LOCAL_HOST,
           "--port", str(port), "--parallel", str(slots), "--ctx-size", str(slots * ctx), *extra_args]
    with open(log_path, "wb") as logf:
        logf.write(f"$ {' '.join(cmd)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, cwd=str(layout.root))
    _children[proc.pid] = proc
    server = LocalServer(pid=proc.pid, port=port, model=key, model_path=str(path), slots=slots, ctx_per_slot=ctx,
                         binary=str(binary), log=str(log_path), pid_file=str(pid_file), started_at=time.time())
    write_json_atomic(pid_file, server.to_dict())
    try:
        _wait_healthy(server, proc, C.LOCAL_START_TIMEOUT if timeout is None else timeout)
    except BaseException:
        _terminate(server.pid, C.LOCAL_STOP_TIMEOUT)
        pid_file.unlink(missing_ok=True)
        raise
    return server


def _wait_healthy(server: LocalServer, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rc = proc.poll()
        if rc is not None:
            # A signal (SIGSEGV, SIGILL) means the binary does not run on this CPU, not a bad setting.
            hint = ("; the llama-server build does not run on this CPU: run `heavy local setup --rebuild`"
                    if rc < 0 else "")
            raise ServerStartError(
                f"llama-server {exit_description(rc)} while starting{hint}; see {server.log}",
                log=Path(server.log), log_tail=log_tail(server.log),
            )
        if health(server.port, server.host, timeout=1.0) == "ok":
            return
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"llama-server did not become healthy within {timeout:.0f} s; see {server.log}",
                log=Path(server.log), log_tail=log_tail(server.log),
            )
        time.sleep(0.2)


def exit_description(rc: int) -> str:
    """``exited with code 3`` or ``was killed by signal 11 (SIGSEGV)`` for a Popen return code."""
    if rc >= 0:
        return f"exited with code {rc}"
    try:
        return f"was killed by signal {-rc} ({signal.Signals(-rc).name})"
    except ValueError:
        return f"was killed by signal {-rc}"


def _terminate(pid: int, timeout: float) -> str:
    """SIGTERM *pid*, wait up to *timeout* seconds, then SIGKILL. Returns ``stopped`` or ``killed``."""
    proc = _children.pop(pid, None)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "stopped"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            try:
                proc.wait(timeout=0.1)
                return "stopped"
            except subprocess.TimeoutExpired:
                continue
        if not pid_alive(pid):
            return "stopped"
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    return "killed"


def stop(port: int | None = None, *, home: str | os.PathLike[str] | None = None,
         timeout: float | None = None) -> list[dict[str, Any]]:
    """Stop heavy's server on *port*, or every server heavy started when *port* is None.

    Returns one ``{"port", "pid", "model", "result"}`` per PID file: result ``stopped`` (exited on
    SIGTERM), ``killed`` (needed SIGKILL) or ``stale`` (the process was already gone; file removed).
    """
    layout = Layout(home)
    files = [layout.pid_file(port)] if port is not None else \
        sorted(layout.run_dir.glob("server-*.json")) if layout.run_dir.is_dir() else []
    results = []
    for pid_file in files:
        if not pid_file.exists():
            continue
        server = _load(pid_file)
        if server is None:
            pid_file.unlink(missing_ok=True)
            results.append({"port": port, "pid": None, "model": None, "result": "stale"})
            continue
        if _is_our_server(server.pid, server.binary):
            result = _terminate(server.pid, C.LOCAL_STOP_TIMEOUT if timeout is None else timeout)
        else:
            _children.pop(server.pid, None)
            result = "stale"
        pid_file.unlink(missing_ok=True)
        results.append({"port": server.port, "pid": server.pid, "model": server.model, "result": result})
    return results


@contextlib.contextmanager
def serving(model: str, *, slots: int = 2, ctx: int | None = None, port: int | None = None,
            home: str | os.PathLike[str] | None = None, timeout: float | None = None,
            catalog: dict | None = None) -> Iterator[LocalServer]:
    """Start a server on a free port (or *port*) for the block, then stop it by its pid.

    Its log is removed after a clean exit and kept when the block raised.

    >>> with serving("smollm2-135m") as srv:          # doctest: +SKIP
    ...     Heavy(model="local", base_url=srv.base_url).ask_sync("2+2?")
    """
    server = start(model, port=port if port is not None else free_port(), slots=slots, ctx=ctx, home=home,
                   timeout=timeout, catalog=catalog)
    try:
        yield server
    except BaseException:
        if not server.already_running:
            stop(server.port, home=home)  # keep the log: it may explain the failure
        raise
    if not server.already_running:
        stop(server.port, home=home)
        Path(server.log).unlink(missing_ok=True)  # ephemeral port: do not pile up logs


def describe(server: LocalServer) -> dict[str, Any]:
    """A server's PID-file data plus its live state, for ``status``."""
    data = server.to_dict()
    data.update(base_url=server.base_url, running=True, health=health(server.port, server.host))
    return data
