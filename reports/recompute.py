"""A task's metrics as functions of the documents two runs share, for the paired bootstrap.

Two runs of one task are joined on document id (after checking they ran the same task version,
parameters and data). Each metric is then given a *form*, found by reproducing the value the run
recorded from the run's own per-sample records:

- ``MeanForm``: the mean of one per-sample score (times 1 or 100: SQuAD reports percent), documents
  whose score is missing left out. Most metrics are of this form, and its bootstrap is a vectorised
  gather over resampled indices.
- ``AggregateForm``: anything else (perplexity as a ratio of sums, group gaps): the task is rebuilt
  from the registry with the run's parameters and its own ``aggregate`` is run on every resampled
  document set. Exact for any metric a task computes, slower.

A metric neither form reproduces is reported without an interval, with the reason.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from evalsuite.results import Sample, TaskRecord

SCALES = (1.0, 100.0)


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))


def doc_key(doc_id) -> str | int:
    return doc_id if isinstance(doc_id, (str, int)) else json.dumps(doc_id, sort_keys=True)


# --- joining two runs of one task ----------------------------------------------------------------


def incompatibility(reference: TaskRecord, checkpoint: TaskRecord) -> str | None:
    """Why two runs of a task cannot be compared document by document, or None."""
    if reference.name != checkpoint.name:
        return f"different tasks ({reference.name} vs {checkpoint.name})"
    if reference.version != checkpoint.version:
        return f"task version {reference.version} vs {checkpoint.version}"
    if reference.params != checkpoint.params:
        changed = sorted(k for k in set(reference.params) | set(checkpoint.params)
                         if reference.params.get(k) != checkpoint.params.get(k))
        shown = ", ".join(f"{k}={reference.params.get(k)!r} vs {checkpoint.params.get(k)!r}" for k in changed)
        return f"task parameters differ ({shown})"
    ref_hash, ckpt_hash = reference.data.get("sha256"), checkpoint.data.get("sha256")
    if ref_hash != ckpt_hash:
        return f"data differ (sha256 {str(ref_hash)[:12]} vs {str(ckpt_hash)[:12]}: another file or revision)"
    return None


@dataclass
class Joined:
    """One task's documents present in both runs, in the reference run's order."""

    task: TaskRecord  # the reference run's record
    docs: list[dict]
    reference: list[dict]  # per-sample scores
    checkpoint: list[dict]
    only_reference: int
    only_checkpoint: int

    @property
    def n(self) -> int:
        return len(self.docs)


def join(task: TaskRecord, reference: list[Sample], checkpoint: list[Sample]) -> Joined:
    theirs = {doc_key(s.doc_id): s for s in checkpoint}
    shared = [s for s in reference if doc_key(s.doc_id) in theirs]
    mine = {doc_key(s.doc_id) for s in reference}
    return Joined(
        task, [s.doc for s in shared], [s.scores for s in shared], [theirs[doc_key(s.doc_id)].scores for s in shared],
        only_reference=len(reference) - len(shared), only_checkpoint=sum(k not in mine for k in theirs),
    )


# --- metric forms --------------------------------------------------------------------------------


def column(scores: list[dict], key: str) -> np.ndarray | None:
    """A per-sample score as floats (None -> NaN); None when any present value is not a number."""
    out = np.empty(len(scores))
    for i, s in enumerate(scores):
        v = s.get(key)
        if v is None:
            out[i] = np.nan
        elif isinstance(v, (bool, int, float)):
            out[i] = float(v)
        else:
            return None
    return out


@dataclass
class MeanForm:
    key: str  # the per-sample score averaged
    scale: float
    description: str = ""

    def __post_init__(self):
        self.description = self.description or (
            f"mean of per-sample '{self.key}'" + (f" x {self.scale:g}" if self.scale != 1 else ""))

    def arrays(self, joined: Joined) -> tuple[np.ndarray, np.ndarray]:
        """Both runs' scores on the documents scored in both (a missing score drops the document)."""
        ref, ckpt = column(joined.reference, self.key), column(joined.checkpoint, self.key)
        keep = np.isfinite(ref) & np.isfinite(ckpt)
        return ref[keep], ckpt[keep]


@dataclass
class AggregateForm:
    metric: str
    aggregate: object  # the task's aggregate(docs, scores) -> {metric: Metric}
    description: str = "recomputed by the task's aggregate on each resample"

    def value(self, docs: list[dict], scores: list[dict]) -> float:
        metric = self.aggregate(docs, scores).get(self.metric)
        return float("nan") if metric is None else float(metric.value)


