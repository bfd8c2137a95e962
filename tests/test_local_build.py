"""The llama-server build: flag sets (no AMX), the smoke test, the portable retry, --rebuild.

A real cmake runs a fake llama.cpp source tree whose "build" installs a small Python llama-server: the
one built with ``GGML_NATIVE=ON`` crashes with SIGSEGV on its first decode, as ggml's AMX kernels do
on AMX CPUs (llama.cpp issue 20824); the portable one answers. So the build → smoke → retry path runs
with real processes, real HTTP and a real signal, in seconds instead of 12 minutes.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from heavy import local as L
from heavy.cli import cli
from heavy.errors import ConfigError
from heavy.local import runtime as runtime_mod
from heavy.local.catalog import RuntimeSource
from heavy.local.home import Layout, write_stamp
from heavy.local.smoke import smoke_test

needs_cmake = pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake (apt-get install cmake)")

SERVER = r'''#!{python}
import http.server, json, os, signal, sys
if "--version" in sys.argv:
    print("version: 9999 (fake)"); sys.exit(0)
args = sys.argv[1:]
opt = {{args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}}
CRASH = {crash}

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{{"status":"ok"}}')
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if CRASH:
            os.kill(os.getpid(), signal.SIGSEGV)   # what the AMX kernels do at the first decode
        body = json.dumps({{"content": " 2", "tokens_predicted": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

print("fake llama-server serving", opt["--model"], flush=True)
http.server.HTTPServer((opt["--host"], int(opt["--port"])), H).serve_forever()
'''

CMAKELISTS = """cmake_minimum_required(VERSION 3.14)
project(fake_llama NONE)
if(GGML_NATIVE AND NOT NATIVE_WORKS)
  set(VARIANT crash)
elseif(GGML_NATIVE)
  set(VARIANT ok)
elseif(PORTABLE_CRASHES)
  set(VARIANT crash)
else()
  set(VARIANT ok)
