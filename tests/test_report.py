from __future__ import annotations

from html.parser import HTMLParser

import pytest

from compress.analysis import compared
from compress.claims import evaluate_claims
from compress.errors import UserError
from compress.report import build_report, common_table, findings
from compress.results import write_results
from tests.rows import fake_row, spine_rows


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.sources.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])


@pytest.fixture
def run_folder(tmp_path):
    write_results(tmp_path, spine_rows(0) + spine_rows(1))
    return tmp_path


def test_html_is_self_contained(run_folder):
    build_report(run_folder)
    parser = _Images()
    parser.feed((run_folder / "report.html").read_text())
    assert len(parser.sources) == 4
    assert all(src.startswith("data:image/png;base64,") for src in parser.sources)
    assert parser.links == []  # no stylesheet, script or link to fetch


def test_markdown_rebuilds_byte_identical_and_merges_runs(run_folder, tmp_path_factory):
    build_report(run_folder)
    first = (run_folder / "report.md").read_bytes()
    build_report(run_folder / "results.jsonl")
    assert (run_folder / "report.md").read_bytes() == first
    other = tmp_path_factory.mktemp("other")
    write_results(other, spine_rows(0, run_id="second"))
    merged = tmp_path_factory.mktemp("merged")
    build_report([run_folder / "results.jsonl", other], merged, ["md", "csv"])
    text = (merged / "report.md").read_text()
    assert "seeds 0, 1" in text and (merged / "report.csv").is_file()
    assert not (merged / "report.html").exists()


def test_unknown_format_is_a_user_error(run_folder):
    with pytest.raises(UserError, match="unknown report format pdf"):
        build_report(run_folder, formats=["pdf"])


def test_the_common_table_compares_each_row_with_its_own_seeds_teacher():
    rows = [*spine_rows(0), fake_row("baseline", "baseline", seed=1, size=80_000),
            fake_row("quantize-int8", seed=1, size=20_000)]
    table = common_table(rows)
    assert table[-1]["× smaller"] == "4.00×" and table[1]["× smaller"] == "3.33×"
    assert table[-1]["Seed"] == "1"
    assert table[3]["Size KB"].startswith("**")  # the smallest file is highlighted


def test_failed_rows_show_their_reason():
    rows = [*spine_rows(), fake_row("quantize-qat", status="skipped", reason="Rescaling is not supported")]
    assert common_table(rows)[-1]["Status"] == "skipped: Rescaling is not supported"


def test_findings_state_the_unwelcome_facts():
    rows = spine_rows()
    text = " ".join(findings(rows, compared(rows)))
    assert "quantize-int8 is slower than float32" in text
    assert "only the gzip size shrinks" in text
    assert "did **not** reliably beat" in text


def test_the_documents_claims_are_tested_per_technique():
    rows = spine_rows(0) + spine_rows(1)
    claims = evaluate_claims(compared(rows))
    verdicts = {(c["Technique"], c["Document says"].split(" (")[0]): c["Verdict"] for c in claims}
    assert verdicts[("Pruning", "Improves inference speed")] == "**refuted**"
    assert verdicts[("Pruning", "Reduces model size")] == "**partly**"  # gzip only
    assert verdicts[("Quantization", "Improves inference speed")] == "**refuted**"
    assert verdicts[("Quantization", "Reduces computational requirements")] == "**confirmed**"
    assert verdicts[("Distillation", "Knowledge transfer from the teacher makes the student better")] \
        == "**refuted**"
    assert verdicts[("Pruning", "May lead to accuracy degradation")] == "**confirmed**"
    for technique in ("Quantization", "Pruning", "Distillation", "Fine-tuning"):
        measured = [c for c in claims if c["Technique"] == technique and "not measured" not in c["Verdict"]]
        assert len(measured) >= 2, technique


def test_results_from_different_cpus_are_flagged():
    rows = spine_rows()
    rows[1]["env"] = {**rows[1]["env"], "cpu": "Other CPU"}
    assert any("different CPUs" in note for note in findings(rows, compared(rows)))
