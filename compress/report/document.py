"""A tiny document model rendered to Markdown and to self-contained HTML.

The report is built once as blocks; both formats come from the same blocks,
so they cannot disagree.  Inline markup is limited to **bold** and `code`.

Tables right-align numeric columns (see ``looks_numeric``), carry optional
footnotes and cell tooltips (``Cell``); ``Details`` folds blocks away.  The HTML
never scrolls sideways as a page: each table scrolls inside its own box, and in
print every table shrinks and wraps to fit the page.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_INLINE = re.compile(r"\*\*(.+?)\*\*|`(.+?)`")


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Cell:
    """A table value with a tooltip: the title shows on hover in HTML; Markdown shows the text only."""

    text: str
    title: str = ""

    def __str__(self) -> str:
        return self.text


# A number-ish cell: an optional leading sign or qualifier, then digits with the separators,
# brackets and units of the report's columns ("0.985 [0.968, 0.994]", "3.57×", "+0.6 pp",
# "53,002 (53,001)", "5.91 ± 0.03", "≤ 12 KiB"), ending in a digit, %, ×, bracket or unit.
_UNITS = ("pp", "µs", "KiB")
_NUMBER = re.compile(
    r"[+\-−±~≈≤≥<>×]?\s*"
    r"[\d.,%×±+\-−\s\[\]()]*\d[\d.,%×±+\-−\s\[\]()]*"
)
_NUMBER_END = re.compile(r"[\d%×\])]$")
_PLACEHOLDERS = {"", "—", "–", "-", "n/a"}  # blank cells: neither numeric nor text


def looks_numeric(text: str) -> bool:
    """Whether a cell reads as a number (bold markers ignored), so its column is right-aligned."""
    text = text.replace("**", "").strip()
    for unit in _UNITS:
        text = re.sub(rf"(?<=[\d\s\])]){unit}(?=[\s)\],]|$)", "", text)
    text = text.strip()
    return bool(_NUMBER.fullmatch(text)) and bool(_NUMBER_END.search(text))


@dataclass(frozen=True)
class Table:
    """Rows of ``{column: value}``; a value is a ``str`` (with inline markup) or a ``Cell``.

    ``footnotes`` print right under the table.  ``numeric`` names the right-aligned columns
    exactly; when it is ``None`` they are detected: every non-blank cell ``looks_numeric``.
    """

    records: Sequence[Mapping[str, str | Cell]]
    footnotes: Sequence[str] = ()
    numeric: Sequence[str] | None = None

    @property
    def columns(self) -> list[str]:
        columns: list[str] = []
        for record in self.records:
            columns += [c for c in record if c not in columns]
        return columns

    @property
    def numeric_columns(self) -> list[str]:
        if self.numeric is not None:
            named = [self.numeric] if isinstance(self.numeric, str) else list(self.numeric)
            return [c for c in self.columns if c in named]
        numeric = []
        for column in self.columns:
            values = [str(r.get(column, "")).replace("**", "").strip() for r in self.records]
            values = [v for v in values if v not in _PLACEHOLDERS]
            if values and all(looks_numeric(v) for v in values):
                numeric.append(column)
        return numeric

    def markdown(self) -> str:
        numeric = set(self.numeric_columns)
        rule = "".join("---:|" if c in numeric else "---|" for c in self.columns)
        lines = ["| " + " | ".join(_md_cell(c) for c in self.columns) + " |", "|" + rule]
        for record in self.records:
            cells = [_md_cell(str(record.get(c, ""))) for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        for note in self.footnotes:
            lines += ["", note]
        return "\n".join(lines)

    def html(self) -> str:
        numeric = set(self.numeric_columns)

        def attrs(column: str) -> str:
            return ' class="num"' if column in numeric else ""

        head = "".join(f"<th{attrs(c)}>{html.escape(c)}</th>" for c in self.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td{attrs(c)}>{_html_cell(r.get(c, ''))}</td>" for c in self.columns)
            + "</tr>"
            for r in self.records
        )
        table = f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        if self.footnotes:
            table += '<p class="foot">' + "<br>".join(_inline(n) for n in self.footnotes) + "</p>"
        return table + "</div>"


@dataclass(frozen=True)
class Image:
    path: Path  # written next to the report
    alt: str


@dataclass(frozen=True)
class Details:
    """A collapsed section: the summary shows, the blocks open on a click (and always in print)."""

    summary: str
    blocks: Sequence[Block]


Block = Heading | Paragraph | Bullets | Table | Image | Details


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            out += _markdown(block)
        return "\n".join(out)

    def html(self) -> str:
        """One file: styles inline, images as data URIs, no network, no server."""
        body = "\n".join(_html(block) for block in self.blocks)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style>"
            f"<script>{_SCRIPT}</script></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n" + body + "\n</body></html>\n"
        )


def _markdown(block: Block) -> list[str]:
    """The Markdown lines of one block, ending in a blank line."""
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text, ""]
    if isinstance(block, Paragraph):
        return [block.text, ""]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items] + [""]
    if isinstance(block, Table):
        return [block.markdown(), ""]
    if isinstance(block, Image):
        return [f"![{block.alt}]({block.path.name})", ""]
    if isinstance(block, Details):
        # GitHub renders <details>; Markdown inside needs the blank line after <summary>.
        inner = [line for b in block.blocks for line in _markdown(b)]
        return [f"<details><summary>{_inline(block.summary)}</summary>", "", *inner, "</details>", ""]
    raise TypeError(f"not a document block: {block!r}")


def _html(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return block.html()
    if isinstance(block, Image):
        data = base64.b64encode(block.path.read_bytes()).decode()
        return (f'<figure><img alt="{html.escape(block.alt)}" '
                f'src="data:image/png;base64,{data}"></figure>')
    if isinstance(block, Details):
        inner = "\n".join(_html(b) for b in block.blocks)
        return f"<details><summary>{_inline(block.summary)}</summary>\n{inner}\n</details>"
    raise TypeError(f"not a document block: {block!r}")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# A short group in a cell, "[0.968, 0.994]", "(53,001)" or "0.985 ± 0.004", never wraps inside.
_GROUP = re.compile(r"[\[(][^\[\]()<>]{1,24}[\])]|\d[\d.,]* ± \d[\d.,]*")


def _html_cell(value: str | Cell) -> str:
    text = _GROUP.sub(lambda m: f'<span class="nw">{m.group()}</span>', _inline(str(value)))
    if isinstance(value, Cell) and value.title:
        return f'<span title="{html.escape(value.title)}">{text}</span>'
    return text


def _inline(text: str) -> str:
    parts, last = [], 0
    for match in _INLINE.finditer(text):
        parts.append(_text(text[last:match.start()]))
        bold, code = match.groups()
        parts.append(f"<strong>{_text(bold)}</strong>" if bold is not None
                     else f"<code>{_code(code)}</code>")
        last = match.end()
    parts.append(_text(text[last:]))
    return "".join(parts)


def _text(text: str) -> str:
    """Escaped text that may break after '>' (a pipeline 'a>b>c' wraps between steps)."""
    return html.escape(text).replace("&gt;", "&gt;<wbr>")


def _code(text: str) -> str:
    """Escaped code that may break after ',' and '>' (long specs wrap between their options)."""
    return _text(text).replace(",", ",<wbr>")


# Screen: the body is at most 1400px wide and never scrolls sideways; a table wider than the
# page scrolls inside its .table-wrap.  Print: landscape A4, small type, every cell may wrap
# anywhere, so no column is ever cut off; folded sections are opened.
_STYLE = (
    "*,*::before,*::after{box-sizing:border-box}"
    "html{-webkit-text-size-adjust:100%}"
    "body{font-family:system-ui,sans-serif;max-width:min(1400px,100%);margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45;overflow-wrap:break-word}"
    ".table-wrap{max-width:100%;overflow-x:auto;margin:1em 0}"
    "table{border-collapse:collapse;font-size:.8em;margin:0}"
    "th,td{border:1px solid #ccc;padding:.25em .45em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}tr:nth-child(even){background:#fafafa}"
    ".num{text-align:right;font-variant-numeric:tabular-nums}.nw{white-space:nowrap}"
    "code{background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}td code{overflow-wrap:break-word}"
    "td span[title]{text-decoration:underline dotted #888;cursor:help}"
    ".foot{font-size:.8em;color:#555;margin:.3em 0 0}"
    "details{margin:1em 0}summary{cursor:pointer;font-weight:600}"
    "img{max-width:100%;height:auto}figure{margin:1em 0}"
    "@page{size:A4 landscape;margin:1cm}"
    "@media print{"
    "body{max-width:none;margin:0;padding:0;font-size:9pt}"
    "h1,h2,h3,h4,summary{break-after:avoid}"
    ".table-wrap{overflow:visible}"
    "table{font-size:7.5pt;table-layout:auto;width:auto;max-width:100%}"
    "th,td{white-space:normal;padding:.15em .3em}td code{overflow-wrap:anywhere}"
    "td span[title]{text-decoration:none}"
    "thead{display:table-header-group}tr,img{break-inside:avoid}"
    "img{max-width:100%;max-height:17cm}"
    "}"
    "@media print{details::details-content{content-visibility:visible;display:block}}"
)

# Browsers print only what is open: open every folded section before printing, fold it back after.
_SCRIPT = (
    'addEventListener("beforeprint",()=>{for(const d of document.querySelectorAll("details:not([open])"))'
    '{d.open=true;d.dataset.printOpened="1"}});'
    'addEventListener("afterprint",()=>{for(const d of '
    'document.querySelectorAll("details[data-print-opened]")){d.open=false;delete d.dataset.printOpened}});'
)
