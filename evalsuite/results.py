"""The run record, in both directions: ``write_run`` writes it, ``load_run`` reads it back typed.

A run record is a folder: ``results.json`` (metrics with their uncertainty, and everything needed
to reproduce them) plus one JSON Lines file of per-sample records per task under ``samples/``.
Everything that reads runs (compare, tax, report) goes through ``load_run``; the format is
described field by field in the README ("The run record").

Schema history: 1 = samples named after the task, no ``samples``/``group``/``ideal``/``lineage``
fields; 2 = the current one. ``load_run`` reads both.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalsuite.errors import EvalsuiteError
from evalsuite.fileio import atomic_write_json, atomic_write_jsonl, disk_full, json_lines, read_text
from evalsuite.requests import request_kind

SCHEMA = 2
RESULTS = "results.json"
SAMPLES = "samples"


# --- the typed form ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One document of one task: what was asked, what came back, how it scored."""

    doc_id: Any
    doc: dict
    requests: list[dict]
    responses: list
    scores: dict


@dataclass(frozen=True)
class TaskRecord:
    key: str  # the task's name in this run (``wikitext`` or ``wikitext:split=valid``)
    name: str  # the registered task
    primary_metric: str
    metrics: dict[str, float]
    stderr: dict[str, float | None]
    n: int
    higher_is_better: dict[str, bool]
    version: str
    params: dict
    data: dict
    samples_file: str
    group: str = "capability"
    ideal: dict[str, float] = field(default_factory=dict)
    missing_responses: int = 0
    description: str = ""
    seconds: float = 0.0


@dataclass
class RunRecord:
    path: Path
    schema: int
    created: str
    command: str
    config: dict
    model: dict
    scorers: dict
    versions: dict
    tasks: dict[str, TaskRecord]
    requests: dict
    timings: dict

    @property
    def lineage(self) -> list[dict]:
        """Ancestors then this checkpoint: ``[{stage, path, fingerprint}, ...]`` (base first)."""
        return self.model.get("lineage") or [{"stage": "base", "path": self.model.get("path"),
                                              "fingerprint": self.model.get("fingerprint")}]

    def samples(self, task: str) -> list[Sample]:
        """The per-sample records of ``task``, read in full; a damaged file is a one-line error."""
        return list(self.iter_samples(task))

    def iter_samples(self, task: str) -> Iterator[Sample]:
        if task not in self.tasks:
            raise EvalsuiteError(f"Run {self.path} has no task '{task}'.", f"it has: {', '.join(self.tasks)}")
        path = self.path / self.tasks[task].samples_file
        if not path.is_file():
            raise EvalsuiteError(f"Run {self.path} lists {path.name} but the file is missing.",
                                 "run the evaluation again into a fresh --output folder")
        try:
            for number, row in json_lines(read_text(path), path):
                yield _sample(row, path, number)
        except EvalsuiteError as err:
            raise EvalsuiteError(f"Run {self.path}: {err.problem}", "the samples file is truncated or damaged: "
                                 "run the same evaluation again (cached responses make it quick)") from None


def _sample(row, path: Path, number: int) -> Sample:
    keys = ("doc_id", "doc", "requests", "responses", "scores")
    if not isinstance(row, dict) or any(k not in row for k in keys):
        from evalsuite.errors import malformed

        raise malformed(path, number, f"a sample needs the fields {', '.join(keys)}")
    return Sample(*(row[k] for k in keys))


def load_run(path: str | Path) -> RunRecord:
    """Read a run record folder; refuses (one clear line each) a folder that is not one, a damaged
    ``results.json``, and a record written by a newer evalsuite."""
    folder = Path(path)
    raw, schema = _read_versioned(folder / RESULTS, "evalsuite_record", SCHEMA, "run record",
                                  "run the same evaluation again into a fresh --output folder")
    try:
        tasks = {key: _task(key, t, schema) for key, t in raw["tasks"].items()}
        return RunRecord(folder, schema, raw.get("created", ""), raw.get("command", ""), raw.get("config", {}),
                         raw["model"], raw.get("scorers", {}), raw.get("versions", {}), tasks,
                         raw.get("requests", {}), raw.get("timings", {}))
    except (KeyError, TypeError, AttributeError) as err:
        raise EvalsuiteError(f"{folder / RESULTS} lacks a required field ({err}).",
                             "run the same evaluation again into a fresh --output folder") from None


def _read_versioned(file: Path, field: str, newest: int, what: str, redo: str) -> tuple[dict, int]:
    """A JSON record file and its schema version; a missing folder or file, and damaged, foreign and
    newer files are refused."""
    if not file.parent.is_dir():
        raise EvalsuiteError(f"{file.parent} is not a folder.", f"give the folder that holds {file.name}")
    if not file.is_file():
        raise EvalsuiteError(f"{file.parent} is not a {what} (no {file.name} in it).",
                             f"give the --output folder of the evalsuite command that writes {what}s")
    try:
        raw = json.loads(read_text(file))
    except ValueError as err:
        raise EvalsuiteError(f"{file} is damaged or truncated ({err}).", redo) from None
    schema = raw.get(field) if isinstance(raw, dict) else None
    if not isinstance(schema, int):
        raise EvalsuiteError(f"{file} is not an evalsuite {what} (no '{field}' schema field).", redo)
    if schema > newest:
        raise EvalsuiteError(f"{file} was written by a newer evalsuite ({what} schema {schema}; this one reads up "
                             f"to {newest}).", "upgrade evalsuite (pip install -U evalsuite)")
    return raw, schema


