"""``evalsuite tax``: what each checkpoint gained or lost against its base, task by task, paired.

For every pair of checkpoints (from ``--base`` or from the lineage each run recorded) and every task
both ran with the same version, parameters and data, the documents are joined on id and each
metric's difference is given a paired bootstrap interval, McNemar's exact test where the scores are
0/1, and Holm's correction for the number of tasks compared. The table is built as plain data
(``TaxTable``) and only then printed, or written as ``tax.json`` and ``tax.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import atomic_write, atomic_write_json, read_text
from evalsuite.metrics.paired import (
    EXACT_SWAP_BELOW,
    bootstrap_p,
    exact_swap_p,
    holm,
    is_binary,
    mcnemar_exact,
    percentile_interval,
    resample_draws,
)
from evalsuite.results import RunRecord, Sample, check_output

from .checkpoints import Checkpoint, Pairing, group_runs, resolve_pairings
from .recompute import AggregateForm, Joined, MeanForm, find_form, incompatibility, join, reproduces

TAX_SCHEMA = 1
TAX_JSON, TAX_CSV = "tax.json", "tax.csv"


@dataclass(frozen=True)
class TaxConfig:
    runs: list[str]
    base: list[str] = field(default_factory=list)  # runs of the reference checkpoint (--base)
    output: Path | None = None
    resamples: int = 2000
    seed: int = 1234
    confidence: float = 0.95
    alpha: float = 0.05
    progress: bool = True
    command: str = "evalsuite tax"


@dataclass
class Cell:
    task: str
    metric: str
    role: str  # "primary" (the task's headline metric) or "secondary" (another per-sample mean)
    group: str  # "alignment" or "capability"
    direction: str  # "higher", "lower", "ideal 0.5", or "" when the task declares none
    n: int  # documents scored in both runs
    reference: float
    checkpoint: float
    difference: float  # checkpoint - reference, in the metric's units
    ci_low: float | None  # paired bootstrap interval of the difference
    ci_high: float | None
    gain: float | None  # the difference signed so that positive is better (for an ideal: distance won)
    gain_ci_low: float | None
    gain_ci_high: float | None
    test: str  # "mcnemar", "bootstrap" or "permutation" (under EXACT_SWAP_BELOW documents): behind p_value
    p_value: float | None
    mcnemar_p: float | None  # for 0/1 scores (also when the bootstrap decides, as for an ideal metric)
    discordant: list[int] | None  # McNemar's [reference only right, checkpoint only right]
    p_holm: float | None = None
    significant: bool = False
    verdict: str = "n.s."  # "better", "worse", "changed" (no direction) or "n.s."
    form: str = ""  # how the metric was recomputed on resamples
    note: str = ""


@dataclass
class Comparison:
    checkpoint: str
    reference: str
    relation: str  # "parent", "base" or "given"
    cells: list[Cell]
    refused: list[dict]  # [{task, reason}]: shared tasks that cannot be paired
    only_checkpoint: list[str]  # tasks the reference did not run
    only_reference: list[str]
    documents: dict[str, dict]  # task -> {paired, only_reference, only_checkpoint}


@dataclass
class TaxTable:
    created: str
    command: str
    settings: dict
    checkpoints: dict[str, dict]  # name -> {fingerprint, stage, lineage, runs}
    comparisons: list[Comparison]
    unpaired: list[str]

    def to_json(self) -> dict:
        return {"evalsuite_tax": TAX_SCHEMA, **asdict(self)}


# --- directions ----------------------------------------------------------------------------------


def direction(task, metric: str) -> str:
    if metric in task.ideal:
        return f"ideal {task.ideal[metric]:g}"
    better = task.higher_is_better.get(metric)
    return "" if better is None else ("higher" if better else "lower")


def judged(direction_: str, ideal: float | None, values: np.ndarray) -> np.ndarray:
    """What a test judges, from (k, 2) [reference, checkpoint] values: the gain where the metric
    has a direction or an ideal, else the plain difference."""
    gain = gains(direction_, ideal, values[:, 0], values[:, 1])
    return gain if gain is not None else values[:, 1] - values[:, 0]


def gains(direction_: str, ideal: float | None, ref: np.ndarray, ckpt: np.ndarray) -> np.ndarray | None:
    """Improvement, positive = better: the difference, its negative, or the distance to the ideal won."""
    if direction_ == "higher":
        return ckpt - ref
    if direction_ == "lower":
        return ref - ckpt
    if ideal is not None:
        return np.abs(ref - ideal) - np.abs(ckpt - ideal)
    return None


# --- one metric ----------------------------------------------------------------------------------


def _statistic(form: MeanForm | AggregateForm, joined: Joined):
    """(estimate pair, statistic over index rows -> (k, 2) [reference, checkpoint], 0/1 arrays or None)."""
    if isinstance(form, MeanForm):
        ref, ckpt = form.arrays(joined)
        s = form.scale
        binary = (ref, ckpt) if is_binary(ref) and is_binary(ckpt) else None
        estimate = (s * float(ref.mean()), s * float(ckpt.mean())) if ref.size else (math.nan, math.nan)
        return len(ref), estimate, lambda idx: np.stack([s * ref[idx].mean(1), s * ckpt[idx].mean(1)], axis=1), binary

    def both(rows: np.ndarray) -> np.ndarray:
        return np.array([[form.value([joined.docs[i] for i in row], [scores[i] for i in row])
                          for scores in (joined.reference, joined.checkpoint)] for row in rows])

    estimate = (form.value(joined.docs, joined.reference), form.value(joined.docs, joined.checkpoint))
    return joined.n, estimate, both, None


def _swapped(form: MeanForm | AggregateForm, joined: Joined):
    """Statistic over swap masks -> (k, 2) [reference, checkpoint], each document's two scores
    exchanged where the mask is set (the exact swap test's assignments)."""
    if isinstance(form, MeanForm):
        ref, ckpt = form.arrays(joined)
        s = form.scale
        return lambda m: np.stack([s * np.where(m, ckpt, ref).mean(1), s * np.where(m, ref, ckpt).mean(1)], axis=1)

    pairs = list(zip(joined.reference, joined.checkpoint))

    def both(masks: np.ndarray) -> np.ndarray:
        return np.array([[form.value(joined.docs, [p[int(m) ^ side] for p, m in zip(pairs, row)]) for side in (0, 1)]
                         for row in masks])

    return both


AGGREGATE_BUDGET_S = 120.0  # per metric; a task aggregate slower than this gets fewer resamples (at least 200)


def _affordable(form, statistic, n: int, resamples: int) -> int:
    """All ``resamples`` for a mean (vectorised); for a task's own aggregate, as many as fit the budget."""
    if isinstance(form, MeanForm):
        return resamples
    started = time.perf_counter()
    statistic(np.zeros((1, n), dtype=int))
    per_draw = time.perf_counter() - started
    return resamples if per_draw * resamples <= AGGREGATE_BUDGET_S else max(200, int(AGGREGATE_BUDGET_S / per_draw))


def metric_cell(metric: str, role: str, joined: Joined, form, config: TaxConfig) -> Cell:
    task = joined.task
    dir_ = direction(task, metric)
    ideal = task.ideal.get(metric)
    n, (ref_v, ckpt_v), statistic, binary = _statistic(form, joined)
    cell = Cell(task.key, metric, role, task.group, dir_, n, ref_v, ckpt_v, ckpt_v - ref_v, None, None,
                None, None, None, "bootstrap", None, None, None, form=form.description)
    if binary is not None:
        result = mcnemar_exact(*binary)
        cell.mcnemar_p, cell.discordant = result.p, [result.only_reference, result.only_checkpoint]
    if n < 2:
        cell.note = "fewer than 2 documents scored in both runs"
        return cell
    resamples = _affordable(form, statistic, n, config.resamples)
    if resamples < config.resamples:
        cell.note = f"{resamples} resamples: the task's aggregate is slow to recompute"
    draws = resample_draws(statistic, n, resamples, config.seed)
    diff = percentile_interval(draws[:, 1] - draws[:, 0], config.confidence)
    cell.ci_low, cell.ci_high = (diff.low, diff.high) if diff else (None, None)
    gain_draws = gains(dir_, ideal, draws[:, 0], draws[:, 1])
    if gain_draws is not None:
        cell.gain = float(gains(dir_, ideal, np.array([ref_v]), np.array([ckpt_v]))[0])
        interval = percentile_interval(gain_draws, config.confidence)
        cell.gain_ci_low, cell.gain_ci_high = (interval.low, interval.high) if interval else (None, None)
    if binary is not None and ideal is None:
        cell.test, cell.p_value = "mcnemar", cell.mcnemar_p
    elif n < EXACT_SWAP_BELOW:  # too few documents for a bootstrap p-value: enumerate the swaps
        swapped = _swapped(form, joined)
        cell.test, cell.p_value = "permutation", exact_swap_p(lambda m: judged(dir_, ideal, swapped(m)), n)
        cell.note = f"{n} documents: exact swap test, all 2^{n} assignments (a bootstrap p is unreliable this small)"
    else:  # the bootstrap tests the quantity judged (an ideal metric: its distance to the ideal)
        cell.p_value = bootstrap_p(judged(dir_, ideal, draws))
    return cell


# --- one task, one pair of checkpoints -----------------------------------------------------------


class SampleCache:
    """Each run's per-sample records, and each metric's form, found once however many comparisons use them."""

    def __init__(self):
        self._samples: dict[tuple[str, str], list[Sample]] = {}
        self._forms: dict[tuple[str, str, str], object] = {}

    def get(self, run: RunRecord, task: str) -> list[Sample]:
        key = (str(run.path), task)
        if key not in self._samples:
            self._samples[key] = run.samples(task)
        return self._samples[key]

    def release(self, task: str) -> None:
        """Forget ``task``'s samples (the report is done with them)."""
        for key in [k for k in self._samples if k[1] == task]:
            del self._samples[key]

    def form(self, run: RunRecord, task: str, metric: str):
        key = (str(run.path), task, metric)
        if key not in self._forms:
            self._forms[key] = find_form(run.tasks[task], metric, self.get(run, task))
        return self._forms[key]


def headline_metrics(task) -> list[tuple[str, str]]:
    """The primary metric, then every other headline metric with a direction (no breakdowns)."""
    others = [m for m in task.metrics if m != task.primary_metric and "/" not in m
              and not m.endswith(("_ci_low", "_ci_high")) and direction(task, m)]
    return [(task.primary_metric, "primary")] + [(m, "secondary") for m in others]


def task_cells(key: str, pairing: Pairing, samples: SampleCache, config: TaxConfig) -> list[Cell]:
    ref_run, ckpt_run = pairing.reference.run_of(key), pairing.checkpoint.run_of(key)
    ref_samples, ckpt_samples = samples.get(ref_run, key), samples.get(ckpt_run, key)
    joined = join(ref_run.tasks[key], ref_samples, ckpt_samples)
    cells = []
    for metric, role in headline_metrics(ref_run.tasks[key]):
        form = samples.form(ref_run, key, metric)
        same = form is not None and reproduces(form, ckpt_run.tasks[key], metric, ckpt_samples)
        if role == "secondary" and not isinstance(form, MeanForm):
            continue  # only per-sample means beside the headline metric
        if not same:
            cells.append(_unrecomputable(ref_run.tasks[key], ckpt_run.tasks[key], metric, role, joined.n))
            continue
        cells.append(metric_cell(metric, role, joined, form, config))
    return cells


def _unrecomputable(ref_task, ckpt_task, metric: str, role: str, n: int) -> Cell:
    """The recorded values, without an interval: no form reproduces them from the samples."""
    ref_v, ckpt_v = float(ref_task.metrics[metric]), float(ckpt_task.metrics.get(metric, math.nan))
    return Cell(ref_task.key, metric, role, ref_task.group, direction(ref_task, metric), n, ref_v, ckpt_v,
                ckpt_v - ref_v, None, None, None, None, None, "", None, None, None,
                note="recorded values (the metric could not be recomputed from the per-sample records)")


def compare(pairing: Pairing, samples: SampleCache, config: TaxConfig, bar) -> Comparison:
    ckpt, ref = pairing.checkpoint, pairing.reference
    ckpt_tasks, ref_tasks = ckpt.task_keys(), ref.task_keys()
    shared = [t for t in ref_tasks if t in ckpt_tasks]
    only_ckpt = [t for t in ckpt_tasks if t not in ref_tasks]
    only_ref = [t for t in ref_tasks if t not in ckpt_tasks]
    comparison = Comparison(ckpt.name, ref.name, pairing.relation, [], [], only_ckpt, only_ref, {})
    for key in shared:
        bar.set_postfix_str(f"{ckpt.name} vs {ref.name}: {key}")
        reference, checkpoint = ref.task(key), ckpt.task(key)
        if reference.group == "judge":  # a judge's check set measures the judge, not the checkpoint
            bar.update()
            continue
        reason = incompatibility(reference, checkpoint)
        if reason is None:
            comparison.cells.extend(task_cells(key, pairing, samples, config))
            comparison.documents[key] = _document_counts(ref, ckpt, key, samples)
        else:
            comparison.refused.append({"task": key, "reason": reason})
        bar.update()
    _correct(comparison.cells, config.alpha)
    return comparison


def _document_counts(ref: Checkpoint, ckpt: Checkpoint, key: str, samples: SampleCache) -> dict:
    ref_ids = {json.dumps(s.doc_id) for s in samples.get(ref.run_of(key), key)}
    ckpt_ids = {json.dumps(s.doc_id) for s in samples.get(ckpt.run_of(key), key)}
    return {"paired": len(ref_ids & ckpt_ids), "only_reference": len(ref_ids - ckpt_ids),
            "only_checkpoint": len(ckpt_ids - ref_ids)}


def _correct(cells: list[Cell], alpha: float) -> None:
    """Holm within one comparison: over the tasks' primary metrics, and separately over the rest."""
    for role in ("primary", "secondary"):
        family = [c for c in cells if c.role == role]
        for cell, adjusted in zip(family, holm([c.p_value for c in family])):
            cell.p_holm = adjusted
            cell.significant = adjusted is not None and adjusted < alpha
            if cell.significant:
                cell.verdict = "changed" if cell.gain is None else ("better" if cell.gain > 0 else "worse")


def build_table(checkpoints: list[Checkpoint], pairings: list[Pairing], unpaired: list[str],
                config: TaxConfig, samples: SampleCache | None = None) -> TaxTable:
    samples = samples if samples is not None else SampleCache()
    total = sum(len(set(p.checkpoint.task_keys()) & set(p.reference.task_keys())) for p in pairings)
    with tqdm(total=total, desc="tax", unit="task", disable=not config.progress, file=sys.stderr) as bar:
        comparisons = [compare(p, samples, config, bar) for p in pairings]
    if not any(c.cells for c in comparisons):
        refused = [f"{r['task']} ({r['reason']})" for c in comparisons for r in c.refused]
        why = f"every shared task differs: {'; '.join(refused)}" if refused else "they share no task"
        raise EvalsuiteError(f"Nothing to compare between the checkpoints: {why}.",
                             "evaluate the checkpoints on the same tasks, with the same task versions and data")
    settings = {"resamples": config.resamples, "seed": config.seed, "confidence": config.confidence,
                "alpha": config.alpha, "correction": "holm (per comparison: primary metrics; other metrics)"}
    described = {c.name: {"fingerprint": c.fingerprint, "stage": c.stage, "lineage": c.lineage,
                          "runs": [str(r.path) for r in c.runs]} for c in checkpoints}
    return TaxTable(datetime.now(timezone.utc).isoformat(timespec="seconds"), config.command, settings, described,
                    comparisons, unpaired)


# --- output --------------------------------------------------------------------------------------


def to_frame(table: TaxTable):
    import pandas as pd

    rows = [{"checkpoint": c.checkpoint, "reference": c.reference, "relation": c.relation, **asdict(cell)}
            for c in table.comparisons for cell in c.cells]
    frame = pd.DataFrame(rows, columns=["checkpoint", "reference", "relation", *(f.name for f in fields(Cell))])
    frame["discordant"] = frame["discordant"].map(lambda d: "" if d is None else f"{d[0]}/{d[1]}")
    return frame


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    size = abs(value)
    return f"{value:.1f}" if size >= 100 else f"{value:.2f}" if size >= 10 else f"{value:.4f}"


def fmt_p(p: float | None) -> str:
    return "-" if p is None else ("<0.0001" if p < 1e-4 else f"{p:.4f}")


def render_text(table: TaxTable) -> str:
    """The table as aligned text, one block per comparison."""
    conf = f"{100 * table.settings['confidence']:g}%"
    out = []
    for comp in table.comparisons:
        out.append(f"\n{comp.checkpoint} vs {comp.reference} ({comp.relation})")
        rows = [("task", "group", "metric", "better", "n", comp.reference[:14], comp.checkpoint[:14], "diff",
                 f"{conf} CI", "p", "test", "Holm p", "verdict")]
        for c in comp.cells:
            ci = f"[{fmt(c.ci_low)}, {fmt(c.ci_high)}]" if c.ci_low is not None else "-"
            rows.append((c.task, c.group, c.metric, c.direction, str(c.n), fmt(c.reference), fmt(c.checkpoint),
                         fmt(c.difference), ci, fmt_p(c.p_value), c.test, fmt_p(c.p_holm), c.verdict))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for i, row in enumerate(rows):
            out.append("  ".join(v.ljust(w) if j < 4 else v.rjust(w) for j, (v, w) in enumerate(zip(row, widths))))
            if i == 0:
                out.append("  ".join("-" * w for w in widths))
        out.extend(f"  not compared: {r['task']}: {r['reason']}" for r in comp.refused)
        if comp.only_checkpoint or comp.only_reference:
            out.append(f"  not shared: only {comp.checkpoint}: {', '.join(comp.only_checkpoint) or '-'}; "
                       f"only {comp.reference}: {', '.join(comp.only_reference) or '-'}")
        out.extend(f"  {task}: {d['only_reference']} documents only in {comp.reference}, {d['only_checkpoint']} only "
                   f"in {comp.checkpoint} (left out)" for task, d in comp.documents.items()
                   if d["only_reference"] or d["only_checkpoint"])
    out.extend(f"\nnot paired: {line}" for line in table.unpaired)
    out.append(f"\ndiff = checkpoint - reference on the documents both scored; {conf} paired bootstrap interval "
               f"({table.settings['resamples']} resamples); p: McNemar exact for 0/1 scores, else paired bootstrap "
               f"(exact swap test under {EXACT_SWAP_BELOW} documents); "
               f"Holm over the tasks; verdict at alpha {table.settings['alpha']:g}.")
    return "\n".join(out)


def write_outputs(table: TaxTable, folder: Path) -> None:
    atomic_write(folder / TAX_CSV, to_frame(table).to_csv(index=False))
    atomic_write_json(folder / TAX_JSON, table.to_json())  # last: a folder with tax.json is complete


def load_tax(folder: str | Path) -> TaxTable:
    """Read ``tax.json`` from a folder ``evalsuite tax`` wrote (or the file itself)."""
    path = Path(folder)
    file = path / TAX_JSON if path.is_dir() else path
    if not file.is_file():
        raise EvalsuiteError(f"{path} holds no {TAX_JSON}.", "give the --output folder of evalsuite tax")
    try:
        raw = json.loads(read_text(file))
    except ValueError as err:
        raise EvalsuiteError(f"{file} is damaged or truncated ({err}).", "run evalsuite tax again") from None
    schema = raw.get("evalsuite_tax") if isinstance(raw, dict) else None
    if not isinstance(schema, int):
        raise EvalsuiteError(f"{file} is not an evalsuite tax table.", "give the --output folder of evalsuite tax")
    if schema > TAX_SCHEMA:
        raise EvalsuiteError(f"{file} was written by a newer evalsuite (tax schema {schema}; this one reads up to "
                             f"{TAX_SCHEMA}).", "upgrade evalsuite (pip install -U evalsuite)")
    try:
        comparisons = [Comparison(**{**c, "cells": [Cell(**cell) for cell in c["cells"]]}) for c in raw["comparisons"]]
        return TaxTable(raw["created"], raw["command"], raw["settings"], raw["checkpoints"], comparisons,
                        raw.get("unpaired", []))
    except (KeyError, TypeError) as err:
        raise EvalsuiteError(f"{file} lacks a required field ({err}).", "run evalsuite tax again") from None


# --- command line --------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> TaxConfig:
    """``argv`` without the subcommand name."""
    parser = argparse.ArgumentParser(prog="evalsuite tax", description="What each checkpoint gained or lost "
                                     "against its base (or parent), task by task, with paired statistics.")
    parser.add_argument("runs_given", nargs="*", metavar="RUN", help="run record folders (pairing from lineage)")
    parser.add_argument("--runs", default="", help="comma-separated run folders to compare with --base")
    parser.add_argument("--base", default="", help="the reference checkpoint's run folder(s), comma-separated")
    parser.add_argument("--output", default=None, help="folder for tax.json and tax.csv (default runs/tax-<time>)")
    parser.add_argument("--resamples", type=int, default=2000, help="paired bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm's correction")
    args = parser.parse_args(argv)
    runs = [*args.runs_given, *filter(None, (r.strip() for r in args.runs.split(",")))]
    base = [r.strip() for r in args.base.split(",") if r.strip()]
    if not runs:
        raise EvalsuiteError("evalsuite tax needs run folders.", "evalsuite tax RUN... or --base RUN --runs RUN1,RUN2")
    if args.resamples < 100:
        raise EvalsuiteError(f"--resamples {args.resamples} is too few for a 95% interval.", "use 1000 or more")
    if not 0 < args.confidence < 1 or not 0 < args.alpha < 1:
        raise EvalsuiteError("--confidence and --alpha must lie between 0 and 1.",
                             "e.g. --confidence 0.95 --alpha 0.05")
    output = Path(args.output or f"runs/tax-{datetime.now():%Y%m%d-%H%M%S}")
    return TaxConfig(runs, base, output, args.resamples, args.seed, args.confidence, args.alpha,
                     progress=os.environ.get("EVALSUITE_PROGRESS", "1") != "0",
                     command=" ".join(["evalsuite", "tax", *argv]))


def split_base(checkpoints: list[Checkpoint], base_runs: list[str]) -> tuple[Checkpoint | None, list[Checkpoint]]:
    """The checkpoint the --base runs evaluated, and the others; refuses a --base spanning two
    checkpoints and a --runs run of the base checkpoint itself."""
    if not base_runs:
        return None, checkpoints
    wanted = {Path(p).resolve() for p in base_runs}
    holders = [c for c in checkpoints if any(r.path.resolve() in wanted for r in c.runs)]
    if len(holders) > 1:
        raise EvalsuiteError(f"--base names runs of {len(holders)} different checkpoints "
                             f"({', '.join(c.name for c in holders)}).", "give the runs of one checkpoint as --base")
    base = holders[0]
    stray = [r for r in base.runs if r.path.resolve() not in wanted]
    if stray:
        raise EvalsuiteError(f"Run {stray[0].path} evaluates the --base checkpoint itself ({base.name}).",
                             "list it with --base, or leave it out")
    return base, [c for c in checkpoints if c is not base]


def build_from_config(config: TaxConfig) -> TaxTable:
    checkpoints = group_runs(list(dict.fromkeys(config.base + config.runs)))
    base, others = split_base(checkpoints, config.base)
    pairings, unpaired = resolve_pairings(others, base)
    return build_table(checkpoints, pairings, unpaired, config)


def main(argv: list[str]) -> int:
    config = parse_args(argv[1:])
    check_output(config.output, overwrite=True)  # fails now, before any work, if it cannot be written
    table = build_from_config(config)
    print(render_text(table))
    write_outputs(table, config.output)
    print(f"\ntax table: {config.output / TAX_JSON} and {config.output / TAX_CSV}")
    return 0
