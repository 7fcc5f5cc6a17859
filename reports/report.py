"""``evalsuite report RUN... [--compare DIR...] [--tax DIR] -o FILE.html``: one self-contained HTML file.

The page is built from plain data gathered here (``build_view``) and rendered by one Jinja2
template with autoescaping (``templates/report.html.j2``): an overview (lineage, headline metrics
with intervals), the alignment-tax chart and table, win rates with the judges' agreement, a page
per task (metrics with intervals, breakdown charts, a per-sample drill-down) and the provenance of
every number. Charts are inline SVG; the drill-down's samples are embedded compressed and unpacked
only when shown (``drilldown.py``). A Content-Security-Policy in the page allows its own script and
style (by hash) and nothing else: no request of any kind leaves the page.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import atomic_write, disk_full
from evalsuite.results import CompareRecord, load_compare
from evalsuite.scorers.pairwise import scorer_name

from . import charts
from .checkpoints import Checkpoint, group_runs, resolve_pairings
from .drilldown import pack, score_keys, script_json, task_blocks
from .tax import SampleCache, TaxConfig, TaxTable, build_table, load_tax
from .tax import direction as tax_direction

Z95 = 1.959964
GROUP_ORDER = {"alignment": 0, "capability": 1, "judge": 2}


@dataclass(frozen=True)
class ReportConfig:
    runs: list[str]
    output: Path
    compare: list[str] = field(default_factory=list)
    tax: str | None = None
    title: str = "evalsuite report"
    resamples: int = 1000  # for the tax table computed here when --tax is not given
    progress: bool = True


@dataclass
class Inputs:
    checkpoints: list[Checkpoint]
    compares: list[CompareRecord]
    tax: TaxTable | None
    notes: list[str]  # what was left out and why
    samples: SampleCache = field(default_factory=SampleCache)  # read once for the tax table and the drill-down


# --- inputs --------------------------------------------------------------------------------------


def check_writable(path: Path) -> None:
    """Fail before any work if the report could not be written there."""
    if path.is_dir():
        raise EvalsuiteError(f"-o {path} is a folder.", "give a file name, e.g. -o runs/report.html")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise EvalsuiteError(f"Cannot write the report to {path} ({err.strerror or err}).",
                             "choose another -o path") from None


def load_compares(paths: list[str], notes: list[str]) -> list[CompareRecord]:
    compares = []
    for path in paths:
        record = load_compare(path)
        if not record.models or all(m.n == 0 for m in record.models.values()):
            notes.append(f"comparison {path} holds no judged pairs: left out")
            continue
        compares.append(record)
    return compares


def tax_for(checkpoints: list[Checkpoint], config: ReportConfig, notes: list[str],
            samples: SampleCache) -> TaxTable | None:
    """The tax table from --tax, else computed here from the lineage when some run's parent or base is given."""
    if config.tax:
        return load_tax(config.tax)
    if not any(len(c.lineage) > 1 for c in checkpoints):
        notes.append("alignment tax: no checkpoint has a recorded parent (give runs of fine-tuned checkpoints, "
                     "or --tax DIR from evalsuite tax --base)")
        return None
    try:
        pairings, unpaired = resolve_pairings(checkpoints, None)
        return build_table(checkpoints, pairings, unpaired, TaxConfig(
            runs=[], resamples=config.resamples, progress=config.progress, command="evalsuite report"), samples)
    except EvalsuiteError as err:
        notes.append(f"alignment tax left out: {err.problem}")
        return None


def load_inputs(config: ReportConfig) -> Inputs:
    notes: list[str] = []
    checkpoints = group_runs(config.runs)
    compares = load_compares(config.compare, notes)
    samples = SampleCache()
    return Inputs(checkpoints, compares, tax_for(checkpoints, config, notes, samples), notes, samples)


# --- the view: plain data for the template -------------------------------------------------------


def fmt(value) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "–"
    if isinstance(value, (bool, int)) or not isinstance(value, float):
        return str(value)
    size = abs(value)
    if size and (size >= 1e5 or size < 1e-3):
        return f"{value:.3g}"
    return f"{value:.1f}" if size >= 100 else f"{value:.2f}" if size >= 10 else f"{value:.4f}"


