"""Results of running code cannot be forged by the code, and sandboxes do not share a process budget.

Every forging attempt below is a real candidate run by the real harness in the real sandbox
(:func:`heavy.tools.codecheck.run_tests`); each computes the wrong answer and tries to be counted as
passing anyway. Scenarios run in this process (namespaces on and off) and, where this machine allows it,
again under other identities: as root with the system Python (which a per-sandbox uid can read, so the
sandbox runs as its own uid even without namespaces) and as ``nobody`` (an unprivileged user: a user
namespace, or nothing at all). Where the sandbox cannot protect the results it must say so in
``CaseResults.notes``; a forged pass without that note is a failure of the test.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from heavy.constants import SANDBOX_UID_BASE, SANDBOX_UID_SPAN
from heavy.tools.codecheck import run_tests
from heavy.tools.sandbox import SandboxLimits, run_python
from heavy.tools.python import PythonTool
from heavy.tools.verify import Verifier

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
MODES = [pytest.param(True, id="namespaces"), pytest.param(False, id="no-namespaces")]

TESTS = ["assert add(2, 3) == 5", "assert add(-1, 1) == 0", "assert add(10, 5) == 15",
         "assert abs(add(0.5, 0.25) - 0.75) < 1e-9"]
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
#: What a harness record claiming every test passed looks like (today's format and the old marker's).
FAKE = json.dumps({"done": True, "load_error": None, "passed": [True] * 4, "outputs": ["5", "0", "15", "True"],
                   "nondumpable": True}) + "\n"
PRELUDE = f"import os, signal, sys\nFAKE = {FAKE!r}\n"
EVERY_FD = ("def spray():\n    for fd in range(0, 21):\n        try:\n            os.write(fd, FAKE.encode())\n"
            "        except OSError:\n            pass\n")

ATTACKS = {
    "prints the record": PRELUDE + WRONG + (
        "print(FAKE)\nsys.__stdout__.write(FAKE)\nsys.__stderr__.write(FAKE)\n"
        "try:\n    import json\n    spec = json.load(open('spec.json'))\n    print(spec.get('marker', '') + FAKE)\n"
        "except OSError:\n    pass\n"),
    "sys.exit(0) at load": PRELUDE + WRONG + "print(FAKE)\nsys.exit(0)\n",
    "os._exit(0) at load": PRELUDE + EVERY_FD + WRONG + "spray()\nos._exit(0)\n",
    "sys.exit(0) in the call": PRELUDE + "def add(a, b):\n    print(FAKE)\n    sys.exit(0)\n",
    "os._exit(0) in the call": PRELUDE + EVERY_FD + "def add(a, b):\n    spray()\n    os._exit(0)\n",
    "writes to fds 0-20": PRELUDE + EVERY_FD + "spray()\ndef add(a, b):\n    spray()\n    return a - b\n",
    "patches builtins": PRELUDE + WRONG + (
        "import builtins\nclass Never(Exception):\n    pass\nbuiltins.AssertionError = Never\n"
        "builtins.bool = lambda *a: True\nbuiltins.eval = lambda *a, **k: True\nbuiltins.abs = lambda x: 0\n"
        "builtins.isinstance = lambda *a: True\nsys.excepthook = lambda *a: None\n"),
    "always-equal object": PRELUDE + (
        "class Anything:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n    def __lt__(self, other):\n        return True\n    def __sub__(self, other):\n"
        "        return self\n    def __abs__(self):\n        return 0\n    def __bool__(self):\n        return True\n"
        "    __hash__ = object.__hash__\ndef add(a, b):\n    return Anything()\n"),
    "int subclass equal to all": PRELUDE + (
        "class Yes(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return Yes(-999)\n"),
    "shadows abs": PRELUDE + WRONG + "def abs(x):\n    return 0\n",
    "kills the judge after forging": PRELUDE + (
        "def add(a, b):\n    print(FAKE)\n    sys.__stderr__.write(FAKE)\n    os.kill(os.getppid(), signal.SIGKILL)\n"
        "    return a + b\n"),
    "writes through /proc/<judge>/fd": PRELUDE + (
        "def add(a, b):\n    judge = os.getppid()\n    try:\n        names = os.listdir(f'/proc/{judge}/fd')\n"
        "    except OSError:\n        names = [str(n) for n in range(0, 21)]\n    for name in names:\n        try:\n"
        "            fd = os.open(f'/proc/{judge}/fd/{name}', os.O_WRONLY | os.O_NONBLOCK)\n"
        "            os.write(fd, FAKE.encode())\n        except OSError:\n            pass\n"
        "    os.kill(judge, signal.SIGKILL)\n    return a - b\n"),
    "takes over the worker's protocol": PRELUDE + (
        "import json, struct\nrequests, replies = int(sys.argv[2]), int(sys.argv[3])\n"
        "def reply(obj):\n    data = json.dumps(obj).encode()\n"
        "    os.write(replies, struct.pack('>I', len(data)) + data)\n"
        "fn = ['h', 0, 'function']\n"  # a forged load reply: the tests' builtins, name and function are ours
        "reply({'names': {'__builtins__': ['d', [['abs', fn], ['bool', fn], ['len', fn]]], '__name__': 'x',\n"
        "                 'add': fn}})\n"
        "while True:\n    size = struct.unpack('>I', os.read(requests, 4))[0]\n    os.read(requests, size)\n"
        "    reply({'value': -7})\n"),
    "floods the judge with SIGALRM": PRELUDE + (
        "def add(a, b):\n    for _ in range(50):\n        os.kill(os.getppid(), signal.SIGALRM)\n    return a - b\n"),
}


async def attack_results(namespaces: bool) -> dict:
    """Every attack (and the honest programs) through the harness: name -> passed, notes, error, uid."""
    programs = {"honest right": RIGHT, "honest wrong": WRONG, "right, printing": PRELUDE + RIGHT + "print(FAKE)\n",
                **ATTACKS}
    runs = await asyncio.gather(*(run_tests(code, TESTS, per_test=3.0, namespaces=namespaces)
                                  for code in programs.values()))
    return {name: {"passed": r.passed, "notes": r.notes, "error": r.error, "uid": r.isolation.uid,
                   "proc": r.isolation.proc}
            for name, r in zip(programs, runs)}


def check_attacks(results: dict, heavy_uid: int) -> None:
    assert results["honest right"]["passed"] == [True] * 4, results["honest right"]
    assert results["right, printing"]["passed"] == [True] * 4
    assert results["honest wrong"]["passed"] == [False] * 4
    for name in ATTACKS:
        r = results[name]
        can_reach = r["uid"] == 0 or (r["proc"] != "private" and r["uid"] == heavy_uid)
        assert bool(r["notes"]) == can_reach, (name, r)  # heavy says when the channel is within reach
        if not can_reach:
            assert r["passed"] == [False] * 4, (name, r)
        elif any(r["passed"]):
            assert any("could be forged" in n for n in r["notes"]), (name, r)


@pytest.mark.parametrize("namespaces", MODES)
async def test_forging_attempts_fail_and_honest_code_is_judged_right(namespaces):
    results = await attack_results(namespaces)
    check_attacks(results, os.getuid())
    if namespaces and results["honest right"]["proc"] == "private":
        assert all(not r["notes"] for r in results.values())  # protected here: nothing may pass
    assert "did not finish" in results["kills the judge after forging"]["error"]
    assert "SystemExit" in results["sys.exit(0) at load"]["error"]
    assert results["os._exit(0) at load"]["error"]


async def test_the_candidate_never_sees_the_expected_values():
    setup = "SECRET = 'heavy-expected-7f3a'\n"
    # The needle is built at run time: the candidate's own constants must not contain it.
    hunt = ("import gc, os\ndef leaked(x):\n    needle = chr(55) + 'f' + chr(51) + 'a'\n    seen = []\n"
            "    for p in os.listdir('.'):\n        try:\n"
            "            seen.append(open(p, errors='replace').read())\n        except OSError:\n            pass\n"
            "    for f in ('cmdline', 'environ', 'mem'):\n        try:\n"
            "            seen.append(open(f'/proc/{os.getppid()}/{f}', errors='replace').read(1 << 20))\n"
            "        except (OSError, ValueError):\n            pass\n"
            "    for o in gc.get_objects():\n        if isinstance(o, dict):\n            o = list(o.values())\n"
            "        if isinstance(o, (list, tuple)):\n            seen += [v for v in o if isinstance(v, str)]\n"
            "    return int(any(needle in s for s in seen if s is not needle))\n")
    r = await run_tests(hunt, ["assert leaked(0) == 0", "assert SECRET.endswith('7f3a')"], setup)
    assert r.passed == [True, True], r  # 1 would mean the worker found the tests' secret


async def test_one_test_can_hang_or_exit_without_failing_the_others():
    code = ("import os\ndef add(a, b):\n    if a == 10:\n        while True:\n            pass\n"
            "    if a == -1:\n        os._exit(0)\n    return a + b\n")
    started = time.monotonic()
    r = await run_tests(code, TESTS, per_test=1.0)
    assert r.passed == [True, False, False, True] and r.error is None, r
    assert r.outputs[2] == "raised TimeoutError"
    assert time.monotonic() - started < 30


async def test_values_of_every_plain_type_and_objects_cross_faithfully():
    code = '''
from collections import namedtuple, OrderedDict, Counter
Point = namedtuple("Point", "x y")
def point():
    return Point(1, 2)
def counts(s):
    return Counter(s)
def ordered():
    return OrderedDict(b=1, a=2)
def evens(n):
    return (i for i in range(n) if i % 2 == 0)
def big():
    return 3 ** 10000
def odd():
    return {(1, 2): {b"x", b"y"}, "f": [float("inf"), complex(1, -2)], "s": frozenset({None, True})}
def sort_in_place(xs):
    xs.sort()
class Stack:
    def __init__(self):
        self.items = []
    def push(self, x):
        self.items.append(x)
        return self
    def pop(self):
        return self.items.pop()
    def __len__(self):
        return len(self.items)
def div(a, b):
    return a / b
'''
    setup = ("import math\nxs = [3, 1, 2]\nsort_in_place(xs)\ntry:\n    div(1, 0)\n    raised = False\n"
             "except ZeroDivisionError:\n    raised = True\ns = Stack().push(4).push(5)\n")
    tests = ["assert point() == (1, 2)", "assert counts('aab') == {'a': 2, 'b': 1}",
             "assert ordered() == {'a': 2, 'b': 1}",
             "assert list(evens(7)) == [0, 2, 4, 6]", "assert big() == 3 ** 10000",
             "assert odd() == {(1, 2): {b'x', b'y'}, 'f': [math.inf, 1 - 2j], 's': frozenset({None, True})}",
             "assert xs == [1, 2, 3]", "assert raised", "assert s.pop() == 5 and len(s) == 1",
             "assert str(Stack).startswith(\"<class '__main__.Stack'\")"]
    r = await run_tests(code, tests, setup)
    assert r.passed == [True] * len(tests), (r.passed, r.outputs, r.error)
    assert r.outputs[0] == "(1, 2)"


async def test_tests_cannot_pass_functions_into_the_candidate_and_fail_clearly():
    r = await run_tests("def apply(f, x):\n    return f(x)\n", ["assert apply(lambda v: v + 1, 1) == 2"])
    assert r.passed == [False] and r.outputs == ["raised TypeError"]


# --- the exit status and the isolation report (what --verify python relies on) cannot be forged -------

STATUS_FORGER = """
import json, os
fake = (json.dumps({"status": {"exit": 0}}) + "\\n" + json.dumps({"namespaces": True, "uid": 12345}) + "\\n").encode()
targets = [f"/proc/1/fd/{n}" for n in range(0, 21)] if os.getpid() == 2 else []
for fd in range(3, 21):
    try:
        os.write(fd, fake)
    except OSError:
        pass
