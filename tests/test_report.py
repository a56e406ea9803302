from __future__ import annotations

import csv
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from compress.analysis.claims import evaluate_claims
from compress.analysis.configurations import configurations, pairings
from compress.analysis.verdicts import VERDICTS
from compress.common.errors import UserError
from compress.report.build import _header, build_document, build_report
from compress.report.sections import controls_section, findings
from compress.report.tables import common_table, unfinished_lines
from compress.results.rows import write_results
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
    write_results(other, spine_rows(2, run_id="second"))
    merged = tmp_path_factory.mktemp("merged")
    build_report([run_folder / "results.jsonl", other], merged, ["md", "csv"])
    text = (merged / "report.md").read_text()
    assert "seeds 0, 1, 2" in text and (merged / "report.csv").is_file()
    assert not (merged / "report.html").exists()


def test_unknown_format_is_a_user_error(run_folder):
    with pytest.raises(UserError, match="unknown report format pdf"):
        build_report(run_folder, formats=["pdf"])


def _verdicts(rows):
    configs = configurations(rows)
    return {(v.technique, v.claim): v for v in evaluate_claims(configs, pairings(configs))}


def test_the_common_table_has_one_row_per_configuration_over_seeds():
    rows = spine_rows(0) + spine_rows(1)
    table = common_table(configurations(rows))
    assert len(table.records) == 6
    assert {r["Seeds"] for r in table.records} == {"2"}
    quantized = table.records[1]
    assert quantized["× smaller"] == "3.33×" and quantized["Size KiB"] == "11.7"
    assert str(table.records[4]["Method"]) == "student-scratch (control)"


def test_failed_rows_show_their_reason_once_below_the_table():
    rows = [*spine_rows(), fake_row("quantize-qat", status="skipped", reason="Rescaling is not supported")]
    table = common_table(configurations(rows))
    assert "quantize-qat" not in {str(r["Method"]) for r in table.records}
    assert unfinished_lines([r for r in rows if r["status"] != "ok"]) == [
        "**quantize-qat**: skipped on seed 0: Rescaling is not supported"]


def test_a_configuration_answered_on_some_seeds_is_one_row_that_says_so_and_is_not_recommended():
    """A budget answered on seed 1 only: one table row "1 of 3 seeds", one line for its skips
    (its two controls, skipped for the same reason, named on it, not repeated), and the
    recommendation passes it over though it is the smallest."""
    from compress.analysis.recommend import recommend

    spec, reason = "distill:max_drop=1", "no student of the ladder meets max_drop=1 pp"
    rows = [row for seed in (0, 1, 2) for row in spine_rows(seed)]
    for seed in (0, 1, 2):
        status = "ok" if seed == 1 else "skipped"
        extra = {} if status == "ok" else {"status": status, "reason": reason}
        rows.append(fake_row(spec, "distillation", size=2_000, seed=seed, accuracy=0.9, **extra))
        for control in ("student-scratch", "student-scratch-mixup"):
            rows.append(fake_row(control, "distillation", role="control", control_of=spec, seed=seed,
                                 spec=f"{control}:max_drop=1", **extra))
    table = common_table(configurations(rows))
    seeds = {str(r["Method"]): r["Seeds"] for r in table.records}
    assert seeds[spec] == "1 of 3 seeds" and seeds["baseline"] == "3"
    lines = unfinished_lines([r for r in rows if r["status"] != "ok"])
    controls = "student-scratch:max_drop=1, student-scratch-mixup:max_drop=1"
    assert lines == [f"**{spec}** (and its controls {controls}): skipped on seeds 0, 2: {reason} "
                     "(seed 0's; every seed's in results.csv)"]
    assert recommend(rows, max_accuracy_drop=100).best.spec != spec
    whole = [r for r in rows if r["spec"] != spec or r["seed"] == 1]  # asked on seed 1 only
    assert recommend(whole, max_accuracy_drop=100).best.spec == spec