def interval(task, metric: str) -> tuple[float, float] | None:
    """The metric's 95% interval: its own bootstrap bounds where the task reports them, else +-1.96 se."""
    low, high = task.metrics.get(f"{metric}_ci_low"), task.metrics.get(f"{metric}_ci_high")
    if low is not None and high is not None:
        return float(low), float(high)
    se, value = task.stderr.get(metric), task.metrics.get(metric)
    if se is None or value is None or not isinstance(value, (int, float)) or math.isnan(se):
        return None
    return value - Z95 * se, value + Z95 * se


def fmt_like(value: float, like) -> str:
    """``value`` with as many decimals as ``fmt(like)`` shows (an interval printed like its value)."""
    shown = fmt(like)
    if not isinstance(like, float) or "e" in shown or "." not in shown:
        return fmt(value)
    return f"{value:.{len(shown.split('.')[1])}f}"


def value_cell(task, metric: str) -> dict:
    if task is None or metric not in task.metrics:
        return {"text": "–", "ci": ""}
    value, ci = task.metrics[metric], interval(task, metric)
    return {"text": fmt(value), "ci": f"[{fmt_like(ci[0], value)}, {fmt_like(ci[1], value)}]" if ci else ""}


def direction_of(task, metric: str) -> str:
    """How to read ``metric``; a breakdown (``family/group``) reads like its family."""
    if metric not in task.ideal and metric not in task.higher_is_better and "/" in metric:
        metric = metric.split("/")[0]
    if metric in task.ideal:
        return f"ideal {task.ideal[metric]:g}"
    better = task.higher_is_better.get(metric)
    return "" if better is None else ("higher is better" if better else "lower is better")


def ordered_tasks(checkpoints: list[Checkpoint]) -> list[str]:
    keys = list(dict.fromkeys(k for c in checkpoints for k in c.task_keys()))
    group = {k: next(c.task(k).group for c in checkpoints if c.task(k)) for k in keys}
    return sorted(keys, key=lambda k: (GROUP_ORDER.get(group[k], 3), keys.index(k)))


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "task"


def lineage_tree(checkpoints: list[Checkpoint]) -> list[dict]:
    """Every checkpoint named in any lineage, as a forest: {name, stage, fingerprint, evaluated, children}."""
    evaluated = {c.fingerprint: c.name for c in checkpoints}
    nodes: dict[str, dict] = {}
    parents: dict[str, str | None] = {}
    for ckpt in checkpoints:
        previous = None
        for entry in ckpt.lineage:
            fp = str(entry.get("fingerprint"))
            if fp not in nodes:
                path = str(entry.get("path") or "")
                nodes[fp] = {"name": evaluated.get(fp, Path(path.rstrip("/")).name or path),
                             "stage": entry.get("stage", "base"), "fingerprint": fp[:12], "path": path,
                             "evaluated": fp in evaluated, "children": []}
                parents[fp] = previous
            previous = fp
    for fp, parent in parents.items():
        if parent is not None:
            nodes[parent]["children"].append(nodes[fp])
    return [nodes[fp] for fp, parent in parents.items() if parent is None]


def overview_view(checkpoints: list[Checkpoint], tasks: list[str]) -> dict:
    rows, points = [], []
    for key in tasks:
        first = next(c.task(key) for c in checkpoints if c.task(key))
        metric = first.primary_metric
        rows.append({"task": key, "slug": slug(key), "group": first.group, "metric": metric,
                     "direction": direction_of(first, metric),
                     "cells": [value_cell(c.task(key), metric) for c in checkpoints]})
        if first.group == "judge":  # the judge's check: the same judge for every checkpoint, in the table only
            continue
        values = {}
        for c in checkpoints:
            task = c.task(key)
            if task is not None and isinstance(task.metrics.get(metric), (int, float)):
                ci = interval(task, metric) or (None, None)
                values[c.name] = (float(task.metrics[metric]), *ci)
        points.append({"task": key, "metric": metric, "direction": tax_direction(first, metric),
                       "ideal": first.ideal.get(metric), "values": values})
    chart = charts.headline_chart(points, [c.name for c in checkpoints]) if points else None
    return {"tree": lineage_tree(checkpoints), "rows": rows, "chart": chart}


