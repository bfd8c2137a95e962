"""The append-only JSONL files of ``heavy eval``: the results file and sample pools.

Safety rules, because these files hold hours of paid sampling:

* **Nothing is ever deleted or rewritten.** Rows are only appended. A file holding lines that are not rows
  of ours (another program's data, a dataset passed as ``--results`` by mistake) is refused before anything
  is written, naming the line and the fix.
* **A torn last line** (a crash mid-append) is ignored when reading and left in place: the next append
  starts on a new line. Every row is written with ``"id"`` first, so a torn line is recognisable as the
  start of one of our rows and is never confused with foreign data. Such a line *before* the last one
  (:attr:`JsonlFile.damaged`) may be an old torn append or a damaged row: results files and pools skip it;
  the batch book, whose rows say what was paid for, reports it and acts on what can still be read of it
  (:class:`BatchBook`).
* **One writer at a time.** A writer holds an exclusive ``flock`` on a sidecar ``<file>.lock`` (which names
  its pid) from before it reads the file until it is closed; a second writer is refused at once with that
  pid. The kernel drops the lock when the process dies, so a killed run never leaves a file locked.
  Readers (a ``--replay`` of a pool, a report) take no lock and never change the file.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError
from ..types import Hypothesis

__all__ = ["JsonlFile", "ResultsFile", "Pool", "BatchBook", "Damaged", "WriterLock"]

#: Every row heavy appends starts with these bytes (``json.dumps`` of a dict whose first key is ``id``).
ROW_START = b'{"id": '
_BOM = b"\xef\xbb\xbf"


class WriterLock:
    """An exclusive, non-blocking lock that marks *target* as being appended to by this process.

    The lock is ``flock`` on ``<target>.lock``, which holds the writer's pid for the refusal message. It is
    removed on release while still locked, and a locker checks that the path still names the inode it
    locked, so a second writer can never end up holding a lock on an unlinked sidecar.
    """

    def __init__(self, target: Path, flag: str) -> None:
        self.target = target
        self.path = target.with_name(target.name + ".lock")
        self.flag = flag
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ConfigError naming the writer that holds it."""
        if self._fd is not None:
            return
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the folder of {self.target}: {exc.strerror}: pick another "
                              f"{self.flag} path") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"cannot write {self.path} (the lock of {self.target}): {exc.strerror}: "
                                  f"pick another {self.flag} path") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _read_pid(fd)
                os.close(fd)
                raise ConfigError(self._busy(pid)) from None
            try:
                now = os.stat(self.path)
                then = os.fstat(fd)
                same = (now.st_dev, now.st_ino) == (then.st_dev, then.st_ino)
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous writer removed this sidecar as we locked it: lock the current one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _busy(self, pid: int | None) -> str:
        if pid == os.getpid():
            return (f"{self.target} is already open for writing in this process: use one {self.flag} "
                    "file per run")
        who = f"pid {pid}" if pid else "pid unknown"
        return (f"{self.target} is being written by another heavy eval ({who}); wait for it or pick another "
                f"{self.flag}")

    def release(self) -> None:
        """Drop the lock (removing the sidecar first, while it is still ours)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass  # already gone, or a read-only folder: a stale sidecar is harmless (flock is what counts)
        os.close(fd)

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # interpreter shutdown: the kernel drops the lock with the process anyway
            pass


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).split()[0])
    except (OSError, ValueError, IndexError):
        return None  # the holder has locked but not yet written its pid


def _is_torn(raw: bytes) -> bool:
    """A line cut short by a crash mid-append: the start of one of our rows (never foreign data)."""
    return raw.startswith(ROW_START) or ROW_START.startswith(raw)


class JsonlFile:
    """An append-only JSONL file of rows (JSON objects with an ``id``); see the module docstring.

    ``lock=True`` takes the writer lock before reading (a run that decides what to do from the rows must
    hold it from the start); otherwise the first :meth:`append` takes it. :meth:`close` releases it.
    """

    #: What a row of this file is, the CLI flag that names the file, and the fix when a file only read
    #: holds other data (all for error messages).
    KIND: ClassVar[str] = "heavy eval row"
    FLAG: ClassVar[str] = "--results"
    READ_FIX: ClassVar[str] = "give a file written by heavy eval"

    def __init__(self, path: str | Path, *, lock: bool = False) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self.linenos: list[int] = []  #: the line of each row read from the file (for error messages)
        #: Lines that start like one of our rows but are not JSON, before the last line: (line number, bytes).
        self.damaged: list[tuple[int, bytes]] = []
        self.torn: int | None = None  #: the line number of a torn last line (an interrupted append)
        self._lock = WriterLock(self.path, self.FLAG)
        if lock:
            self.lock()
        else:
            self._load()

    @property
    def locked(self) -> bool:
        return self._lock.held

    def lock(self) -> JsonlFile:
        """Become the one writer of this file (ConfigError if another is), and read it afresh."""
        if self.path.suffix == ".gz":
            raise ConfigError(f"{self.path} is compressed and read-only: gunzip it to record into it")
        if not self._lock.held:
            self._lock.acquire()
            try:
                self._load()
            except BaseException:
                self._lock.release()
                raise
        return self

    def close(self) -> None:
        """Release the writer lock (if held); the rows stay readable."""
        self._lock.release()

    def __enter__(self) -> JsonlFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    #: The fix when a file about to be written holds other data (None: pick another path or remove the file).
    WRITE_FIX: ClassVar[str | None] = None

    def _refuse(self, lineno: int, what: str) -> ConfigError:
        fix = (self.WRITE_FIX or f"heavy never deletes data it did not write; pick another {self.FLAG} path or "
               "remove the file") if self._lock.held else self.READ_FIX
        return ConfigError(f"{self.path}:{lineno}: {what}, not a {self.KIND}: {fix}")

    def _check(self, row: dict[str, Any], lineno: int) -> None:
        """Raise if *row* is not a row of this kind of file (subclasses add their keys)."""
        if "id" not in row:
            raise self._refuse(lineno, "a JSON object without an 'id'")

    def _load(self) -> None:
        rows: list[dict[str, Any]] = []
        linenos: list[int] = []
        damaged: list[tuple[int, bytes]] = []
        torn: int | None = None
        lines = self._lines()
        for lineno, raw in lines:
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except ValueError:  # not JSON, or not UTF-8
                if _is_torn(raw.rstrip(b"\r")):  # ignored here, left in the file
                    if lineno == len(lines):
                        torn = lineno  # the file ends inside it: a crash mid-append
                    else:
                        damaged.append((lineno, raw.rstrip(b"\r")))
                    continue
                raise self._refuse(lineno, "a line that is not JSON") from None
            if not isinstance(row, dict):
                raise self._refuse(lineno, f"a JSON {type(row).__name__}")
            self._check(row, lineno)
            rows.append(row)
            linenos.append(lineno)
        self.rows, self.linenos, self.damaged, self.torn = rows, linenos, damaged, torn

    def _lines(self) -> list[tuple[int, bytes]]:
        if self.path.suffix == ".gz":
            return self._gzip_lines()
        if not self.path.exists():
            return []
        if not self.path.is_file():
            raise ConfigError(f"{self.path} is not a file: pick another {self.FLAG} path")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from None
        # Split on \n only: a JSON string may hold U+2028, which str.splitlines would cut.
        return list(enumerate(data.split(b"\n"), 1))

    def _gzip_lines(self) -> list[tuple[int, bytes]]:
        try:
            with gzip.open(self.path, "rb") as f:
                return list(enumerate(f.read().split(b"\n"), 1))
        except FileNotFoundError:
            raise ConfigError(f"{self.path}: no such file (a .gz file can be read, not created)") from None
        except (OSError, EOFError) as exc:
            raise ConfigError(f"{self.path}: not a readable gzip JSONL file ({exc}); gunzip it and check it") from None

    def append(self, row: dict[str, Any]) -> None:
        """Append one row (``id`` first) as one line, after a newline if the file ends in a torn line."""
        if "id" not in row:
            raise ConfigError(f"{self.path}: every row needs an 'id' (it is how a re-run finds what is done)")
        self.lock()
        row = {"id": row["id"], **row}
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        with self.path.open("a+b") as f:
            end = f.seek(0, os.SEEK_END)
            if end:
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line  # keep the torn line (or the user's last line) intact
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)
        self.linenos.append(0)
        self.torn = None


class ResultsFile(JsonlFile):
    """The append-only results file; ``done`` holds the (id, strategy, n) keys already answered."""

    KIND = "heavy eval results row"
    FLAG = "--results"
    READ_FIX = "give a results file written by heavy eval --results"

    @staticmethod
    def key(item_id: str, strategy: str, n: int) -> tuple[str, str, int]:
        return (item_id, strategy, n)

    def done(self, retry_errors: bool = False) -> set[tuple[str, str, int]]:
        """Keys answered so far; ConfigError if a row is not a ``heavy eval`` result (before anything is written)."""
        for row, lineno in zip(self.rows, self.linenos):
            if not ("strategy" in row and isinstance(row.get("n"), int)):
                raise self._refuse(lineno, "a row without 'strategy' and 'n'")
        return {self.key(r["id"], r["strategy"], r["n"]) for r in self.rows
                if not (retry_errors and r.get("error"))}


class Pool(JsonlFile):
    """Recorded hypotheses, one line per question: ``{"id", "question", "gold", "model", "hypotheses": [...]}``."""

    KIND = "row of a pool recorded by heavy eval --record"
    FLAG = "--record"
    READ_FIX = "--replay takes a pool written by heavy eval --record"

    def _check(self, row: dict[str, Any], lineno: int) -> None:
        if "id" not in row or not isinstance(row.get("hypotheses"), list):
            raise self._refuse(lineno, "a JSON object without 'id' and a 'hypotheses' list")

    def hypotheses(self, item_id: str) -> list[Hypothesis] | None:
        from pydantic import ValidationError

        for row in reversed(self.rows):
            if row.get("id") == item_id:
                try:
                    return [Hypothesis.model_validate(h) for h in row["hypotheses"]]
                except ValidationError as exc:
                    raise ConfigError(f"{self.path}: the recorded hypotheses of question {item_id!r} are not "
                                      f"valid ({exc.error_count()} problem(s)): record the pool again") from None
        return None


class BatchBook(JsonlFile):
    """The books of ``heavy eval --batch``, beside its results (``OUT.jsonl.batches``): which requests went into
    which batch job, the jobs' ids and ends, and the hypotheses that came back. Rows, each with an ``id`` and a
    ``kind`` (:mod:`heavy.evaluation.batching` writes and reads them):

    * ``submit``: ``id`` a tag, ``model``, ``endpoint``, ``requests`` (custom_id -> [question id, slot]), ``ts``;
      written *before* the job is created, so a job whose creation answer is lost is found again by its tag;
    * ``job``: ``id`` the tag, ``batch_id``: the provider's job;
    * ``ended``: ``id`` the tag, ``batch_id``, ``status``, ``failure``: its answers are all in the rows before;
    * ``samples``: ``id`` a question, ``batch_id``, ``hypotheses``: what came back for it from that job (each
      hypothesis's ``index`` is its slot, ``0 .. N-1``);
    * ``torn``: ``line``: that line was a torn last line (an interrupted append) when a run appended after it,
      so it counts as never written even though it is no longer last.

    Its rows say what was paid for, so they are checked as they are read: a row of the wrong shape is a
    ConfigError naming file:line, and a damaged line (:attr:`salvaged`) is kept with what can still be read of it
    for the run to act on; only a torn last line counts as never written.
    """

    KIND = "row of the batch book heavy eval --batch keeps beside its results"
    FLAG = "--results"
    READ_FIX = "give the .batches file that heavy eval --batch wrote beside its results"
    WRITE_FIX = ("repair that line by hand, or delete it if it is not the book's (removing the whole book would "
                 "submit, and pay for, every request it records again)")
    KINDS: ClassVar[tuple[str, ...]] = ("submit", "job", "ended", "samples", "torn")

    @classmethod
    def beside(cls, results: str | Path, *, lock: bool = False) -> BatchBook:
        """The book of the results file *results* (``<results>.batches``)."""
        results = Path(results)
        return cls(results.with_name(results.name + ".batches"), lock=lock)

    def _check(self, row: dict[str, Any], lineno: int) -> None:
        if "id" not in row or row.get("kind") not in self.KINDS:
            raise self._refuse(lineno, f"a JSON object without 'id' and a 'kind' ({', '.join(self.KINDS)})")
        problem = _shape(row)
        if problem:
            raise ConfigError(f"{self.path}:{lineno}: a {row['kind']!r} row whose {problem}: this line of the batch "
                              "book is damaged, and heavy does not guess what it recorded (that could pay for "
                              "requests twice): repair it by hand (heavy.evaluation.files.BatchBook says what each "
                              "row holds)")

    @property
    def salvaged(self) -> list[Damaged]:
        """The damaged lines, with what can still be read of each; lines a ``torn`` row marks are left out."""
        marked = {row["line"] for row in self.rows if row["kind"] == "torn"}
        return [Damaged.read(lineno, raw) for lineno, raw in self.damaged if lineno not in marked]

    def append(self, row: dict[str, Any]) -> None:
        """Append *row*; the first append after a torn last line first marks that line as never written."""
        self.lock()
        if self.torn is not None:
            torn = self.torn
            super().append({"id": f"line {torn}", "kind": "torn", "line": torn})
        super().append(row)


def _shape(row: dict[str, Any]) -> str | None:
    """What is wrong with the fields of a batch book row of a known kind (None: nothing)."""
    kind = row["kind"]
    if not isinstance(row["id"], str) or not row["id"]:
        return f"'id' is {_excerpt(row['id'])}, not a non-empty string"
    need: dict[str, Any] = {
        "submit": {"model": str, "endpoint": str, "requests": dict, "ts": (int, float)},
        "job": {"batch_id": str}, "ended": {}, "samples": {"batch_id": str, "hypotheses": list},
        "torn": {"line": int},
    }[kind]
    for name, types in need.items():
        value = row.get(name)
        if not isinstance(value, types) or isinstance(value, bool):
            return f"'{name}' is {_excerpt(value)}"
    for name in ("batch_id", "status", "failure") if kind == "ended" else ():
        if row.get(name) is not None and not isinstance(row[name], str):
            return f"'{name}' is {_excerpt(row[name])}"
    if kind == "submit":
        for cid, where in row["requests"].items():
            if not (isinstance(where, list) and len(where) == 2 and isinstance(where[0], str)
                    and isinstance(where[1], int) and not isinstance(where[1], bool) and where[1] >= 0):
                return f"'requests' holds {_excerpt({cid: where})}, not custom_id -> [question id, slot]"
    if kind == "samples":
        from pydantic import ValidationError

        for i, h in enumerate(row["hypotheses"]):
            try:
                Hypothesis.model_validate(h)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first.get("loc", ())) or "it"
                return f"hypothesis {i} is not valid ({where}: {first.get('msg', 'invalid')})"
            if h["index"] < 0:
                return f"hypothesis {i} has index {h['index']}, not a slot"
    return None


def _excerpt(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


_STR = rb'"((?:[^"\\]|\\.)*)"'


@dataclass(frozen=True)
class Damaged:
    """A damaged line of the batch book (not JSON, not its torn last line) and what can still be read of it:
    the row's ``id`` (a tag or a question id), ``kind``, ``batch_id``, ``model``, ``ts`` and the custom_ids of
    its ``requests``, each None (or empty) when that part is gone."""

    lineno: int
    id: str | None
    kind: str | None
    batch_id: str | None
    model: str | None
    ts: float | None
    custom_ids: tuple[str, ...]

    @classmethod
    def read(cls, lineno: int, raw: bytes) -> Damaged:
        def text(found: re.Match[bytes] | None) -> str | None:
            try:  # a JSON string, if it survived (not cut, valid UTF-8)
                return str(json.loads(b'"' + found.group(1) + b'"')) if found else None
            except ValueError:
                return None

        def string(key: str) -> str | None:
            return text(re.search(rb'"' + key.encode() + rb'": ' + _STR, raw))

        row_id = text(re.match(rb'\{"id": ' + _STR + rb'[,}]', raw))
        kind = re.search(rb'"kind": "(' + "|".join(BatchBook.KINDS).encode() + rb')"', raw)
        ts = re.search(rb'"ts": (\d+(?:\.\d+)?)[,}]', raw)
        cids = re.findall(rb'"([A-Za-z0-9_-]{1,64})": \["', raw)
        return cls(lineno, row_id, kind.group(1).decode() if kind else None, string("batch_id"), string("model"),
                   float(ts.group(1)) if ts else None, tuple(c.decode() for c in cids))
