"""The runtime: llama.cpp's own ``llama-server``, built once per machine from pinned sources.

The sources are the ``vendor/llama.cpp`` tree of the ``llama-cpp-python`` sdist (pinned version and
sha256 in :mod:`heavy.local.catalog`). cmake builds only the ``llama-server`` target, statically
linked, without the web UI, TLS or any network access during the build. On 2 cores that takes about 12
minutes (739 s measured on a 2-core x86-64 VM).

Two flag sets are tried in order (:func:`flag_sets`):

``native``
    tuned to this CPU (``GGML_NATIVE``) but **without AMX**: on CPUs with AMX tiles (Sapphire Rapids and
    later) ggml's AMX kernels crash with SIGSEGV at ``ldtilecfg`` on the first decode (llama.cpp issue
    20824, closed without a fix), so ``-mno-amx-tile -mno-amx-int8 -mno-amx-bf16`` switch them off. GCC
    keeps explicitly disabled extensions off whatever ``-march=native`` enables.
``portable``
    no ``-march=native``: only the SIMD extensions this CPU reports (SSE4.2/AVX/AVX2/FMA/F16C/BMI2 on
    x86), no AVX-512, no AMX. Used when the native build fails or does not pass the smoke test.

A build counts as good only after a **smoke test** (the caller's: :func:`heavy.local.smoke.smoke_test`
loads a model and generates a few tokens); then it is cached under
``$HEAVY_HOME/runtime/llama-server-<version>-<cpu tag>-<flag set tag>/`` so later runs find it
instantly. The CPU tag hashes the CPU's feature flags (a cache copied to another CPU builds anew), the
flag-set tag hashes the cmake arguments (a build made with other flags, e.g. an earlier heavy's AMX-enabled
one, is never reused).

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
from dataclasses import dataclass
from pathlib import Path

from .catalog import RUNTIME_SDIST
from .download import Downloader, pip_download
from .errors import IntegrityError, SetupError
from .home import Layout, file_lock, read_json, sha256_file, write_json_atomic

__all__ = ["cpu_tag", "runtime_tag", "find_runtime", "ensure_runtime", "cmake_args", "flag_sets", "FlagSet",
           "remove_runtimes", "BINARY_ENV", "Smoke"]

log = logging.getLogger("heavy.local")
Progress = Callable[[str], None]
#: ``smoke(binary, log)`` proves a fresh build runs (raises :class:`SetupError` otherwise).
Smoke = Callable[[Path, Path], None]

#: Use this llama-server binary instead of building one.
BINARY_ENV = "HEAVY_LLAMA_SERVER"


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_tag() -> str:
    """``<arch>-<12 hex>``: the machine architecture and a hash of the CPU feature flags."""
    flags = " ".join(sorted(_cpu_flags())) or platform.processor()
    arch = platform.machine() or "unknown"
    return f"{arch}-{hashlib.sha256(f'{arch} {flags}'.encode()).hexdigest()[:12]}"


def _x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i686", "i386")


@dataclass(frozen=True)
class FlagSet:
    """One way of configuring the build: a name and the cmake arguments it adds."""

    name: str
    args: tuple[str, ...]

    @property
    def tag(self) -> str:
        return f"{self.name}-{hashlib.sha256(' '.join(self.args).encode()).hexdigest()[:8]}"


# x86 extensions ggml can use without -march=native: (cpuinfo flag, ggml option).
_PORTABLE_X86 = (("sse4_2", "GGML_SSE42"), ("avx", "GGML_AVX"), ("avx2", "GGML_AVX2"), ("fma", "GGML_FMA"),
                 ("f16c", "GGML_F16C"), ("bmi2", "GGML_BMI2"))
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
_OFF_X86 = ("GGML_AVX512", "GGML_AVX512_VBMI", "GGML_AVX512_VNNI", "GGML_AVX512_BF16", "GGML_AVX_VNNI",
            "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16")


def flag_sets() -> list[FlagSet]:
    """The flag sets to try, best first: ``native`` (without AMX), then ``portable``."""
    off = [f"-D{opt}=OFF" for opt in _OFF_X86]
    if _x86():
        native = FlagSet("native", ("-DGGML_NATIVE=ON", f"-DCMAKE_C_FLAGS={_NO_AMX}", f"-DCMAKE_CXX_FLAGS={_NO_AMX}"))
        have = _cpu_flags()
        portable = FlagSet("portable", ("-DGGML_NATIVE=OFF",
                                        *(f"-D{opt}={'ON' if flag in have else 'OFF'}" for flag, opt in _PORTABLE_X86),
                                        *off))
    else:  # ARM & co.: no AMX to avoid; portable = the compiler's baseline for the architecture
        native = FlagSet("native", ("-DGGML_NATIVE=ON",))
        portable = FlagSet("portable", ("-DGGML_NATIVE=OFF",))
    return [native, portable]


def runtime_tag(version: str | None = None, flags: FlagSet | None = None) -> str:
    """``llama-server-<version>-<cpu tag>-<flag set tag>`` (default: the first flag set)."""
    flags = flags or flag_sets()[0]
    return f"llama-server-{version or RUNTIME_SDIST.version}-{cpu_tag()}-{flags.tag}"


def cmake_args(source: Path, build: Path, flags: FlagSet | None = None) -> list[str]:
    """Configure flags: the server only, *flags*' CPU tuning, static, no UI download, no TLS, no curl."""
    flags = flags or flag_sets()[0]
    return [
        "-S", str(source), "-B", str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        *flags.args,
        "-DBUILD_SHARED_LIBS=OFF",
        "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON",
        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF",
        "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",  # no npm, no download at build time
        "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF",  # serves plain HTTP on 127.0.0.1 only
    ]