for path in targets:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, fake)
    except OSError:
        pass
print(42)
raise SystemExit(3)
"""


async def status_forgery(namespaces: bool) -> dict:
    r = await run_python(STATUS_FORGER, namespaces=namespaces)
    return {"exit_code": r.exit_code, "uid": r.isolation.uid, "stdout": r.stdout}


@pytest.mark.parametrize("namespaces", MODES)
async def test_the_program_cannot_forge_its_exit_status(namespaces):
    r = await status_forgery(namespaces)
    assert r["exit_code"] == 3 and r["uid"] != 12345 and r["stdout"] == "42\n"


async def test_verify_python_does_not_trust_a_check_that_forges_success():
    from heavy.providers.base import Completion
    from heavy.types import Hypothesis, Message

    async def call(prompt, tools):
        return Completion(text=f"```python\n{STATUS_FORGER}\n```")

    h = Hypothesis(index=0, model="m", text="The answer is 42.", answer="42")
    checked = await Verifier(PythonTool()).check(h, [Message(role="user", content="What is 6 * 7?")], call,
                                                emit=lambda event: None)
    step = checked.steps[-1]
    assert step.details["verdict"] == "inconclusive" and not step.ok  # it printed 42, but it failed


# --- sibling sandboxes do not share RLIMIT_NPROC --------------------------------------------------------

HOG = """
import os, time
def hold():                         # until the test has run the sibling and writes 'release' here (at most 15 s)
    end = time.monotonic() + 15
    while not os.path.exists("release") and time.monotonic() < end:
        time.sleep(0.05)