def test_findings_state_the_unwelcome_facts():
    rows = spine_rows()
    text = " ".join(findings(configurations(rows), rows))
    assert "quantize-int8 is slower than float32" in text
    assert "only the gzip size shrinks" in text
    faster = [fake_row("baseline", "baseline", role="baseline"),
              fake_row("prune-magnitude", "pruning", gzip=12_000, sparsity=0.78, pruned_sparsity=0.8,
                       speedup=1.15)]
    said = " ".join(findings(configurations(faster), faster))
    assert "although the same dense kernels multiply every weight: check the latency" in said


def test_the_documents_claims_follow_the_verdict_policy():
    verdicts = _verdicts(spine_rows(0) + spine_rows(1))
    assert verdicts[("Pruning", "Improves inference speed")].verdict == "not shown"
    assert verdicts[("Pruning", "Reduces model size")].verdict == "not shown"  # gzip only: a fact
    assert verdicts[("Quantization", "Improves inference speed")].verdict == "refuted"
    assert verdicts[("Quantization", "Reduces computational requirements")].verdict == "confirmed"
    assert verdicts[("Distillation", "Knowledge transfer from the teacher makes the student better")] \
        .verdict == "refuted"
    assert verdicts[("Pruning", "May lead to accuracy degradation")].verdict == "confirmed"
    for verdict in verdicts.values():
        if verdict.tested and verdict.verdict in ("confirmed", "refuted"):
            assert verdict.p_value <= 0.05 and verdict.p_value >= verdict.p_raw


def test_a_small_test_split_gives_inconclusive_with_what_is_needed():
    rows = [fake_row("baseline", "baseline", role="baseline", n_test=200),
            fake_row("prune-magnitude", "pruning", accuracy=0.895, n_test=200)]
    verdict = _verdicts(rows)[("Pruning", "May lead to accuracy degradation")]
    assert verdict.verdict == "inconclusive" and "test samples" in verdict.needed


def test_claims_csv_is_written_with_every_verdict(run_folder):
    build_report(run_folder)
    with open(run_folder / "claims.csv") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0])[:9] == ["technique", "claim", "verdict", "effect", "ci_low", "ci_high",
                                    "p_value", "seeds", "n_test"]
    assert {r["verdict"] for r in records} <= set(VERDICTS)
    for record in records:
        if record["verdict"] in ("confirmed", "refuted") and record["p_value"]:
            assert float(record["p_value"]) <= 0.05


def test_gap_closure_is_not_shown_when_the_teacher_does_not_beat_the_control():
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.845),
            fake_row("distill", "distillation", accuracy=0.875, size=4000),
            fake_row("student-scratch", "distillation", accuracy=0.870, size=4000, role="control",
                     control_of="distill")]
    (pairing,) = pairings(configurations(rows))
    closure, why = pairing.gap_closure()
    assert closure is None and why.startswith("n/a (teacher not better than control: 0.845 vs 0.870")
    text = build_document(rows, [], Path(tempfile.mkdtemp()))[0].markdown()
    assert "undefined" not in text and "+400%" not in text


def test_a_third_party_control_is_paired_without_report_changes(run_folder):
    rows = [*spine_rows(), fake_row("my-ablation", "distillation", size=4000, accuracy=0.80,
                                    role="control", control_of="distill")]
    found = pairings(configurations(rows))
    assert {p.control.label for p in found} == {"student-scratch", "my-ablation"}
    text = build_document(rows, [], Path(tempfile.mkdtemp()))[0].markdown()
    assert "my-ablation (control)" in text.split("## Techniques against their controls")[1]


