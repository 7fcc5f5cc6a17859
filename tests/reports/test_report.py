"""``evalsuite report`` without a browser: what the file holds, its policy, its embedded data, and
bad input. (``test_report_browser.py`` opens the same reports in Chromium.)"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from html import unescape
from pathlib import Path

import pytest

from evalsuite.cli import main
from evalsuite.reports.drilldown import script_json
from evalsuite.reports.svg import csp_safe
from tests.reports.conftest import PAYLOAD, build


def blocks(html: str) -> dict[str, object]:
    found = re.findall(r'<script type="application/octet-stream" id="(blk\d+)">([^<]*)</script>', html)
    return {ident: json.loads(gzip.decompress(base64.b64decode(text))) for ident, text in found}


def meta(html: str) -> dict:
    text = re.search(r'<script type="application/json" id="report-meta">(.*?)</script>', html, re.S).group(1)
    return json.loads(text)


def test_policy_allows_only_the_pages_own_script_and_style(report):
    html = report["html"]
    csp = unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html).group(1))
    assert "default-src 'none'" in csp and "unsafe" not in csp and "connect-src" not in csp  # default: none
    inline_scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(inline_scripts) == 2 and len(styles) == 1
    for text in inline_scripts + styles:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    # Nothing that would load anything: no src, no external href, no style attribute the policy would block.
    assert " src=" not in html and "@import" not in html and "url(http" not in html
    assert re.findall(r'href="(?!#)([^"]*)"', html) == ["data:,"]
    assert ' style="' not in html


def test_the_payload_never_appears_as_markup(report):
    html = report["html"]
    assert "__pwned" not in html  # the drill-down data is compressed, the visible tables hold no outputs
    data = blocks(html)
    sft_rows = [b for b in data.values() if isinstance(b, dict) and b.get("checkpoint") == "ckpt-sft"
                and b.get("task") == "squad_v2"][0]
    assert sft_rows["rows"][0][0][0] == [PAYLOAD]  # unpacked, it is the model's text exactly


def test_script_json_cannot_close_its_element():
    text = script_json({"name": "</script><script>alert(1)</script><!--", "amp": "a&b"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script><!--", "amp": "a&b"}


def test_overview_tax_winrates_and_task_pages_are_there(report):
    html = report["html"]
    for section in ("overview", "tax", "winrates", "provenance", "task-squad_v2", "task-wikitext", "task-crows_pairs"):
        assert f'<section id="{section}"' in html
    assert html.count('class="bar"') == 6  # one bar per task for the one fine-tuned checkpoint
    assert 'class="win-bar"' in html and "accuracy 0.7100" in html  # the judge's agreement next to the win rate
    assert "pct_stereotype by group" in html and "acc by group" in html  # CrowS-Pairs and Winogender breakdowns
    info = meta(html)
    assert info["checkpoints"][0].startswith("tiny-llama") and info["checkpoints"][1] == "ckpt-sft"
    assert info["tasks"]["squad_v2"]["n"] == 6 and info["tasks"]["wikitext"]["n"] == 2
    assert info["tasks"]["squad_v2"]["primary"] == "f1"
    # provenance: fingerprints, data hashes, seeds, commands
    base = json.loads((report["inputs"]["base_run"] / "results.json").read_text())
    assert base["model"]["fingerprint"] in html and base["tasks"]["squad_v2"]["data"]["sha256"][:16] in html
    assert "evalsuite compare --models sft" in html


def test_drilldown_blocks_hold_every_sample_once(report):
    data = blocks(report["html"])
    shared = [b for b in data.values() if isinstance(b, dict) and "docs" in b and b["task"] == "truthfulqa_mc1"][0]
    rows = [json.loads(line) for line in (report["inputs"]["base_run"] / "samples" / "truthfulqa_mc1.jsonl")
            .read_text().splitlines()]
    assert [d["id"] for d in shared["docs"]] == [r["doc_id"] for r in rows]
    assert shared["prefix"].startswith("Q: What is human life expectancy")  # the primer, stored once
    first = rows[0]["requests"][0]["context"]
    assert shared["prefix"] + shared["strings"][shared["docs"][0]["req"][0]["c"]] == first


def test_compare_folder_without_pairs_is_left_out_with_a_note(report, tmp_path, capsys):
    folder = Path(str(report["compare"]))
    empty = tmp_path / "empty-compare"
    record = json.loads((folder / "compare.json").read_text())
    for model in record["models"].values():
        model.update(n=0, wins=0, ties=0, losses=0)
    empty.mkdir()
    (empty / "compare.json").write_text(json.dumps(record))
    (empty / "pairs.jsonl").write_text("")
    assert build(report["inputs"], tmp_path / "r.html", "--compare", empty) == 0
    assert "holds no judged pairs: left out" in capsys.readouterr().err
    assert "holds no judged pairs" in (tmp_path / "r.html").read_text()


def test_missing_pairs_file_keeps_the_summary(report, tmp_path, capsys):
    folder = tmp_path / "no-pairs"
    folder.mkdir()
    (folder / "compare.json").write_text((Path(str(report["compare"])) / "compare.json").read_text())
    assert build(report["inputs"], tmp_path / "r.html", "--compare", folder) == 0
    assert "its judged pairs are not shown" in capsys.readouterr().err
    assert 'class="win-bar"' in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("case", ["folder_output", "unwritable", "missing_run", "newer_run", "bad_compare"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, report, tmp_path, capsys):
    out, extra = tmp_path / "r.html", []
    inputs = dict(report["inputs"])
    if case == "folder_output":
        out.mkdir()
        expected = "is a folder"
    elif case == "unwritable":
        (tmp_path / "blocker").write_text("a file, not a folder")
        out = tmp_path / "blocker" / "r.html"
        expected = "Cannot write the report to"
    elif case == "missing_run":
        inputs["sft_run"] = tmp_path / "no-such-run"
        expected = "is not a folder"
    elif case == "newer_run":
        import shutil

        inputs["sft_run"] = Path(shutil.copytree(inputs["sft_run"], tmp_path / "newer"))
        record = json.loads((inputs["sft_run"] / "results.json").read_text())
        record["evalsuite_record"] = 99
        (inputs["sft_run"] / "results.json").write_text(json.dumps(record))
        expected = "written by a newer evalsuite"
    else:
        (tmp_path / "cmp").mkdir()
        extra = ["--compare", tmp_path / "cmp"]
        expected = "is not a comparison record"
    assert build(inputs, out, *extra) == 2
    err = capsys.readouterr().err.strip().split("\n")[-1]
    assert err.startswith("error: ") and expected in err and "Fix:" in err
    assert not out.is_file()


def test_svg_rewrite_leaves_no_style_and_keeps_references_inside_the_figure():
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
           '<defs><style type="text/css">*{stroke-linejoin: round; stroke-linecap: butt}</style>'
           '<clipPath id="p1"><rect width="5" height="5"/></clipPath><path id="m1" d="M0 0"/></defs>'
           '<g id="bar0"><path d="M0 0 L1 1" clip-path="url(#p1)" style="fill: #1b9e77; stroke: none"/></g>'
           '<use xlink:href="#m1" style="stroke: #000"/>'
           '<text style="font-size: 10px; font-family: \'DejaVu Sans\', sans-serif">a &lt; b</text></svg>')
    out = csp_safe(svg, "c7", {"bar0": {"class": "bar", "data-task": "t<1>", "title": "gain +0.1"}})
    assert "style" not in out and 'stroke-linejoin="round"' in out
    assert 'id="c7-p1"' in out and 'clip-path="url(#c7-p1)"' in out and 'xlink:href="#c7-m1"' in out
    assert 'fill="#1b9e77"' in out and 'font-family="sans-serif"' in out and "a &lt; b" in out
    assert '<g id="c7-bar0" class="bar" data-task="t&lt;1&gt;"><title>gain +0.1</title>' in out
    with pytest.raises(ValueError):
        csp_safe('<svg xmlns="http://www.w3.org/2000/svg"><path style="filter: blur(2px)"/></svg>', "x", {})


def test_report_reads_a_tax_folder(report, tmp_path):
    inputs = report["inputs"]
    runs = [inputs[k] for k in ("base_run", "base_wikitext", "sft_run", "sft_wikitext")]
    assert main(["tax", *map(str, runs), "--output", str(tmp_path / "tax"), "--resamples", "300"]) == 0
    assert build(inputs, tmp_path / "r.html", "--tax", tmp_path / "tax") == 0
    html = (tmp_path / "r.html").read_text()
    assert "--resamples 300" in html and html.count('class="bar"') == 6


def test_runs_of_one_checkpoint_make_a_report_without_a_tax_table(report, tmp_path, capsys):
    inputs = report["inputs"]
    out = tmp_path / "base.html"
    assert main(["report", str(inputs["base_run"]), str(inputs["base_wikitext"]), "-o", str(out)]) == 0
    assert "no checkpoint has a recorded parent" in capsys.readouterr().err
    html = out.read_text()
    assert "No alignment-tax table" in html and 'class="bar"' not in html and 'id="task-wikitext"' in html


def test_the_judge_box_shows_the_same_judges_accuracy_on_human_preferences(hh_pairs, tiny_model_dir, data_dir,
                                                                           tmp_path):
    # A real lm: judge (the tiny model) judges the HH-RLHF pairs in a comparison and, in a run, is
    # checked against the human choices; the report matches the two by the judge's fingerprint.
    judge, cache = f"lm:{tiny_model_dir}", str(tmp_path / "c.sqlite")
    common = ["--data-dir", str(data_dir), "--cache", cache, "--device", "cpu"]
    assert main(["compare", "--prompts", "hh_rlhf", "--limit", "6", "--model", str(hh_pairs / "chosen.jsonl"),
                 "--baseline", str(hh_pairs / "rejected.jsonl"), "--judge", judge, "--output", str(tmp_path / "cmp"),
                 *common]) == 0
    assert main(["run", "--model", str(tiny_model_dir), "--tasks", f"pairwise_judge_check:judge={judge}",
                 "--limit", "8", "--output", str(tmp_path / "jc"), *common]) == 0
    check = json.loads((tmp_path / "jc" / "results.json").read_text())["tasks"]["pairwise_judge_check"]
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "jc"), "--compare", str(tmp_path / "cmp"), "-o", str(out)]) == 0
    box = unescape(re.search(r'<aside class="judge">(.*?)</aside>', out.read_text(), re.S).group(1))
    shown = re.search(r"accuracy on human preferences</dt>\s*<dd>([\d.]+) ± ([\d.]+) on (\d+) pairs", box)
    assert shown, box
    assert float(shown.group(1)) == pytest.approx(check["metrics"]["accuracy"], abs=1e-4)
    assert int(shown.group(3)) == check["n"] == 8
