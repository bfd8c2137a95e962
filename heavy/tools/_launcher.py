"""The sandbox launcher: run as ``python -I -S _launcher.py CONFIG_JSON`` by :mod:`heavy.tools.sandbox`.

Standard library only, and imports nothing from heavy: it runs in a separate process with an empty
environment. It isolates what the operating system lets it isolate, tells the parent what it achieved
(one JSON line on the report file descriptor), then runs the program with resource limits.

The best it can do, on Linux (each step is tried, and what failed is reported, never hidden):

1. **Namespaces**: as root, ``unshare(NEWNS|NEWPID|NEWNET|NEWIPC)``; as any other user, the same plus
   ``NEWUSER`` (an unprivileged user namespace that maps only the caller's own uid). A new network
   namespace has only a loopback interface that is down: no network at all, not even 127.0.0.1.
2. **PID namespace**: a forked *init* (pid 1 in the namespace, killed with the launcher through
   ``PR_SET_PDEATHSIG``) mounts a private ``/proc`` and runs the program as pid 2. When init exits
   the kernel kills every process left in the namespace: a fork bomb or a daemonised child cannot
   outlive the run, and ``/proc`` shows no process outside the sandbox.
3. **Mounts** (private to the sandbox): every mount read-only (``mount_setattr``, Linux 5.12+), a tmpfs
   over the home directories (and, as root, over any folder the program's uid cannot enter on the way to
   the Python installation, e.g. a venv in mktemp's 0700 folder), and private writable tmpfs over ``/tmp``,
   ``/var/tmp`` and ``/dev/shm``; the Python installation is bound back read-only and the work directory bound back writable, so the
   program can neither read dotfiles (``~/.ssh``, ``~/.config``, shell histories) nor change any file
   outside its work directory.
4. **Identity**: when started as root the program runs as a uid of its own, ``uid_base`` + the
   launcher's pid (unique among the sandboxes running at once, in no ``/etc/passwd``), and owns its
   work directory: root-owned files are not readable, ``RLIMIT_NPROC`` applies (the kernel never
   enforces it on root) and counts this sandbox's processes only, so one sandbox's fork bomb cannot
   make another's ``fork()`` fail. As any other user the user namespace gives each sandbox its own
   process count (Linux 5.14+, where ``RLIMIT_NPROC`` is counted per user namespace).
5. **Limits** (``setrlimit`` on the program): CPU seconds, address space, file size, processes and
   open files; the environment is empty.

Without namespaces (containers that forbid them) only 4 and 5 apply, and the report says so.

A ``channel_fd`` in the configuration (a pipe's write end) is handed to the program as an inherited
descriptor, and closed in the launcher and in init: only the program holds it. Init makes itself
non-dumpable, so a program of the same uid cannot reach init's descriptors through ``/proc/1/fd``
(its report of the program's exit status cannot be forged).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import sys

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER = 0x00020000, 0x08000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 0x1
#: RLIMIT_NPROC is counted per user namespace from this kernel on (before, per uid across namespaces).
NPROC_PER_USERNS = (5, 14)

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _read_only_tree(path: str) -> None:
    """Make every mount under *path* read-only (``mount_setattr``, Linux 5.12+), in our mount namespace."""
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _libc.syscall.restype = ctypes.c_long
    _check(_libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD), path.encode(),
                         ctypes.c_uint(AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           "mount_setattr")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _drop_to(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _uid_can_run(uid: int, paths: list[str]) -> bool:
    """Whether *uid* can read every path (checked in a short-lived child, so we stay root)."""
    pid = os.fork()
    if pid == 0:
        try:
            _drop_to(uid, uid)
            ok = all(os.access(p, os.R_OK | (os.X_OK if os.path.isdir(p) else 0)) for p in paths)
        except OSError:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _out_of_reach(uid: int, paths: list[str], hidden: list[str]) -> list[str]:
    """The outermost folder on the way to each path that *uid* cannot enter (a private folder, e.g. mktemp's
    0700, holding a venv), unless it lies in a folder hidden anyway. Checked in a short-lived child as *uid*."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        found = []
        try:
            _drop_to(uid, uid)
            for path in paths:
                parts = path.strip("/").split("/")
                for folder in ("/" + "/".join(parts[:i]) for i in range(1, len(parts))):
                    if any(_under(folder, h) for h in hidden):
                        break
                    if not os.access(folder, os.X_OK):
                        found.append(folder)
                        break
        except OSError:
            pass
        os.write(write, json.dumps(found).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return list(dict.fromkeys(json.loads(data or b"[]")))


def _give(workdir: str, uid: int) -> None:
    """Make the program's uid the owner of its work directory (and of the files heavy put there)."""
    for root, dirs, files in os.walk(workdir):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, uid, uid, follow_symlinks=False)


