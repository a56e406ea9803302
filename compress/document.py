"""A tiny document model rendered to Markdown and to self-contained HTML.

The report is built once as blocks; both formats come from the same blocks,
so they cannot disagree.  Inline markup is limited to **bold** and `code`.
"""

from __future__ import annotations

import base64
import html
import re
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
class Table:
    records: list[dict[str, str]]

    @property
    def columns(self) -> list[str]:
        columns: list[str] = []
        for record in self.records:
            columns += [c for c in record if c not in columns]
        return columns

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        for record in self.records:
            cells = [str(record.get(c, "")).replace("|", "\\|") for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


@dataclass(frozen=True)
class Image:
    path: Path  # written next to the report
    alt: str


Block = Heading | Paragraph | Bullets | Table | Image


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            if isinstance(block, Heading):
                out += ["#" * block.level + " " + block.text, ""]
            elif isinstance(block, Paragraph):
                out += [block.text, ""]
            elif isinstance(block, Bullets):
                out += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, Table):
                out += [block.markdown(), ""]
            elif isinstance(block, Image):
                out += [f"![{block.alt}]({block.path.name})", ""]
        return "\n".join(out)

    def html(self) -> str:
        """One file: styles inline, images as data URIs, no network, no server."""
        body = []
        for block in self.blocks:
            if isinstance(block, Heading):
                body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
            elif isinstance(block, Paragraph):
                body.append(f"<p>{_inline(block.text)}</p>")
            elif isinstance(block, Bullets):
                items = "".join(f"<li>{_inline(item)}</li>" for item in block.items)
                body.append(f"<ul>{items}</ul>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{_inline(str(r.get(c, '')))}</td>" for c in block.columns)
                    + "</tr>"
                    for r in block.records
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(block, Image):
                data = base64.b64encode(block.path.read_bytes()).decode()
                body.append(f'<figure><img alt="{html.escape(block.alt)}" '
                            f'src="data:image/png;base64,{data}"></figure>')
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n" + "\n".join(body) + "\n</body></html>\n"
        )


def _inline(text: str) -> str:
    parts, last = [], 0
    for match in _INLINE.finditer(text):
        parts.append(html.escape(text[last:match.start()]))
        bold, code = match.groups()
        parts.append(f"<strong>{html.escape(bold)}</strong>" if bold is not None
                     else f"<code>{html.escape(code)}</code>")
        last = match.end()
    parts.append(html.escape(text[last:]))
    return "".join(parts)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
    "color:#222;line-height:1.45}table{border-collapse:collapse;font-size:.85em;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}tr:nth-child(even){background:#fafafa}code{background:#f3f3f3;"
    "padding:0 .2em}img{max-width:100%}figure{margin:1em 0}"
)
