"""The document model: tooltips, folded sections, numeric columns, footnotes, escaping."""

from __future__ import annotations

import re

import pytest

from compress.report.document import (
    Bullets,
    Cell,
    Details,
    Document,
    Heading,
    Image,
    Paragraph,
    Table,
    looks_numeric,
)


def _cells(markup: str, tag: str) -> list[str]:
    """The opening tags of every th or td, attributes included."""
    return re.findall(rf"<{tag}(?: [^>]*)?>", markup)


@pytest.mark.parametrize("text", [
    "0", "210.2", "-0.3", "+0.6 pp", "−1.1 pp", "53,002 (53,001)", "0.985 [0.968, 0.994]",
    "3.57×", "×3.5", "1.97× [1.97, 1.98]", "5.91 ± 0.03", "+0.0 ± 0.0", "12%", "~4", "≤ 12 KiB",
    "≥0.5", "5.94 µs", "0.994, 0.983, 0.989", "**17.5**", "**0.997 [0.984, 1.000]**", " 42 ",
])
def test_numbers_look_numeric(text):
    assert looks_numeric(text)


@pytest.mark.parametrize("text", [
    "", "—", "pp", "ok", "quantize-int8", "`cnn:32,64:128`", "1.97× [1.97, 1.98] faster",
    "+0.0 pp, not significant (p=1.00)", "seed 0", "0.99a", "n/a", "3 apples", "v1.2", "1.0.0-rc1",
])
def test_words_do_not_look_numeric(text):
    assert not looks_numeric(text)


RECORDS = [
    {"Method": "baseline", "Accuracy": "0.994 [0.980, 0.998]", "Speed-up": "—", "Size": "210.2"},
    {"Method": "distill", "Accuracy": "0.986 [0.968, 0.994]", "Speed-up": "2.91× faster", "Size": "**17.5**"},
]


def test_numeric_columns_are_right_aligned_in_both_formats():
    table = Table(RECORDS)
    # "—" is a blank; "2.91× faster" is text, so Speed-up stays left-aligned.
    assert table.numeric_columns == ["Accuracy", "Size"]
    markdown = table.markdown().splitlines()
    assert markdown[1] == "|---|---:|---|---:|"
    markup = table.html()
    assert _cells(markup, "th") == ["<th>", '<th class="num">', "<th>", '<th class="num">']
    assert _cells(markup, "td")[:4] == ["<td>", '<td class="num">', "<td>", '<td class="num">']
    assert "<strong>17.5</strong>" in markup


def test_numeric_columns_can_be_named_exactly():
    assert Table(RECORDS, numeric=["Method"]).numeric_columns == ["Method"]
    assert Table(RECORDS, numeric="Size").numeric_columns == ["Size"]  # one name, not its letters
    assert Table(RECORDS, numeric=()).numeric_columns == []
    assert Table(RECORDS, numeric=()).markdown().splitlines()[1] == "|---|---|---|---|"


def test_a_column_of_blanks_is_not_numeric():
    assert Table([{"a": "—", "b": ""}, {"a": "", "b": "x"}]).numeric_columns == []


def test_cell_titles_are_tooltips_in_html_only():
    table = Table([{"Accuracy": Cell("0.985 [0.968, 0.994]", "Wilson interval, n=360"), "Note": "plain"}])
    assert "Wilson" not in table.markdown()
    assert "| 0.985 [0.968, 0.994] | plain |" in table.markdown()
    assert '<span title="Wilson interval, n=360">0.985 ' in table.html()
    assert table.numeric_columns == ["Accuracy"]  # a Cell is judged by its text
    assert "title" not in Table([{"a": Cell("x")}]).html()  # no title, no tooltip


def test_escaping_in_cells_titles_headers_and_footnotes():
    table = Table([{"a<b": Cell("x < y & **z**", 'say "<hi>" & go'), "c": "`a<b>&c`"}],
                  footnotes=["p < 0.05 & `k<2`"])
    markup = table.html()
    assert "<th>a&lt;b</th>" in markup
    assert ('<span title="say &quot;&lt;hi&gt;&quot; &amp; go">'
            "x &lt; y &amp; <strong>z</strong></span>") in markup
    assert "<code>a&lt;b&gt;<wbr>&amp;c</code>" in markup
    assert '<p class="foot">p &lt; 0.05 &amp; <code>k&lt;2</code></p>' in markup
    assert "<hi>" not in markup and "a<b" not in markup