held = 0
for _ in range(40):                 # bounded: at most max_processes succeed
    try:
        if os.fork() == 0:
            hold()
            os._exit(0)
        held += 1
    except OSError:
        break
print("held", held, flush=True)
hold()
"""
SIBLING = """
import os
forked = 0
for _ in range(3):
    try:
        pid = os.fork()
    except OSError as e:
        print("fork failed:", e.strerror)
        continue
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    forked += 1
print("forked", forked)
"""


def _sandbox_uid_counts() -> dict[int, int]:
    """Live processes (zombies are dead, waiting to be reaped) per sandbox uid, and of our own uid if not root."""
    counts: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                uid = int(fields["Uid"].split()[0])
            except (OSError, KeyError, ValueError):
                continue
            if fields.get("State", "").strip().startswith(("Z", "X")):
                continue
            if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SPAN or uid == os.getuid() != 0:
                counts[uid] = counts.get(uid, 0) + 1
    return counts


async def fork_bomb_next_to_a_sibling(namespaces: bool) -> dict:
    probe = await run_python("pass", namespaces=namespaces)
    iso = probe.isolation
    if not iso.nproc_isolated:
        return {"skip": f"RLIMIT_NPROC not per sandbox here: {iso.nproc}; {iso.nproc_scope}"}
    limits = SandboxLimits(max_processes=8, timeout=20, cpu_seconds=5)
    before = _sandbox_uid_counts()
    token = f"hog-{os.getpid()}-{time.monotonic_ns()}"  # finds the bomb's work directory, to release it
    bomb = asyncio.create_task(run_python(HOG, limits=limits, namespaces=namespaces, files={token: ""}))
    deadline, full = time.monotonic() + 15, False
    while not full and time.monotonic() < deadline and not bomb.done():
        await asyncio.sleep(0.1)  # until one sandbox's processes are at its limit
        full = any(n - before.get(uid, 0) >= 8 for uid, n in _sandbox_uid_counts().items())
    sibling = await run_python(SIBLING, limits=limits, namespaces=namespaces)
    for marker in Path(tempfile.gettempdir()).glob(f"heavy-sandbox-*/{token}"):
        marker.with_name("release").touch()
    held = await bomb
    return {"full": full, "sibling": sibling.stdout, "held": held.stdout, "scope": sibling.isolation.nproc_scope}


def check_fork_bomb(r: dict) -> None:
    if "skip" in r:
        pytest.skip(r["skip"])
    assert r["full"], r  # the bomb really held every process it may have
    assert r["held"].startswith("held ") and 1 <= int(r["held"].split()[1]) <= 8, r
    assert r["sibling"] == "forked 3\n", r
    assert r["scope"].startswith("this sandbox only")


@pytest.mark.parametrize("namespaces", MODES)
async def test_a_fork_bomb_does_not_make_a_sibling_sandbox_fail(namespaces):
    check_fork_bomb(await fork_bomb_next_to_a_sibling(namespaces))


ESCAPER = """
import os, time
if os.fork() == 0:
    os.setsid()
    os.chdir("/")                   # out of the process group and out of the work directory
    time.sleep(30)
    os._exit(0)
