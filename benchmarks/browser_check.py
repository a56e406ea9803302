"""Check an HTML report in headless Chromium: no sideways page scroll, no clipped column in print.

Run: .venv/bin/python benchmarks/browser_check.py path/to/report.html --out docs/browser
     .venv/bin/python benchmarks/browser_check.py --demo --out docs/browser   # the synthetic wide report

Needs a Chromium binary (Debian: apt-get install chromium) and poppler-utils (pdftotext, pdftoppm).
For each window width (1400 and 800 px) it loads the report with every <details> opened and checks
that the page itself never scrolls sideways and that each table either fits its box or scrolls
inside it.  It then prints to PDF and checks that every column header and every cell of each
table's last row are in the PDF's text and that no word lies beyond the page's right edge.
Screenshots (screen-1400.png, screen-800.png, print-page1.png) go to --out, the PDF to --pdf.
tests/test_browser.py runs the same checks on the synthetic wide report.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

WIDTHS = (1400, 800)
HEIGHT = 1000
TIMEOUT = 180  # seconds for one Chromium run; the first start on a cold machine is slow

# Runs on load in a copy of the report: opens every <details>, measures, writes JSON into the DOM.
_PROBE = """<script>
addEventListener("load", () => {
  for (const d of document.querySelectorAll("details")) d.open = true;
  const root = document.documentElement;
  const tables = [...document.querySelectorAll("table")].map((table, index) => {
    const box = table.parentElement;
    const wrapped = box.classList.contains("table-wrap");
    const style = getComputedStyle(box);
    return {
      index, wrapped,
      table_width: table.offsetWidth, box_width: box.clientWidth,
      fits: table.offsetWidth <= box.clientWidth,
      scrolls: box.scrollWidth > box.clientWidth && ["auto", "scroll"].includes(style.overflowX),
      box_right: Math.ceil(box.getBoundingClientRect().right),
    };
  });
  const result = {
    inner_width: window.innerWidth, client_width: root.clientWidth, scroll_width: root.scrollWidth,
    page_fits: root.scrollWidth <= root.clientWidth && root.scrollWidth <= window.innerWidth,
    tables,
  };
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.style.cssText = "white-space:pre-wrap;overflow-wrap:anywhere";
  out.textContent = JSON.stringify(result);
  document.body.append(out);
});
</script>"""


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing_tools() -> list[str]:
    """What the checks need and this machine lacks."""
    missing = [] if find_chromium() else ["chromium"]
    return missing + [tool for tool in ("pdftotext", "pdftoppm", "pdfinfo") if shutil.which(tool) is None]


def chromium(*args: str) -> str:
    """Run headless Chromium once with a throwaway profile; return its stdout."""
    binary = find_chromium()
    if binary is None:
        raise RuntimeError("no chromium binary on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="browser-check-") as profile:
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--no-first-run", "--disable-extensions", "--force-device-scale-factor=1",
                   f"--user-data-dir={profile}", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def layout(report: Path, width: int, height: int = HEIGHT) -> dict:
    """The probe's measurements of ``report`` in a window ``width`` px wide."""
    text = report.read_text(encoding="utf-8")
    if "</body>" not in text:
        raise ValueError(f"{report} has no </body> to put the probe before")
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        probed = Path(tmp) / report.name
        probed.write_text(text.replace("</body>", _PROBE + "</body>", 1), encoding="utf-8")
        dom = chromium(f"--window-size={width},{height}", "--virtual-time-budget=10000",
                       "--dump-dom", probed.as_uri())
    match = re.search(r'<pre id="browser-check"[^>]*>(.*?)</pre>', dom, re.S)
    if match is None:
        raise RuntimeError("the probe wrote no result: did the page load?")
    return json.loads(html.unescape(match.group(1)))


def layout_problems(result: dict, width: int) -> list[str]:
    """Why a layout result fails, as sentences; empty when it passes."""
    problems = []
    if result["inner_width"] != width:
        problems.append(f"the window is {result['inner_width']} px wide, not {width}")
    if not result["page_fits"]:
        problems.append(f"the page scrolls sideways: {result['scroll_width']} px of content "
                        f"in {result['client_width']} px")
    for table in result["tables"]:
        name = f"table {table['index'] + 1}"
        if not table["wrapped"]:
            problems.append(f"{name} is not inside a .table-wrap box")
        elif not (table["fits"] or table["scrolls"]):
            problems.append(f"{name} is {table['table_width']} px wide in a {table['box_width']} px box "
                            "that does not scroll")
        if table["box_right"] > result["client_width"]:
            problems.append(f"{name}'s box ends at {table['box_right']} px, past the page")
    return problems


def screenshot(report: Path, png: Path, width: int, height: int = HEIGHT) -> Path:
    chromium(f"--window-size={width},{height}", "--virtual-time-budget=10000", "--hide-scrollbars",
             f"--screenshot={png.resolve()}", report.resolve().as_uri())
    return png


