"""heavy's embedded local model: llama.cpp's ``llama-server`` and a small instruct GGUF on this machine.

One-time setup builds llama-server from pinned sources (~12 minutes on 2 cores) and downloads a model
whose every byte is checked against a pinned sha256; both are cached under ``$HEAVY_HOME`` (default
``~/.cache/heavy``). Then a server runs in the background on 127.0.0.1:8377, where the ``local``
preset finds it::

    from heavy import local
    local.setup("smollm2-135m")                 # idempotent; a second call returns at once
    server = local.start("smollm2-135m")        # background llama-server, waits for /health
    ...                                         # heavy.ask(..., model="local")
    local.stop()                                # SIGTERM by pid (SIGKILL after a timeout)

    with local.serving("smollm2-135m") as srv:  # tests: a free port, stopped by pid afterwards
        heavy.ask("2+2?", model="local", base_url=srv.base_url)

The CLI (`heavy local setup|start|stop|status|models`) is a thin shell over these functions.
"""

from __future__ import annotations

from .catalog import MODELS, RUNTIME_SDIST, LocalModel, Part, get_model
from .download import Downloader, pip_download
from .errors import (IntegrityError, LocalError, NotSetUp, PortInUse, ServerConflict, ServerStartError, SetupError,
                     UnknownLocalModel)
from .home import Layout, heavy_home
from .install import read_config, save_config, setup, status
from .runtime import ensure_runtime, find_runtime
from .server import LocalServer, free_port, pid_alive, port_free, servers, serving, start, stop
from .weights import ensure_model, model_installed, model_path

__all__ = [
    "MODELS", "RUNTIME_SDIST", "LocalModel", "Part", "get_model",
    "Downloader", "pip_download",
    "IntegrityError", "LocalError", "NotSetUp", "PortInUse", "ServerConflict", "ServerStartError", "SetupError",
    "UnknownLocalModel",
    "Layout", "heavy_home",
    "read_config", "save_config", "setup", "status",
    "ensure_runtime", "find_runtime",
    "LocalServer", "free_port", "pid_alive", "port_free", "servers", "serving", "start", "stop",
    "ensure_model", "model_installed", "model_path",
]
