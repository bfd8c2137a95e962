"""The walls between the shells: no shell imports another; what they share lives in heavy.remote, which
imports no web or protocol framework (the CLI may start any shell: it is the launcher)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import imported_modules

HEAVY = Path(__file__).resolve().parents[1] / "heavy"

SHELLS = {"heavy.serve": HEAVY / "serve", "heavy.mcp_server": HEAVY / "mcp_server.py",
          "heavy.llm_plugin": HEAVY / "llm_plugin.py"}


def modules(name: str, path: Path) -> list[tuple[Path, str]]:
    if path.is_dir():
        return [(p, name) for p in sorted(path.glob("*.py"))]
    return [(path, name.rsplit(".", 1)[0])]


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_no_shell_imports_another(shell):
    others = tuple(s for s in SHELLS if s != shell) + ("heavy.cli",)
    for path, package in modules(shell, SHELLS[shell]):
        for module in imported_modules(path, package):
            assert not module.startswith(others), f"{path.relative_to(HEAVY.parent)} imports {module}"


def test_what_the_shells_share_imports_no_framework():
    # Module level only: the listener imports uvicorn inside the function that starts a server. (sys.modules
    # cannot tell: httpx itself imports click and rich for its own CLI when they are installed.)
    frameworks = ("starlette", "uvicorn", "click", "rich", "mcp", "llm")
    paths = sorted((HEAVY / "remote").glob("*.py"))
    assert len(paths) >= 6
    for path in paths:
        for node in ast.parse(path.read_text()).body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            assert not [n for n in names if n.split(".")[0] in frameworks], f"{path.name} imports {names}"
