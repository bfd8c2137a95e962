"""Errors of ``heavy.local``, placed in heavy's one error tree (:mod:`heavy.errors`).

::

    HeavyError
    ├── ConfigError
    │   ├── UnknownLocalModel       the model key is not in the catalog
    │   ├── NotSetUp                the runtime or the model is missing: run `heavy local setup`
    │   ├── PortInUse               the port is taken by another program: pick another with --port
    │   └── ServerConflict          a heavy server with other settings already runs on that port
    └── LocalError                  something on this machine failed while setting up or serving
        ├── SetupError              a download, a build or a tool is missing / failed
        │   └── IntegrityError      a downloaded file does not have its pinned sha256
        └── ServerStartError        llama-server died or did not get healthy (carries the log tail)

Every message names the fix (the command to run, the flag to change or the log to read).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, HeavyError

__all__ = [
    "UnknownLocalModel",
    "NotSetUp",
    "PortInUse",
    "ServerConflict",
    "LocalError",
    "SetupError",
    "IntegrityError",
    "ServerStartError",
]


class UnknownLocalModel(ConfigError):
    """The model key is not one of :data:`heavy.local.catalog.MODELS`."""


class NotSetUp(ConfigError):
    """llama-server is not built or the model is not downloaded yet."""


class PortInUse(ConfigError):
    """The TCP port is already taken on 127.0.0.1."""


class ServerConflict(ConfigError):
    """A heavy local server already runs on that port, with another model or other settings."""


class LocalError(HeavyError):
    """A step on this machine failed (download, build, server start)."""


class SetupError(LocalError):
    """Setting up the runtime or a model failed; ``log`` names the file with the details, if any."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        self.log = log
        super().__init__(message)


class IntegrityError(SetupError):
    """A downloaded file does not match its pinned sha256; it was deleted, nothing used it."""


class ServerStartError(LocalError):
    """llama-server exited during startup or did not report healthy in time."""

    def __init__(self, message: str, log: Path | None = None, log_tail: list[str] | None = None) -> None:
        self.log = log
        self.log_tail = log_tail or []
        super().__init__(message)
