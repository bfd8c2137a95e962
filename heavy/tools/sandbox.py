"""Run model-written Python in a sandbox: a separate, limited, isolated process (Linux).

:func:`run_python` writes the code to a fresh temporary directory, runs ``python -I -u main.py`` there
through :mod:`heavy.tools._launcher` and returns a :class:`SandboxResult`: captured (truncated)
stdout/stderr, the exit status, why it was stopped if it was, and an :class:`Isolation` report saying
what the operating system actually let the launcher isolate on this machine. The directory is deleted
afterwards, whatever happened.

What holds on every Linux machine: the program is a separate process started with an **empty
environment** (no API keys, no ``PATH``), in a fresh temporary working directory, under
``RLIMIT_CPU``, ``RLIMIT_AS`` (memory), ``RLIMIT_FSIZE``, ``RLIMIT_NPROC`` and ``RLIMIT_NOFILE``, with a
wall-clock timeout (the whole process group is killed) and stdout/stderr truncated. Started as root it
runs as a uid of its own (:data:`heavy.constants.SANDBOX_UID_BASE` + the launcher's pid), so the
process limit is per sandbox and nothing of it outlives the run. Where namespaces are allowed, it also
has **no network**, its own PID namespace (nothing survives the run) and its own mounts (home
directories and temp dirs hidden). See ``docs/tools.md`` for the exact list of what is and is not
isolated.

``channel=True`` gives the program one more pipe, its write end's descriptor number in ``sys.argv[1]``
and read into :attr:`SandboxResult.channel`: only the program itself holds it (not the launcher, not
init), so a program that keeps it from the code it runs has a report channel that code cannot reach
(:mod:`heavy.tools.codecheck` does exactly that).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ..constants import SANDBOX_UID_BASE, SANDBOX_UID_SPAN

__all__ = ["SandboxLimits", "Isolation", "SandboxResult", "run_python", "LAUNCHER"]

LAUNCHER = str(Path(__file__).with_name("_launcher.py"))
NOBODY = 65534
#: Output beyond this many bytes (stdout + stderr) stops the program: it is only discarded anyway.
OUTPUT_KILL_BYTES = 16 * 1024 * 1024
#: Most bytes kept from the report channel (``channel=True``); the rest is dropped and flagged.
CHANNEL_MAX_BYTES = 4 * 1024 * 1024


def sandbox_uid(uid: int | None) -> bool:
    """Whether *uid* is one of the per-sandbox uids (owned by one sandbox run, by nothing else)."""
    return uid is not None and SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SPAN


class SandboxLimits(BaseModel):
    """Limits of one sandboxed run (every one is enforced by the kernel except ``timeout``, by heavy)."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(10.0, gt=0, description="wall-clock seconds before the process group is killed")
    cpu_seconds: int = Field(10, ge=1, description="RLIMIT_CPU: SIGXCPU at this many CPU seconds, SIGKILL 1 s later")
    memory_mb: int = Field(512, ge=32, description="RLIMIT_AS: address space in MiB (allocations beyond fail)")
    file_size_mb: int = Field(16, ge=1, description="RLIMIT_FSIZE: largest file the program may write, in MiB")
    max_processes: int = Field(32, ge=1, description="RLIMIT_NPROC: processes/threads of the sandbox")
    max_open_files: int = Field(64, ge=8, description="RLIMIT_NOFILE: open file descriptors")
    max_output_bytes: int = Field(64_000, ge=256, description="stdout and stderr are each kept up to this size")

    def rlimits(self) -> dict[str, int]:
        mib = 1024 * 1024
        return {"cpu": self.cpu_seconds, "as": self.memory_mb * mib, "fsize": self.file_size_mb * mib,
                "nproc": self.max_processes, "nofile": self.max_open_files}