def _kernel_at_least(version: tuple[int, int]) -> bool:
    try:
        major, minor = (int(x) for x in os.uname().release.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= version


def _set_limits(limits: dict[str, int]) -> None:
    table = {"cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS, "fsize": resource.RLIMIT_FSIZE,
             "nproc": resource.RLIMIT_NPROC, "nofile": resource.RLIMIT_NOFILE}
    for name, value in limits.items():
        soft = hard = int(value)
        if name == "cpu":
            hard = soft + 1  # SIGXCPU at the soft limit (catchable, so the traceback says why), SIGKILL 1 s later
        resource.setrlimit(table[name], (soft, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _setup_mounts(cfg: dict, report: dict) -> None:
    """Private mounts: hide home directories and temp dirs, bind back the Python installation (read-only)
    and the work directory. Each step is best effort; failures are reported."""
    notes = report.setdefault("notes", [])
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
    except OSError as exc:
        notes.append(f"mounts not private ({exc.strerror}); nothing hidden")
        return
    hide = [p for p in dict.fromkeys(cfg["hide"]) if os.path.isdir(p) and not os.path.islink(p)]
    keep = [(p, False) for p in cfg["keep"] if os.path.exists(p)] + [(cfg["workdir"], True)]
    # Open what must stay reachable before anything is hidden: binds come from these descriptors.
    handles = []
    for path, writable in keep:
        if writable or any(_under(path, h) for h in hide):
            try:
                handles.append((path, writable, os.path.isdir(path), os.open(path, os.O_PATH)))
            except OSError as exc:
                notes.append(f"cannot keep {path}: {exc.strerror}")
    try:  # the whole file system read-only; what must be writable is bound back below
        _read_only_tree("/")
        report["filesystem"] = "read-only except the work directory and private temp dirs"
    except OSError as exc:
        notes.append(f"file system not made read-only ({exc.strerror}): writable where the uid may write")
    hidden = []
    for path in hide:
        try:
            scratch = path in ("/tmp", "/var/tmp", "/dev/shm")  # private, empty, writable by anyone
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=64m" if scratch else "mode=755,size=1m")
            hidden.append(path)
        except OSError as exc:
            notes.append(f"cannot hide {path}: {exc.strerror}")
    for path, writable, is_dir, fd in handles:
        try:
            if is_dir:
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                open(path, "a").close()
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
            flags = MS_BIND | MS_REMOUNT | (0 if writable else MS_RDONLY)
            flags |= os.statvfs(path).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)  # keep locked flags
            try:
                _mount(None, path, None, flags)
            except OSError as exc:
                notes.append(f"{path} kept {'read-only' if writable else 'writable'} ({exc.strerror})")
        except OSError as exc:
            notes.append(f"cannot bind {path}: {exc.strerror}")
        finally:
            os.close(fd)
    report["hidden"] = hidden
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        report["proc"] = "private"
    except OSError as exc:
        notes.append(f"host /proc stays visible ({exc.strerror})")


def _exec_program(cfg: dict, drop: tuple[int, int] | None) -> None:
    """Become the program: drop privileges, set limits, exec with an empty environment. Never returns."""
    try:
        os.chdir(cfg["workdir"])
        if drop is not None:
            _drop_to(*drop)
        _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        # Python ignores SIGXFSZ (a too-large write raises OSError instead); restore defaults for the child.
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        _set_limits(cfg["limits"])
        os.execve(cfg["python"], [cfg["python"], *cfg["args"]], {})
    except BaseException as exc:  # noqa: BLE001 - anything here means the program never started
        os.write(2, f"heavy sandbox: could not start the program: {exc}\n".encode())
    os._exit(126)


def _init(cfg: dict, report_fd: int, alive: int, drop: tuple[int, int] | None, report: dict) -> None:
    """pid 1 of the new PID namespace: mounts, then runs the program as pid 2, reaps, reports its status."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # same uid as the program (user namespace): keep it out of /proc/1/fd
    if select.select([alive], [], [], 0)[0]:  # EOF already: the launcher died before PDEATHSIG was armed
        os._exit(1)
    os.close(alive)
    _setup_mounts(cfg, report)
    os.write(report_fd, (json.dumps(report) + "\n").encode())
    child = os.fork()
    if child == 0:
        os.close(report_fd)
        _exec_program(cfg, drop)
    _close_channel(cfg)
    status = 0
    while True:  # reap everything; stop when the program itself has ended
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        if pid == child:
            status = st
            break
    outcome = ({"signal": os.WTERMSIG(status)} if os.WIFSIGNALED(status)
               else {"exit": os.WEXITSTATUS(status)})
    os.write(report_fd, (json.dumps({"status": outcome}) + "\n").encode())
    os._exit(0)  # the kernel now kills whatever the program left behind in the namespace


def _close_channel(cfg: dict) -> None:
    if cfg.get("channel_fd") is not None:
        os.close(int(cfg["channel_fd"]))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    report_fd = int(cfg["report_fd"])
    os.set_inheritable(report_fd, True)
    if cfg.get("channel_fd") is not None:
        os.set_inheritable(int(cfg["channel_fd"]), True)
    uid, gid = os.getuid(), os.getgid()
    root = uid == 0
    report: dict = {"namespaces": False, "network": "not isolated", "pid_namespace": False, "proc": "host",
                    "hidden": [], "uid": uid, "nproc": "enforced", "nproc_scope": "unknown",
                    "filesystem": "writable where the uid may write", "notes": []}
    drop: tuple[int, int] | None = None
    namespaced = False
    if root and cfg.get("namespaces", True):
        # A private folder on the way to Python is hidden as well, so Python is bound back where the program's
        # uid reaches it. Checked before unshare: the first child after it would be the PID namespace's init.
        own = int(cfg["uid_base"]) + os.getpid()
        cfg["hide"] = [*cfg["hide"], *_out_of_reach(own, [*cfg["keep_check"], *cfg["keep"]], cfg["hide"])]
    if cfg.get("namespaces", True):
        base = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
        try:
            if root:
                _unshare(base)
            else:
                _unshare(base | CLONE_NEWUSER)
                _write("/proc/self/setgroups", "deny")
                _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
                _write("/proc/self/gid_map", f"{gid} {gid} 1\n")
            namespaced = True
        except OSError as exc:
            report["notes"].append(f"no namespaces ({exc.strerror or exc}): network and processes are NOT isolated")
    else:
        report["notes"].append("namespaces disabled by configuration")
    if root:
        # A uid no other sandbox has (pids are unique among live processes): the kernel counts
        # RLIMIT_NPROC per uid, so sandboxes sharing one uid would share one process budget.
        own = int(cfg["uid_base"]) + os.getpid()
        _give(cfg["workdir"], own)
        # Inside our own mounts Python is bound back readable; without them the uid may not reach it.
        if namespaced or _uid_can_run(own, cfg["keep_check"]):
            drop = (own, own)
            report["uid"] = own
            report["nproc_scope"] = "this sandbox only (its own uid)"
        else:
            report["nproc"] = "not enforced: running as root (a sandbox uid cannot read this Python installation)"
            report["nproc_scope"] = "none: the kernel does not apply RLIMIT_NPROC to root"
            report["notes"].append("running as root: the kernel does not apply RLIMIT_NPROC to root")
    elif namespaced and _kernel_at_least(NPROC_PER_USERNS):
        report["nproc_scope"] = "this sandbox only (its own user namespace)"
    else:
        why = ("no user namespace" if not namespaced
               else f"Linux {os.uname().release} counts it per uid, not per namespace")
        report["nproc_scope"] = f"shared by every sandbox and every other process of uid {uid} ({why})"
        report["notes"].append(f"RLIMIT_NPROC is shared: every process of uid {uid} counts against each sandbox's "
                               f"limit, so one sandbox's fork bomb makes fork() fail in the others ({why})")
    if not namespaced:
        os.write(report_fd, (json.dumps(report) + "\n").encode())
        os.close(report_fd)
        _exec_program(cfg, drop)
    report.update(namespaces=True, network="isolated", pid_namespace=True)
    alive, holder = os.pipe()  # init sees EOF on `alive` once the launcher is gone
    init = os.fork()
    if init == 0:
        os.close(holder)
        _init(cfg, report_fd, alive, drop, report)
    os.close(alive)
    os.close(report_fd)
    _close_channel(cfg)
    while True:
        try:
            _, status = os.waitpid(init, 0)
            break
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 125)


if __name__ == "__main__":
    main()
