"""The runtime: llama.cpp's own ``llama-server``, built once per machine from pinned sources.

The sources are the ``vendor/llama.cpp`` tree of the ``llama-cpp-python`` sdist (pinned version and
sha256 in :mod:`heavy.local.catalog`). cmake builds only the ``llama-server`` target, statically
linked and tuned to this CPU (``GGML_NATIVE``), without the web UI, TLS or any network access during
the build. On 2 cores that takes about 12 minutes (739 s measured on a 2-core x86-64 VM); the result is cached under
``$HEAVY_HOME/runtime/llama-server-<version>-<cpu tag>/`` so later runs find it instantly. The CPU
tag hashes the CPU's feature flags: a cache copied to a machine with other features builds anew.

``HEAVY_LLAMA_SERVER=/path/to/llama-server`` uses an existing binary instead of building one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from .catalog import RUNTIME_SDIST
from .download import Downloader, pip_download
from .errors import IntegrityError, SetupError
from .home import Layout, file_lock, read_json, sha256_file, write_json_atomic

__all__ = ["cpu_tag", "runtime_tag", "find_runtime", "ensure_runtime", "cmake_args", "BINARY_ENV"]

log = logging.getLogger("heavy.local")
Progress = Callable[[str], None]

#: Use this llama-server binary instead of building one.
BINARY_ENV = "HEAVY_LLAMA_SERVER"


def cpu_tag() -> str:
    """``<arch>-<12 hex>``: the machine architecture and a hash of the CPU feature flags."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = " ".join(sorted(line.split(":", 1)[1].split()))
                break
    except OSError:
        flags = platform.processor()
    arch = platform.machine() or "unknown"
    return f"{arch}-{hashlib.sha256(f'{arch} {flags}'.encode()).hexdigest()[:12]}"


def runtime_tag(version: str | None = None) -> str:
    return f"llama-server-{version or RUNTIME_SDIST.version}-{cpu_tag()}"


def cmake_args(source: Path, build: Path) -> list[str]:
    """Configure flags: the server only, native CPU tuning, static, no UI download, no TLS, no curl."""
    return [
        "-S", str(source), "-B", str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        "-DGGML_NATIVE=ON",
        "-DBUILD_SHARED_LIBS=OFF",
        "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON",
        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",  # no npm, no download at build time
        "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF",  # serves plain HTTP on 127.0.0.1 only
    ]