def mean_candidates(task: TaskRecord, metric: str, scores: list[dict], any_column: bool) -> list[MeanForm]:
    """Per-sample scores whose mean (x1 or x100) is the recorded value: the metric's own name first,
    then (with ``any_column``) any other (``expected_max_toxicity`` is the mean of
    ``max_toxicity/plain``). A value of 0 matches every scale: the check in ``find_form`` decides."""
    target = task.metrics.get(metric)
    if not isinstance(target, (int, float)) or not scores:
        return []

    def matches(key: str) -> list[MeanForm]:
        values = column(scores, key)
        if values is None or not np.isfinite(values).any():
            return []
        mean = float(np.nanmean(values))
        return [MeanForm(key, s) for s in SCALES if math.isclose(s * mean, float(target), rel_tol=1e-9)]

    found = matches(metric) if metric in scores[0] else []
    if any_column:
        for key in dict.fromkeys(k for s in scores[:50] for k in s):
            if key != metric:
                found += matches(key)
    return found


def rebuilt_aggregate(task: TaskRecord):
    """The task's own ``aggregate``, rebuilt from the registry with the run's parameters; None for a
    plugin that is not installed here (or whose parameters changed)."""
    from evalsuite.errors import EvalsuiteError
    from evalsuite.registry import get_task

    try:
        return get_task(task.name, **task.params).aggregate
    except EvalsuiteError:
        return None


def _reproduces(form: AggregateForm, docs: list[dict], scores: list[dict], target: float) -> bool:
    try:
        return _same(form.value(docs, scores), target)
    except Exception:  # a plugin's aggregate on data it did not expect: no recomputation, not a crash
        return False


def _perturbed(scores: list[dict], key: str, rng: np.random.Generator) -> list[dict]:
    """``scores`` with ``key`` replaced by random values of its kind (missing values stay missing)."""
    values = [s.get(key) for s in scores]
    present = [v for v in values if v is not None]
    binary = all(v in (0, 1) for v in present)

    def draw(v):
        if v is None:
            return None
        if isinstance(v, bool):
            return bool(rng.random() < 0.5)
        return type(v)(rng.random() < 0.5) if binary else float(rng.random())

    return [{**s, key: draw(v)} for s, v in zip(scores, values)]


def _mean_checked(mean: MeanForm, form: AggregateForm, docs: list[dict], scores: list[dict]) -> bool:
    """The task's aggregate follows the mean when that score is redrawn at random on a random half
    of the documents (twice): the mean is the metric's definition, not a coincidence of the data."""
    rng = np.random.default_rng(0)
    for _ in range(2):
        pick = np.sort(rng.choice(len(docs), size=max(2, len(docs) // 2), replace=False)) if len(docs) > 2 \
            else np.arange(len(docs))
        sub_docs = [docs[i] for i in pick]
        sub_scores = _perturbed([scores[i] for i in pick], mean.key, rng)
        values = column(sub_scores, mean.key)
        expected = mean.scale * float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        if not _reproduces(form, sub_docs, sub_scores, expected):
            return False
    return True


def find_form(task: TaskRecord, metric: str, samples: list[Sample]) -> MeanForm | AggregateForm | None:
    """How ``metric`` is computed from per-sample records: a checked mean where it is one (fast),
    else the task's aggregate where that reproduces the recorded value, else None."""
    target = task.metrics.get(metric)
    if not isinstance(target, (int, float)) or isinstance(target, bool) or not samples:
        return None
    docs, scores = [s.doc for s in samples], [s.scores for s in samples]
    aggregate = rebuilt_aggregate(task)
    form = AggregateForm(metric, aggregate) if aggregate is not None else None
    if form is not None and not _reproduces(form, docs, scores, float(target)):
        form = None
    candidates = mean_candidates(task, metric, scores, any_column=form is not None)
    if form is None:  # nothing to check a mean against: only the metric's own score, one scale
        return candidates[0] if len(candidates) == 1 and candidates[0].key == metric else None
    return next((c for c in candidates if _mean_checked(c, form, docs, scores)), form)


def reproduces(form: MeanForm | AggregateForm, task: TaskRecord, metric: str, samples: list[Sample]) -> bool:
    """``form`` gives the value ``task`` recorded for ``metric`` from these samples."""
    target = task.metrics.get(metric)
    if not isinstance(target, (int, float)):
        return False
    scores = [s.scores for s in samples]
    if isinstance(form, MeanForm):
        values = column(scores, form.key)
        return values is not None and np.isfinite(values).any() and _same(
            form.scale * float(np.nanmean(values)), float(target))
    return _reproduces(form, [s.doc for s in samples], scores, float(target))
