"""The runner: from tasks to scored results, with every model call deduplicated and cached.

1. Each task loads its documents and turns each into requests.
2. Identical requests (across documents and tasks) are merged, and the cache is asked for them.
3. The missing ones go to the model in sorted chunks (so shared prefixes meet in one batch); each
   chunk is written to the cache as soon as it is done, which is what makes a run resumable.
   Under ``accelerate launch`` every process takes a contiguous shard and the results are gathered.
4. Each document is scored from its responses; each task aggregates its documents' scores.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from evalsuite.cache import RequestCache
from evalsuite.requests import Request, request_key, request_kind, response_from_json
from evalsuite.stats import Metric
from evalsuite.task import Dataset, Doc, Task

METHODS = {"Loglikelihood": "loglikelihood", "LoglikelihoodRolling": "loglikelihood_rolling", "Generate": "generate"}
# Requests per chunk: small enough that an interrupted run loses little, large enough to batch well.
CHUNK = {"Loglikelihood": 512, "LoglikelihoodRolling": 4, "Generate": 64}


@dataclass
class TaskResult:
    task: Task
    dataset: Dataset
    docs: list[Doc]
    requests: list[list[Request]]
    responses: list[list[Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Metric] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class RunStats:
    unique_requests: int = 0
    from_cache: int = 0
    computed: int = 0
    model_seconds: float = 0.0


def _sort_key(request: Request):
    text = getattr(request, "context", None) or getattr(request, "text", "")
    if hasattr(request, "continuation"):
        return (text, request.continuation)
    return (-len(text), text)


def distributed_state():
    """(rank, world size, state) under ``accelerate launch``/``torchrun``; (0, 1, None) otherwise."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, None
    import torch
    from accelerate import PartialState

    # Without GPUs, Accelerate only sets up its gloo process group when told to run on CPU.
    state = PartialState(cpu=not torch.cuda.is_available())
    return state.process_index, state.num_processes, state


def compute_responses(model, requests: dict[str, Request], cache: RequestCache, stats: RunStats) -> dict[str, Any]:
    """Responses (JSON form) for every key, from the cache where possible, else from the model."""
    found = cache.get_many(requests)
    stats.unique_requests = len(requests)
    stats.from_cache = len(found)
    missing = [k for k in requests if k not in found]
    rank, world, state = distributed_state()
    by_kind: dict[str, list[str]] = {}
    for key in missing:
        by_kind.setdefault(request_kind(requests[key]), []).append(key)
    computed: dict[str, Any] = {}
    started = time.perf_counter()
    for kind, keys in by_kind.items():
        keys.sort(key=lambda k: _sort_key(requests[k]))
        share = -(-len(keys) // world)  # contiguous shards keep shared prefixes on one process
        mine = keys[rank * share : (rank + 1) * share]
        method = getattr(model, METHODS[kind])
        bar = tqdm(total=len(mine), desc=f"{METHODS[kind]}", unit="req", disable=rank != 0 or not mine)
        for start in range(0, len(mine), CHUNK[kind]):
            chunk = mine[start : start + CHUNK[kind]]
            outputs = method([requests[k] for k in chunk])
            rows = [(k, kind, _jsonable(o)) for k, o in zip(chunk, outputs)]
            cache.put_many(rows)
            computed.update((k, v) for k, _, v in rows)
            bar.update(len(chunk))
        bar.close()
    if state is not None:
        from accelerate.utils import gather_object

        state.wait_for_everyone()
        for part in gather_object([computed]):
            computed.update(part)
    stats.computed = len(missing)
    stats.model_seconds = time.perf_counter() - started
    return found | computed


def _jsonable(response):
    return list(response) if isinstance(response, tuple) else response


def evaluate(model, tasks: list[Task], data_dir, limit: int | None, cache: RequestCache) -> tuple[list[TaskResult], RunStats]:
    results = []
    for task in tasks:
        dataset = task.load(data_dir)
        docs = dataset.docs[:limit] if limit else dataset.docs
        results.append(TaskResult(task, dataset, docs, [task.requests(doc) for doc in docs]))
    unique = {request_key(r): r for res in results for reqs in res.requests for r in reqs}
    stats = RunStats()
    responses = compute_responses(model, unique, cache, stats)
    for res in results:
        started = time.perf_counter()
        for doc, reqs in zip(res.docs, res.requests):
            typed = [response_from_json(r, responses[request_key(r)]) for r in reqs]
            res.responses.append(typed)
            res.scores.append(res.task.score(doc, typed))
        res.metrics = res.task.aggregate(res.docs, res.scores)
        res.seconds = time.perf_counter() - started
    return results, stats


def sample_records(res: TaskResult):
    """Per-sample records: what was asked, what came back, and how it scored."""
    for doc, reqs, resps, scores in zip(res.docs, res.requests, res.responses, res.scores):
        yield {
            "doc_id": doc["id"],
            "doc": doc,
            "requests": [{"kind": request_kind(r), **asdict(r)} for r in reqs],
            "responses": [_jsonable(r) for r in resps],
            "scores": scores,
        }