def find_runtime(home: str | os.PathLike[str] | None = None) -> Path | None:
    """The llama-server binary to run (a smoke-tested build, best flag set first), or ``None``."""
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    for flags in flag_sets():
        rdir = Layout(home).runtime_dir(runtime_tag(flags=flags))
        binary = rdir / "bin" / "llama-server"
        if binary.is_file() and os.access(binary, os.X_OK) and read_json(rdir / "build.json"):
            return binary
    return None


def remove_runtimes(home: str | os.PathLike[str] | None = None) -> list[Path]:
    """Delete every cached build for this llama.cpp version and CPU (any flag set); return what went."""
    root = Layout(home).runtime_root
    prefix = f"llama-server-{RUNTIME_SDIST.version}-{cpu_tag()}"
    gone = [d for d in sorted(root.glob(prefix + "*")) if d.is_dir()] if root.is_dir() else []
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


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
    smoke: Smoke | None = None,
) -> Path:
    """Return the llama-server binary, building it first if this machine has none yet (idempotent).

    Each flag set of :func:`flag_sets` is tried in turn until one builds and passes *smoke* (when
    given); a failure of the first is reported through *progress* and the next is tried. When every
    set fails, one :class:`SetupError` names the build log of the last attempt.
    """
    say = progress or (lambda msg: log.info(msg))
    found = find_runtime(home)
    if found:
        return found
    if os.environ.get(BINARY_ENV):
        raise SetupError(f"{BINARY_ENV}={os.environ[BINARY_ENV]} is not an executable file; fix or unset it")
    layout = Layout(home)
    with file_lock(layout.lock("runtime")):
        found = find_runtime(home)  # another process may have built it while we waited
        if found:
            return found
        _require_tools()
        scratch = layout.downloads / f"build-{runtime_tag()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        try:
            source = _fetch_sources(scratch, downloader, say)
            first, *rest = flag_sets()
            try:
                return _build(layout, first, source, scratch, say, jobs, smoke)
            except SetupError as exc:
                if not rest:
                    raise
                say(f"the {first.name} build failed ({exc}); retrying once with the portable flag set")
            try:
                return _build(layout, rest[0], source, scratch, say, jobs, smoke)
            except SetupError as exc:
                raise SetupError(f"llama-server failed with both the {first.name} and the portable flag set; "
                                 f"the portable attempt: {exc}", log=exc.log) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _fetch_sources(scratch: Path, downloader: Downloader, say: Progress) -> Path:
    src = RUNTIME_SDIST
    say(f"downloading the llama.cpp sources ({src.package}=={src.version} sdist, ~{src.size // 10**6} MB)")
    sdist = downloader(src.package, src.version, scratch / "sdist", sdist=True)
    digest = sha256_file(sdist)
    if digest != src.sha256:
        raise IntegrityError(f"{sdist.name} has sha256 {digest}, expected {src.sha256}; it was not used. "
                             "Rerun `heavy local setup`; if it persists the package index serves other bytes")
    source = _extract_llama_cpp(sdist, scratch / "src")
    sdist.unlink()
    return source


def _build(layout: Layout, flags: FlagSet, source: Path, scratch: Path, say: Progress, jobs: int | None,
           smoke: Smoke | None) -> Path:
    rdir = layout.runtime_dir(runtime_tag(flags=flags))
    shutil.rmtree(rdir, ignore_errors=True)  # an unrecorded (failed, interrupted) build of this flag set
    rdir.mkdir(parents=True)
    build_log = rdir / "build.log"
    t0 = time.monotonic()
    jobs = jobs or os.cpu_count() or 1
    say(f"building llama-server ({flags.name} flags) with cmake on {jobs} core(s), once per machine: ~12 minutes "
        f"on 2 cores (log: {build_log})")
    build = scratch / f"build-{flags.name}"
    shown = [-1]

    def on_line(line: str) -> None:
        m = re.match(r"\[\s*(\d+)%\]", line)
        if m and int(m.group(1)) // 10 > shown[0]:
            shown[0] = int(m.group(1)) // 10
            say(f"building llama-server: {int(m.group(1))}%")

    with open(build_log, "w") as logf:
        for step, cmd in (("configure", ["cmake", *cmake_args(source, build, flags)]),
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
    if smoke is not None:
        say("smoke test: loading a model with the new llama-server and generating a few tokens")
        smoke(binary, rdir / "smoke.log")
    seconds = round(time.monotonic() - t0, 1)
    write_json_atomic(rdir / "build.json", {  # written last: only a smoke-tested build is ever found
        "package": RUNTIME_SDIST.package, "version": RUNTIME_SDIST.version, "cpu_tag": cpu_tag(),
        "flag_set": flags.name, "seconds": seconds, "cmake_args": cmake_args(Path("SRC"), Path("BUILD"), flags),
        "jobs": jobs, "smoke_tested": smoke is not None,
        "llama_server_version": version_text.splitlines()[-2:] if version_text else [],
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    say(f"llama-server built ({flags.name} flags) in {seconds:.0f} s: {binary}")
    return binary
