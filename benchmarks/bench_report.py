"""How long a large report takes to open in Chromium: four checkpoints (base -> sft -> ppo, ppo-ptx)
over the full suite at full sample counts (tens of thousands of samples per checkpoint).

The run records are synthetic, for this benchmark only: each task's real documents and requests
(read from the data folder by the tasks' own loaders), responses drawn at random in the shapes the
model adapters return (log-likelihoods, generations of realistic length, scorer probabilities),
scored and aggregated by the tasks' own code and written by evalsuite's run-record writer. So the
records have the sizes and shapes of real ones; only the numbers mean nothing. The report is then
built with ``evalsuite report`` (the tax table computed from the lineage) and opened from disk in
a fresh Chromium page ``--repeats`` times.

Measured: the file's size; build time; open time = navigation start to the load event (the page is
usable then: every view but the samples is static HTML and SVG); and the first drill-down = from
opening a task's page to its first rows drawn (unpacking that task's samples included), for the
largest tasks. There is no reference tool to run side by side: HELM's and Inspect's viewers need a
web server; the target is the issue's 3 seconds.

    python benchmarks/bench_report.py --data-dir ../shared/data            # the full setting
    python benchmarks/bench_report.py --data-dir ../shared/data --limit 20 # a quick check
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from evalsuite.registry import build_tasks
from evalsuite.requests import Generate, Loglikelihood, LoglikelihoodResult, LoglikelihoodRolling, RollingResult
from evalsuite.results import build_record, write_run
from evalsuite.runner import RunStats, prepare

SUITE = ("truthfulqa_mc1,truthfulqa_mc2,crows_pairs,winogender,wikitext,squad_v2,drop,truthfulqa_gen,"
         "realtoxicityprompts,hallucination,hallucination_judge_check")
STAGES = [("base", []), ("sft", ["base"]), ("ppo", ["base", "sft"]), ("ppo-ptx", ["base", "sft"])]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def fake_response(request, rng: np.random.Generator, words: np.ndarray):
    if isinstance(request, Loglikelihood):
        return LoglikelihoodResult(float(-rng.gamma(2.0, 4.0)), bool(rng.random() < 0.2),
                                   max(1, len(request.continuation) // 4))
    if isinstance(request, LoglikelihoodRolling):
        tokens = max(1, len(request.text) // 4)
        return RollingResult(float(-tokens * rng.uniform(2.5, 3.5)), tokens)
    if isinstance(request, Generate):
        length = int(min(request.max_tokens, 24) * rng.uniform(0.3, 1.0)) + 1
        return [" ".join(words[rng.integers(0, len(words), length)]) for _ in range(request.n)]
    return float(rng.beta(1.0, 6.0))  # a scorer's probability (toxicity, a judge's yes)


def fake_run(prepared, stage: str, parents: list[str], out: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = np.array([w for res in prepared[:3] for d in res.docs[:200] for w in json.dumps(d).split() if w.isalpha()])
    fingerprints = {s: hashlib.sha256(s.encode()).hexdigest() for s, _ in STAGES}
    for res in prepared:
        res.responses = [[fake_response(r, rng, words) for r in reqs] for reqs in res.requests]
        if res.task.followup:
            extra = [res.task.followup(d, resp) for d, resp in zip(res.docs, res.responses)]
            res.requests = [a + b for a, b in zip(res.requests, extra)]
            res.responses = [a + [fake_response(r, rng, words) for r in b] for a, b in zip(res.responses, extra)]
        res.scores = [res.task.score(d, resp) for d, resp in zip(res.docs, res.responses)]
        res.metrics = res.task.aggregate(res.docs, res.scores)
    lineage = [{"stage": s, "path": f"checkpoints/{s}", "fingerprint": fingerprints[s]} for s in [*parents, stage]]
    model = {"spec": f"checkpoints/{stage}", "path": f"checkpoints/{stage}", "fingerprint": fingerprints[stage],
             "class": "LlamaForCausalLM", "dtype": "bfloat16", "device": "cuda", "lineage": lineage}
    stats = RunStats(unique_requests=sum(len(r) for res in prepared for r in res.requests))
    record = build_record({"seed": seed, "synthetic": True}, model, prepared, stats, {}, {"toxicity": "synthetic"})
    out.mkdir(parents=True, exist_ok=True)
    write_run(out, record, prepared)


def measure_open(report: Path, repeats: int, tasks: list[str]) -> dict:
    from playwright.sync_api import sync_playwright

    opens, drills = [], {t: [] for t in tasks}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(repeats):
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(report.resolve().as_uri(), wait_until="load", timeout=120_000)
            opens.append(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
            for task in tasks:
                start = time.perf_counter()
                page.evaluate("t => { location.hash = 'task-' + t; }", task)
                page.wait_for_selector(f"section#task-{task} .row.sample", timeout=120_000)
                drills[task].append(time.perf_counter() - start)
            if errors:
                raise SystemExit(f"page errors: {errors}")
            page.close()
        browser.close()
    return {"open_s": opens, "drill_s": drills}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="runs/bench-report")
    parser.add_argument("--limit", type=int, default=None, help="documents per task (default: all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the numbers here too")
    args = parser.parse_args(argv)
    out = Path(args.out)
    runs = []
    started = time.perf_counter()
    for i, (stage, parents) in enumerate(STAGES):
        folder = out / f"run-{stage}"
        if not (folder / "results.json").is_file():
            fake_run(prepare(build_tasks(SUITE), args.data_dir, args.limit), stage, parents, folder, seed=i)
        runs.append(str(folder))
    generated = time.perf_counter() - started
    from evalsuite.reports.report import ReportConfig, write_report

    started = time.perf_counter()
    report = write_report(ReportConfig(runs=runs, output=out / "report.html", progress=False))
    built = time.perf_counter() - started
    samples = sum(json.loads((Path(r) / "results.json").read_text())["tasks"][t]["n"]
                  for r in runs for t in json.loads((Path(r) / "results.json").read_text())["tasks"])
    timing = measure_open(report, args.repeats, ["drop", "realtoxicityprompts", "squad_v2"])
    result = {"samples": samples, "checkpoints": len(runs), "report_mb": report.stat().st_size / 1e6,
              "generate_s": generated, "build_s": built, **timing}
    print(f"{len(runs)} checkpoints, {samples} samples in all; report {result['report_mb']:.1f} MB, "
          f"built in {built:.1f} s (records generated in {generated:.1f} s)")
    print(f"open (navigation to load event), {args.repeats} runs: median {statistics.median(timing['open_s']):.3f} s, "
          f"min {min(timing['open_s']):.3f}, max {max(timing['open_s']):.3f}")
    for task, values in timing["drill_s"].items():
        print(f"first drill-down rows of {task}: median {statistics.median(values):.3f} s, max {max(values):.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