class Isolation(BaseModel):
    """What the launcher managed to isolate for one run (the OS decides; nothing is assumed)."""

    model_config = ConfigDict(extra="ignore")

    namespaces: bool = False
    network: str = "not isolated"
    pid_namespace: bool = False
    proc: str = "host"
    hidden: list[str] = Field(default_factory=list)
    uid: int | None = None
    nproc: str = "unknown"
    nproc_scope: str = "unknown"
    filesystem: str = "writable where the uid may write"
    notes: list[str] = Field(default_factory=list)

    @property
    def network_isolated(self) -> bool:
        return self.network == "isolated"

    @property
    def nproc_enforced(self) -> bool:
        return self.nproc == "enforced"

    @property
    def nproc_isolated(self) -> bool:
        """Whether the process limit counts this sandbox's processes only (not other sandboxes')."""
        return self.nproc_enforced and self.nproc_scope.startswith("this sandbox only")

    def summary(self) -> str:
        """One line for a tool result: ``no network, own pid namespace, own uid``."""
        parts = ["no network" if self.network_isolated else "network NOT isolated"]
        parts.append("own pid namespace" if self.pid_namespace else "host pid namespace")
        if sandbox_uid(self.uid):
            parts.append("own uid")
        elif self.uid is not None:
            parts.append("uid nobody" if self.uid == NOBODY else f"uid {self.uid}")
        return ", ".join(parts)


