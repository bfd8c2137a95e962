"""``heavy ask``: one question, N hypotheses, one answer on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..settings import ASK
from . import fail, run_guarded
from .flags import run_flags


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``-o key=value`` pairs; values are read as JSON when they parse (numbers, true/false, lists), and
    ``key=@path`` reads the value from a file (e.g. ``-o tests=@tests.py``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"option {pair!r} is not key=value (e.g. -o early_stop=true)")
        if raw.startswith("@") and len(raw) > 1:
            try:
                with open(raw[1:], encoding="utf-8") as f:
                    value: Any = f.read()
            except OSError as exc:
                fail(f"option {key.strip()}: cannot read {raw[1:]!r} ({exc.strerror or exc})")
            out[key.strip().replace("-", "_")] = value
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key.strip().replace("-", "_")] = value
    return out


def read_stdin_text() -> str:
    """All of stdin as UTF-8 text, a leading byte-order mark dropped; binary input fails with one line.

    Bytes are decoded here rather than by the terminal's locale so that a C/POSIX locale cannot smuggle
    undecodable bytes in as surrogates (which only failed later, once per hypothesis, in the provider).
    Notepad and PowerShell pipes start UTF-8 text with a BOM, which is not part of the question.
    """
    stream = sys.stdin
    raw = getattr(stream, "buffer", None)
    if raw is not None:
        data = raw.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            fail(f"stdin is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                 "pipe the question as UTF-8 (e.g. through `iconv -t UTF-8`)")
    else:  # a text-only stream (stdin replaced by an embedding program): it was decoded already
        text = stream.read()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            fail(f"stdin is not UTF-8 text (undecodable input at character {exc.start}); pipe the question as UTF-8")
    if "\0" in text:
        fail(f"stdin holds binary data (a NUL at character {text.index(chr(0))}); pipe the question as text")
    return text.removeprefix("\ufeff")


def read_question(question: str | None) -> str:
    """The question from the argument, or from stdin when it is absent or ``-``; empty input fails."""
    if question in (None, "-"):
        if sys.stdin is None or sys.stdin.isatty():
            fail('no question: give it as an argument (heavy ask "...") or on stdin')
        question = read_stdin_text()
    if not question.strip():
        fail("the question is empty")
    return question


@click.command()
@click.argument("question", required=False)
@run_flags(ASK)
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Strategy option (repeatable); KEY=@FILE reads the value from a file (-o tests=@tests.py).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole Result as one JSON object.")
@click.option("--live/--no-live", default=None, help="Live view on stderr (default: when stderr is a terminal).")
def ask(question: str | None, as_json: bool, live: bool | None, options: tuple[str, ...], **flags: Any) -> None:
    """Ask QUESTION (or stdin): sample N hypotheses in parallel, decide, print only the answer.

    Defaults come from the config file and HEAVY_<OPTION> variables (`heavy config` shows them), then from
    heavy's built-ins.
    """
    text = read_question(question)
    strategy_options = parse_options(options)

    def go() -> None:
        from ..api import Heavy
        from ..config import run_settings

        h = Heavy(settings=run_settings({**flags, "options": strategy_options or None}))
        show_live = sys.stderr.isatty() if live is None else live
        if show_live:
            from .live import LiveView

            with LiveView(n=h.n, question=text) as view:
                result = h.ask_sync(text, on_event=view.on_event)
            view.print_decision(result)
        else:
            result = h.ask_sync(text)
        if as_json:
            click.echo(result.model_dump_json())
        else:
            click.echo(result.answer)
            if not show_live:  # the live view showed them; a plain run still says what was not sent and why
                for note in result.notes:
                    click.echo(f"heavy: note: {note}", err=True)

    run_guarded(go)
