"""The python tool's sandbox: every limit holds, on this machine, as whatever user runs the tests.

Each test runs real model-like code in the real sandbox (``heavy.tools.sandbox.run_python``). What the
kernel lets the launcher isolate depends on the machine (namespaces may be forbidden in a container, and
``RLIMIT_NPROC`` never applies to root): tests of a guarantee the report says is missing are skipped with
the launcher's own reason, never silently passed. The same limits are also checked with namespaces off
(``namespaces=False``), the fallback a machine without them gets.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import uuid

import pytest

from heavy.tools.sandbox import SandboxLimits, run_python

pytestmark = pytest.mark.anyio

MODES = [pytest.param(True, id="namespaces"), pytest.param(False, id="no-namespaces")]
FAKE_KEY = "sk-heavy-fake-key-0123456789abcdef"


def leftovers(workdir: str) -> list[int]:
    """Processes still running from *workdir* (their command line names the program's path)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if workdir.encode() in f.read():
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_runs_code_and_reports_what_it_isolated():
    r = await run_python("print(sum(range(10)))")
    assert r.ok and r.stdout == "45\n" and r.stderr == ""
    iso = r.isolation
    assert iso.uid is not None and iso.nproc  # the launcher always reports
    if iso.namespaces:
        assert iso.network_isolated and iso.pid_namespace
    else:
        assert iso.network == "not isolated" and any("no namespaces" in n or "disabled" in n for n in iso.notes)
    if os.getuid() == 0 and iso.uid == 0:
        assert not iso.nproc_enforced and "root" in iso.nproc


async def test_a_run_cancelled_midway_leaves_nothing_unretrieved():
    # A strategy stopping early cancels running programs: that must not print "exception was never
    # retrieved" tracebacks to stderr (seen on every early-stopped crosscheck replay).
    import asyncio
    import gc

    loop = asyncio.get_running_loop()
    reported: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        task = asyncio.create_task(run_python("import time\nprint('started', flush=True)\ntime.sleep(30)"))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(3):
            await asyncio.sleep(0.05)
            gc.collect()
    finally:
        loop.set_exception_handler(previous)
    assert not [c for c in reported if "never retrieved" in str(c.get("message"))], reported


@pytest.mark.parametrize("namespaces", MODES)
async def test_infinite_loop_is_stopped_by_the_cpu_limit(namespaces):
    started = time.monotonic()
    r = await run_python("while True:\n    pass\n", limits=SandboxLimits(cpu_seconds=1, timeout=60),
                         namespaces=namespaces)
    assert r.stopped is not None and "CPU time limit" in r.stopped, r
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("namespaces", MODES)
async def test_sleeping_program_is_stopped_at_the_wall_clock_timeout(namespaces):
    started = time.monotonic()
    r = await run_python("import time\nprint('start', flush=True)\ntime.sleep(120)\n",
                         limits=SandboxLimits(timeout=1), namespaces=namespaces)
    assert r.stopped == "wall-clock timeout (1 s)" and r.stdout == "start\n"
    assert time.monotonic() - started < 10
    assert not leftovers(r.workdir)


FORK_BOMB = """
import os, sys, time
children = []
for _ in range(12):          # unchecked this is 2**12 = 4096 processes
    try:
        pid = os.fork()
    except OSError:
        continue
    if pid == 0:
        children = []
    else:
        children.append(pid)
time.sleep(0.3)
for pid in children:
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass
sys.stdout.write("p\\n")
sys.stdout.flush()
"""


@pytest.mark.parametrize("namespaces", MODES)
async def test_fork_bomb_is_bounded_by_the_process_limit(namespaces):
    probe = await run_python("pass", namespaces=namespaces)  # never set off a real bomb where nothing stops it
    if not probe.isolation.nproc_enforced:
        pytest.skip(f"RLIMIT_NPROC cannot be enforced here: {probe.isolation.nproc}")
    r = await run_python(FORK_BOMB, limits=SandboxLimits(max_processes=12, timeout=30), namespaces=namespaces)
    assert r.isolation.nproc_enforced
    processes = r.stdout.count("p\n")
    assert 1 <= processes <= 12, r
    assert not leftovers(r.workdir)


@pytest.mark.parametrize("namespaces", MODES)
async def test_children_left_running_are_killed_when_the_run_ends(namespaces):
    code = ("import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        os.setsid()\n        time.sleep(60)\n"
            "        os._exit(0)\nprint('parent done')\n")
    r = await run_python(code, limits=SandboxLimits(timeout=20), namespaces=namespaces)
    assert r.stdout == "parent done\n"
    time.sleep(0.2)
    assert not leftovers(r.workdir)


@pytest.mark.parametrize("namespaces", MODES)
async def test_memory_hog_fails_to_allocate(namespaces):
    r = await run_python("x = bytearray(2 * 1024 ** 3)\nprint('allocated')\n", limits=SandboxLimits(memory_mb=128),
                         namespaces=namespaces)
    assert "allocated" not in r.stdout and "MemoryError" in r.stderr and r.exit_code == 1


@pytest.mark.parametrize("namespaces", MODES)
async def test_huge_output_is_truncated_and_a_flood_is_stopped(namespaces):
    r = await run_python("print('x' * 500_000)\n", limits=SandboxLimits(max_output_bytes=1000), namespaces=namespaces)
    assert r.ok and len(r.stdout) == 1000 and r.stdout_truncated
    assert len(r.describe(limit=300)) < 600  # what the model reads is cut too
    r = await run_python("import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n",
                         limits=SandboxLimits(max_output_bytes=1000, timeout=60), namespaces=namespaces)
    assert r.stopped is not None and "output limit" in r.stopped and len(r.stdout) == 1000


@pytest.mark.parametrize("namespaces", MODES)
async def test_huge_file_is_cut_at_the_file_size_limit(namespaces):
    code = ("try:\n    with open('big.bin', 'wb') as f:\n        for _ in range(20):\n"
            "            f.write(b'0' * 1024 * 1024)\nexcept OSError as e:\n    print('refused:', e.strerror)\n"
            "import os\nprint(os.path.getsize('big.bin'))\n")
    r = await run_python(code, limits=SandboxLimits(file_size_mb=1), namespaces=namespaces)
    assert "refused: File too large" in r.stdout
    assert int(r.stdout.split()[-1]) <= 1024 * 1024


@pytest.mark.parametrize("namespaces", MODES)
async def test_open_files_are_limited(namespaces):
    code = ("files = []\ntry:\n    for i in range(500):\n        files.append(open(f'f{i}', 'w'))\n"
            "except OSError as e:\n    print(len(files), e.strerror)\n")
    r = await run_python(code, limits=SandboxLimits(max_open_files=16), namespaces=namespaces)
    count, _, why = r.stdout.partition(" ")
    assert int(count) < 16 and "Too many open files" in why


ENV_PROBE = """
import os
print(sorted(os.environ))
print(repr(open('/proc/self/environ').read()))
seen = []
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            if KEY in open(f'/proc/{pid}/environ').read():
                seen.append(pid)
        except OSError:
            pass
print('readable elsewhere:', seen)
"""


@pytest.mark.parametrize("namespaces", MODES)
async def test_the_program_cannot_see_the_parents_environment(namespaces, monkeypatch):
    monkeypatch.setenv("HEAVY_TEST_FAKE_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    r = await run_python(f"KEY = {FAKE_KEY!r}\n" + ENV_PROBE, namespaces=namespaces)
    assert r.ok, r.stderr
    names, own, elsewhere = r.stdout.splitlines()
    # Nothing inherited: Python itself may set LC_CTYPE (PEP 538 locale coercion), nothing else.
    assert set(eval(names)) <= {"LC_CTYPE"}
    assert own == "''" and FAKE_KEY not in r.stdout.replace(f"KEY = {FAKE_KEY!r}", "")
    iso = r.isolation
    if iso.proc == "private" or iso.uid != os.getuid():
        assert elsewhere == "readable elsewhere: []"  # not even /proc/<heavy's pid>/environ
    else:  # documented: same uid, host /proc: other processes' environments are readable
        pytest.skip(f"same uid and host /proc ({'; '.join(iso.notes)}): other processes' environ is readable")


async def test_no_network_when_namespaces_are_available():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', %d), timeout=3)\n    print('connected')\n"
                "except OSError as e:\n    print('refused', e.errno)\n" % port)
        r = await run_python(code)
    if not r.isolation.network_isolated:
        pytest.skip(f"no network namespace here: {'; '.join(r.isolation.notes)}")
    assert r.stdout.startswith("refused") and "connected" not in r.stdout


async def test_home_and_temp_dirs_are_hidden_when_namespaces_are_available():
    # The secret goes under /tmp itself (always hidden), not pytest's tmp_path, which TMPDIR or
    # --basetemp may put anywhere.
    with tempfile.TemporaryDirectory(dir="/tmp") as host_tmp:
        secret = os.path.join(host_tmp, "secret.txt")
        with open(secret, "w") as f:
            f.write("do not read")
        r = await run_python(f"import os\nprint(os.path.exists({secret!r}))\nprint(open('mine.txt', 'w').write('ok'))\n"
                             "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n")
    if not r.isolation.namespaces:
        pytest.skip(f"no mount namespace here, so nothing is hidden: {'; '.join(r.isolation.notes)}")
    assert "/tmp" in r.isolation.hidden
    exists, wrote, pids = r.stdout.splitlines()
    assert exists == "False" and wrote == "2"  # the host's /tmp is hidden; the work dir is kept
    if r.isolation.proc == "private":
        assert eval(pids) == ["1", "2"]  # only the sandbox's init and the program


WRITE_PROBE = """
for p in TARGETS:
    try:
        open(p, 'w').write('x')
        print('wrote', p)
    except OSError as e:
        print('refused', p, e.strerror)
"""


async def test_the_file_system_is_read_only_outside_the_work_directory():
    probe = await run_python("pass")  # never let a sandbox without read-only mounts write into / or Python
    if not probe.isolation.filesystem.startswith("read-only"):
        pytest.skip(f"read-only mounts cannot be enforced here: {probe.isolation.filesystem}; "
                    f"{'; '.join(probe.isolation.notes)}")
    name = f"written-by-the-sandbox-{uuid.uuid4().hex}.txt"
    # Each exists inside the sandbox wherever the clone lives: / is the root of the read-only tree, and
    # the Python installation is what the sandbox runs (bound back read-only when under a hidden dir).
    visible = [os.path.join("/", name), os.path.join(os.path.realpath(sys.prefix), name)]
    # The clone itself is visible unless it lives under a hidden dir (e.g. /tmp, /root), where the
    # sandbox sees a private, empty tmpfs instead: either way the host file cannot be written.
    in_clone = os.path.join(os.path.dirname(os.path.realpath(__file__)), name)
    targets = ["mine.txt", *visible, in_clone, "/tmp/scratch.txt"]
    try:
        r = await run_python(f"TARGETS = {targets!r}\n" + WRITE_PROBE)
        lines = r.stdout.splitlines()
        assert lines[0] == "wrote mine.txt" and lines[-1] == "wrote /tmp/scratch.txt", r  # private scratch /tmp
        for path in visible:
            assert f"refused {path} Read-only file system" in lines, r
        hidden = any(in_clone.startswith(h.rstrip("/") + "/") for h in r.isolation.hidden)
        why = "No such file or directory" if hidden else "Read-only file system"
        assert f"refused {in_clone} {why}" in lines, (r.isolation.hidden, r)
        assert not [p for p in targets[1:-1] if os.path.exists(p)]
    finally:
        for path in targets[1:-1]:  # only a broken sandbox leaves one behind; do not keep it on the host
            if os.path.exists(path):
                os.remove(path)


async def test_the_work_directory_is_the_cwd_and_is_deleted_afterwards():
    code = "import os\nos.makedirs('a/b')\nopen('a/b/f.txt', 'w').write('x')\nos.chmod('a', 0)\nprint(os.getcwd())\n"
    r = await run_python(code)
    assert r.ok and os.path.basename(r.stdout.strip()) == os.path.basename(r.workdir)
    assert os.path.basename(r.workdir).startswith("heavy-sandbox-")
    assert not os.path.exists(r.workdir)


async def test_many_sandboxes_run_concurrently():
    import asyncio

    results = await asyncio.gather(*(run_python(f"print({i} * {i})") for i in range(6)))
    assert [r.stdout for r in results] == [f"{i * i}\n" for i in range(6)]
    assert len({r.workdir for r in results}) == 6