endif()
add_custom_target(llama-server ALL
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/bin
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/server-${VARIANT} ${CMAKE_BINARY_DIR}/bin/llama-server)
"""


def _add(tar: tarfile.TarFile, name: str, text: str, mode: int = 0o644) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def fake_sdist(monkeypatch: pytest.MonkeyPatch, *, native_works: bool = False, portable_crashes: bool = False):
    """A fake llama-cpp-python sdist pinned in place of the real one; returns the downloader serving it."""
    root = "llama_cpp_python-9.9/vendor/llama.cpp"
    cmake = CMAKELISTS
    if native_works:
        cmake = "set(NATIVE_WORKS ON)\n" + cmake
    if portable_crashes:
        cmake = "set(PORTABLE_CRASHES ON)\n" + cmake
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        _add(tar, f"{root}/CMakeLists.txt", cmake)
        _add(tar, f"{root}/server-crash", SERVER.format(python=sys.executable, crash=True), 0o755)
        _add(tar, f"{root}/server-ok", SERVER.format(python=sys.executable, crash=False), 0o755)
    data = buf.getvalue()
    monkeypatch.setattr(runtime_mod, "RUNTIME_SDIST",
                        RuntimeSource("llama-cpp-python", "9.9", hashlib.sha256(data).hexdigest(), len(data)))
    monkeypatch.setattr(runtime_mod, "_require_tools", lambda: None)  # the fake tree needs no compiler

    def downloader(package: str, version: str, dest: Path, sdist: bool = False) -> Path:
        assert sdist and (package, version) == ("llama-cpp-python", "9.9")
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "llama_cpp_python-9.9.tar.gz").write_bytes(data)
        return dest / "llama_cpp_python-9.9.tar.gz"

    return downloader




@pytest.fixture
def weights(home: Path) -> Path:
    model = L.model_path("smollm2-135m")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF fake weights")
    write_stamp(model, L.get_model("smollm2-135m").sha256)
    return model


def _smoke(weights: Path):
    return lambda binary, log: smoke_test(binary, weights, log, timeout=30)


# --- flag sets and the cache key ------------------------------------------------------------------------


def test_the_native_flag_set_never_enables_amx_and_the_portable_one_is_not_native(monkeypatch) -> None:
    monkeypatch.setattr(runtime_mod.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(runtime_mod, "_cpu_flags", lambda: {"sse4_2", "avx", "avx2", "fma", "f16c", "amx_tile",
                                                             "amx_int8", "amx_bf16", "avx512f"})
    native, portable = runtime_mod.flag_sets()
    args = runtime_mod.cmake_args(Path("S"), Path("B"), native)
    assert "-DGGML_NATIVE=ON" in args
    for var in ("CMAKE_C_FLAGS", "CMAKE_CXX_FLAGS"):
        (flag,) = [a for a in args if a.startswith(f"-D{var}=")]
        assert {"-mno-amx-tile", "-mno-amx-int8", "-mno-amx-bf16"} <= set(flag.split("=", 1)[1].split())
    p_args = runtime_mod.cmake_args(Path("S"), Path("B"), portable)
    assert "-DGGML_NATIVE=OFF" in p_args and "-DGGML_NATIVE=ON" not in p_args
    assert {"-DGGML_AVX2=ON", "-DGGML_BMI2=OFF", "-DGGML_AVX512=OFF", "-DGGML_AMX_TILE=OFF",
            "-DGGML_AMX_INT8=OFF"} <= set(p_args), "only what the CPU reports; never AVX-512 or AMX"


def test_the_runtime_tag_names_the_flag_set_so_old_builds_are_not_reused(home: Path) -> None:
    native, portable = runtime_mod.flag_sets()
    assert runtime_mod.runtime_tag(flags=native) != runtime_mod.runtime_tag(flags=portable)
    assert runtime_mod.runtime_tag().endswith(native.tag)
    # A build cached by an earlier heavy (tag without a flag set; AMX possibly compiled in) is ignored.
    old = Layout().runtime_dir(f"llama-server-{L.RUNTIME_SDIST.version}-{runtime_mod.cpu_tag()}")
    (old / "bin").mkdir(parents=True)
    (old / "bin" / "llama-server").write_text("#!/bin/sh\n")
    (old / "bin" / "llama-server").chmod(0o755)
    (old / "build.json").write_text('{"version": "old"}')
    assert L.find_runtime() is None


# --- the smoke test ---------------------------------------------------------------------------------------


def _write_server(path: Path, crash: bool) -> Path:
    path.write_text(SERVER.format(python=sys.executable, crash=crash))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_smoke_test_generates_tokens_with_a_working_server(tmp_path: Path, weights: Path) -> None:
    binary = _write_server(tmp_path / "llama-server", crash=False)
    assert smoke_test(binary, weights, tmp_path / "smoke.log", timeout=30) == " 2"
    assert "fake llama-server serving" in (tmp_path / "smoke.log").read_text()


def test_smoke_test_catches_a_crash_at_the_first_decode(tmp_path: Path, weights: Path) -> None:
    binary = _write_server(tmp_path / "llama-server", crash=True)
    with pytest.raises(L.SetupError, match=r"killed by signal 11 \(SIGSEGV\) generating its first tokens") as info:
        smoke_test(binary, weights, tmp_path / "smoke.log", timeout=30)
    assert info.value.log == tmp_path / "smoke.log"


# --- build, smoke, retry ----------------------------------------------------------------------------------


@needs_cmake
def test_a_build_that_crashes_is_retried_with_portable_flags(home: Path, weights: Path, monkeypatch) -> None:
    downloader = fake_sdist(monkeypatch)
    said: list[str] = []
    binary = L.ensure_runtime(downloader=downloader, progress=said.append, smoke=_smoke(weights))
    assert any("retrying once with the portable flag set" in m and "SIGSEGV" in m for m in said), said
    native, portable = runtime_mod.flag_sets()
    assert binary.parent.parent.name == runtime_mod.runtime_tag(flags=portable)
    stamp = json.loads((binary.parent.parent / "build.json").read_text())
    assert stamp["flag_set"] == "portable" and stamp["smoke_tested"] is True
    assert not (Layout().runtime_dir(runtime_mod.runtime_tag(flags=native)) / "build.json").exists()
    assert L.find_runtime() == binary
    assert L.ensure_runtime(downloader=lambda *a, **k: pytest.fail("rebuilt")) == binary


@needs_cmake
def test_a_native_build_that_passes_is_used_without_a_retry(home: Path, weights: Path, monkeypatch) -> None:
    downloader = fake_sdist(monkeypatch, native_works=True)
    said: list[str] = []
    binary = L.ensure_runtime(downloader=downloader, progress=said.append, smoke=_smoke(weights))
    assert json.loads((binary.parent.parent / "build.json").read_text())["flag_set"] == "native"
    assert not any("retrying" in m for m in said)


@needs_cmake
def test_when_both_flag_sets_fail_one_error_names_the_log(home: Path, weights: Path, monkeypatch) -> None:
    downloader = fake_sdist(monkeypatch, portable_crashes=True)
    with pytest.raises(L.SetupError, match=r"both the native and the portable flag set.*SIGSEGV.*smoke\.log") as info:
        L.ensure_runtime(downloader=downloader, smoke=_smoke(weights))
    assert info.value.log is not None and info.value.log.name == "smoke.log"
    assert L.find_runtime() is None


@needs_cmake
def test_setup_smoke_tests_with_the_model_and_rebuild_starts_over(home: Path, weights: Path, monkeypatch) -> None:
    downloader = fake_sdist(monkeypatch, native_works=True)
    report = L.setup("smollm2-135m", downloader=downloader)
    binary = Path(report["runtime"])
    smoke_log = (binary.parent.parent / "smoke.log").read_text()
    assert str(weights) in smoke_log, "the smoke test loads the model setup installed"
    assert L.setup("smollm2-135m", downloader=downloader)["runtime_seconds"] == 0.0
    again = L.setup("smollm2-135m", downloader=downloader, rebuild=True)
    assert again["removed_runtimes"] == [str(binary.parent.parent)] and again["runtime_seconds"] > 0
    assert L.find_runtime() == binary


def test_start_on_a_binary_killed_by_a_signal_says_to_rebuild(home: Path, weights: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\nkill -SEGV $$\n")
    binary.chmod(0o755)
    monkeypatch.setenv("HEAVY_LLAMA_SERVER", str(binary))
    with pytest.raises(L.ServerStartError, match=r"signal 11 \(SIGSEGV\).*heavy local setup --rebuild"):
        L.start("smollm2-135m", port=L.free_port(), timeout=20)
    r = CliRunner().invoke(cli, ["local", "start", "--model", "smollm2-135m", "--port", str(L.free_port())])
    assert r.exit_code == 1 and "heavy local setup --rebuild" in r.stderr.strip().splitlines()[-1]


def test_rebuild_refuses_an_external_binary(home: Path, weights: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HEAVY_LLAMA_SERVER", str(_write_server(tmp_path / "llama-server", crash=False)))
    with pytest.raises(ConfigError, match="unset it to rebuild"):
        L.setup("smollm2-135m", rebuild=True, downloader=lambda *a, **k: pytest.fail("downloaded"))
