"""Code tasks in the simulator: a reference solution it "knows", plausible wrong versions, and tests.

A dataset row with ``solution`` (and ``tests``) instead of ``answer`` is a code task: its gold is the
reference solution and its tests, packed into one string by :func:`code_gold`. The simulated model
answers such a question with the solution in a fenced block (right with probability ``accuracy``) or
with a *mutant*: the solution with one small, deterministic slip (an integer off by one, a comparison
loosened or tightened, ``+`` for ``-``) made with ``ast``, the way real off-by-one bugs look. Asked to
write tests (``heavy.tools.codecheck.TESTS_INSTRUCTION``), it returns the task's assert lines, each with
its expected value corrupted with probability ``1 - judge_accuracy``. The simulator never runs code.
"""

from __future__ import annotations

import ast
import json
import random

__all__ = ["CODE_GOLD_PREFIX", "code_gold", "parse_code_gold", "mutant", "corrupt_test", "code_reply_text"]

CODE_GOLD_PREFIX = "heavy-code-task:"

_COMPARE_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                 ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In}
_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv}


def code_gold(solution: str, tests: str = "") -> str:
    """The dataset gold of a code task (what :class:`~heavy.sim.solver.GoldIndex` returns for it)."""
    return CODE_GOLD_PREFIX + json.dumps({"solution": solution, "tests": tests})


def parse_code_gold(gold: str | None) -> tuple[str, str] | None:
    """(solution, tests) when *gold* is a code task's gold, else ``None``."""
    if not gold or not gold.startswith(CODE_GOLD_PREFIX):
        return None
    data = json.loads(gold[len(CODE_GOLD_PREFIX):])
    return str(data.get("solution") or ""), str(data.get("tests") or "")


def _sites(tree: ast.AST) -> list[ast.AST]:
    out: list[ast.AST] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            out.append(node)
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAP:
            out.append(node)
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAP:
            out.append(node)
    return out


def mutant(solution: str, rng: random.Random) -> str:
    """*solution* with one deterministic slip (see the module docstring); never equal to *solution*."""
    try:
        tree = ast.parse(solution)
    except SyntaxError:
        return solution + "\n    return None\n"
    sites = _sites(tree)
    if not sites:
        return solution.rstrip("\n") + "\n\n# (a draft that forgets the last step)\n" + "raise SystemExit(1)\n"
    node = rng.choice(sites)
    if isinstance(node, ast.Constant):
        node.value = node.value + 1 if node.value == 0 or rng.random() < 0.5 else node.value - 1
    elif isinstance(node, ast.Compare):
        node.ops[0] = _COMPARE_SWAP[type(node.ops[0])]()
    else:
        node.op = _BINOP_SWAP[type(node.op)]()
    return ast.unparse(tree)


def corrupt_test(line: str, rng: random.Random) -> str:
    """An ``assert f(x) == y`` line with a wrong ``y`` (unchanged when it has no simple expected value)."""
    try:
        node = ast.parse(line).body[0]
    except (SyntaxError, IndexError):
        return line
    test = getattr(node, "test", None)
    if not (isinstance(test, ast.Compare) and len(test.comparators) == 1):
        return line
    value = test.comparators[0]
    if isinstance(value, ast.Constant) and type(value.value) in (int, float):
        value.value = value.value + rng.choice([1, 2, -1])
    elif isinstance(value, ast.Constant) and type(value.value) is bool:
        value.value = not value.value
    elif isinstance(value, ast.Constant) and isinstance(value.value, str):
        value.value = value.value + "x"
    else:
        return line
    return ast.unparse(node)


def code_reply_text(code: str, rng: random.Random) -> str:
    intro = rng.choice(["Here is an implementation.", "This function does what the task asks.",
                        "A straightforward solution follows."])
    return f"{intro}\n\n```python\n{code.strip()}\n```"