def _task(key: str, t: dict, schema: int) -> TaskRecord:
    return TaskRecord(
        key=key, name=t.get("name", key), primary_metric=t["primary_metric"], metrics=t["metrics"],
        stderr=t["stderr"], n=t["n"], higher_is_better=t.get("higher_is_better", {}), version=str(t["version"]),
        params=t.get("params", {}), data=t.get("data", {}),
        samples_file=t.get("samples") or f"{SAMPLES}/{key}.jsonl", group=t.get("group", "capability"),
        ideal=t.get("ideal", {}), missing_responses=t.get("missing_responses", 0),
        description=t.get("description", ""), seconds=t.get("seconds", 0.0),
    )


# --- writing -------------------------------------------------------------------------------------


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("evalsuite", "torch", "transformers", "accelerate", "datasets", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def samples_file(key: str) -> str:
    """``samples/<key>.jsonl`` with characters a file name should not hold replaced (``:`` -> ``.``)."""
    return f"{SAMPLES}/{re.sub(r'[^A-Za-z0-9_.=-]', '.', key)}.jsonl"


def sample_records(res) -> Iterator[dict]:
    """Per-sample records of a ``runner.TaskResult``: what was asked, what came back, how it scored."""
    for doc, reqs, resps, scores in zip(res.docs, res.requests, res.responses, res.scores):
        yield {
            "doc_id": doc["id"],
            "doc": doc,
            "requests": [{"kind": request_kind(r), **asdict(r)} for r in reqs],
            "responses": [list(r) if isinstance(r, tuple) else r for r in resps],
            "scores": scores,
        }


def task_record(res, model_share: float) -> dict:
    task = res.task
    return {
        "name": task.name,
        "primary_metric": task.primary_metric,
        "metrics": {k: m.value for k, m in res.metrics.items()},
        "stderr": {k: m.stderr for k, m in res.metrics.items()},
        "n": len(res.docs),
        "missing_responses": res.missing,
        "higher_is_better": task.higher_is_better,
        "ideal": task.ideal,
        "group": task.group,
        "version": task.version,
        "params": task.params,
        "description": task.description,
        "data": {"source": res.dataset.source, "sha256": res.dataset.sha256, "docs_available": len(res.dataset.docs)},
        "seconds": round(model_share + res.seconds, 3),
        "samples": samples_file(task.key),
    }


def build_record(config: dict, model_info: dict, results: list, stats, timings: dict, scorers: dict) -> dict:
    tasks = {res.task.key: task_record(res, _model_share(res, results, stats)) for res in results}
    return {
        "evalsuite_record": SCHEMA,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
        "config": config,
        "model": model_info,
        "scorers": scorers,
        "versions": versions(),
        "tasks": tasks,
        "requests": {"unique": stats.unique_requests, "from_cache": stats.from_cache, "computed": stats.computed},
        "timings": timings | {"model_seconds": round(stats.model_seconds, 3)},
    }


def _model_share(res, results: list, stats) -> float:
    """Compute time is shared across tasks (requests are merged): each kind's time is split between
    tasks by their share of that kind's requests (a rolling perplexity request is not a choice)."""

    def count(r, kind: str) -> int:
        return sum(request_kind(q) == kind for reqs in r.requests for q in reqs)

    share = 0.0
    for kind, seconds in stats.kind_seconds.items():
        total = sum(count(r, kind) for r in results)
        share += seconds * count(res, kind) / total if total else 0.0
    return share


def check_output(output: Path, overwrite: bool) -> None:
    """Fail before any model work if the run record could not be written, or would replace another
    run's (unless ``overwrite``)."""
    if (output / RESULTS).exists() and not overwrite:
        raise EvalsuiteError(f"{output} already holds a run record.",
                             "choose another --output, or pass --overwrite to replace it")
    if output.exists() and not output.is_dir():
        raise EvalsuiteError(f"--output {output} is a file, not a folder.", "choose another --output")
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise EvalsuiteError(
            f"Cannot write to output folder {output} ({err.strerror or err}).", "choose another --output"
        ) from None


def write_run(output: Path, record: dict, results: list) -> None:
    """Samples first, ``results.json`` last: a folder with ``results.json`` is a complete record.
    A previous record in the folder is removed first, and so are sample files the new one does not
    list, so a record never mixes two runs."""
    try:
        (output / RESULTS).unlink(missing_ok=True)
        samples = output / SAMPLES
        samples.mkdir(parents=True, exist_ok=True)
        for res in results:
            atomic_write_jsonl(output / samples_file(res.task.key), sample_records(res))
        listed = {Path(t["samples"]).name for t in record["tasks"].values()}
        for stale in samples.glob("*.jsonl"):
            if stale.name not in listed:
                stale.unlink()
        atomic_write_json(output / RESULTS, record)
    except OSError as err:
        full = disk_full(err, output)
        if full:
            raise EvalsuiteError(full.problem, "free space and run the same command again: every response is "
                                 "cached, nothing is recomputed") from None
        raise



# --- comparison records (``evalsuite compare``) ---------------------------------------------------
#
# A comparison folder: ``compare.json`` (one entry per compared model against the baseline, with the
# judge's identity) plus ``pairs.jsonl`` (one line per judged pair) and, when several models were
# compared, ``head_to_head.jsonl`` (their pairs with each other, ``opponent`` naming the other one).
# Written and read only here.

COMPARE_SCHEMA = 1
COMPARE = "compare.json"
PAIRS = "pairs.jsonl"
HEAD_TO_HEAD = "head_to_head.jsonl"


@dataclass(frozen=True)
class Pair:
    """One prompt judged for one model against the baseline."""

    model: str
    prompt_id: str
    prompt: str
    output: str  # the model's
    baseline_output: str
    # The judge's P(model's output is better) for each order shown ("model_first", "baseline_first");
    # None where that order was not judged or the judge failed.
    by_order: dict[str, float | None]
    preference: float | None  # their mean: P(model beats baseline); None = judge failed (excluded)
    outcome: str  # "win", "tie", "loss" or "excluded"
    opponent: str = ""  # "" = the baseline; in head_to_head.jsonl the other model (its output in baseline_output)


@dataclass(frozen=True)
class ModelComparison:
    name: str
    source: dict  # kind (checkpoint, run, outputs), path, fingerprint, lineage where known
    n: int  # judged pairs
    wins: int
    ties: int
    losses: int
    win_rate: float  # ties count 0.5
    win_rate_se: float | None
    win_rate_ci: tuple[float, float] | None  # bootstrap 95%
    mean_preference: float
    mean_preference_se: float | None
    lc_win_rate: float | None  # length-controlled (see README)
    lc_win_rate_se: float | None
    position_bias: float | None  # mean P(first shown wins) - 0.5, over pairs judged in both orders
    excluded: dict[str, int]  # reason -> count


@dataclass
class CompareRecord:
    path: Path
    created: str
    command: str
    judge: dict  # spec, kind, fingerprint, template_sha256, agreement (or None)
    prompts: dict  # source, sha256, n_total, n_shared, left_out {reason: count}
    decoding: dict
    baseline: dict
    models: dict[str, ModelComparison]
    extra: dict  # bradley_terry, paired comparisons, warnings, ...

    def pairs(self) -> list[Pair]:
        return self._read_pairs(PAIRS)

    def head_to_head(self) -> list[Pair]:
        """The compared models' pairs with each other (empty when one model was compared)."""
        return self._read_pairs(HEAD_TO_HEAD) if (self.path / HEAD_TO_HEAD).is_file() else []

    def _read_pairs(self, name: str) -> list[Pair]:
        path = self.path / name
        if not path.is_file():
            raise EvalsuiteError(f"Comparison {self.path} has no {name}.", "run evalsuite compare again")
        try:
            return [Pair(**row) for _, row in json_lines(read_text(path), path)]
        except TypeError as err:
            raise EvalsuiteError(f"{path} holds a line that is not a judged pair ({err}).",
                                 "run evalsuite compare again") from None


def write_compare(output: Path, record: dict, pairs: list[Pair], head_to_head: list[Pair] | None = None) -> None:
    """``record`` holds every ``CompareRecord`` field but path (models as dicts of ``ModelComparison``).
    Pair files first, ``compare.json`` last: a folder with ``compare.json`` is complete."""
    output.mkdir(parents=True, exist_ok=True)
    (output / COMPARE).unlink(missing_ok=True)
    atomic_write_jsonl(output / PAIRS, (asdict(p) for p in pairs))
    if head_to_head:
        atomic_write_jsonl(output / HEAD_TO_HEAD, (asdict(p) for p in head_to_head))
    else:
        (output / HEAD_TO_HEAD).unlink(missing_ok=True)
    atomic_write_json(output / COMPARE, {"evalsuite_compare": COMPARE_SCHEMA, **record, "pairs_file": PAIRS})


def load_compare(path: str | Path) -> CompareRecord:
    folder = Path(path)
    raw, _ = _read_versioned(folder / COMPARE, "evalsuite_compare", COMPARE_SCHEMA, "comparison record",
                             "run evalsuite compare again")
    try:
        models = {name: ModelComparison(**{**m, "win_rate_ci": tuple(m["win_rate_ci"]) if m.get("win_rate_ci")
                                           else None}) for name, m in raw["models"].items()}
        return CompareRecord(folder, raw.get("created", ""), raw.get("command", ""), raw["judge"], raw["prompts"],
                             raw.get("decoding", {}), raw["baseline"], models, raw.get("extra", {}))
    except (KeyError, TypeError) as err:
        raise EvalsuiteError(f"{folder / COMPARE} lacks a required field ({err}).",
                             "run evalsuite compare again") from None
