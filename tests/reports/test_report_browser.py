"""The report opened from disk in a real browser (Debian's Chromium through Playwright): no console
errors, no network request, search and side-by-side drill-down, a model's HTML/JS payload shown as
text and never run, the tax chart's bars. Screenshots are kept under pytest's temporary folder, or
under $EVALSUITE_SCREENSHOTS when set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reports.conftest import PAYLOAD

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path(os.environ.get("EVALSUITE_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium contacts Google hosts on start.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no browser at {CHROMIUM}")]


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("EVALSUITE_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Page:
    """A page with every console message, page error and request recorded."""

    def __init__(self, browser, report_path: Path):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.console, self.requests = [], []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = report_path.resolve().as_uri()
        self.page.goto(self.url)

    def view(self, name: str):
        self.page.evaluate("name => { location.hash = name; }", name)
        self.page.wait_for_selector(f"section#{name}.active")
        return self.page.locator(f"section#{name}")

    def samples(self, task: str):
        section = self.view(f"task-{task}")
        section.locator(".drill .row.sample").first.wait_for()
        return section


def test_every_view_opens_without_errors_or_requests(browser, report, shots):
    page = Page(browser, report["path"])
    page.page.screenshot(path=str(shots / "overview.png"), full_page=True)
    views = page.page.eval_on_selector_all("section.view", "nodes => nodes.map(n => n.id)")
    for name in views:
        section = page.view(name)
        if section.locator(".drill").count():
            section.locator(".drill .row.sample").first.wait_for()
    page.view("tax")
    page.page.locator("#tax-chart").screenshot(path=str(shots / "tax-chart.png"))
    assert page.console == []
    assert page.requests == [page.url]
    assert (shots / "overview.png").stat().st_size > 10_000 and (shots / "tax-chart.png").stat().st_size > 5_000


def test_tax_chart_has_one_bar_per_task_and_checkpoint(browser, report):
    page = Page(browser, report["path"])
    page.view("tax")
    bars = page.page.eval_on_selector_all(
        "#tax-chart g.bar", "gs => gs.map(g => [g.dataset.task, g.dataset.checkpoint, "
                            "getComputedStyle(g.querySelector('path')).fill])")
    tasks = {"truthfulqa_mc1", "crows_pairs", "winogender", "squad_v2", "realtoxicityprompts", "wikitext"}
    assert sorted((t, c) for t, c, _ in bars) == sorted((t, "ckpt-sft") for t in tasks)
    # the colours come through the policy (presentation attributes, not blocked style attributes)
    allowed = {"rgb(27, 158, 119)", "rgb(217, 95, 2)", "rgb(76, 120, 168)", "rgb(192, 57, 43)"}
    assert {fill for _, _, fill in bars} <= allowed


def test_search_finds_a_known_sample_and_shows_both_checkpoints(browser, report):
    rows = [json.loads(line) for line in (report["inputs"]["base_run"] / "samples" / "squad_v2.jsonl")
            .read_text().splitlines()]
    wanted = rows[3]
    page = Page(browser, report["path"])
    section = page.samples("squad_v2")
    assert section.locator(".row.sample").count() == 6
    section.locator("input[type=search]").fill(wanted["doc"]["question"])
    page.page.wait_for_function("() => document.querySelectorAll('#task-squad_v2 .row.sample').length === 1")
    row = section.locator(".row.sample")
    assert row.get_attribute("data-doc") == str(wanted["doc_id"])
    row.click()
    detail = row.locator(".detail")
    assert wanted["doc"]["question"] in detail.inner_text()
    headings = detail.locator(".pair h5").all_inner_texts()
    assert headings[0].startswith("tiny-llama") and headings[1] == "ckpt-sft"  # the same document side by side
    assert wanted["responses"][0][0].strip()[:20] in detail.locator(".pair").inner_text()
    assert page.console == []


def test_a_payload_output_shows_as_text_and_runs_nothing(browser, report, shots):
    page = Page(browser, report["path"])
    section = page.samples("squad_v2")
    section.locator("input[type=search]").fill("__pwned")
    page.page.wait_for_function("() => document.querySelectorAll('#task-squad_v2 .row.sample').length === 1")
    row = section.locator(".row.sample")
    assert row.get_attribute("data-doc") == str(report["payload_doc"])
    row.click()
    texts = row.locator(".detail pre").all_inner_texts()
    assert PAYLOAD in texts  # the model's text, character for character
    page.page.screenshot(path=str(shots / "payload-sample.png"), full_page=True)
    winrates = page.view("winrates")
    winrates.locator(".drill .row.sample").first.wait_for()
    winrates.locator("input[type=search]").fill("pwned")
    pair = winrates.locator(".row.sample", has_text="payload")
    pair.click()
    assert PAYLOAD in pair.locator(".detail pre").all_inner_texts()
    assert page.page.evaluate("() => window.__pwned") is None
    assert page.page.locator("main img, main script").count() == 0
    assert page.console == [] and page.requests == [page.url]


def test_filter_and_sort_by_the_difference_between_checkpoints(browser, report):
    page = Page(browser, report["path"])
    section = page.samples("crows_pairs")
    section.locator("select").nth(2).select_option("likelihood_diff")  # A, B, score, show, order
    section.locator("select").nth(4).select_option("up")
    page.page.wait_for_timeout(100)
    ids = section.locator(".row.sample").evaluate_all("rs => rs.map(r => r.dataset.doc)")
    def diffs(run):
        return {str(json.loads(line)["doc_id"]): json.loads(line)["scores"]["likelihood_diff"]
                for line in (report["inputs"][run] / "samples" / "crows_pairs.jsonl").read_text().splitlines()}
    base, sft = diffs("base_run"), diffs("sft_run")
    expected = sorted(base, key=lambda i: sft[i] - base[i])
    assert ids == expected  # B - A, smallest first: where the checkpoint's likelihood gap shrank most