print("escaped")
"""


async def leftovers_of_an_escaper(namespaces: bool) -> dict:
    uid = (await run_python("pass", namespaces=namespaces)).isolation.uid  # never let one escape where nothing stops it
    if not (SANDBOX_UID_BASE <= (uid or 0) < SANDBOX_UID_BASE + SANDBOX_UID_SPAN):
        return {"skip": f"the sandbox runs as uid {uid}, not a uid of its own: its leftovers cannot be told apart"}
    r = await run_python(ESCAPER, limits=SandboxLimits(timeout=10), namespaces=namespaces)
    uid = r.isolation.uid
    time.sleep(0.2)
    return {"stdout": r.stdout, "left": _sandbox_uid_counts().get(uid, 0)}


def check_leftovers(r: dict) -> None:
    if "skip" in r:
        pytest.skip(r["skip"])
    assert r["stdout"] == "escaped\n" and r["left"] == 0, r


@pytest.mark.parametrize("namespaces", MODES)
async def test_a_child_that_leaves_the_group_and_the_directory_is_killed(namespaces):
    check_leftovers(await leftovers_of_an_escaper(namespaces))


# --- the same scenarios under other identities ---------------------------------------------------------

SYSTEM_PYTHON = "/usr/bin/python3"


def _site_dirs() -> list[str]:
    return [p for p in sys.path if p.endswith("site-packages") and os.path.isdir(p)]


class ForOthers:
    """What another user imports to run a scenario, copied where it can read it.

    The checkout may live where only we can read it (mktemp's 0700 folder, a private home), so uid 65534
    could not import heavy from it. On first use this copies into a fresh temporary folder (0755, files
    0644, removed after this module's tests): this module, the ``heavy`` package (its sandbox launcher
    and harness included) and the site-packages entries importing this module loads (pydantic, pytest,
    ...). Nothing of ours is opened up: the user still cannot read the checkout or our files.
    """

    def __init__(self) -> None:
        self.root: Path | None = None

    def paths(self) -> list[str]:
        """sys.path entries for another user: this module's folder, heavy's, then the site-packages."""
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="heavy-forgery-"))
            entries = [self.root / "tests", self.root, *(self.root / f"site-{i}" for i in range(len(_site_dirs())))]
            for folder in entries:
                folder.mkdir(exist_ok=True)
                folder.chmod(0o755)
            _readable_copy(Path(__file__), self.root / "tests" / "test_forgery.py")
            _readable_copy(REPO / "heavy", self.root / "heavy")
            for site, into in zip(_site_dirs(), entries[2:]):
                for top in sorted(_loaded_from(site)):
                    _readable_copy(Path(site) / top, into / top)
            self.entries = [str(e) for e in entries]
        return self.entries

    def remove(self) -> None:
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def _loaded_from(site: str) -> set[str]:
    """The top-level entries of *site* (packages, modules) that importing this module loads."""
    return {f[len(site) + 1:].split(os.sep)[0] for f in _files_an_import_loads() if f.startswith(site + os.sep)}


@functools.cache
def _files_an_import_loads() -> tuple[str, ...]:
    """The files of every module importing this module loads in a fresh interpreter (this process has loaded
    far more: copying all of that cost seconds)."""
    probe = (f"import sys, json; sys.path[:0] = {[str(REPO / 'tests'), str(REPO)]!r}; import test_forgery\n"
             "print(json.dumps([f for m in list(sys.modules.values())\n"
             "                  for f in [getattr(m, '__file__', None), *(getattr(m, '__path__', None) or [])]\n"
             "                  if isinstance(f, str)]))")
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True, cwd="/", check=True)
    return tuple(json.loads(out.stdout))


def _readable_copy(src: Path, dst: Path) -> None:
    """Copy the file or folder *src* to *dst*, readable (folders enterable) by anyone."""
    if not src.is_dir():
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o644)
        return
    shutil.copytree(src, dst)
    for folder, _, files in os.walk(dst):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


@pytest.fixture(scope="module")
def for_others():
    copy = ForOthers()
    yield copy
    copy.remove()


def elsewhere(scenario: str, namespaces: bool, user: int | None, for_others: ForOthers) -> dict:
    """Run ``scenario(namespaces)`` of this module under the system Python, as *user* (None: as we are)."""
    if not os.path.exists(SYSTEM_PYTHON):
        pytest.skip(f"no {SYSTEM_PYTHON}")
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip(f"{SYSTEM_PYTHON} is {version}, not this Python's version: heavy's dependencies would not load")
    if user is not None and os.getuid() != 0:
        pytest.skip("switching to another user needs root")
    if user is None:
        path = [str(REPO / "tests"), str(REPO), *_site_dirs()]
    else:
        path = for_others.paths()
        if not _readable_by(path[1], user):
            pytest.skip(f"uid {user} cannot read {path[1]}, a copy of what it must import in the temporary folder "
                        f"(is {tempfile.gettempdir()} private?)")
    prelude = (f"import sys, asyncio, json; sys.path[:0] = {path!r}\n"
               f"import test_forgery as t\n"
               f"print(json.dumps(asyncio.run(t.{scenario}({namespaces!r}))))\n")
    kw = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
    proc = subprocess.run([SYSTEM_PYTHON, "-I", "-B", "-c", prelude], capture_output=True, text=True, cwd="/",
                          timeout=300, env={}, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _readable_by(path: str, uid: int) -> bool:
    """Can *uid* (with no supplementary groups) list *path*? Every folder above it must let it through."""
    probe = subprocess.run([SYSTEM_PYTHON, "-I", "-c", f"import os; os.listdir({path!r})"], capture_output=True,
                           cwd="/", env={}, user=uid, group=uid, extra_groups=[], timeout=60)
    return probe.returncode == 0


IDENTITIES = [pytest.param(None, id="as-us-system-python"), pytest.param(65534, id="as-nobody")]


@pytest.mark.parametrize("namespaces", MODES)
@pytest.mark.parametrize("user", IDENTITIES)
def test_forging_fails_under_other_identities(user, namespaces, for_others):
    heavy_uid = os.getuid() if user is None else user
    results = elsewhere("attack_results", namespaces, user, for_others)
    check_attacks(results, heavy_uid)
    if results["honest right"]["uid"] != heavy_uid or results["honest right"]["proc"] == "private":
        assert all(r["passed"] == [False] * 4 for name, r in results.items() if name in ATTACKS)


@pytest.mark.parametrize("namespaces", MODES)
@pytest.mark.parametrize("user", IDENTITIES)
def test_exit_status_cannot_be_forged_under_other_identities(user, namespaces, for_others):
    r = elsewhere("status_forgery", namespaces, user, for_others)
    assert r["exit_code"] == 3 and r["uid"] != 12345 and r["stdout"] == "42\n"


@pytest.mark.parametrize("namespaces", MODES)
@pytest.mark.parametrize("user", IDENTITIES)
def test_fork_bomb_isolation_under_other_identities(user, namespaces, for_others):
    check_fork_bomb(elsewhere("fork_bomb_next_to_a_sibling", namespaces, user, for_others))


@pytest.mark.parametrize("namespaces", MODES)
def test_leftovers_are_killed_as_the_sandboxs_own_uid_without_namespaces(namespaces, for_others):
    check_leftovers(elsewhere("leftovers_of_an_escaper", namespaces, None, for_others))


# --- where the results are used: `-s execute` and graded code tasks -----------------------------------


class Forgers:
    """Three copies of a forger (the majority) and one honest program, for the same task."""

    name = "forgers"
    FORGER = ATTACKS["kills the judge after forging"]

    async def complete(self, request):
        from heavy.providers.base import Completion

        code = RIGHT if request.params.seed == 3 else self.FORGER
        return Completion(text=f"```python\n{code}```")


async def test_execute_and_grading_pick_the_honest_program_over_forgers():
    from heavy import Heavy
    from heavy.providers.base import Provider
    from heavy.tools.codecheck import passes

    provider = type("ForgerProvider", (Forgers, Provider), {})()
    kw = dict(model="forgers:x", providers={"forgers": provider}, n=4, seed=0)
    vote = await Heavy(strategy="vote", **kw).ask("Write add(a, b).")
    assert "os.kill(os.getppid()" in vote.text  # three identical forgers win a vote on the text
    r = await Heavy(strategy="execute", tests="\n".join(TESTS), **kw).ask("Write add(a, b).")
    assert r.answer.strip() == RIGHT.strip() and r.decision.winner == 3
    assert r.decision.details["pass_matrix"]["rows"] == [[0] * 4] * 3 + [[1] * 4]
    # Graded `heavy eval` code tasks go through passes(): only the honest program is correct.
    assert await passes(RIGHT, "\n".join(TESTS))
    exposed_here = bool((await run_tests(RIGHT, TESTS)).notes)
    for name, code in ATTACKS.items():
        assert not await passes(code, "\n".join(TESTS)) or exposed_here, name