def test_runs_of_different_datasets_are_not_merged_silently(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    write_results(first, spine_rows())
    write_results(second, [dict(r, dataset="digits", run_id="b") for r in spine_rows()])
    with pytest.raises(UserError, match="differ in dataset"):
        build_report([first, second], tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    folder = build_report([first, second], tmp_path / "merged", allow_mixed=True)
    text = (folder / "report.md").read_text()
    intro, digits, synthetic = text.split("\n## ")
    assert "Each group is reported on its own" in intro
    assert digits.startswith("1. digits, teacher") and synthetic.startswith("2. synthetic, teacher")
    for group in (digits, synthetic):  # a whole report each: its own recommendation and claims
        assert "### Recommendation" in group and "### The document's comparison, tested" in group
        assert "(digits)" not in group and "(synthetic)" not in group  # no model of the other group
    assert "](1-accuracy_vs_size.png)" in digits and "](2-accuracy_vs_size.png)" in synthetic
    assert (folder / "1-accuracy_vs_size.png").is_file() and (folder / "2-size_and_latency.png").is_file()
    claims = (folder / "claims.csv").read_text()
    assert "Quantization (digits)," in claims and "Quantization (synthetic)," in claims


def test_results_from_different_cpus_are_flagged():
    rows = spine_rows()
    rows[1]["env"] = {**rows[1]["env"], "cpu": "Other CPU"}
    assert any("different CPUs" in note for note in findings(configurations(rows), rows))


def test_the_report_recommends_and_states_its_resolution(run_folder):
    build_report(run_folder)
    text = (run_folder / "report.md").read_text()
    assert "## Recommendation" in text and "**Smallest:**" in text and "**Fastest:**" in text
    assert "1,000 samples per seed" in text and "majority class" in text


def test_extreme_quantization_is_tested_against_the_widest_integer_row():
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.95),
            fake_row("quantize-int8", accuracy=0.95, arithmetic="int8"),
            fake_row("quantize-int4", accuracy=0.94, arithmetic="int4 weights × float32 activations"),
            fake_row("quantize-int2", accuracy=0.40, arithmetic="int2 weights × float32 activations")]
    verdict = _verdicts(rows)[("Quantization", "Especially in extreme quantization cases (fewer bits "
                               "lose more accuracy)")]
    assert verdict.verdict == "confirmed" and verdict.effect < -50
    assert "quantize-int2 against quantize-int8" in verdict.measured and "(4-bit)" in verdict.measured
    only_int8 = _verdicts(rows[:2])[("Quantization", "Especially in extreme quantization cases (fewer "
                                     "bits lose more accuracy)")]
    assert only_int8.verdict == "not measured"


def test_extreme_quantization_reads_a_partly_float_row_and_prefers_untrained_rows():
    """int4 that left a depthwise layer float still has int4 weights; and the 8-bit reference is
    the post-training row, not one that also trained (QAT), so only the width differs."""
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.95),
            fake_row("quantize-qat", accuracy=0.97, arithmetic="int8", training_cost=2.0),
            fake_row("quantize-int8", accuracy=0.95, arithmetic="int8", training_cost=0.0,
                     train_seconds=3.0),  # converting takes seconds too, and trains nothing
            fake_row("quantize-int4", accuracy=0.90, training_cost=0.0,
                     arithmetic="float32 + int4 weights × float32 activations")]
    verdict = _verdicts(rows)[("Quantization", "Especially in extreme quantization cases (fewer bits "
                               "lose more accuracy)")]
    assert "quantize-int4 against quantize-int8" in verdict.measured


def test_a_family_whose_only_strategy_was_skipped_says_why_instead_of_absent():
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.95),
            fake_row("quantize-int8", accuracy=0.95)]
    skipped = {**fake_row("prune-magnitude", "pruning"), "status": "skipped",
               "reason": "no layer to prune"}
    configs = configurations(rows)
    verdicts = evaluate_claims(configs, pairings(configs), [skipped])
    pruning = [v for v in verdicts if v.technique == "Pruning"]
    assert pruning and all(v.verdict == "not measured" for v in pruning)
    assert all("prune-magnitude skipped: no layer to prune" in v.measured for v in pruning)
    absent = next(v for v in evaluate_claims(configs, pairings(configs)) if v.technique == "Pruning")
    assert "no pruning strategy in this run" in absent.measured