def print_pdf(report: Path, pdf: Path) -> Path:
    chromium("--no-pdf-header-footer", "--virtual-time-budget=10000",
             f"--print-to-pdf={pdf.resolve()}", report.resolve().as_uri())
    return pdf


def first_page_png(pdf: Path, png: Path, dpi: int = 110) -> Path:
    """The PDF's first page as a PNG, via pdftoppm."""
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(png.with_suffix(""))], check=True, timeout=TIMEOUT)
    return png


class _Tables(HTMLParser):
    """Each table's header texts and last row's cell texts, as a reader would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[list[str], list[str]]] = []
        self._cell: list[str] | None = None
        self._row: list[str] = []
        self._rows: list[list[str]] = []
        self._head: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._head, self._rows = [], []
        elif tag == "tr":
            self._row = []
        elif tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            (self._head if tag == "th" else self._row).append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row:
            self._rows.append(self._row)
        elif tag == "table":
            self.tables.append((self._head, self._rows[-1] if self._rows else []))

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_texts(report_html: str) -> list[tuple[list[str], list[str]]]:
    """(column headers, last row's cells) of every table in an HTML report."""
    parser = _Tables()
    parser.feed(report_html)
    return parser.tables


def _squash(text: str) -> str:
    """Text without whitespace, for matching cells that the PDF wrapped over several lines."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))


def pdf_problems(pdf: Path, report_html: str) -> list[str]:
    """Clipped columns in a printed report: header or last-row text missing, or words past the page."""
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True,
                          check=True, timeout=TIMEOUT).stdout
    squashed = _squash(text)
    problems = []
    for number, (head, last) in enumerate(table_texts(report_html), 1):
        for cell in head + last:
            if cell and _squash(cell) not in squashed:
                problems.append(f"table {number}: {cell!r} is not in the PDF")
    bbox = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True,
                          check=True, timeout=TIMEOUT).stdout
    for page_number, page in enumerate(re.findall(r"<page (.*?)</page>", bbox, re.S), 1):
        page_width = float(re.search(r'width="([\d.]+)"', page).group(1))
        for x_min, x_max, word in re.findall(r'<word xMin="([\d.-]+)" yMin="[\d.-]+" '
                                             r'xMax="([\d.-]+)" yMax="[\d.-]+">(.*?)</word>', page):
            if float(x_min) < 0 or float(x_max) > page_width + 0.5:
                problems.append(f"page {page_number}: {html.unescape(word)!r} runs off the page "
                                f"(x {float(x_min):.0f}..{float(x_max):.0f} of {page_width:.0f} pt)")
    return problems


def pdf_page_size(pdf: Path) -> tuple[float, float]:
    """Width and height of the first page, in points."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True,
                          timeout=TIMEOUT).stdout
    match = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info)
    if match is None:
        raise RuntimeError(f"pdfinfo shows no page size for {pdf}")
    return float(match.group(1)), float(match.group(2))


