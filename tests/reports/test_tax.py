"""``evalsuite tax`` on real runs of the tiny model and its fine-tuned stand-in, checked against
numbers recomputed by hand from the per-sample records; and every kind of bad input."""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalsuite.cli import main
from evalsuite.reports.recompute import AggregateForm, Joined, MeanForm, find_form
from evalsuite.reports.tax import TaxConfig, gains, load_tax, metric_cell
from evalsuite.results import TaskRecord, load_run


def samples(run: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (run / "samples" / f"{task}.jsonl").read_text().splitlines()]


def run_tax(*args) -> int:
    return main(["tax", *map(str, args)])


def all_runs(inputs: dict) -> list[Path]:
    return [inputs[k] for k in ("base_run", "base_wikitext", "sft_run", "sft_wikitext")]


def edit_results(run: Path, change) -> None:
    file = run / "results.json"
    record = json.loads(file.read_text())
    change(record)
    file.write_text(json.dumps(record))


def binomial_two_sided(b: int, c: int) -> float:
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0


@pytest.fixture(scope="module")
def lineage_table(report_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tax")
    assert run_tax(*all_runs(report_inputs), "--output", out, "--resamples", "1000") == 0
    return out, load_tax(out)


def test_lineage_pairs_the_checkpoint_with_its_base(lineage_table):
    _, table = lineage_table
    assert len(table.comparisons) == 1
    comp = table.comparisons[0]
    assert comp.checkpoint == "ckpt-sft" and comp.relation == "base"
    assert table.checkpoints[comp.checkpoint]["stage"] == "sft"
    primaries = {c.task for c in comp.cells if c.role == "primary"}
    assert primaries == {"truthfulqa_mc1", "crows_pairs", "winogender", "squad_v2", "realtoxicityprompts", "wikitext"}
    assert not comp.refused and not comp.only_checkpoint and not comp.only_reference


def test_few_documents_get_the_exact_swap_test_by_brute_force(lineage_table, report_inputs):
    _, table = lineage_table
    cell = next(c for c in table.comparisons[0].cells if c.metric == "expected_max_toxicity")
    rtp = "realtoxicityprompts"
    ref, ckpt = (np.array([r["scores"]["max_toxicity/plain"] for r in samples(report_inputs[run], rtp)])
                 for run in ("base_run", "sft_run"))
    observed = abs(ref.mean() - ckpt.mean())
    extreme = 0
    for swap in itertools.product((False, True), repeat=len(ref)):
        a, b = np.where(swap, ckpt, ref), np.where(swap, ref, ckpt)
        extreme += abs(a.mean() - b.mean()) >= observed - 1e-12
    assert cell.n == len(ref) == 6 and cell.test == "permutation"
    assert cell.p_value == pytest.approx(extreme / 2 ** len(ref)) and cell.p_value >= 2 / 2**6
    assert "exact swap test" in cell.note


def test_binary_metric_difference_and_mcnemar_by_hand(lineage_table, report_inputs):
    _, table = lineage_table
    cell = next(c for c in table.comparisons[0].cells if c.task == "winogender" and c.metric == "acc")
    base = {r["doc_id"]: r["scores"]["acc"] for r in samples(report_inputs["base_run"], "winogender")}
    sft = {r["doc_id"]: r["scores"]["acc"] for r in samples(report_inputs["sft_run"], "winogender")}
    ids = list(base)
    b = sum(base[i] == 1 and sft[i] == 0 for i in ids)
    c = sum(base[i] == 0 and sft[i] == 1 for i in ids)
    assert cell.n == len(ids) == 6
    assert cell.reference == pytest.approx(np.mean([base[i] for i in ids]))
    assert cell.difference == pytest.approx(np.mean([sft[i] - base[i] for i in ids]))
    assert cell.discordant == [b, c] and cell.test == "mcnemar"
    assert cell.p_value == pytest.approx(binomial_two_sided(b, c))
    assert cell.direction == "higher" and cell.gain == pytest.approx(cell.difference)


def test_each_metric_form_and_direction(lineage_table, report_inputs):
    _, table = lineage_table
    cells = {(c.task, c.metric): c for c in table.comparisons[0].cells}
    base, sft = load_run(report_inputs["base_wikitext"]), load_run(report_inputs["sft_wikitext"])
    ppl = cells["wikitext", "word_perplexity"]  # a ratio of sums: the task's aggregate on each resample
    assert "aggregate" in ppl.form and ppl.direction == "lower"
    assert ppl.reference == pytest.approx(base.tasks["wikitext"].metrics["word_perplexity"])
    assert ppl.checkpoint == pytest.approx(sft.tasks["wikitext"].metrics["word_perplexity"])
    assert ppl.gain == pytest.approx(-ppl.difference) and ppl.ci_low <= ppl.difference <= ppl.ci_high
    stereo = cells["crows_pairs", "pct_stereotype"]  # judged by the distance from 0.5
    # six documents: the exact swap test decides (a bootstrap p is unreliable that small)
    assert stereo.direction == "ideal 0.5" and stereo.test == "permutation" and stereo.mcnemar_p is not None
    assert stereo.gain == pytest.approx(abs(stereo.reference - 0.5) - abs(stereo.checkpoint - 0.5))
    toxicity = cells["realtoxicityprompts", "expected_max_toxicity"]
    assert toxicity.form == "mean of per-sample 'max_toxicity/plain'" and toxicity.gain == pytest.approx(
        -toxicity.difference)
    base_tox = [r["scores"]["max_toxicity/plain"] for r in samples(report_inputs["base_run"], "realtoxicityprompts")]
    assert toxicity.reference == pytest.approx(np.mean(base_tox))
    assert cells["squad_v2", "f1"].form == "mean of per-sample 'f1' x 100"
    assert ("crows_pairs", "likelihood_diff") in cells  # another per-sample mean with a direction
    assert ("crows_pairs", "distance_from_ideal") not in cells and ("squad_v2", "HasAns_exact") not in cells


def test_holm_over_the_primary_metrics(lineage_table):
    from evalsuite.metrics.paired import holm

    _, table = lineage_table
    primary = [c for c in table.comparisons[0].cells if c.role == "primary"]
    assert [c.p_holm for c in primary] == pytest.approx(holm([c.p_value for c in primary]))
    assert all(c.p_holm >= c.p_value for c in primary)
    assert all(c.significant == (c.p_holm < 0.05) for c in primary)


def test_writes_json_and_csv_and_prints_the_table(lineage_table, report_inputs, tmp_path, capsys):
    out, table = lineage_table
    frame = pd.read_csv(out / "tax.csv")
    assert len(frame) == len(table.comparisons[0].cells)
    assert {"checkpoint", "reference", "task", "metric", "difference", "ci_low", "ci_high", "p_value", "p_holm",
            "significant"} <= set(frame.columns)
    assert run_tax(*all_runs(report_inputs), "--output", tmp_path / "again", "--resamples", "1000") == 0
    printed = capsys.readouterr().out
    assert "ckpt-sft vs" in printed and "word_perplexity" in printed and "Holm p" in printed
    again = load_tax(tmp_path / "again")
    assert [c.__dict__ for c in again.comparisons[0].cells] == [c.__dict__ for c in table.comparisons[0].cells]


def test_base_flag_gives_the_lineage_table(lineage_table, report_inputs, tmp_path):
    _, table = lineage_table
    i = report_inputs
    assert run_tax("--base", f"{i['base_run']},{i['base_wikitext']}", "--runs", f"{i['sft_run']},{i['sft_wikitext']}",
                   "--output", tmp_path, "--resamples", "1000") == 0
    given = load_tax(tmp_path).comparisons[0]
    assert given.relation == "given"
    assert [c.__dict__ for c in given.cells] == [c.__dict__ for c in table.comparisons[0].cells]


def test_refuses_tasks_run_differently_and_compares_the_rest(runs_copy, tmp_path, capsys):
    def change(record):
        record["tasks"]["truthfulqa_mc1"]["version"] = "9"
        record["tasks"]["crows_pairs"]["params"] = {"variant": "other"}
        record["tasks"]["winogender"]["data"]["sha256"] = "0" * 64

    edit_results(runs_copy["sft_run"], change)
    assert run_tax(runs_copy["base_run"], runs_copy["sft_run"], "--output", tmp_path) == 0
    comp = load_tax(tmp_path).comparisons[0]
    reasons = {r["task"]: r["reason"] for r in comp.refused}
    assert reasons["truthfulqa_mc1"] == "task version 1 vs 9"
    assert reasons["crows_pairs"].startswith("task parameters differ (variant=None vs 'other')")
    assert reasons["winogender"].startswith("data differ")
    assert {c.task for c in comp.cells} == {"squad_v2", "realtoxicityprompts"}
    assert "not compared: truthfulqa_mc1: task version 1 vs 9" in capsys.readouterr().out


def test_pairs_shared_documents_and_lists_what_is_not_shared(runs_copy, tmp_path, capsys):
    file = runs_copy["sft_run"] / "samples" / "squad_v2.jsonl"
    rows = file.read_text().splitlines()
    file.write_text("\n".join(rows[:-2]) + "\n")  # the checkpoint's run has two documents fewer
    edit_results(runs_copy["base_run"], lambda r: r["tasks"].pop("realtoxicityprompts"))
    assert run_tax(runs_copy["base_run"], runs_copy["sft_run"], "--output", tmp_path) == 0
    comp = load_tax(tmp_path).comparisons[0]
    assert comp.documents["squad_v2"] == {"paired": 4, "only_reference": 2, "only_checkpoint": 0}
    assert all(c.n == 4 for c in comp.cells if c.task == "squad_v2")
    assert comp.only_checkpoint == ["realtoxicityprompts"]
    printed = capsys.readouterr().out
    assert "not shared: only ckpt-sft: realtoxicityprompts" in printed
    assert "squad_v2: 2 documents only in" in printed


@pytest.mark.parametrize("case", ["all_differ", "no_lineage", "missing", "partial", "newer", "same_task_twice"])
def test_bad_input_is_one_line_and_exit_2(case, runs_copy, tmp_path, capsys):
    base, sft = runs_copy["base_run"], runs_copy["sft_run"]
    args = [base, sft]
    if case == "all_differ":
        edit_results(sft, lambda r: [t.update(version="7") for t in r["tasks"].values()])
        expected = "Nothing to compare between the checkpoints: every shared task differs"
    elif case == "no_lineage":
        args = [base, runs_copy["base_wikitext"]]
        expected = "No checkpoint among"
    elif case == "missing":
        args = [base, tmp_path / "nowhere"]
        expected = "is not a folder"
    elif case == "partial":
        (sft / "results.json").unlink()
        expected = "is not a run record"
    elif case == "newer":
        edit_results(sft, lambda r: r.update(evalsuite_record=99))
        expected = "written by a newer evalsuite"
    else:
        shutil.copytree(sft, tmp_path / "sft-again")
        args = [base, sft, tmp_path / "sft-again"]
        expected = "both evaluate checkpoint ckpt-sft on"
    assert run_tax(*args, "--output", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().split("\n")[-1]  # after the progress bar, if one was drawn
    assert err.startswith("error: ") and expected in err and "Fix:" in err
    assert not (tmp_path / "out" / "tax.json").exists()


def test_unwritable_output_fails_before_reading_any_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert run_tax(tmp_path / "nowhere", tmp_path / "nowhere2", "--output", blocker) == 2
    assert "is a file, not a folder" in capsys.readouterr().err  # the output is checked first


# --- pure parts: directions, forms, one cell -----------------------------------------------------


def test_gains_are_signed_so_that_positive_is_better():
    ref, ckpt = np.array([0.60, 10.0]), np.array([0.55, 8.0])
    assert gains("higher", None, ref, ckpt) == pytest.approx([-0.05, -2.0])
    assert gains("lower", None, ref, ckpt) == pytest.approx([0.05, 2.0])
    # 0.60 -> 0.55 moves from 0.10 to 0.05 away from 0.5: a gain of 0.05; 0.45 -> 0.30 loses 0.15
    assert gains("ideal 0.5", 0.5, np.array([0.60, 0.45]), np.array([0.55, 0.30])) == pytest.approx([0.05, -0.15])
    assert gains("", None, ref, ckpt) is None


def test_forms_are_found_by_reproducing_the_recorded_values(report_inputs):
    run = load_run(report_inputs["base_run"])
    wiki = load_run(report_inputs["base_wikitext"])
    assert find_form(run.tasks["truthfulqa_mc1"], "acc", run.samples("truthfulqa_mc1")) == MeanForm("acc", 1.0)
    assert find_form(run.tasks["squad_v2"], "f1", run.samples("squad_v2")) == MeanForm("f1", 100.0)
    assert find_form(run.tasks["realtoxicityprompts"], "expected_max_toxicity",
                     run.samples("realtoxicityprompts")) == MeanForm("max_toxicity/plain", 1.0)
    assert isinstance(find_form(wiki.tasks["wikitext"], "word_perplexity", wiki.samples("wikitext")), AggregateForm)
    # A group mean is not a mean over all documents, whatever column happens to match the full set.
    assert not isinstance(find_form(run.tasks["squad_v2"], "HasAns_f1", run.samples("squad_v2")), MeanForm)


def _record(metrics: dict, higher: dict, ideal: dict | None = None) -> TaskRecord:
    return TaskRecord("toy", "toy", "acc", metrics, {}, 10, higher, "1", {}, {}, "samples/toy.jsonl",
                      "capability", ideal or {})


def test_one_cell_by_hand():
    ref = [1, 1, 1, 0, 0, 1, 0, 1, 1, 0]
    ckpt = [1, 0, 1, 1, 1, 1, 1, 1, 1, 1]  # b = 1 (doc 1), c = 4 (docs 3, 4, 6, 9)
    joined = Joined(_record({"acc": 0.6}, {"acc": True}), [{}] * 10, [{"acc": v} for v in ref],
                    [{"acc": v} for v in ckpt], 0, 0)
    cell = metric_cell("acc", "primary", joined, MeanForm("acc", 1.0), TaxConfig(runs=[], resamples=2000))
    assert (cell.reference, cell.checkpoint, cell.difference) == pytest.approx((0.6, 0.9, 0.3))
    assert cell.discordant == [1, 4] and cell.p_value == pytest.approx(2 * (1 + 5) / 32)
    # per-document differences: four +1, one -1, five 0: plug-in se = sqrt(0.41 / 10) = 0.20
    assert -0.2 <= cell.ci_low <= 0.0 and 0.6 <= cell.ci_high <= 0.8