def test_a_model_no_better_than_the_majority_class_is_called_so():
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=0.97),
            fake_row("distill", "distillation", accuracy=0.30, size=4000),
            fake_row("quantize-int8", accuracy=0.97),
            fake_row("quantize-int8-io", accuracy=0.33, arithmetic="int8", training_cost=0.0,
                     train_seconds=2.5)]
    said = [note for note in findings(configurations(rows), rows) if "majority class" in note]
    assert said[0] == ("**distill is no better than always predicting the majority class** (0.300 "
                       "against 0.340): it learned nothing usable here (a training too short, or a "
                       "model too small for this data).")
    assert said[1].startswith("**quantize-int8-io is no better than always predicting the majority "
                              "class** (0.330 against 0.340): its conversion lost what the teacher knew; "
                              "it trained nothing. With integer activations every input feature shares "
                              "one scale")


def test_one_change_in_accuracy_prints_alike_in_every_table():
    """389 against 388 right of 400 is +0.25 pp: float noise once printed +0.3 beside +0.2."""
    rows = [fake_row("baseline", "baseline", role="baseline", accuracy=388 / 400, n_test=400),
            fake_row("quantize-int8", accuracy=389 / 400, n_test=400)]
    technique = configurations(rows)[1]
    assert f"{technique.delta_pp:+.1f}" == f"{technique.against_teacher.effect_pp:+.1f}" == "+0.2"


def test_a_run_where_nothing_finished_says_so_instead_of_infinite_resolution(tmp_path):
    rows = [{**fake_row("baseline", "baseline", role="baseline"), "status": "failed",
             "reason": "worker process died repeatedly"}]
    text = build_document(rows, [], tmp_path)[0].markdown()
    assert "no row finished, so nothing was scored" in text and "inf pp" not in text


def test_few_values_per_kernel_are_news_only_when_far_fewer_than_the_teachers():
    """A kernel of 192 weights has at most 192 values whatever training did: fine-tuning is not
    clustering; 16 against the teacher's 192 is."""
    base = fake_row("baseline", "baseline", role="baseline", kernel_unique_max=192)
    rows = [base, fake_row("finetune", "fine-tuning", kernel_unique_max=192, size=40_000),
            fake_row("cluster", "clustering", kernel_unique_max=16, size=40_000)]
    said = [note for note in findings(configurations(rows), rows) if "distinct values per kernel" in note]
    assert len(said) == 1 and said[0].startswith("cluster left at most 16 distinct values per kernel")


@pytest.mark.parametrize(("span", "said"), [
    (3.0, "each model timed over at least 3 s;"),
    (0.0, "timed with COMPRESS_LATENCY_SPAN=0, its rounds only"),
    (None, "inference threads 1; Python"),  # a run from before the span was recorded
])
def test_the_header_says_how_long_each_model_was_timed(span, said):
    rows = spine_rows()
    for row in rows:
        row["env"] = {**row["env"], "latency_span_seconds": span}
    assert said in "\n".join(_header(rows, [], configurations(rows)))


def test_a_clock_stopped_training_decides_no_claim_and_no_control_comparison():
    """--time-budget stops each row by the clock: a control that trained less (or more) than its
    technique is no same-budget control, and a cut technique is not the technique."""
    rows = spine_rows(0) + spine_rows(1)
    for row in rows:
        if row["strategy"] == "student-scratch":
            row["budget_stopped"] = "1 of 300 epochs of batch 64"
        if row["strategy"] == "prune-magnitude":
            row["budget_stopped"] = "1 of 430 optimizer steps (2 epochs of batch 32)"
    verdicts = _verdicts(rows)
    transfer = verdicts[("Distillation", "Knowledge transfer from the teacher makes the student better")]
    assert transfer.verdict == "not measured"
    assert "--time-budget stopped student-scratch at 1 of 300 epochs" in transfer.measured
    pruning = verdicts[("Pruning", "May lead to accuracy degradation")]
    assert pruning.verdict == "not measured" and "what the budget bought" in pruning.measured
    _, _, table, notes = controls_section(pairings(configurations(rows)))
    assert table.records[0]["Gap closed"] == "n/a (budgets differ)"
    assert any("is **not** a same-budget comparison" in note for note in notes.items)
