"""The HTML report in a real browser: no sideways page scroll at 1400 or 800 px, no clipped column in print.

Slow (each check starts headless Chromium) and skipped without Chromium and poppler-utils.
The helpers live in benchmarks/browser_check.py, which developers run on real reports.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "browser_check.py"
_spec = importlib.util.spec_from_file_location("browser_check", _SCRIPT)
browser_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_check)

_missing = browser_check.missing_tools()
if _missing:
    pytest.skip(f"needs {', '.join(_missing)} (Debian: apt-get install chromium poppler-utils)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The synthetic wide report: 13-column tables of long specs and intervals, one folded away."""
    folder = tmp_path_factory.mktemp("wide")
    document = browser_check.demo_document(folder)
    tables = browser_check.table_texts(document.html())
    assert len(tables) == 2 and all(len(head) >= 12 for head, _ in tables)
    path = folder / "report.html"
    path.write_text(document.html(), encoding="utf-8")
    return path


@pytest.mark.parametrize("width", browser_check.WIDTHS)
def test_the_page_never_scrolls_sideways(report, width):
    result = browser_check.layout(report, width)
    assert browser_check.layout_problems(result, width) == []
    assert len(result["tables"]) == 2
    if width == 1400:  # a wide desktop window shows the 13 columns whole
        assert all(t["fits"] and not t["scrolls"] for t in result["tables"]), result["tables"]
    else:  # a narrow one scrolls each table inside its box, not the page
        assert all(t["scrolls"] for t in result["tables"]), result["tables"]


def test_the_probe_sees_a_page_that_overflows(tmp_path):
    """The check can fail: an unwrapped wide table makes the page itself scroll."""
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><body><table><tr><td style="min-width:3000px">x</td></tr>'
                    "</table></body></html>", encoding="utf-8")
    problems = browser_check.layout_problems(browser_check.layout(page, 800), 800)
    assert any("scrolls sideways" in p for p in problems)
    assert any("not inside a .table-wrap" in p for p in problems)


def test_print_keeps_every_column_on_the_page(report, tmp_path):
    pdf = browser_check.print_pdf(report, tmp_path / "report.pdf")
    width, height = browser_check.pdf_page_size(pdf)
    assert (round(width), round(height)) == (842, 595)  # A4 landscape
    # Every header and every last-row cell of both tables, the folded one included, is in the PDF,
    # and no word lies past the page's edge.
    assert browser_check.pdf_problems(pdf, report.read_text(encoding="utf-8")) == []


def test_the_pdf_check_sees_a_clipped_column(tmp_path):
    """The check can fail: a table wider than the page loses its right-hand columns."""
    cells = "".join(f"<td>column{i}</td>" for i in range(40))
    page = tmp_path / "clipped.html"
    page.write_text('<!DOCTYPE html><html><body><table style="white-space:nowrap;font-size:20pt">'
                    f"<tr>{cells}</tr><tr>{cells}</tr></table></body></html>", encoding="utf-8")
    pdf = browser_check.print_pdf(page, tmp_path / "clipped.pdf")
    assert browser_check.pdf_problems(pdf, page.read_text(encoding="utf-8"))
