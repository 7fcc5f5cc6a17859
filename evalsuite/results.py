"""The run record: ``results.json`` (metrics with their uncertainty, and everything needed to
reproduce them) plus one JSON Lines file of per-sample records per task under ``samples/``."""

from __future__ import annotations

import errno
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import jsonlines

from evalsuite.errors import EvalsuiteError
from evalsuite.requests import request_kind
from evalsuite.runner import RunStats, TaskResult, sample_records


def check_writable(output: Path) -> None:
    """Fail before any model work if the run record could not be written."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise EvalsuiteError(
            f"Cannot write to output folder {output} ({err.strerror or err}).", "choose another --output"
        ) from None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("evalsuite", "torch", "transformers", "accelerate", "datasets", "numpy"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def task_record(res: TaskResult, model_share: float) -> dict:
    task = res.task
    return {
        "primary_metric": task.primary_metric,
        "metrics": {k: m.value for k, m in res.metrics.items()},
        "stderr": {k: m.stderr for k, m in res.metrics.items()},
        "n": len(res.docs),
        "missing_responses": res.missing,
        "higher_is_better": task.higher_is_better,
        "version": task.version,
        "params": task.params,
        "description": task.description,
        "data": {"source": res.dataset.source, "sha256": res.dataset.sha256, "docs_available": len(res.dataset.docs)},
        "seconds": round(model_share + res.seconds, 3),
    }


def build_record(
    config: dict, model_info: dict, results: list[TaskResult], stats: RunStats, timings: dict, scorers: dict
) -> dict:
    tasks = {res.task.name: task_record(res, _model_share(res, results, stats)) for res in results}
    return {
        "evalsuite_record": 1,
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


def _model_share(res: TaskResult, results: list[TaskResult], stats: RunStats) -> float:
    """Compute time is shared across tasks (requests are merged): each kind's time is split between
    tasks by their share of that kind's requests (a rolling perplexity request is not a choice)."""
    def count(r: TaskResult, kind: str) -> int:
        return sum(request_kind(q) == kind for reqs in r.requests for q in reqs)

    share = 0.0
    for kind, seconds in stats.kind_seconds.items():
        total = sum(count(r, kind) for r in results)
        share += seconds * count(res, kind) / total if total else 0.0
    return share


def write_run(output: Path, record: dict, results: list[TaskResult]) -> None:
    try:
        samples = output / "samples"
        samples.mkdir(parents=True, exist_ok=True)
        for res in results:
            tmp = samples / f"{res.task.name}.jsonl.tmp"
            with jsonlines.open(tmp, "w") as writer:
                writer.write_all(sample_records(res))
            os.replace(tmp, samples / f"{res.task.name}.jsonl")
        tmp = output / "results.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=str))
        os.replace(tmp, output / "results.json")
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise EvalsuiteError(
                f"The disk holding {output} is full.",
                "free space and run the same command again: every response is cached, nothing is recomputed",
            ) from None
        raise