def shrink_png(png: Path, colors: int = 64) -> Path:
    """Re-save a screenshot with a small palette so it is cheap to commit."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)
    return png


def demo_document(folder: Path):
    """A synthetic report as wide as real ones get: 13 columns of long specs and intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from compress.report.document import Bullets, Cell, Details, Document, Heading, Image, Paragraph, Table

    specs = [
        "distill:temperature=4.0,alpha=0.5,epochs=300,lr=0.001,batch_size=64,student=auto,transfer=none",
        "prune-magnitude:sparsity=0.8,schedule=polynomial,begin_step=0,end_step=2000,frequency=100",
        "quantize-int8:representative_samples=200,io=float32,per_channel=true,calibration=minmax",
        "cluster:clusters=16,init=kmeans++,preserve_sparsity=true,fine_tune_epochs=5,lr=0.0005",
        "prune-magnitude>cluster>quantize-int8",
        "baseline",
    ]
    records = []
    for i, spec in enumerate(specs):
        records.append({
            "Method": spec.split(":")[0],
            "Spec": f"`{spec}`",
            "Seed": str(i % 3),
            "Family": ["distillation", "pruning", "quantization", "clustering", "pipeline", "baseline"][i],
            "Size KiB": f"{210.2 / (i + 1):.1f}",
            "× smaller": f"{i + 1:.2f}×",
            "gzip KiB": f"{193.6 / (i + 1.5):.1f}",
            "Params (non-zero)": f"53,002 ({53_002 - 4_000 * i:,})",
            "Latency p50 µs [95% CI]": f"{5.94 - 0.5 * i:.2f} [{5.91 - 0.5 * i:.2f}, {5.96 - 0.5 * i:.2f}]",
            "Speed-up vs teacher": "—" if i == 5 else f"{1 + 0.4 * i:.2f}× [{0.99 + 0.4 * i:.2f}, "
                                                      f"{1.02 + 0.4 * i:.2f}] faster",
            "Accuracy [95% CI]": Cell(f"0.98{i} [0.96{i}, 0.99{i}]", "Wilson interval, 360 test images"),
            "Δ accuracy vs teacher": "—" if i == 5 else f"-0.{i} pp, not significant (p=0.{9 - i}0)",
            "Train s": f"{(i + 1) * 37.5:.1f}",
        })
    records[0]["Size KiB"] = "**17.5**"
    seeds = [{
        "Method": r["Method"], "Spec": r["Spec"], "Seeds": "5",
        "Accuracy mean ± std": f"0.98{i} ± 0.00{i + 1}",
        "Per seed": ", ".join(f"0.9{i}{s}" for s in range(5)),
        "Δ vs teacher (pp)": f"-0.{i} ± 0.{i + 2}",
        "× smaller": f"{i + 1:.2f}×", "gzip × smaller": f"{i + 1.5:.2f}×",
        "Latency p50 µs": f"{5.9 - 0.5 * i:.2f} ± 0.03", "Verdict": "matches the teacher within noise",
        "Teacher": "`cnn:32,64:128`", "Student": "`cnn:8,16:32`", "Notes": "early stop at epoch 212 of 300",
    } for i, r in enumerate(records)]

    figure, axes = plt.subplots(figsize=(7, 3.5), dpi=80)
    axes.scatter([17.5, 58.9, 61.9, 210.2], [0.986, 0.994, 0.994, 0.994])
    axes.set_xlabel("size KiB")
    axes.set_ylabel("accuracy")
    axes.set_title("Accuracy against size")
    plot = folder / "accuracy_vs_size.png"
    figure.savefig(plot, metadata={"Software": None})
    plt.close(figure)

    document = Document("Compression report: a synthetic wide table")
    document.add(
        Bullets(["**Dataset:** digits; seeds 0, 1, 2",
                 "**Command:** `compress run --dataset digits --strategy 'quantize-*' --strategy "
                 "distill:temperature=4.0,alpha=0.5,epochs=300,lr=0.001,batch_size=64,student=auto "
                 "--seeds 3 --out reports/example-digits`"]),
        Heading("Common table"),
        Paragraph("Every model is scored as a TFLite flatbuffer; best values are in **bold**. "
                  "Hover an accuracy for how its interval was computed."),
        Table(records, footnotes=["Intervals are 95%; latency is batch-1 on 1 thread.",
                                  "— marks the teacher itself."]),
        Details("Mean ± std over seeds (13 columns)", [
            Paragraph("Five seeds per method; the teacher is retrained per seed."),
            Table(seeds),
        ]),
        Heading("Figures"),
        Image(plot, "Accuracy against size"),
    )
    return document


def check(report: Path, out: Path | None = None, pdf: Path | None = None) -> list[str]:
    """All checks on one HTML report, printed as they run; returns the problems found.

    Screenshots go to the folder ``out`` and the printed report to ``pdf``, when given.
    """
    problems = []
    for width in WIDTHS:
        result = layout(report, width)
        found = layout_problems(result, width)
        scrolling = sum(t["scrolls"] for t in result["tables"])
        print(f"{width} px: page {result['scroll_width']}/{result['client_width']} px, "
              f"{len(result['tables'])} tables, {scrolling} scroll inside their box: "
              + ("ok" if not found else "; ".join(found)))
        problems += [f"{width} px: {p}" for p in found]
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        pdf = print_pdf(report, pdf or Path(tmp) / "report.pdf")
        found = pdf_problems(pdf, report.read_text(encoding="utf-8"))
        width, height = pdf_page_size(pdf)
        print(f"print: {width:.0f}×{height:.0f} pt pages: " + ("ok" if not found else "; ".join(found)))
        problems += [f"print: {p}" for p in found]
        if out is not None:
            for width in WIDTHS:
                shrink_png(screenshot(report, out / f"screen-{width}.png", width))
            shrink_png(first_page_png(pdf, out / "print-page1.png"))
            print(f"screenshots in {out}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", nargs="?", type=Path, help="an HTML report")
    parser.add_argument("--demo", action="store_true", help="check the synthetic wide report instead")
    parser.add_argument("--out", type=Path, help="folder for the screenshots")
    parser.add_argument("--pdf", type=Path, help="keep the printed report as this PDF file")
    args = parser.parse_args(argv)
    if (args.report is None) == (not args.demo):
        parser.error("give an HTML report or --demo, not both")
    if missing := missing_tools():
        print(f"missing: {', '.join(missing)} (Debian: apt-get install chromium poppler-utils)")
        return 2
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        report = args.report
        if args.demo:
            report = Path(tmp) / "report.html"
            report.write_text(demo_document(Path(tmp)).html(), encoding="utf-8")
        problems = check(report, args.out, args.pdf)
    print("all checks pass" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