def find_runtime(home: str | os.PathLike[str] | None = None) -> Path | None:
    """The llama-server binary to run, or ``None`` when it is not built yet."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    rdir = Layout(home).runtime_dir(runtime_tag())
    binary = rdir / "bin" / "llama-server"
    if binary.is_file() and os.access(binary, os.X_OK) and read_json(rdir / "build.json"):
        return binary
    return None


def _require_tools() -> None:
    missing = [tool for tool in ("cmake",) if not shutil.which(tool)]
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        missing.append("a C++ compiler")
    if not (shutil.which("make") or shutil.which("ninja")):
        missing.append("make")
    if missing:
        raise SetupError(
            f"building llama-server needs {', '.join(missing)}: install them (e.g. `apt-get install cmake g++ make`)"
            f" and rerun `heavy local setup`, or set {BINARY_ENV} to an existing llama-server binary"
        )


def _extract_llama_cpp(sdist: Path, dest: Path) -> Path:
    """Unpack only ``vendor/llama.cpp`` of the sdist into *dest*; return that directory."""
    prefix = "vendor/llama.cpp/"
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            top, _, rest = m.name.partition("/")
            if rest.startswith(prefix) and rest != prefix + ".git":  # .git points into a repo we do not ship
                members.append(m)
        if not members:
            raise SetupError(f"{sdist.name} has no vendor/llama.cpp tree; is the pinned version right?")
        tar.extractall(dest, members=members, filter="data")
    source = dest / members[0].name.partition("/")[0] / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").is_file():
        raise SetupError(f"{sdist.name}: vendor/llama.cpp has no CMakeLists.txt; is the pinned version right?")
    return source


def _run_logged(cmd: list[str], logf, *, on_line: Callable[[str], None] | None = None) -> int:
    logf.write(f"$ {' '.join(cmd)}\n")
    logf.flush()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, errors="replace")
    assert proc.stdout is not None
    for line in proc.stdout:
        logf.write(line)
        if on_line:
            on_line(line)
    logf.flush()
    return proc.wait()


def ensure_runtime(
    home: str | os.PathLike[str] | None = None,
    *,
    downloader: Downloader = pip_download,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> Path:
    """Return the llama-server binary, building it first if this machine has none yet (idempotent)."""
    say = progress or (lambda msg: log.info(msg))
    found = find_runtime(home)
    if found:
        return found
    if os.environ.get(BINARY_ENV):
        raise SetupError(f"{BINARY_ENV}={os.environ[BINARY_ENV]} is not an executable file; fix or unset it")
    layout = Layout(home)
    tag = runtime_tag()
    rdir = layout.runtime_dir(tag)
    with file_lock(layout.lock("runtime")):
        found = find_runtime(home)  # another process may have built it while we waited
        if found:
            return found
        _require_tools()
        rdir.mkdir(parents=True, exist_ok=True)
        build_log = rdir / "build.log"
        scratch = layout.downloads / f"build-{tag}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            return _build(layout, rdir, scratch, build_log, downloader, say, jobs)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _build(layout: Layout, rdir: Path, scratch: Path, build_log: Path, downloader: Downloader,
           say: Progress, jobs: int | None) -> Path:
    src = RUNTIME_SDIST
    t0 = time.monotonic()
    say(f"downloading the llama.cpp sources ({src.package}=={src.version} sdist, ~{src.size // 10**6} MB)")
    sdist = downloader(src.package, src.version, scratch / "sdist", sdist=True)
    digest = sha256_file(sdist)
    if digest != src.sha256:
        raise IntegrityError(f"{sdist.name} has sha256 {digest}, expected {src.sha256}; it was not used. "
                             "Rerun `heavy local setup`; if it persists the package index serves other bytes")
    source = _extract_llama_cpp(sdist, scratch / "src")
    sdist.unlink()
    jobs = jobs or os.cpu_count() or 1
    say(f"building llama-server with cmake on {jobs} core(s), once per machine: ~12 minutes on 2 cores "
        f"(it compiles llama.cpp, tuned to this CPU; log: {build_log})")
    build = scratch / "build"
    shown = [-1]

    def on_line(line: str) -> None:
        m = re.match(r"\[\s*(\d+)%\]", line)
        if m and int(m.group(1)) // 10 > shown[0]:
            shown[0] = int(m.group(1)) // 10
            say(f"building llama-server: {int(m.group(1))}%")

    with open(build_log, "w") as logf:
        for step, cmd in (("configure", ["cmake", *cmake_args(source, build)]),
                          ("build", ["cmake", "--build", str(build), "--config", "Release",
                                     "--target", "llama-server", "-j", str(jobs)])):
            try:
                rc = _run_logged(cmd, logf, on_line=on_line if step == "build" else None)
            except OSError as exc:
                rc, _ = -1, logf.write(f"cannot run {cmd[0]}: {exc}\n")
            if rc != 0:
                raise SetupError(f"building llama-server failed at cmake {step} (exit {rc}); "
                                 f"see the build log: {build_log}", log=build_log)
    built = build / "bin" / "llama-server"
    if not built.is_file():
        raise SetupError(f"the build finished but produced no llama-server; see the build log: {build_log}",
                         log=build_log)
    (rdir / "bin").mkdir(parents=True, exist_ok=True)
    binary = rdir / "bin" / "llama-server"
    tmp = binary.with_name(".llama-server.tmp")
    shutil.copy2(built, tmp)
    os.replace(tmp, binary)
    try:
        ver = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
        version_text = (ver.stdout + ver.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"the built llama-server does not run ({exc}); see the build log: {build_log}",
                         log=build_log) from None
    if ver.returncode != 0:
        raise SetupError(f"the built llama-server does not run (exit {ver.returncode}); see {build_log}",
                         log=build_log)
    seconds = round(time.monotonic() - t0, 1)
    write_json_atomic(rdir / "build.json", {
        "package": src.package, "version": src.version, "cpu_tag": cpu_tag(), "seconds": seconds,
        "cmake_args": cmake_args(Path("SRC"), Path("BUILD")), "jobs": jobs,
        "llama_server_version": version_text.splitlines()[-2:] if version_text else [],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    say(f"llama-server built in {seconds:.0f} s: {binary}")
    return binary