def tax_view(table: TaxTable | None) -> dict | None:
    if table is None:
        return None
    chart_rows = []
    for comp in chart_comparisons(table):
        for cell in comp.cells:
            if cell.role == "primary":
                chart_rows.append({**cell.__dict__, "label": comp.checkpoint})
    comparisons = [{
        "title": f"{c.checkpoint} vs {c.reference}", "relation": c.relation, "refused": c.refused,
        "only_checkpoint": c.only_checkpoint, "only_reference": c.only_reference,
        "documents": {t: d for t, d in c.documents.items() if d["only_reference"] or d["only_checkpoint"]},
        "cells": [{**cell.__dict__, **{k: fmt(getattr(cell, k)) for k in (
            "reference", "checkpoint", "difference", "ci_low", "ci_high", "p_value", "mcnemar_p", "p_holm")}}
            for cell in sorted(c.cells, key=lambda cell: GROUP_ORDER.get(cell.group, 3))],
    } for c in table.comparisons]
    chart = charts.tax_chart(chart_rows) if any(r.get("gain") is not None for r in chart_rows) else None
    return {"chart": chart, "comparisons": comparisons, "settings": table.settings, "unpaired": table.unpaired,
            "command": table.command, "created": table.created}


def chart_comparisons(table: TaxTable):
    """Per checkpoint, its comparison with its base (or the given reference), else with its parent."""
    chosen = {}
    for comp in table.comparisons:
        if comp.checkpoint not in chosen or comp.relation in ("base", "given"):
            chosen[comp.checkpoint] = comp
    return list(chosen.values())


