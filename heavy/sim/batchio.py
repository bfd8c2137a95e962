"""The file formats of the simulator's batch APIs (:mod:`heavy.sim.batch`): uploaded files, multipart uploads,
the validation of an OpenAI batch input file (its lines, custom_ids and model), and the damage a test may ask
the result files to carry (:class:`ResultFaults`)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from .wire import SimHTTPError

__all__ = ["SimFile", "ResultFaults", "openai_lines", "custom_id_ok", "multipart", "CHAT"]

CHAT = "/v1/chat/completions"


@dataclass
class SimFile:
    """A file of the Files API: an upload, or a job's output or error file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def card(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.content), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}


@dataclass
class ResultFaults:
    """Damage done to the result files of the next jobs, so tests can show what heavy makes of it: ``drop``
    lines left out and ``garble`` lines cut in half (not JSON), picked among the requests whose outcome is in
    ``outcomes`` (``succeeded``, ``errored``, ``expired``, ``cancelled``). The job's own counts stay true, as a
    provider's would. ``jobs``: how many more jobs it damages (``None``: every one). Set it on
    :attr:`BatchStore.faults <heavy.sim.batch.BatchStore.faults>`."""

    drop: int = 0
    garble: int = 0
    outcomes: tuple[str, ...] = ("succeeded",)
    jobs: int | None = 1

    def pick(self, results: list[tuple[str, str, Any]], rng: random.Random) -> tuple[set[str], set[str]]:
        """The custom_ids of a job's results to leave out and to garble (and one job less to damage)."""
        if self.jobs is not None:
            if self.jobs <= 0:
                return set(), set()
            self.jobs -= 1
        chosen = [cid for cid, outcome, _ in results if outcome in self.outcomes]
        rng.shuffle(chosen)
        return set(chosen[:self.drop]), set(chosen[self.drop:self.drop + self.garble])

    @staticmethod
    def line(row: dict[str, Any], cid: str, dropped: set[str], garbled: set[str]) -> str:
        """One JSONL line of a result file as damaged: empty when left out, its first half when garbled."""
        if cid in dropped:
            return ""
        text = json.dumps(row)
        return (text[: len(text) // 2] if cid in garbled else text) + "\n"


def openai_lines(content: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The requests of an input file and the validation errors that fail its job (OpenAI's rules)."""
    lines: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    models: set[str] = set()
    for number, raw in enumerate(content.decode("utf-8", "replace").split("\n"), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            row = None
        cid = row.get("custom_id") if isinstance(row, dict) else None
        problem = None
        if not isinstance(row, dict) or not isinstance(row.get("body"), dict):
            problem = ("invalid_json_line", "This line is not a JSON object with a 'body' object.")
        elif not isinstance(cid, str) or not custom_id_ok(cid):
            problem = ("invalid_custom_id", "custom_id must be 1-64 characters of a-z A-Z 0-9 _ -.")
        elif cid in seen:
            problem = ("duplicate_custom_id", f"The custom_id {cid!r} is used more than once.")
        elif row.get("method") != "POST" or row.get("url") != CHAT:
            problem = ("invalid_url", f"Every request must be POST {CHAT}, the batch's endpoint.")
        if problem:
            errors.append({"code": problem[0], "message": problem[1], "param": None, "line": number})
            continue
        seen.add(cid)
        models.add(str(row["body"].get("model")))
        lines.append({"custom_id": cid, "body": row["body"]})
    if len(models) > 1:
        errors.append({"code": "mixed_models", "message": "A batch input file may only hold requests for one model "
                       f"(found {', '.join(sorted(models))}).", "param": None, "line": None})
    if not lines and not errors:
        errors.append({"code": "empty_file", "message": "The input file holds no requests.", "param": None,
                       "line": None})
    return lines, errors


def custom_id_ok(cid: str) -> bool:
    return 1 <= len(cid) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in cid)


def multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, bytes)."""
    boundary = next((p.split("=", 1)[1].strip('"') for p in content_type.split(";")
                     if p.strip().startswith("boundary=")), None)
    if not content_type.startswith("multipart/form-data") or not boundary:
        raise SimHTTPError(400, "Uploads must be multipart/form-data with a boundary.", "invalid_request")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        disposition = next((h for h in head.decode("latin-1").split("\r\n")
                            if h.lower().startswith("content-disposition")), "")
        params = dict(p.strip().split("=", 1) for p in disposition.split(";")[1:] if "=" in p)
        name = params.get("name", "").strip('"')
        if name:
            filename = params.get("filename")
            fields[name] = (filename.strip('"') if filename else None, data[:-2] if data.endswith(b"\r\n") else data)
    return fields
