"""docs/security.md can't rot: every test it names exists, and every claim names one.

The map (OWASP ASVS and NIST SP 800-63B rows) says for each requirement how the server meets
it and which tests show it. This reads the document as text and the named test files with
`ast` — it imports neither the app nor the tests, so it stays fast and can't be fooled by a
test module that fails to import.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = ROOT / "docs" / "security.md"
MIN_DISTINCT_TESTS = 40

#: `tests/path/test_file.py::test_name` or `tests/path/test_file.py::TestClass::test_name`
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(?:(\w+)::)?(test_\w+)`")
STATUS = re.compile(r"\*\*(met|partly|n/a|untested|not yet)\*\*")
#: Rows with these statuses claim something and must show it; the others must name no test.
CLAIMS = {"met", "partly"}


def _rows() -> list[tuple[str, str, str]]:
    """(ID, how-cell, tests-cell) of every requirement row of every map table."""
    rows = []
    in_map_table = False
    for line in MAP.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_map_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "ID":
            assert len(cells) == 4, f"a map table has 4 columns: {line}"
            in_map_table = True
            continue
        if not in_map_table or set(cells[0]) <= {"-", ":"}:
            continue
        assert len(cells) == 4, f"a row has 4 cells (no '|' inside a cell): {line}"
        rows.append((cells[0], cells[2], cells[3]))
    return rows


@cache
def _defined(path: str) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """Test functions of a file: at module level, and per class."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=path)
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    module = frozenset(node.name for node in tree.body if isinstance(node, functions))
    classes = {
        node.name: frozenset(item.name for item in node.body if isinstance(item, functions))
        for node in tree.body if isinstance(node, ast.ClassDef)
    }
    return module, classes


def _missing(path: str, cls: str | None, name: str) -> str | None:
    if not (ROOT / path).is_file():
        return f"{path}: no such file"
    module, classes = _defined(path)
    if cls is not None:
        if name not in classes.get(cls, frozenset()):
            return f"{path}::{cls}::{name}: no such test"
        return None
    if name in module or any(name in methods for methods in classes.values()):
        return None
    return f"{path}::{name}: no such test"


def test_the_map_parses_into_rows_with_a_status() -> None:
    rows = _rows()
    assert len(rows) >= 60, f"only {len(rows)} rows: is docs/security.md still the map?"
    ids = [row_id for row_id, _, _ in rows]
    assert len(ids) == len(set(ids)), "row IDs repeat"
    without = [row_id for row_id, how, _ in rows if not STATUS.search(how)]
    assert not without, f"rows without a **status** in their 'how' cell: {without}"


def test_every_named_test_exists() -> None:
    text = MAP.read_text(encoding="utf-8")
    missing = sorted({problem for path, cls, name in REFERENCE.findall(text)
                      if (problem := _missing(path, cls or None, name))})
    assert not missing, "docs/security.md names tests that don't exist:\n" + "\n".join(missing)


def test_claims_name_tests_and_other_rows_name_none() -> None:
    unproven, stray = [], []
    for row_id, how, tests in _rows():
        status = STATUS.search(how)
        assert status is not None, row_id
        named = REFERENCE.findall(tests)
        if status.group(1) in CLAIMS and not named:
            unproven.append(row_id)
        if status.group(1) not in CLAIMS and (named or tests):
            stray.append(row_id)
        leftover = REFERENCE.sub("", tests).replace("<br>", "").strip(" ,")
        assert not leftover, f"{row_id}: the test(s) cell holds more than test names: {leftover!r}"
    assert not unproven, f"rows claiming met/partly without a test: {unproven}"
    assert not stray, f"n/a, untested or not-yet rows must name no test: {stray}"


def test_the_map_names_enough_distinct_tests() -> None:
    named = {(path, name) for path, _, name in REFERENCE.findall(MAP.read_text(encoding="utf-8"))}
    assert len(named) >= MIN_DISTINCT_TESTS, f"only {len(named)} distinct tests named"


def test_the_checker_catches_a_missing_test() -> None:
    assert _missing("tests/test_security_map.py", None, "test_every_named_test_exists") is None
    assert _missing("tests/test_security_map.py", None, "test_no_such_thing") is not None
    assert _missing("tests/no_such_file.py", None, "test_x") is not None
    assert _missing("tests/test_disabled_users.py", "TestSignInsRacingADisableOnMySQL",
                    "test_no_such_thing") is not None
