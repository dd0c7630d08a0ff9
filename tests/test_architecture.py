"""The shape of the package (docs/architecture.md): small modules, short functions, one Kind description.

These are the redesign's acceptance rules, checked on every run so that the package does not grow back
into rooms too large to work in. A module or function that must break a rule is named here with its reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bhscore"

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60  # body lines, docstring excluded

#: Modules allowed above MAX_MODULE_LINES, each one cohesive thing (reason given).
LARGE_MODULES: dict[str, str] = {}

#: Functions allowed above MAX_FUNCTION_LINES (reason given).
LONG_FUNCTIONS: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the function."""
    body = node.body
    has_doc = isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
    has_doc = has_doc and isinstance(body[0].value.value, str)
    if has_doc and len(body) == 1:
        return 0
    first = body[1] if has_doc else body[0]
    start = min([first.lineno, *(d.lineno for d in getattr(first, "decorator_list", []))])
    return node.end_lineno - start + 1


def test_modules_are_small():
    too_long = {
        _name(p): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES and _name(p) not in LARGE_MODULES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them, see docs/architecture.md): {too_long}"


def test_functions_are_short():
    too_long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{_name(path)}:{node.name}"
                if (n := _body_lines(node)) > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    too_long[key] = n
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} body lines: {too_long}"


# a kind name compared with something (``kind == "decoding"``, ``"encoding" != k``)
_KIND_BRANCH = re.compile(r"""["'](decoding|encoding)["']\s*[!=]=|[!=]=\s*["'](decoding|encoding)["']""")


def test_no_kind_branches_outside_the_kind_description():
    """What differs between decoding and encoding is read from bhscore.kinds, never branched on by name."""
    found = [
        f"{_name(p)}:{i}: {line.strip()}"
        for p in _modules()
        if _name(p) != "bhscore/kinds.py"
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if _KIND_BRANCH.search(line)
    ]
    assert not found, "branches on the kind name (use bhscore.kinds.Kind):\n" + "\n".join(found)


@pytest.mark.parametrize("bad", ['if kind == "decoding":', "x = kind != 'encoding'", 'if "encoding" == k:'])
def test_the_kind_rule_sees_a_branch(bad):
    assert _KIND_BRANCH.search(bad)
    assert not _KIND_BRANCH.search('if token_kind == "punct":')


def test_kinds_describe_both_directions():
    from bhscore.kinds import KINDS, kind_of

    assert tuple(KINDS) == ("decoding", "encoding")
    dec, enc = kind_of("decoding"), kind_of("encoding")
    assert (dec.command, enc.command) == ("decode", "encode")
    assert dec.inputs_outputs("voxels", "units") == ("voxels", "units")
    assert enc.inputs_outputs("voxels", "units") == ("units", "voxels")
    with pytest.raises(ValueError, match="decoding"):
        kind_of("decode")