def _span(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def model_row(m) -> dict:
    lc_ci = (None, None) if m.lc_win_rate is None or m.lc_win_rate_se is None else (
        m.lc_win_rate - Z95 * m.lc_win_rate_se, m.lc_win_rate + Z95 * m.lc_win_rate_se)
    return {"name": m.name, "n": m.n, "wins": m.wins, "ties": m.ties, "losses": m.losses, "win_rate": m.win_rate,
            "win_rate_ci": m.win_rate_ci, "lc_win_rate": m.lc_win_rate, "lc_win_rate_se": m.lc_win_rate_se,
            "excluded": m.excluded,
            "text": {"win_rate": fmt(m.win_rate), "ci": _span(*(m.win_rate_ci or (None, None))),
                     "lc": fmt(m.lc_win_rate), "lc_ci": _span(*lc_ci), "position_bias": fmt(m.position_bias)}}


def judge_check_rows(checkpoints: list[Checkpoint]) -> list[dict]:
    """Every judge-check task in the runs, with the fingerprint of the judge it scored (from the
    run's scorers, so a check is matched to a comparison's judge by weights and template, not name)."""
    rows = []
    for c in checkpoints:
        for key in c.task_keys():
            task = c.task(key)
            if task.group != "judge":
                continue
            spec = task.params.get("judge")
            scorer = c.run_of(key).scorers.get(scorer_name(spec), {})
            rows.append({"checkpoint": c.name, "task": key, "judge": spec, "fingerprint": scorer.get("fingerprint"),
                         "n": task.n, "accuracy": task.metrics.get(task.primary_metric),
                         "se": task.stderr.get(task.primary_metric), "file": task.params.get("file"),
                         "metrics": {m: fmt(v) for m, v in task.metrics.items() if "/" not in m}})
    return rows


def measured_check(record: CompareRecord, checks: list[dict]) -> dict | None:
    """The judge check (in the runs) of this comparison's judge, when there is one."""
    fingerprint = record.judge.get("fingerprint")
    return next((j for j in checks if fingerprint and j["fingerprint"] == fingerprint), None)


def winrate_view(compares: list[CompareRecord], checkpoints: list[Checkpoint]) -> tuple[list[dict], list[dict]]:
    """Each comparison's models with the judge beside them (its agreement with labels, and its
    accuracy on human preference pairs when a run checked the same judge); and the judges' checks."""
    judge_checks = judge_check_rows(checkpoints)
    views = []
    for i, record in enumerate(compares):
        models = [model_row(m) for m in record.models.values()]
        views.append({"id": f"cmp{i}", "path": str(record.path), "baseline": record.baseline, "judge": record.judge,
                      "agreement": record.judge.get("agreement"), "check": measured_check(record, judge_checks),
                      "prompts": record.prompts, "models": models,
                      "chart": charts.win_rate_chart(models, f"win{i}"), "command": record.command,
                      "created": record.created})
    return views, judge_checks


def breakdowns(key: str, checkpoints: list[Checkpoint], prefix: str) -> list[dict]:
    """Metrics named ``family/group`` drawn as one chart per family with two or more groups."""
    holders = [c for c in checkpoints if c.task(key)]
    families: dict[str, list[str]] = {}
    for c in holders:
        for metric in c.task(key).metrics:
            family, sep, group = metric.partition("/")
            if sep:
                families.setdefault(family, [])
                if group not in families[family]:
                    families[family].append(group)
    out = []
    for n, (family, groups) in enumerate(families.items()):
        series = {c.name: {g: (c.task(key).metrics.get(f"{family}/{g}"), c.task(key).stderr.get(f"{family}/{g}"))
                           for g in groups} for c in holders}
        if len(groups) < 2 or all(se is None for by in series.values() for _, se in by.values()):
            continue  # one group, or counts (no standard error): the table says it
        ideal = holders[0].task(key).ideal.get(family)
        out.append({"family": family, "svg": charts.breakdown_chart(family, groups, series, f"{prefix}-b{n}", ideal)})
    return out


def task_view(key: str, checkpoints: list[Checkpoint], index: int) -> dict:
    holders = [c for c in checkpoints if c.task(key)]
    first = holders[0].task(key)
    metrics = list(dict.fromkeys(m for c in holders for m in c.task(key).metrics
                                 if not m.endswith(("_ci_low", "_ci_high"))))
    metrics.sort(key=lambda m: (m != first.primary_metric, "/" in m))
    rows = [{"metric": m, "direction": direction_of(first, m), "primary": m == first.primary_metric,
             "cells": [value_cell(c.task(key), m) for c in checkpoints]} for m in metrics]
    signatures = {(c.task(key).version, str(sorted(c.task(key).params.items())), c.task(key).data.get("sha256"))
                  for c in holders}
    return {"key": key, "slug": slug(key), "group": first.group, "description": first.description,
            "primary": first.primary_metric, "rows": rows,
            "n": [c.task(key).n if c.task(key) else None for c in checkpoints],
            "differs": len(signatures) > 1, "breakdowns": breakdowns(key, checkpoints, f"t{index}"),
            "missing": [c.name for c in checkpoints if not c.task(key)]}


def provenance_view(inputs: Inputs) -> dict:
    checkpoints = [{"name": c.name, "stage": c.stage, "fingerprint": c.fingerprint, "lineage": c.lineage,
                    "runs": [{"path": str(r.path), "created": r.created, "command": r.command,
                              "seed": r.config.get("seed"), "versions": r.versions, "model": {
                                  k: r.model.get(k) for k in ("spec", "path", "class", "dtype", "device", "max_length",
                                                              "chat_template", "n_parameters", "truncated_prompts")},
                              "scorers": r.scorers, "requests": r.requests, "timings": r.timings,
                              "tasks": [{"key": t.key, "version": t.version, "params": t.params,
                                         "source": t.data.get("source"), "sha256": t.data.get("sha256"), "n": t.n,
                                         "seconds": t.seconds} for t in r.tasks.values()]}
                             for r in c.runs]} for c in inputs.checkpoints]
    return {"checkpoints": checkpoints,
            "compares": [{"path": str(r.path), "command": r.command, "created": r.created, "judge": r.judge,
                          "prompts": r.prompts, "decoding": r.decoding} for r in inputs.compares],
            "tax": None if inputs.tax is None else {"command": inputs.tax.command, "created": inputs.tax.created,
                                                    "settings": inputs.tax.settings}}


# --- drill-down data -----------------------------------------------------------------------------


class Blocks:
    """Embedded data blocks, each an element id and its packed text."""

    def __init__(self):
        self.items: list[tuple[str, str]] = []

    def add(self, value) -> str:
        ident = f"blk{len(self.items)}"
        self.items.append((ident, pack(value)))
        return ident


def samples_meta(inputs: Inputs, tasks: list[str], blocks: Blocks) -> dict:
    meta = {}
    for key in tasks:
        holders = [(c.name, inputs.samples.get(c.run_of(key), key)) for c in inputs.checkpoints if c.task(key)]
        shared, by_checkpoint = task_blocks(key, holders)
        inputs.samples.release(key)
        first = next(c.task(key) for c in inputs.checkpoints if c.task(key))
        keys = score_keys(holders)
        meta[key] = {
            "shared": blocks.add(shared), "by": {name: blocks.add(block) for name, block in by_checkpoint.items()},
            "scores": keys, "n": len(shared["docs"]),
            "better": {k: first.higher_is_better[k] for k in keys if k in first.higher_is_better},
            "primary": first.primary_metric if first.primary_metric in keys else (keys[0] if keys else None),
        }
    return meta


def pairs_meta(inputs: Inputs, blocks: Blocks, notes: list[str]) -> dict:
    meta = {}
    for i, record in enumerate(inputs.compares):
        try:
            pairs = record.pairs()
        except EvalsuiteError as err:
            notes.append(f"comparison {record.path}: {err.problem} (its judged pairs are not shown)")
            continue
        rows = [{"model": p.model, "id": p.prompt_id, "prompt": p.prompt, "output": p.output,
                 "baseline": p.baseline_output, "preference": p.preference, "outcome": p.outcome,
                 "by_order": p.by_order} for p in pairs]
        meta[f"cmp{i}"] = {"block": blocks.add(rows), "n": len(rows)}
    return meta


# --- rendering -----------------------------------------------------------------------------------


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def asset(name: str) -> str:
    return files("evalsuite.reports").joinpath("templates", name).read_text(encoding="utf-8")


def evalsuite_version() -> str:
    try:
        return version("evalsuite")
    except PackageNotFoundError:
        return "unknown"


def render(context: dict) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    css, js, boot = asset("report.css"), asset("report.js"), "document.documentElement.classList.add('js');"
    for name, text in (("report.js", js), ("boot", boot)):
        if "</script" in text.lower() or "<!--" in text:
            raise AssertionError(f"{name} would end its script element early")
    csp = "; ".join([
        "default-src 'none'", f"script-src {csp_hash(boot)} {csp_hash(js)}", f"style-src {csp_hash(css)}",
        "img-src data:", "base-uri 'none'", "form-action 'none'",
    ])
    env = Environment(loader=FileSystemLoader(str(files("evalsuite.reports").joinpath("templates"))),
                      autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["fmt"] = fmt
    template = env.get_template("report.html.j2")
    # Our own stylesheet and script (hashed into the policy above) are the only unescaped text.
    return template.render(**context, csp=csp, css=Markup(css), js=Markup(js), boot=Markup(boot))


def build_context(inputs: Inputs, config: ReportConfig) -> dict:
    tasks = ordered_tasks(inputs.checkpoints)
    blocks = Blocks()
    winrates, judge_checks = winrate_view(inputs.compares, inputs.checkpoints)
    meta = {"checkpoints": [c.name for c in inputs.checkpoints], "tasks": samples_meta(inputs, tasks, blocks),
            "pairs": pairs_meta(inputs, blocks, inputs.notes)}
    return {
        "title": config.title, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": evalsuite_version(), "checkpoints": inputs.checkpoints, "overview": overview_view(
            inputs.checkpoints, tasks), "tax": tax_view(inputs.tax), "winrates": winrates,
        "judge_checks": judge_checks, "tasks": [task_view(k, inputs.checkpoints, i) for i, k in enumerate(tasks)],
        "provenance": provenance_view(inputs), "notes": inputs.notes, "meta_json": script_json(meta),
        "blocks": blocks.items,
    }


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> ReportConfig:
    """``argv`` without the subcommand name."""
    parser = argparse.ArgumentParser(prog="evalsuite report", description="One self-contained HTML report of "
                                     "runs, comparisons and the alignment-tax table.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run record folders")
    parser.add_argument("--compare", nargs="+", default=[], metavar="DIR", help="evalsuite compare folders")
    parser.add_argument("--tax", default=None, metavar="DIR", help="an evalsuite tax folder (default: computed "
                        "from the runs' lineage when it names a parent among them)")
    parser.add_argument("-o", "--output", required=True, help="the HTML file to write")
    parser.add_argument("--title", default="evalsuite report")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for a tax table made here")
    args = parser.parse_args(argv)
    return ReportConfig(args.runs, Path(args.output), args.compare, args.tax, args.title, args.resamples,
                        progress=os.environ.get("EVALSUITE_PROGRESS", "1") != "0")


def write_report(config: ReportConfig) -> Path:
    check_writable(config.output)
    inputs = load_inputs(config)
    html = render(build_context(inputs, config))
    try:
        atomic_write(config.output, html)
    except OSError as err:
        full = disk_full(err, config.output)
        raise (full or EvalsuiteError(f"Cannot write {config.output} ({err.strerror or err}).",
                                      "choose another -o path")) from None
    for note in inputs.notes:
        print(f"note: {note}", file=sys.stderr)
    return config.output


def main(argv: list[str]) -> int:
    config = parse_args(argv[1:])
    path = write_report(config)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