class SandboxResult(BaseModel):
    """The outcome of one sandboxed run."""

    model_config = ConfigDict(extra="forbid")

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: int | None = None
    stopped: str | None = Field(None, description="why heavy or the kernel stopped the program, if it did")
    duration_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    isolation: Isolation = Field(default_factory=Isolation)
    workdir: str = ""
    channel: str | None = Field(None, description="what the program wrote to its report channel (channel=True)")
    channel_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.stopped is None

    def describe(self, limit: int = 4000) -> str:
        """The result as the model sees it: output (head and tail kept when long) and how it ended."""
        out = _excerpt(self.stdout, limit)
        err = _excerpt(self.stderr, limit // 2)
        parts = []
        if out:
            parts.append(out + ("\n[stdout truncated]" if self.stdout_truncated else ""))
        if err:
            parts.append("stderr:\n" + err + ("\n[stderr truncated]" if self.stderr_truncated else ""))
        if self.stopped:
            parts.append(f"[stopped: {self.stopped}]")
        elif self.exit_code not in (0, None):
            parts.append(f"[exit code {self.exit_code}]")
        return "\n".join(parts) if parts else "[no output]"


def _excerpt(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text.rstrip("\n")
    head = text[: limit * 2 // 3]
    tail = text[-(limit // 3):]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters cut ...]\n{tail}".rstrip("\n")


# --- what the launcher needs to know about this Python ----------------------------------------------


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _python_paths() -> list[str]:
    """The directories the interpreter needs (prefixes, stdlib, site-packages), outermost only."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    found = {os.path.dirname(os.path.realpath(sys.executable)), os.path.dirname(os.path.abspath(sys.executable)),
             *prefixes}
    for entry in sys.path:
        real = os.path.realpath(entry) if entry else ""
        if real and os.path.isdir(real) and any(_under(real, p) for p in prefixes):
            found.add(real)
    ordered = sorted(found, key=len)
    out: list[str] = []
    for p in ordered:
        if not any(_under(p, kept) for kept in out):
            out.append(p)
    return out


def _hidden_dirs() -> list[str]:
    home = os.path.realpath(os.path.expanduser("~"))
    dirs = ["/root", "/home", "/tmp", "/var/tmp", "/dev/shm"]
    if home not in ("/", "") and not any(_under(home, d) for d in dirs):
        dirs.append(home)
    return dirs


# --- running ------------------------------------------------------------------------------------


@dataclass
class _Capture:
    limit: int
    data: bytearray
    total: int = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


async def run_python(code: str, *, limits: SandboxLimits | None = None, files: dict[str, str] | None = None,
                     namespaces: bool = True, channel: bool = False) -> SandboxResult:
    """Run *code* (as ``main.py``, next to *files*) in the sandbox and return what happened.

    ``namespaces=False`` skips the namespace isolation (to test the fallback a machine without it gets).
    ``channel=True`` gives the program a report pipe (see the module docstring).
    Never raises for anything the program does; a sandbox that cannot start at all is reported in
    ``stderr`` with exit code 126.
    """
    limits = limits or SandboxLimits()
    workdir = tempfile.mkdtemp(prefix="heavy-sandbox-")
    try:
        root = Path(workdir)
        for name, content in {**(files or {}), "main.py": code}.items():
            target = (root / name).resolve()
            if not _under(str(target), os.path.realpath(workdir)):
                raise ValueError(f"sandbox file {name!r} is outside the work directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        return await _run(workdir, limits, namespaces, channel)
    finally:
        _remove(workdir)


async def _run(workdir: str, limits: SandboxLimits, namespaces: bool, channel: bool) -> SandboxResult:
    read_fd, write_fd = os.pipe()
    chan_read, chan_write = os.pipe() if channel else (None, None)
    args = ["-I", "-u", "main.py"] + ([str(chan_write)] if channel else [])
    config = {
        "python": sys.executable, "args": args, "workdir": os.path.realpath(workdir),
        "limits": limits.rlimits(), "report_fd": write_fd, "namespaces": namespaces,
        "hide": _hidden_dirs(), "keep": _python_paths(), "uid_base": SANDBOX_UID_BASE, "channel_fd": chan_write,
        # What the program's uid must reach without namespaces: the interpreter by the path it is started from
        # (a venv's link in a private folder, e.g. mktemp's 0700, is out of reach even when its target is not).
        "keep_check": [os.path.abspath(sys.executable), os.path.realpath(sys.executable), os.path.dirname(os.__file__),
                       os.path.realpath(workdir)],
    }
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", LAUNCHER, json.dumps(config), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={}, start_new_session=True,
            pass_fds=(write_fd,) if chan_write is None else (write_fd, chan_write), cwd=workdir,
        )
    except BaseException:
        for fd in (read_fd, chan_read):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in (write_fd, chan_write):
            if fd is not None:
                os.close(fd)
    out, err = _Capture(limits.max_output_bytes, bytearray()), _Capture(limits.max_output_bytes, bytearray())
    report_lines: list[bytes] = []
    flooded = asyncio.Event()

    async def pump(stream: asyncio.StreamReader | None, capture: _Capture) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            capture.add(chunk)
            if out.total + err.total > OUTPUT_KILL_BYTES:
                flooded.set()

    loop = asyncio.get_running_loop()
    report_reader = asyncio.StreamReader()
    report_file = os.fdopen(read_fd, "rb", buffering=0)
    transport = chan_transport = None
    pumps: asyncio.Future | None = None
    chan = _Capture(CHANNEL_MAX_BYTES, bytearray())

    async def read_report() -> None:
        while line := await report_reader.readline():
            report_lines.append(line)

    stopped: str | None = None
    deadline = started + limits.timeout
    try:  # from here on a cancellation (a strategy stopping early) must still kill and reap the process
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(report_reader), report_file)
        readers = [pump(proc.stdout, out), pump(proc.stderr, err)]
        if chan_read is not None:
            chan_reader = asyncio.StreamReader()
            chan_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(chan_reader),
                                                             os.fdopen(chan_read, "rb", buffering=0))
            chan_read = None
            readers.append(_drain(chan_reader, chan))
        pumps = asyncio.gather(*readers, read_report())
        # Once cancelled (early stop, or a leftover holding a pipe) nobody awaits it: mark its
        # CancelledError as seen, or asyncio prints "exception was never retrieved" with a traceback.
        pumps.add_done_callback(_seen)
        # Poll the exit status: asyncio's proc.wait() also waits for the pipes, which a leftover child
        # of the program may hold open long after the program itself has ended.
        while proc.returncode is None:
            now = time.monotonic()
            if flooded.is_set():
                stopped = f"output limit: more than {OUTPUT_KILL_BYTES // 2**20} MiB written"
                break
            if now >= deadline:
                stopped = f"wall-clock timeout ({limits.timeout:g} s)"
                break
            await asyncio.sleep(min(0.02, deadline - now))
        _killpg(proc.pid)  # the program (if stopped) and its leftovers in our process group
        isolation, _ = _parse_report(report_lines)
        if not isolation.pid_namespace:
            if sandbox_uid(isolation.uid) and os.getuid() == 0:
                await _kill_uid(isolation.uid)
            _sweep(os.path.realpath(workdir))
        try:
            await asyncio.wait_for(asyncio.gather(proc.wait(), pumps), timeout=5.0)
        except asyncio.TimeoutError:  # a leftover outside our reach still holds a pipe open
            pumps.cancel()
    except BaseException:
        _killpg(proc.pid)
        # Cancelled (a strategy stopped early): reap the killed process and close its pipes before
        # re-raising, or its transport outlives the event loop ("Event loop is closed" at exit).
        if pumps is not None:
            pumps.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.shield(asyncio.wait_for(proc.wait(), timeout=5.0))
        raise
    finally:
        if transport is not None:
            transport.close()
        else:
            report_file.close()
        if chan_transport is not None:
            chan_transport.close()
        elif chan_read is not None:
            os.close(chan_read)
    duration = time.monotonic() - started
    isolation, status = _parse_report(report_lines)
    exit_code, sig = _status(status, proc.returncode)
    if stopped is None and sig is not None:
        stopped = _signal_reason(sig, limits)
    return SandboxResult(
        stdout=out.text(), stderr=err.text(), exit_code=exit_code, signal=sig, stopped=stopped,
        duration_s=round(duration, 3), stdout_truncated=out.truncated, stderr_truncated=err.truncated,
        isolation=isolation, workdir=workdir, channel=chan.text() if channel else None,
        channel_truncated=chan.truncated,
    )


def _seen(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


async def _drain(reader: asyncio.StreamReader, capture: _Capture) -> None:
    while chunk := await reader.read(65536):
        capture.add(chunk)


def _parse_report(lines: list[bytes]) -> tuple[Isolation, dict | None]:
    isolation, status = Isolation(notes=["the launcher reported nothing"]), None
    for raw in lines:
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if "status" in data:
            status = data["status"]
        else:
            isolation = Isolation.model_validate(data)
    return isolation, status


def _status(status: dict | None, returncode: int | None) -> tuple[int | None, int | None]:
    """(exit code, signal) of the program: from init's report when it ran in a PID namespace."""
    if status is not None:
        return status.get("exit"), status.get("signal")
    if returncode is None:
        return None, None
    return (None, -returncode) if returncode < 0 else (returncode, None)


def _signal_reason(sig: int, limits: SandboxLimits) -> str:
    if sig == signal.SIGXCPU:
        return f"CPU time limit ({limits.cpu_seconds} s)"
    if sig == signal.SIGXFSZ:
        return f"file size limit ({limits.file_size_mb} MiB)"
    if sig == signal.SIGKILL:
        return f"killed (CPU time limit of {limits.cpu_seconds} s, out of memory, or by a process of its own)"
    try:
        return f"killed by signal {signal.Signals(sig).name}"
    except ValueError:
        return f"killed by signal {sig}"


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def _kill_uid(uid: int) -> None:
    """Kill every process of a per-sandbox *uid* (without a PID namespace, leftovers may have left the
    process group and the work directory): ``kill(-1)`` from a process of that uid reaches all of them at
    once, a fork bomb included, and nothing else (the uid belongs to this run alone)."""
    try:
        killer = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", "-c", "import os\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass\n",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={}, user=uid, group=uid, extra_groups=[], cwd="/")
        await asyncio.wait_for(killer.wait(), timeout=10.0)
    except (OSError, asyncio.TimeoutError):  # the cwd sweep that follows is the fallback
        pass


def _sweep(workdir: str) -> None:
    """Without a PID namespace, kill processes that left our process group but still work in *workdir*."""
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except OSError:
            continue
        if _under(cwd.removesuffix(" (deleted)"), workdir):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


def _remove(workdir: str) -> None:
    """Delete the work directory, even when the program made parts of it unreadable or read-only."""
    shutil.rmtree(workdir, ignore_errors=True)
    if not os.path.lexists(workdir):
        return
    for root, dirs, _ in os.walk(workdir):  # top-down: open each directory up before walking into it
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), stat.S_IRWXU, follow_symlinks=False)
            except OSError:
                pass
    shutil.rmtree(workdir, ignore_errors=True)
