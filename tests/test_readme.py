"""The README's errors table stays true: every row names a test that exists and checks that message."""

from __future__ import annotations

import re

from tests.conftest import REPO


def error_rows() -> list[tuple[str, list[str], str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Errors", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[3].startswith("`test_"):
            excerpts = re.findall(r"`([^`]+)`", cells[1])
            rows.append((cells[0], excerpts, cells[3].strip("`")))
    return rows


def test_every_error_row_names_a_test_that_checks_its_message():
    sources = {path: path.read_text(encoding="utf-8") for path in (REPO / "tests").rglob("test_*.py")}
    rows = error_rows()
    assert len(rows) >= 20
    for what, excerpts, test in rows:
        holders = [src for src in sources.values() if re.search(rf"def {test}\(", src)]
        assert holders, f"README errors table: no test named {test} ({what})"
        body = holders[0].split(f"def {test}(", 1)[1].split("\ndef ", 1)[0]
        for excerpt in excerpts:
            assert excerpt in body, f"README errors table: {test} does not check {excerpt!r} ({what})"