def test_pipes_in_markdown_cells_are_escaped():
    assert "| a\\|b |" in Table([{"x": "a|b"}]).markdown()


def test_footnotes_follow_the_table():
    table = Table([{"a": "1"}], footnotes=["First note.", "Second, with **bold**."])
    assert table.markdown().endswith("| 1 |\n\nFirst note.\n\nSecond, with **bold**.")
    assert table.html().endswith(
        '</table><p class="foot">First note.<br>Second, with <strong>bold</strong>.</p></div>')
    assert "foot" not in Table([{"a": "1"}]).html()


def test_tables_scroll_inside_their_own_box():
    markup = Document("t", [Table([{"a": "1"}])]).html()
    assert '<div class="table-wrap"><table>' in markup
    style = re.search(r"<style>(.*)</style>", markup).group(1)
    assert ".table-wrap{max-width:100%;overflow-x:auto" in style
    assert "@page{size:A4 landscape" in style
    assert ".table-wrap{overflow:visible}" in style.split("@media print", 1)[1]


def test_long_specs_and_intervals_wrap_where_a_reader_expects():
    markup = Table([{"spec": "`distill:temperature=4.0,alpha=0.5`", "acc": "0.985 [0.968, 0.994]",
                     "mean": "0.985 ± 0.004", "steps": "prune>cluster"}]).html()
    assert "<code>distill:temperature=4.0,<wbr>alpha=0.5</code>" in markup
    assert '0.985 <span class="nw">[0.968, 0.994]</span>' in markup
    assert '<span class="nw">0.985 ± 0.004</span>' in markup
    assert "prune&gt;<wbr>cluster" in markup


def test_details_fold_blocks_in_both_formats():
    details = Details("More **tables**", [Paragraph("Inside."), Table([{"a": "1"}])])
    document = Document("t", [Heading("H"), details, Paragraph("After.")])
    markdown = document.markdown()
    assert ("<details><summary>More <strong>tables</strong></summary>\n\nInside.\n\n| a |\n|---:|\n| 1 |"
            "\n\n</details>\n\nAfter.") in markdown
    markup = document.html()
    assert re.search(r"<details><summary>More <strong>tables</strong></summary>\n<p>Inside\.</p>\n"
                     r'<div class="table-wrap">.*</div>\n</details>', markup)
    assert "<details open" not in markup  # collapsed on screen; the print style and script open it
    assert 'addEventListener("beforeprint"' in markup


def test_details_nest():
    inner = Details("inner", [Bullets(["x"])])
    markdown = Document("t", [Details("outer", [inner])]).markdown()
    assert markdown.count("<details>") == 2 and markdown.count("</details>") == 2
    assert "<summary>inner</summary>\n\n- x\n\n</details>\n\n</details>" in markdown


def test_rendering_is_deterministic(tmp_path):
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n fake")

    def build() -> Document:
        return Document("Report", [
            Bullets(["**a:** `b`"]), Table(RECORDS, footnotes=["n"]),
            Details("d", [Table([{"x": Cell("1", "t")}])]), Image(png, "plot"),
        ])

    assert build().html() == build().html()
    assert build().markdown() == build().markdown()
    assert 'src="data:image/png;base64,' in build().html()
    assert "![plot](plot.png)" in build().markdown()


def test_existing_tables_keep_rendering():
    table = Table([{"a": "x", "b": "y"}, {"a": "z", "c": "w"}])
    assert table.columns == ["a", "b", "c"]
    assert table.markdown() == "| a | b | c |\n|---|---|---|\n| x | y |  |\n| z |  | w |"
    with pytest.raises(TypeError, match="not a document block"):
        Document("t", ["loose text"]).markdown()  # type: ignore[list-item]
